//! Scan every configured image and run its policy: the selections a cycle rewrites with.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Config, DigestMode, ImagePolicy};
use crate::model::{ImageName, ImageRef, PolicyId, Tag};
use crate::registry::Client;

/// What happened to one image this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageReport {
    pub policy: String,
    pub image: String,
    /// Tags the registry listed, when the scan worked.
    pub tags: Option<usize>,
    /// The full new reference, when a tag was selected.
    pub selected: Option<String>,
    /// Why there is no selection: a failed scan or digest lookup, or nothing acceptable.
    pub error: Option<String>,
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
        self.reports
            .iter()
            .any(|r| r.error.is_some() && r.tags.is_none())
    }

    pub fn failed(&self, policy: &PolicyId) -> Option<&str> {
        let id = policy.to_string();
        self.reports
            .iter()
            .find(|r| r.policy == id)
            .and_then(|r| r.error.as_deref())
    }
}

/// Scans all images (bounded concurrency inside the client), selects, and resolves digests
/// where the policy asks for them. A failed scan gives no selection: markers stay as they are.
pub async fn select_all(config: &Config, client: &Client) -> SelectionSet {
    let all: Vec<&ImagePolicy> = config.images.iter().collect();
    select_images(&all, client).await
}

/// [`select_all`] for some of the images (the ones due for a scan).
pub async fn select_images(images: &[&ImagePolicy], client: &Client) -> SelectionSet {
    // The same repository may back several policies: list its tags once.
    let mut unique: Vec<_> = images.iter().map(|i| i.image.clone()).collect();
    unique.sort();
    unique.dedup();
    let scans: BTreeMap<_, _> = client.scan_all(&unique).await.into_iter().collect();

    let mut set = SelectionSet::default();
    for image in images {
        let report = match scans.get(&image.image) {
            Some(Ok(tags)) => select_one(image, tags, client, &mut set.selections).await,
            Some(Err(e)) => {
                tracing::warn!(policy = %image.id, image = %image.image, error = %e, "scan failed; its markers stay as they are");
                failure(image, None, e.to_string())
            }
            None => failure(image, None, "not scanned".into()),
        };
        set.reports.push(report);
    }
    set.tags = scans
        .into_iter()
        .filter_map(|(image, tags)| Some((image, tags.ok()?)))
        .collect();
    set
}

fn failure(image: &ImagePolicy, tags: Option<usize>, error: String) -> ImageReport {
    ImageReport {
        policy: image.id.to_string(),
        image: image.image.to_string(),
        tags,
        selected: None,
        error: Some(error),
    }
}

async fn select_one(
    image: &ImagePolicy,
    tags: &[Tag],
    client: &Client,
    selections: &mut BTreeMap<PolicyId, ImageRef>,
) -> ImageReport {
    let selection = image.policy.select(tags);
    let Some(index) = selection.index else {
        return failure(
            image,
            Some(tags.len()),
            format!("no tag selected from {}", selection.stats),
        );
    };
    let tag = tags[index].clone();
    let digest = match image.digest {
        DigestMode::Never => None,
        DigestMode::IfNotPresent | DigestMode::Always => {
            match client.resolve_digest(&image.image, &tag).await {
                Ok(d) => Some(d),
                Err(e) => return failure(image, Some(tags.len()), format!("digest of {tag}: {e}")),
            }
        }
    };
    let reference = ImageRef {
        name: image.image.clone(),
        tag: Some(tag),
        digest,
    };
    tracing::info!(policy = %image.id, selected = %reference, tags = tags.len(), "selected");
    selections.insert(image.id.clone(), reference.clone());
    ImageReport {
        policy: image.id.to_string(),
        image: image.image.to_string(),
        tags: Some(tags.len()),
        selected: Some(reference.to_string()),
        error: None,
    }
}
