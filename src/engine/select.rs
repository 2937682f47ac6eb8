//! Scan images and run their policies: the selections a run rewrites with. A repository is
//! listed once however many policies watch it, and each repository is scanned on its own, so
//! a slow registry delays only its own images. A failed tag listing and a failed digest lookup
//! are both a failed scan of that image: no selection comes of it.

use std::collections::{BTreeMap, HashMap};

use futures_util::StreamExt as _;
use serde::Serialize;

use crate::config::{Config, DigestMode, ImagePolicy};
use crate::metrics::{label, metrics};
use crate::model::{Digest, ImageName, ImageRef, PolicyId, Tag};
use crate::policy::{PolicyKey, TagList};
use crate::registry::{Client, Listing};

/// What happened to one image this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    pub policy: String,
    pub image: String,
    /// Tags the registry listed, when the listing worked.
    pub tags: Option<usize>,
    /// The full new reference, when a tag was selected.
    pub selected: Option<String>,
    /// Why there is no selection: a failed scan or digest lookup, or nothing acceptable.
    pub error: Option<String>,
    /// The scan failed (listing or digest lookup), as opposed to finding nothing acceptable.
    pub failed: bool,
    /// A failed scan may work when tried again later.
    #[serde(skip)]
    pub transient: bool,
    /// Better-ranked tags a gate (minAge, platforms, signature) stopped, best first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<crate::gate::Stop>,
    /// When a tag held back by minAge comes of age (Unix ms): the image is scanned again then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// The listing a selection without gates was made from, kept with it.
    #[serde(skip)]
    pub listing: Option<Listed>,
}

/// Selections by policy, plus a report per image.
#[derive(Debug, Clone, Default)]
pub struct SelectionSet {
    pub selections: BTreeMap<PolicyId, ImageRef>,
    pub reports: Vec<ImageReport>,
    /// The tags each successfully scanned image listed, for the state store.
    pub tags: BTreeMap<ImageName, Vec<Tag>>,
}

impl SelectionSet {
    /// A failed scan or lookup, as opposed to a scan that found nothing acceptable.
    pub fn has_failures(&self) -> bool {
        self.reports.iter().any(|r| r.failed)
    }

    pub fn failed(&self, policy: &PolicyId) -> Option<&str> {
        let id = policy.to_string();
        self.reports
            .iter()
            .find(|r| r.policy == id)
            .and_then(|r| r.error.as_deref())
    }
}

/// One repository's scan: its tags (listed once) and what each policy watching it selected.
#[derive(Debug, Clone)]
pub struct RepositoryScan {
    pub image: ImageName,
    pub tags: Option<Vec<Tag>>,
    /// In the order of the policies given.
    pub policies: Vec<PolicyScan>,
}

#[derive(Debug, Clone)]
pub struct PolicyScan {
    pub report: ImageReport,
    pub selection: Option<ImageRef>,
}

/// Each policy's last selection, as the previous scan left it (digest included), and the
/// listing it was made from where that is known.
///
/// With `digest: IfNotPresent` a policy that selects the same tag of the same image again
/// keeps the digest it has and makes no lookup, as Flux does (image-reflector-controller,
/// `updateImageRefs` in `internal/controller/imagepolicy_controller.go`: it fetches only when
/// there is no latest ref, its name or tag differs, or its digest is empty).
///
/// A policy without gates whose image lists exactly what it listed when its selection was
/// made (see [`Listed`]) selects the same tag again without ranking the list: selection is a
/// function of the policy and the listing alone. When every policy of an image stands on the
/// same listing and the registry answers with the same bytes, the answer is not even read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub selections: BTreeMap<PolicyId, ImageRef>,
    /// The listing each policy's selection came from, stored with it.
    pub listings: BTreeMap<PolicyId, Listed>,
}

/// A listing a selection was made from: its id ([`crate::registry::Listing::Tags`], salted
/// with [`BUILD`]) and how many tags it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub tags: usize,
}

impl Known {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, policy: &PolicyId) -> Option<&ImageRef> {
        self.selections.get(policy)
    }

    /// `image`'s last selected tag, of its own image, and the listing it was made from.
    fn stored(&self, image: &ImagePolicy) -> Option<(&Listed, &Tag)> {
        let listed = self.listings.get(&image.id)?;
        let last = self.selections.get(&image.id)?;
        let tag = last.tag.as_ref().filter(|_| last.name == image.image)?;
        Some((listed, tag))
    }
}

impl FromIterator<(PolicyId, ImageRef)> for Known {
    fn from_iter<I: IntoIterator<Item = (PolicyId, ImageRef)>>(iter: I) -> Self {
        Self {
            selections: iter.into_iter().collect(),
            listings: BTreeMap::new(),
        }
    }
}

impl<const N: usize> From<[(PolicyId, ImageRef); N]> for Known {
    fn from(pairs: [(PolicyId, ImageRef); N]) -> Self {
        pairs.into_iter().collect()
    }
}

/// What a selection depends on besides the policy and the listing: the build that ranked the
/// tags (a new build may rank differently, so it ranks again once). Listing ids are salted
/// with it.
pub const BUILD: &str = concat!(env!("CARGO_PKG_VERSION"), " ", env!("TAGSMITH_REVISION"));

/// Scans all images and selects; see [`select_images`]. `on_moved` is called (from the scan,
/// at once) for each repository where some policy's selection is not the one `known` holds.
pub async fn select_all(
    config: &Config,
    client: &Client,
    known: &Known,
    on_moved: &(dyn Fn() + Sync),
) -> SelectionSet {
    // A suspended image is not scanned: no selection, so its markers stay as they are.
    let all: Vec<&ImagePolicy> = config.images.iter().filter(|i| !i.suspend).collect();
    select_images_with(&all, client, known, on_moved).await
}

/// Scans `images` (each repository once, at most the client's scan concurrency at a time),
/// selects, and resolves digests where a policy asks for them and `known` does not hold it.
pub async fn select_images(
    images: &[&ImagePolicy],
    client: &Client,
    known: &Known,
) -> SelectionSet {
    select_images_with(images, client, known, &|| {}).await
}

async fn select_images_with(
    images: &[&ImagePolicy],
    client: &Client,
    known: &Known,
    on_moved: &(dyn Fn() + Sync),
) -> SelectionSet {
    let mut groups: BTreeMap<ImageName, Vec<&ImagePolicy>> = BTreeMap::new();
    for image in images {
        groups.entry(image.image.clone()).or_default().push(image);
    }
    let concurrency = client.options().scan_concurrency.max(1);
    let scans: Vec<RepositoryScan> =
        futures_util::stream::iter(groups)
            .map(|(image, policies)| async move {
                scan_repository(&image, &policies, client, known).await
            })
            .buffer_unordered(concurrency)
            .inspect(|scan| {
                if moved(scan, known) {
                    on_moved();
                }
            })
            .collect()
            .await;
    let mut by_policy = BTreeMap::new();
    let mut set = SelectionSet::default();
    for scan in scans {
        for policy in scan.policies {
            by_policy.insert(policy.report.policy.clone(), policy);
        }
        if let Some(tags) = scan.tags {
            set.tags.insert(scan.image, tags);
        }
    }
    for image in images {
        if let Some(scan) = by_policy.get(&image.id.to_string()) {
            if let Some(selection) = &scan.selection {
                set.selections.insert(image.id.clone(), selection.clone());
            }
            set.reports.push(scan.report.clone());
        }
    }
    set
}

/// Whether some policy of `scan` selected other than `known` holds (or nothing, or failed).
fn moved(scan: &RepositoryScan, known: &Known) -> bool {
    scan.policies.iter().any(|p| {
        let last = p
            .report
            .policy
            .parse::<PolicyId>()
            .ok()
            .and_then(|id| known.get(&id));
        p.report.failed || p.selection.as_ref() != last
    })
}

/// Lists `image`'s tags once and selects for each of `policies` (which all watch it). The tag
/// list is read once for all of them ([`TagList`]), equal policies select once between them,
/// and each selected tag's digest is looked up once, the lookups running side by side (at
/// most the client's digest concurrency per repository, and each host's own limit overall).
pub async fn scan_repository(
    image: &ImageName,
    policies: &[&ImagePolicy],
    client: &Client,
    known: &Known,
) -> RepositoryScan {
    let started = std::time::Instant::now();
    let seen = seen_listing(policies, known);
    let listed = client
        .list_tags_since(image, BUILD.as_bytes(), seen.map(|l| l.id.as_str()))
        .await;
    let results = match &listed {
        Ok(Listing::Tags { tags, id }) => select_listed(policies, tags, id, client, known).await,
        Ok(Listing::Unchanged) => match seen {
            Some(seen) => select_standing(policies, seen, client, known).await,
            // The client answers "unchanged" only to a listing given as seen; should it ever
            // do otherwise, the scan fails visibly rather than selecting from nothing.
            None => policies
                .iter()
                .map(|policy| {
                    let error = "the registry's answer was taken for one never seen".to_string();
                    failure(policy, None, error, true)
                })
                .collect(),
        },
        Err(e) => {
            let error = super::report::chain(e);
            let transient = e.is_transient();
            policies
                .iter()
                .map(|policy| failure(policy, None, error.clone(), transient))
                .collect()
        }
    };
    let m = metrics();
    for (policy, scan) in policies.iter().zip(&results) {
        m.scan_duration.observe(started.elapsed().as_secs_f64());
        let result = if scan.report.failed { "error" } else { "ok" };
        m.scans.get_or_create(&label("result", result)).inc();
        if let (true, Some(error)) = (scan.report.failed, &scan.report.error) {
            tracing::warn!(policy = %policy.id, image = %policy.image, %error, "scan failed; its markers stay as they are");
        }
    }
    RepositoryScan {
        image: image.clone(),
        tags: match listed {
            Ok(Listing::Tags { tags, .. }) => Some(tags),
            Ok(Listing::Unchanged) | Err(_) => None,
        },
        policies: results,
    }
}

/// The listing every policy of an image stands on, when they all have no gates and their
/// selections were all made from one listing: the registry's answer need not be read if it
/// is that one again.
fn seen_listing<'k>(policies: &[&ImagePolicy], known: &'k Known) -> Option<&'k Listed> {
    let mut seen: Option<&Listed> = None;
    for policy in policies {
        if policy.needs_registry_pass() {
            return None;
        }
        let (listed, _) = known.stored(policy)?;
        match seen {
            Some(other) if other != listed => return None,
            _ => seen = Some(listed),
        }
    }
    seen
}

/// Each policy's stored selection, its image having listed `seen` again; digests as
/// [`select_plain`] resolves them.
async fn select_standing(
    policies: &[&ImagePolicy],
    seen: &Listed,
    client: &Client,
    known: &Known,
) -> Vec<PolicyScan> {
    // The distinct stored tags stand in for the listing: the choices index them.
    let mut tags: Vec<Tag> = Vec::new();
    let choices: Vec<Choice> = policies
        .iter()
        .map(|policy| {
            let Some((_, tag)) = known.stored(policy) else {
                // `seen_listing` gave `seen` only when every policy has a stored tag.
                return Choice::Nothing("no stored selection".into());
            };
            let i = tags.iter().position(|t| t == tag).unwrap_or_else(|| {
                tags.push(tag.clone());
                tags.len() - 1
            });
            Choice::Tag(i)
        })
        .collect();
    resolve(policies, &tags, seen, choices, client, known).await
}

/// What one policy's selection came to, before any digest lookup.
#[derive(Debug, Clone)]
enum Choice {
    /// The index of the selected tag.
    Tag(usize),
    /// Nothing acceptable; the message says what happened to the tags.
    Nothing(String),
}

/// Selects for every policy from one listing. A policy with gates runs its own gate pass
/// (`super::gates`: it makes requests per candidate); the others share [`select_plain`].
async fn select_listed(
    policies: &[&ImagePolicy],
    tags: &[Tag],
    id: &str,
    client: &Client,
    known: &Known,
) -> Vec<PolicyScan> {
    if policies.iter().all(|p| !p.needs_registry_pass()) {
        return select_plain(policies, tags, id, client, known).await;
    }
    let plain: Vec<&ImagePolicy> = policies
        .iter()
        .copied()
        .filter(|p| !p.needs_registry_pass())
        .collect();
    let mut plain_scans = if plain.is_empty() {
        Vec::new()
    } else {
        select_plain(&plain, tags, id, client, known).await
    }
    .into_iter();
    let mut out = Vec::with_capacity(policies.len());
    for policy in policies {
        let scan = if !policy.needs_registry_pass() {
            plain_scans.next()
        } else {
            Some(gated(policy, tags, client).await)
        };
        out.extend(scan);
    }
    out
}

/// Selects for every policy without gates from one listing, then looks up the digests they need.
async fn select_plain(
    policies: &[&ImagePolicy],
    tags: &[Tag],
    id: &str,
    client: &Client,
    known: &Known,
) -> Vec<PolicyScan> {
    let listed = Listed {
        id: id.to_string(),
        tags: tags.len(),
    };
    let choices = choose(policies, tags, known, id);
    resolve(policies, tags, &listed, choices, client, known).await
}

/// The scans of `choices` (indexes into `tags`, made from `listed`): each selected tag's
/// digest kept or looked up once.
async fn resolve(
    policies: &[&ImagePolicy],
    tags: &[Tag],
    listed: &Listed,
    choices: Vec<Choice>,
    client: &Client,
    known: &Known,
) -> Vec<PolicyScan> {
    let count = listed.tags;
    let kept: Vec<Option<Digest>> = policies
        .iter()
        .zip(&choices)
        .map(|(policy, choice)| match choice {
            Choice::Tag(i) => kept_digest(policy, &tags[*i], known),
            Choice::Nothing(_) => None,
        })
        .collect();
    // Each selected tag some policy wants a digest for and does not keep, once.
    let mut wanted: Vec<usize> = policies
        .iter()
        .zip(&choices)
        .zip(&kept)
        .filter_map(
            |((policy, choice), kept)| match (policy.digest, choice, kept) {
                (DigestMode::Never, _, _) | (_, Choice::Nothing(_), _) | (_, _, Some(_)) => None,
                (DigestMode::IfNotPresent | DigestMode::Always, Choice::Tag(i), None) => Some(*i),
            },
        )
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let image = &policies[0].image;
    let digests: BTreeMap<usize, Result<Digest, (String, bool)>> =
        futures_util::stream::iter(wanted)
            .map(|i| async move {
                let result = client
                    .resolve_digest(image, &tags[i])
                    .await
                    .map_err(|e| (e.to_string(), e.is_transient()));
                (i, result)
            })
            .buffer_unordered(client.options().digest_concurrency.max(1))
            .collect()
            .await;
    policies
        .iter()
        .zip(choices)
        .zip(kept)
        .map(|((policy, choice), kept)| match choice {
            Choice::Nothing(why) => {
                let mut nothing = failure(policy, Some(count), why, false);
                nothing.report.failed = false;
                nothing
            }
            Choice::Tag(i) => {
                let digest = match (policy.digest, digests.get(&i)) {
                    (DigestMode::Never, _) => None,
                    (_, _) if kept.is_some() => kept,
                    (_, None) => None,
                    (_, Some(Ok(d))) => Some(d.clone()),
                    (_, Some(Err((e, transient)))) => {
                        let tag = &tags[i];
                        let error = format!("digest of {tag}: {e}");
                        return failure(policy, Some(count), error, *transient);
                    }
                };
                let mut scan = selected(policy, count, &tags[i], digest);
                scan.report.listing = Some(listed.clone());
                scan
            }
        })
        .collect()
}

/// The digest `policy` keeps instead of looking it up: with `IfNotPresent`, the one its last
/// selection recorded when that was the same tag of the same image (see [`Known`]).
fn kept_digest(policy: &ImagePolicy, tag: &Tag, known: &Known) -> Option<Digest> {
    let last = known.get(&policy.id)?;
    match policy.digest {
        DigestMode::IfNotPresent if last.name == policy.image && last.tag.as_ref() == Some(tag) => {
            last.digest.clone()
        }
        DigestMode::IfNotPresent | DigestMode::Always | DigestMode::Never => None,
    }
}

/// Each policy's choice from `tags`, in the order of `policies`. A policy whose last
/// selection came from this very listing keeps it; for the others the list is read once for
/// all of them, and equal policies select once.
fn choose(policies: &[&ImagePolicy], tags: &[Tag], known: &Known, listing: &str) -> Vec<Choice> {
    let list = TagList::new(tags);
    let mut made: HashMap<PolicyKey<'_>, Choice> = HashMap::new();
    // Where each stored tag is in the list, found once however many policies stored it.
    let mut found: HashMap<&Tag, Option<usize>> = HashMap::new();
    policies
        .iter()
        .map(|image| {
            if let Some((_, tag)) = known.stored(image).filter(|(l, _)| l.id == listing)
                && let Some(i) = *found
                    .entry(tag)
                    .or_insert_with(|| tags.iter().position(|t| t == tag))
            {
                return Choice::Tag(i);
            }
            made.entry(image.policy.key())
                .or_insert_with(|| {
                    let selection = if policies.len() > 1 {
                        image.policy.select_in(&list)
                    } else {
                        image.policy.select(tags)
                    };
                    match selection.index {
                        Some(i) => Choice::Tag(i),
                        None => {
                            Choice::Nothing(format!("no tag selected from {}", selection.stats))
                        }
                    }
                })
                .clone()
        })
        .collect()
}

fn failure(image: &ImagePolicy, tags: Option<usize>, error: String, transient: bool) -> PolicyScan {
    PolicyScan {
        report: ImageReport {
            policy: image.id.to_string(),
            image: image.image.to_string(),
            tags,
            selected: None,
            error: Some(error),
            failed: true,
            transient,
            stopped: Vec::new(),
            retry_at: None,
            listing: None,
        },
        selection: None,
    }
}

fn selected(image: &ImagePolicy, count: usize, tag: &Tag, digest: Option<Digest>) -> PolicyScan {
    let reference = ImageRef {
        name: image.image.clone(),
        tag: Some(tag.clone()),
        digest,
    };
    tracing::debug!(policy = %image.id, selected = %reference, tags = count, "selected");
    PolicyScan {
        report: ImageReport {
            policy: image.id.to_string(),
            image: image.image.to_string(),
            tags: Some(count),
            selected: Some(reference.to_string()),
            error: None,
            failed: false,
            transient: false,
            stopped: Vec::new(),
            retry_at: None,
            listing: None,
        },
        selection: Some(reference),
    }
}

/// The policy's ranking passed through the image's gates (`super::gates`).
async fn gated(image: &ImagePolicy, tags: &[Tag], client: &Client) -> PolicyScan {
    let gated = match super::gates::choose(image, tags, client).await {
        Ok(g) => g,
        Err(e) => {
            let error = format!("gates: {}", super::report::chain(&e));
            return failure(image, Some(tags.len()), error, e.is_transient());
        }
    };
    for gate in image.gates.order() {
        let count = gated.stops.iter().filter(|s| s.gate == gate).count();
        crate::metrics::metrics()
            .gate_stops
            .get_or_create(&vec![
                ("policy", image.id.to_string()),
                ("gate", gate.to_string()),
            ])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    let selection = gated.index.map(|i| ImageRef {
        name: image.image.clone(),
        tag: Some(tags[i].clone()),
        digest: match image.digest {
            DigestMode::Never => None,
            DigestMode::IfNotPresent | DigestMode::Always => gated.digest.clone(),
        },
    });
    let error = match (&selection, gated.stops.is_empty()) {
        (Some(_), _) => None,
        (None, true) => Some(format!("no tag selected from {}", gated.stats)),
        (None, false) if gated.exhausted => Some(format!(
            "no tag passed the gates: the best {} candidates were stopped",
            gated.stops.len()
        )),
        (None, false) => Some(format!(
            "no tag passed the gates ({} stopped)",
            gated.stops.len()
        )),
    };
    PolicyScan {
        report: ImageReport {
            policy: image.id.to_string(),
            image: image.image.to_string(),
            tags: Some(tags.len()),
            selected: selection.as_ref().map(ToString::to_string),
            error,
            failed: false,
            transient: false,
            stopped: gated.stops,
            retry_at: gated.retry_at,
            listing: None,
        },
        selection,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scan(selected: Option<&str>, failed: bool) -> RepositoryScan {
        RepositoryScan {
            image: "r.example/app".parse().unwrap(),
            tags: None,
            policies: vec![PolicyScan {
                report: ImageReport {
                    policy: "a:app".into(),
                    image: "r.example/app".into(),
                    tags: None,
                    selected: selected.map(str::to_string),
                    error: None,
                    failed,
                    transient: false,
                    stopped: Vec::new(),
                    retry_at: None,
                    listing: None,
                },
                selection: selected.map(|s| s.parse().unwrap()),
            }],
        }
    }

    #[test]
    fn a_scan_moved_when_a_selection_differs_from_the_last_or_failed() {
        let known = Known::from([(
            "a:app".parse().unwrap(),
            "r.example/app:1.2.0".parse().unwrap(),
        )]);
        assert!(!moved(&scan(Some("r.example/app:1.2.0"), false), &known));
        assert!(moved(&scan(Some("r.example/app:1.3.0"), false), &known));
        assert!(moved(&scan(None, false), &known));
        assert!(moved(&scan(Some("r.example/app:1.2.0"), true), &known));
        assert!(moved(
            &scan(Some("r.example/app:1.2.0"), false),
            &Known::new()
        ));
    }

    fn policy(text: &str) -> ImagePolicy {
        let config = Config::parse(
            &format!("images:\n  - {text}\n"),
            std::path::Path::new("tagsmith.yaml"),
        )
        .unwrap();
        config.images.into_iter().next().unwrap()
    }

    fn tags(names: &[&str]) -> Vec<Tag> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn picked(choices: &[Choice]) -> Vec<Option<usize>> {
        choices
            .iter()
            .map(|c| match c {
                Choice::Tag(i) => Some(*i),
                Choice::Nothing(_) => None,
            })
            .collect()
    }

    fn listed(id: &str, tags: usize) -> Listed {
        Listed {
            id: id.into(),
            tags,
        }
    }

    #[test]
    fn a_selection_made_from_the_same_listing_stands_and_any_other_listing_is_ranked() {
        let app = policy("{ policy: 'a:app', image: r.example/app, semver: '^1' }");
        let listing = tags(&["1.0.0", "1.2.0", "1.1.0"]);
        assert_eq!(
            picked(&choose(&[&app], &listing, &Known::new(), "one")),
            [Some(1)]
        );

        // A stored 1.1.0 from this very listing is taken as it is (which is how the test can
        // tell it was not ranked again).
        let mut known = Known::from([(app.id.clone(), "r.example/app:1.1.0".parse().unwrap())]);
        known.listings.insert(app.id.clone(), listed("one", 3));
        assert_eq!(picked(&choose(&[&app], &listing, &known, "one")), [Some(2)]);

        // Another listing, a stored tag the list no longer has, or another image: ranked.
        let more = tags(&["1.0.0", "1.2.0", "1.1.0", "1.3.0"]);
        assert_eq!(picked(&choose(&[&app], &more, &known, "two")), [Some(3)]);
        let without = tags(&["1.0.0", "1.2.0"]);
        assert_eq!(picked(&choose(&[&app], &without, &known, "one")), [Some(1)]);
        known
            .selections
            .insert(app.id.clone(), "r.example/other:1.1.0".parse().unwrap());
        assert_eq!(picked(&choose(&[&app], &listing, &known, "one")), [Some(1)]);
    }

    #[test]
    fn an_image_stands_on_a_listing_only_when_every_policy_without_gates_does() {
        let app = policy("{ policy: 'a:app', image: r.example/app, semver: '^1' }");
        let web = policy("{ policy: 'a:web', image: r.example/app, semver: '^2' }");
        let gated = policy("{ policy: 'a:old', image: r.example/app, semver: '^1', minAge: 1h }");
        let mut known = Known::from([
            (app.id.clone(), "r.example/app:1.1.0".parse().unwrap()),
            (web.id.clone(), "r.example/app:2.0.0".parse().unwrap()),
            (gated.id.clone(), "r.example/app:1.0.0".parse().unwrap()),
        ]);
        assert_eq!(seen_listing(&[&app, &web], &known), None, "no listing kept");
        known.listings.insert(app.id.clone(), listed("one", 3));
        assert_eq!(seen_listing(&[&app], &known), Some(&listed("one", 3)));
        assert_eq!(seen_listing(&[&app, &web], &known), None, "web has none");
        known.listings.insert(web.id.clone(), listed("two", 3));
        assert_eq!(seen_listing(&[&app, &web], &known), None, "two listings");
        known.listings.insert(web.id.clone(), listed("one", 3));
        assert_eq!(seen_listing(&[&app, &web], &known), Some(&listed("one", 3)));
        known.listings.insert(gated.id.clone(), listed("one", 3));
        assert_eq!(
            seen_listing(&[&app, &gated], &known),
            None,
            "gates look further"
        );
        known
            .selections
            .insert(web.id.clone(), "r.example/other:2.0.0".parse().unwrap());
        assert_eq!(seen_listing(&[&app, &web], &known), None, "another image");
    }
}
