//! The gate pass: after the policy ranks the tags, fetch what each configured gate needs for
//! the best candidate, let `crate::gate` decide, and move to the next best when it is stopped.
//! Requests are made only for candidates down to the first eligible one, and what a digest
//! always answers the same way (its platforms, its config's `created`, a verified signature)
//! is remembered for the life of the process.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;

use crate::config::ImagePolicy;
use crate::gate::{self, Gate, Platform, Stop, age, cosign};
use crate::model::{Digest, ImageName, Tag};
use crate::policy::{BuildSpec, Stats, newest_build};
use crate::registry::oci::{self, ImageConfig};
use crate::registry::{self, Client};

/// Candidates examined per scan at most: each costs a few requests, and a long run of
/// stopped tags is better reported than chased.
pub const MAX_CANDIDATES: usize = 20;

/// Signature layers read per signature artifact at most.
const MAX_SIGNATURES: usize = 16;

/// Entries kept per cache before it starts again empty.
const CACHE_LIMIT: usize = 100_000;

/// The gate pass's outcome for one image.
#[derive(Debug, Clone, Default)]
pub struct Gated {
    /// Index into the tags of the selection, if any candidate passed.
    pub index: Option<usize>,
    /// The selection's manifest (or index) digest.
    pub digest: Option<Digest>,
    /// Better candidates a gate stopped, best first.
    pub stops: Vec<Stop>,
    /// The earliest moment a stopped candidate comes of age (Unix ms).
    pub retry_at: Option<u64>,
    /// The policy's counts over all tags.
    pub stats: Stats,
    /// `MAX_CANDIDATES` were stopped and the search ended there.
    pub exhausted: bool,
}

/// What a digest says about itself; never changes for that digest.
#[derive(Debug, Clone, Default)]
struct Facts {
    platforms: Vec<Platform>,
    /// `Some` once read: the config's `created` (None when it has none or it does not parse).
    created: Option<Option<DateTime<Utc>>>,
    /// For an index: the platform whose config `created` was read from.
    created_from: Option<Platform>,
}

#[derive(Debug, Default)]
struct Cache {
    facts: HashMap<(String, String), Facts>,
    /// (repository, digest, key names) whose signature verified.
    verified: HashSet<(String, String, String)>,
    /// (repository, tag) -> when this process first looked at it (Unix ms).
    first_seen: HashMap<(String, String), u64>,
    /// (repository, digest, wanted platforms) -> build time for newest-build.
    built: HashMap<(String, String, String), Option<DateTime<Utc>>>,
    /// Registries that answered the referrers API with 404: asked no more.
    no_referrers: HashSet<String>,
    /// First-seen times not handed to the state store yet.
    new_first_seen: Vec<(String, String, u64)>,
    /// Build times not handed to the state store yet: (key, Unix ms).
    new_built: Vec<(String, Option<i64>)>,
}

/// A build-time cache entry as the state store keys it.
fn built_key(key: &(String, String, String)) -> String {
    format!("{}\t{}\t{}", key.0, key.1, key.2)
}

/// Seeds newest-build times kept by an earlier process (the state store): (key, Unix ms).
pub fn remember_build_times(known: impl IntoIterator<Item = (String, Option<i64>)>) {
    let mut c = cache();
    for (key, at) in known {
        let mut parts = key.splitn(3, '\t');
        let (Some(image), Some(digest), Some(platforms)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if c.built.len() >= CACHE_LIMIT {
            break;
        }
        let created = at.and_then(DateTime::<Utc>::from_timestamp_millis);
        c.built
            .entry((image.to_string(), digest.to_string(), platforms.to_string()))
            .or_insert(created);
    }
}

/// Build times read since the last call, for the state store.
pub fn take_new_build_times() -> Vec<(String, Option<i64>)> {
    std::mem::take(&mut cache().new_built)
}

fn cache() -> std::sync::MutexGuard<'static, Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Seeds first-seen times kept by an earlier process (the state store): (canonical image,
/// tag, Unix ms). A time this process already holds is kept.
pub fn remember_first_seen(seen: impl IntoIterator<Item = (String, String, u64)>) {
    let mut c = cache();
    for (image, tag, at) in seen {
        c.first_seen.entry((image, tag)).or_insert(at);
    }
}

/// First-seen times recorded since the last call, for the state store.
pub fn take_new_first_seen() -> Vec<(String, String, u64)> {
    std::mem::take(&mut cache().new_first_seen)
}

fn first_seen(image: &ImageName, tag: &Tag, now_ms: u64) -> u64 {
    let mut c = cache();
    if c.first_seen.len() > CACHE_LIMIT {
        c.first_seen.clear();
    }
    let key = (image.canonical(), tag.to_string());
    if let Some(at) = c.first_seen.get(&key) {
        return *at;
    }
    c.first_seen.insert(key.clone(), now_ms);
    if c.new_first_seen.len() < CACHE_LIMIT {
        c.new_first_seen.push((key.0, key.1, now_ms));
    }
    now_ms
}

/// Runs the policy and the image's gates over `tags`. A registry error while checking a
/// candidate fails the whole scan (no selection comes of it), as a failed digest lookup does.
#[tracing::instrument(level = "debug", skip_all, fields(policy = %image.id))]
pub async fn choose(
    image: &ImagePolicy,
    tags: &[Tag],
    client: &Client,
) -> Result<Gated, registry::Error> {
    if let Some(build) = image.policy.newest_build() {
        let (mut ranked, stats) = dated(image, build, tags, client).await?;
        let mut gated = Gated {
            stats,
            ..Gated::default()
        };
        ranked.reverse();
        walk(image, tags, client, &mut gated, |_| ranked.pop()).await?;
        return Ok(gated);
    }
    let first = image.policy.select(tags);
    let mut gated = Gated {
        stats: first.stats,
        ..Gated::default()
    };
    let mut next = first.index.map(|i| (i, None));
    walk(image, tags, client, &mut gated, |stopped| match stopped {
        None => next.take(),
        Some(stopped) => next_best(image, tags, stopped).map(|i| (i, None)),
    })
    .await?;
    Ok(gated)
}

/// Passes candidates through the gates, best first, until one passes. `next` gives the next
/// best candidate (and its digest when already known); it is handed the stopped tags once
/// one was stopped.
async fn walk(
    image: &ImagePolicy,
    tags: &[Tag],
    client: &Client,
    gated: &mut Gated,
    mut next: impl FnMut(Option<&[bool]>) -> Option<(usize, Option<Digest>)>,
) -> Result<(), registry::Error> {
    let mut stopped = vec![false; tags.len()];
    let mut current = next(None);
    while let Some((i, known)) = current {
        if gated.stops.len() >= MAX_CANDIDATES {
            gated.exhausted = true;
            break;
        }
        let tag = &tags[i];
        let digest = match known {
            Some(d) => d,
            None => client.resolve_digest(&image.image, tag).await?,
        };
        match check(image, tag, &digest, client).await? {
            None => {
                gated.index = Some(i);
                gated.digest = Some(digest);
                break;
            }
            Some(stop) => {
                tracing::debug!(%stop, "gate stopped a candidate");
                if let Some(at) = stop.eligible_at {
                    gated.retry_at = Some(gated.retry_at.map_or(at, |r| r.min(at)));
                }
                gated.stops.push(stop);
                stopped[i] = true;
                current = next(Some(&stopped));
            }
        }
    }
    Ok(())
}

/// A candidate's digest and build time; `None` when the tag is gone.
type Looked = Result<Option<(Digest, Option<DateTime<Utc>>)>, registry::Error>;

/// newest-build: every candidate's digest and build time, newest first (`policy::newest_build`).
/// As Argo CD Image Updater does, only tags that pass the allow and ignore lists are looked
/// up, and a tag with no build time is skipped; lookups run a few at a time (and the
/// registry client bounds each host), and a digest's build time is fetched once per process.
async fn dated(
    image: &ImagePolicy,
    build: &BuildSpec,
    tags: &[Tag],
    client: &Client,
) -> Result<(Vec<(usize, Option<Digest>)>, Stats), registry::Error> {
    let (candidates, mut stats) = image.policy.candidates(tags);
    let looked: Vec<(usize, Looked)> = futures_util::stream::iter(candidates)
        .map(|i| async move {
            let digest = match client.resolve_digest(&image.image, &tags[i]).await {
                Ok(d) => d,
                // Deleted since the listing: not a candidate any more.
                Err(registry::Error::NotFound { .. }) => return (i, Ok(None)),
                Err(e) => return (i, Err(e)),
            };
            let created = build_time(image, build, &digest, client).await;
            (i, created.map(|c| Some((digest, c))))
        })
        .buffer_unordered(client.options().digest_concurrency.max(1))
        .collect()
        .await;
    let mut dated = Vec::with_capacity(looked.len());
    let mut digests = HashMap::new();
    for (i, result) in looked {
        match result? {
            Some((digest, Some(created))) => {
                digests.insert(i, digest);
                dated.push(newest_build::Dated {
                    index: i,
                    tag: tags[i].as_str(),
                    created,
                });
            }
            Some((digest, None)) => {
                tracing::debug!(tag = %tags[i], %digest, "no build time: skipped");
                stats.no_build_time += 1;
                stats.candidates -= 1;
            }
            None => stats.candidates -= 1,
        }
    }
    newest_build::rank(&mut dated);
    let ranked = dated
        .iter()
        .map(|d| (d.index, digests.remove(&d.index)))
        .collect();
    Ok((ranked, stats))
}

/// When the image `digest` names was built, as Argo CD Image Updater reads it
/// (registry-scanner `pkg/registry/client.go` `TagMetadata`, `TagInfoFromReferences`): an
/// image's config `created`, if its platform is wanted; for an index, the newest `created`
/// of its manifests for wanted platforms. `None` when no manifest is for a wanted platform,
/// or one that counts has no readable `created` (AIU skips such a tag).
async fn build_time(
    image: &ImagePolicy,
    build: &BuildSpec,
    digest: &Digest,
    client: &Client,
) -> Result<Option<DateTime<Utc>>, registry::Error> {
    let key = (
        image.image.canonical(),
        digest.to_string(),
        build.platforms_key(),
    );
    if let Some(known) = cache().built.get(&key) {
        return Ok(*known);
    }
    let name = &image.image;
    let fetched = client.manifest(name, digest.as_str()).await?;
    let created = if fetched.manifest.is_index(fetched.media_type.as_deref()) {
        let wanted: Vec<&str> = fetched
            .manifest
            .manifests
            .iter()
            .filter(|d| {
                d.platform.as_ref().is_some_and(|p| {
                    // buildx lists attestations as platform unknown/unknown: never an image.
                    !p.os.is_empty()
                        && p.os != "unknown"
                        && build.wants(&Platform {
                            os: p.os.clone(),
                            arch: p.architecture.clone(),
                            variant: p.variant.clone().filter(|v| !v.is_empty()),
                        })
                })
            })
            .map(|d| d.digest.as_str())
            .collect();
        let mut newest: Option<DateTime<Utc>> = None;
        let mut all_dated = !wanted.is_empty();
        for child in wanted {
            let child = client.manifest(name, child).await?;
            let created = match &child.manifest.config {
                Some(c) => config(name, &c.digest, client)
                    .await?
                    .created
                    .as_deref()
                    .and_then(age::parse_created),
                None => None,
            };
            match created {
                Some(c) => newest = Some(newest.map_or(c, |n| n.max(c))),
                None => all_dated = false,
            }
        }
        newest.filter(|_| all_dated)
    } else if let Some(c) = &fetched.manifest.config {
        let config = config(name, &c.digest, client).await?;
        let platform = Platform {
            os: config.os.clone(),
            arch: config.architecture.clone(),
            variant: config.variant.clone().filter(|v| !v.is_empty()),
        };
        if build.wants(&platform) {
            config.created.as_deref().and_then(age::parse_created)
        } else {
            None
        }
    } else {
        None
    };
    let mut c = cache();
    if c.built.len() > CACHE_LIMIT {
        c.built.clear();
    }
    if c.new_built.len() < CACHE_LIMIT {
        c.new_built
            .push((built_key(&key), created.map(|t| t.timestamp_millis())));
    }
    c.built.insert(key, created);
    Ok(created)
}

/// The best candidate among the tags not stopped yet.
fn next_best(image: &ImagePolicy, tags: &[Tag], stopped: &[bool]) -> Option<usize> {
    let (indices, rest): (Vec<usize>, Vec<&str>) = tags
        .iter()
        .enumerate()
        .filter(|(i, _)| !stopped[*i])
        .map(|(i, t)| (i, t.as_str()))
        .unzip();
    image.policy.select(&rest).index.map(|j| indices[j])
}

/// The first configured gate that stops `tag`, in the documented order, or `None`.
async fn check(
    image: &ImagePolicy,
    tag: &Tag,
    digest: &Digest,
    client: &Client,
) -> Result<Option<Stop>, registry::Error> {
    let gates = &image.gates;
    let stop = |gate: Gate, reason: String, eligible_at: Option<u64>| Stop {
        tag: tag.to_string(),
        digest: Some(digest.to_string()),
        gate,
        reason,
        eligible_at,
    };
    let now = Utc::now();
    let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    let seen = first_seen(&image.image, tag, now_ms);
    let need_created = gates.min_age.is_some();
    let needs_facts = need_created || !gates.platforms.is_empty();
    let facts = if needs_facts {
        facts(image, digest, need_created, client).await?
    } else {
        Facts::default()
    };
    for g in gates.order() {
        match g {
            Gate::MinAge => {
                let Some(min_age) = gates.min_age else {
                    continue;
                };
                let created = facts.created.flatten();
                let seen_at =
                    DateTime::<Utc>::from_timestamp_millis(i64::try_from(seen).unwrap_or(i64::MAX))
                        .unwrap_or(now);
                if let Err(young) = age::check(min_age, created, seen_at, now) {
                    let mut reason = gate::too_young_reason(&young, min_age);
                    if let (age::AgeSource::Created, Some(p)) = (young.source, &facts.created_from)
                    {
                        reason.push_str(&format!("; created of the {p} image"));
                    }
                    let at =
                        u64::try_from(young.eligible_at.timestamp_millis()).unwrap_or(u64::MAX);
                    return Ok(Some(stop(g, reason, Some(at))));
                }
            }
            Gate::Platforms => {
                let missing = gate::platform::missing(&gates.platforms, &facts.platforms);
                if !missing.is_empty() {
                    let reason = gate::missing_reason(&missing, &facts.platforms);
                    return Ok(Some(stop(g, reason, None)));
                }
            }
            Gate::Signature => {
                if let Err(refusal) = verify(image, digest, client).await? {
                    return Ok(Some(stop(g, refusal.to_string(), None)));
                }
            }
        }
    }
    Ok(None)
}

/// The digest's platforms and, when asked, its `created`: from the cache, else fetched (the
/// manifest, and the config blob; for an index, the config of one platform's manifest: the
/// first listed platform the image wants, else the first listed).
async fn facts(
    image: &ImagePolicy,
    digest: &Digest,
    need_created: bool,
    client: &Client,
) -> Result<Facts, registry::Error> {
    let key = (image.image.canonical(), digest.to_string());
    if let Some(f) = cache().facts.get(&key)
        && (!need_created || f.created.is_some())
    {
        return Ok(f.clone());
    }
    let name = &image.image;
    let fetched = client.manifest(name, digest.as_str()).await?;
    let mut facts = Facts::default();
    if fetched.manifest.is_index(fetched.media_type.as_deref()) {
        let entries: Vec<(Platform, &str)> = fetched
            .manifest
            .manifests
            .iter()
            .filter_map(|d| {
                let p = d.platform.as_ref()?;
                // buildx lists attestations as platform unknown/unknown.
                if p.os.is_empty() || p.architecture.is_empty() || p.os == "unknown" {
                    return None;
                }
                let platform = Platform {
                    os: p.os.clone(),
                    arch: p.architecture.clone(),
                    variant: p.variant.clone().filter(|v| !v.is_empty()),
                };
                Some((platform, d.digest.as_str()))
            })
            .collect();
        facts.platforms = entries.iter().map(|(p, _)| p.clone()).collect();
        if need_created {
            let chosen = image
                .gates
                .platforms
                .iter()
                .find_map(|w| entries.iter().find(|(p, _)| p.serves(w)))
                .or(entries.first());
            match chosen {
                Some((platform, child)) => {
                    let child = client.manifest(name, child).await?;
                    let config = match &child.manifest.config {
                        Some(c) => Some(config(name, &c.digest, client).await?),
                        None => None,
                    };
                    facts.created = Some(
                        config.and_then(|c| c.created.as_deref().and_then(age::parse_created)),
                    );
                    facts.created_from = Some(platform.clone());
                }
                None => facts.created = Some(None),
            }
        }
    } else if let Some(c) = &fetched.manifest.config {
        let config = config(name, &c.digest, client).await?;
        if !config.os.is_empty() && !config.architecture.is_empty() {
            facts.platforms.push(Platform {
                os: config.os.clone(),
                arch: config.architecture.clone(),
                variant: config.variant.clone().filter(|v| !v.is_empty()),
            });
        }
        facts.created = Some(config.created.as_deref().and_then(age::parse_created));
    } else {
        facts.created = Some(None);
    }
    let mut c = cache();
    if c.facts.len() > CACHE_LIMIT {
        c.facts.clear();
    }
    c.facts.insert(key, facts.clone());
    Ok(facts)
}

async fn config(
    image: &ImageName,
    digest: &str,
    client: &Client,
) -> Result<ImageConfig, registry::Error> {
    let bytes = client.blob(image, digest).await?;
    oci::parse(&bytes).map_err(|reason| registry::Error::Document {
        image: image.to_string(),
        what: format!("config {digest}"),
        reason,
    })
}

/// Whether `digest` carries a signature one of the image's keys verifies. Only a verified
/// signature is remembered: an unsigned tag may be signed a minute later.
async fn verify(
    image: &ImagePolicy,
    digest: &Digest,
    client: &Client,
) -> Result<Result<(), cosign::Refusal>, registry::Error> {
    let keys = &image.gates.keys;
    let names = keys
        .iter()
        .map(|k| k.name.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let key = (image.image.canonical(), digest.to_string(), names);
    if cache().verified.contains(&key) {
        return Ok(Ok(()));
    }
    let found = signatures(&image.image, digest, client).await?;
    match cosign::verify(keys, digest.as_str(), &found) {
        Ok(name) => {
            tracing::debug!(%digest, key = name, "signature verified");
            let mut c = cache();
            if c.verified.len() > CACHE_LIMIT {
                c.verified.clear();
            }
            c.verified.insert(key);
            Ok(Ok(()))
        }
        Err(refusal) => Ok(Err(refusal)),
    }
}

/// The cosign signatures stored for `digest`: OCI 1.1 referrers whose artifact type is a
/// cosign signature (where the registry offers the API), and the `sha256-<hex>.sig` tag.
async fn signatures(
    image: &ImageName,
    digest: &Digest,
    client: &Client,
) -> Result<Vec<cosign::Signature>, registry::Error> {
    let mut manifests = Vec::new();
    let registry = image.registry().to_string();
    let no_api = cache().no_referrers.contains(&registry);
    let referrers = if no_api {
        None
    } else {
        client.referrers(image, digest.as_str()).await?
    };
    if referrers.is_none() && !no_api {
        // A registry with the API answers an empty list for a digest nothing refers to; a 404
        // means the API is missing, and it will not appear during this process.
        cache().no_referrers.insert(registry);
    }
    if let Some(referrers) = referrers {
        for r in referrers.iter().filter(|r| {
            matches!(
                r.artifact_type.as_deref(),
                Some(cosign::SIGNATURE_ARTIFACT | cosign::SIMPLE_SIGNING)
            )
        }) {
            manifests.push(client.manifest(image, &r.digest).await?.manifest);
        }
    } else {
        tracing::debug!(%image, "no referrers API; reading the signature tag only");
    }
    match client
        .manifest(image, &cosign::signature_tag(digest.as_str()))
        .await
    {
        Ok(m) => manifests.push(m.manifest),
        Err(registry::Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    for m in &manifests {
        for layer in m
            .layers
            .iter()
            .filter(|l| l.media_type == cosign::SIMPLE_SIGNING)
            .take(MAX_SIGNATURES)
        {
            let payload = client.blob(image, &layer.digest).await?;
            out.push(cosign::Signature {
                payload,
                signature: layer.annotations.get(cosign::SIGNATURE_ANNOTATION).cloned(),
            });
        }
    }
    Ok(out)
}
