//! What a `once` cycle's scans leave in the state store, and what the next cycle reads back:
//! the same image records the service keeps, so `once` and `run` on one state folder share
//! them (a service started after `once` does not scan again what is not due).

use std::collections::HashMap;

use crate::config::Config;
use crate::model::ImageRef;
use crate::state::{ImageRecord, Snapshot};

use super::schedule::stored_record;
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
    let by_policy: HashMap<&str, &ImageReport> =
        reports.iter().map(|r| (r.policy.as_str(), r)).collect();
    config
        .images
        .iter()
        .filter(|image| !image.suspend)
        .filter_map(|image| {
            let id = image.id.to_string();
            let report = *by_policy.get(id.as_str())?;
            let mut record = stored_record(image, snapshot);
            record.scanned(at, report.failed, report.error.as_deref(), report.tags);
            if let Some(selected) = &report.selected {
                record.select(selected, at);
            }
            Some((id, record))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    fn config() -> Config {
        Config::parse(
            "images:\n\
             \x20 - { policy: 'team-a:app', image: reg.example/org/app, semver: '^1', digest: IfNotPresent }\n\
             \x20 - { policy: 'team-a:web', image: reg.example/org/web, semver: '^1' }\n",
            Path::new("tagsmith.yaml"),
        )
        .unwrap()
    }

    fn report(
        policy: &str,
        image: &str,
        selected: Option<&str>,
        error: Option<&str>,
    ) -> ImageReport {
        ImageReport {
            policy: policy.into(),
            image: image.into(),
            tags: selected.map(|_| 3),
            selected: selected.map(str::to_string),
            error: error.map(str::to_string),
            failed: error.is_some(),
            transient: false,
            stopped: Vec::new(),
            retry_at: None,
        }
    }

    const APP: &str = "reg.example/org/app";
    const PINNED: &str = "reg.example/org/app:1.2.0@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn a_failed_scan_keeps_the_selection_and_a_new_one_is_dated() {
        let config = config();
        let first = scan_records(
            &config,
            &Snapshot::default(),
            &[report("team-a:app", APP, Some(PINNED), None)],
            10,
        );
        assert_eq!(first.len(), 1, "an image without a report is not recorded");
        let (id, record) = &first[0];
        assert_eq!(id, "team-a:app");
        assert_eq!(record.selected.as_deref(), Some(PINNED));
        assert_eq!(
            (record.changed_at, record.succeeded_at),
            (Some(10), Some(10))
        );

        let snapshot = Snapshot {
            images: first.into_iter().collect::<BTreeMap<_, _>>(),
            ..Snapshot::default()
        };
        let known = known_selections(&config, &snapshot);
        assert_eq!(known.len(), 1);
        assert_eq!(known.values().next().unwrap().to_string(), PINNED);

        let failed = scan_records(
            &config,
            &snapshot,
            &[report("team-a:app", APP, None, Some("registry down"))],
            20,
        );
        let record = &failed[0].1;
        assert_eq!(record.selected.as_deref(), Some(PINNED));
        assert_eq!((record.scanned_at, record.succeeded_at), (20, Some(10)));
        assert_eq!(record.error.as_deref(), Some("registry down"));
    }

    #[test]
    fn a_selection_of_another_image_is_not_known() {
        let config = config();
        let mut record = ImageRecord {
            image: "reg.example/org/other".into(),
            ..ImageRecord::default()
        };
        record.select("reg.example/org/other:1.2.0", 1);
        let snapshot = Snapshot {
            images: BTreeMap::from([("team-a:app".to_string(), record)]),
            ..Snapshot::default()
        };
        assert!(known_selections(&config, &snapshot).is_empty());
        let records = scan_records(
            &config,
            &snapshot,
            &[report("team-a:app", APP, Some(PINNED), None)],
            5,
        );
        assert_eq!(records[0].1.image, APP, "started over for the new image");
    }
}
