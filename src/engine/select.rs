//! Scan images and run their policies: the selections a run rewrites with. A repository is
//! listed once however many policies watch it, and each repository is scanned on its own, so
//! a slow registry delays only its own images. A failed tag listing and a failed digest lookup
//! are both a failed scan of that image: no selection comes of it.

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use serde::Serialize;

use crate::config::{Config, DigestMode, ImagePolicy};
use crate::metrics::{label, metrics};
use crate::model::{ImageName, ImageRef, PolicyId, Tag};
use crate::registry::Client;

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

/// Scans all images and selects; see [`select_images`].
pub async fn select_all(config: &Config, client: &Client) -> SelectionSet {
    let all: Vec<&ImagePolicy> = config.images.iter().collect();
    select_images(&all, client).await
}

/// Scans `images` (each repository once, at most the client's scan concurrency at a time),
/// selects, and resolves digests where a policy asks for them.
pub async fn select_images(images: &[&ImagePolicy], client: &Client) -> SelectionSet {
    let mut groups: BTreeMap<ImageName, Vec<&ImagePolicy>> = BTreeMap::new();
    for image in images {
        groups.entry(image.image.clone()).or_default().push(image);
    }
    let concurrency = client.options().scan_concurrency.max(1);
    let scans: Vec<RepositoryScan> = futures_util::stream::iter(groups)
        .map(|(image, policies)| async move { scan_repository(&image, &policies, client).await })
        .buffer_unordered(concurrency)
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

/// Lists `image`'s tags once and selects for each of `policies` (which all watch it).
pub async fn scan_repository(
    image: &ImageName,
    policies: &[&ImagePolicy],
    client: &Client,
) -> RepositoryScan {
    let started = std::time::Instant::now();
    let listed = client.list_tags(image).await;
    let mut results = Vec::with_capacity(policies.len());
    for policy in policies {
        let scan = match &listed {
            Ok(tags) => select_one(policy, tags, client).await,
            Err(e) => failure(policy, None, super::report::chain(e), e.is_transient()),
        };
        let m = metrics();
        m.scan_duration.observe(started.elapsed().as_secs_f64());
        let result = if scan.report.failed { "error" } else { "ok" };
        m.scans.get_or_create(&label("result", result)).inc();
        if let (true, Some(error)) = (scan.report.failed, &scan.report.error) {
            tracing::warn!(policy = %policy.id, image = %policy.image, %error, "scan failed; its markers stay as they are");
        }
        results.push(scan);
    }
    RepositoryScan {
        image: image.clone(),
        tags: listed.ok(),
        policies: results,
    }
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
        },
        selection: None,
    }
}

async fn select_one(image: &ImagePolicy, tags: &[Tag], client: &Client) -> PolicyScan {
    if !image.gates.is_empty() {
        return gated(image, tags, client).await;
    }
    let selection = image.policy.select(tags);
    let Some(index) = selection.index else {
        let mut nothing = failure(
            image,
            Some(tags.len()),
            format!("no tag selected from {}", selection.stats),
            false,
        );
        nothing.report.failed = false;
        return nothing;
    };
    let tag = tags[index].clone();
    let digest = match image.digest {
        DigestMode::Never => None,
        DigestMode::IfNotPresent | DigestMode::Always => {
            match client.resolve_digest(&image.image, &tag).await {
                Ok(d) => Some(d),
                Err(e) => {
                    let error = format!("digest of {tag}: {e}");
                    return failure(image, Some(tags.len()), error, e.is_transient());
                }
            }
        }
    };
    let reference = ImageRef {
        name: image.image.clone(),
        tag: Some(tag),
        digest,
    };
    tracing::debug!(policy = %image.id, selected = %reference, tags = tags.len(), "selected");
    PolicyScan {
        report: ImageReport {
            policy: image.id.to_string(),
            image: image.image.to_string(),
            tags: Some(tags.len()),
            selected: Some(reference.to_string()),
            error: None,
            failed: false,
            transient: false,
            stopped: Vec::new(),
            retry_at: None,
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
        },
        selection,
    }
}
