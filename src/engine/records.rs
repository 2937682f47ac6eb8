//! What a `once` cycle's scans leave in the state store, and what the next cycle reads back:
//! the same image records the service keeps, so `once` and `run` on one state folder share
//! them (a service started after `once` does not scan again what is not due).

use crate::config::Config;
use crate::model::ImageRef;
use crate::state::{ImageRecord, Snapshot};

use super::schedule::policy_fingerprint;
use super::select::{ImageReport, Known};

/// Each configured image's last selection as stored, where it was of the same image: the
/// policy may have been edited since, but a digest of the same tag of the same image is
/// still that tag's digest, which is all [`Known`] is read for.
pub fn known_selections(config: &Config, snapshot: &Snapshot) -> Known {
    config
        .images
        .iter()
        .filter_map(|image| {
            let record = snapshot.images.get(&image.id.to_string())?;
            let selected: ImageRef = record.selected.as_deref()?.parse().ok()?;
            (selected.name == image.image).then(|| (image.id.clone(), selected))
        })
        .collect()
}

/// The image records after a cycle's scans `reports`, finished at `at`: a record of another
/// image or policy starts over, as the service's does.
pub fn scan_records(
    config: &Config,
    snapshot: &Snapshot,
    reports: &[ImageReport],
    at: u64,
) -> Vec<(String, ImageRecord)> {
    config
        .images
        .iter()
        .filter(|image| !image.suspend)
        .filter_map(|image| {
            let id = image.id.to_string();
            let report = reports.iter().find(|r| r.policy == id)?;
            let fingerprint = policy_fingerprint(image);
            let mut record = snapshot
                .images
                .get(&id)
                .filter(|r| r.image == report.image && r.policy == fingerprint)
                .cloned()
                .unwrap_or_else(|| ImageRecord {
                    image: report.image.clone(),
                    policy: fingerprint,
                    ..ImageRecord::default()
                });
            record.scanned(at, report.failed, report.error.as_deref(), report.tags);
            if let Some(selected) = &report.selected {
                record.select(selected, at);
            }
            Some((id, record))
        })
        .collect()
}
