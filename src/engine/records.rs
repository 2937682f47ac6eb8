//! What a `once` cycle's scans leave in the state store, and what the next cycle reads back:
//! the same image records the service keeps, so `once` and `run` on one state folder share
//! them (a service started after `once` does not scan again what is not due).

use std::collections::HashMap;

use crate::config::Config;
use crate::model::ImageRef;
use crate::state::{ImageRecord, Snapshot};

use super::schedule::{policy_fingerprint, stored_record};
use super::select::{ImageReport, Known, Listed};

/// Each configured image's last selection as stored, where it was of the same image: the
/// policy may have been edited since, but a digest of the same tag of the same image is
/// still that tag's digest, which is all [`Known`] is read for. The listing a selection came
/// from is kept only for the same policy: another policy may rank the same list otherwise.
pub fn known_selections(config: &Config, snapshot: &Snapshot) -> Known {
    let mut known = Known::new();
    for image in &config.images {
        let Some(record) = snapshot.images.get(&image.id.to_string()) else {
            continue;
        };
        let Some(selected) = record
            .selected
            .as_deref()
            .and_then(|s| s.parse::<ImageRef>().ok())
        else {
            continue;
        };
        if selected.name != image.image {
            continue;
        }
        if let (Some(id), Some(tags)) = (&record.listing, record.tags)
            && record.policy == policy_fingerprint(image)
        {
            let id = id.clone();
            known.listings.insert(image.id.clone(), Listed { id, tags });
        }
        known.selections.insert(image.id.clone(), selected);
    }
    known
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
                let listing = report.listing.as_ref().map(|l| l.id.as_str());
                record.select(selected, listing, at);
            } else if !report.failed {
                record.listing = None;
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
            listing: None,
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
        assert_eq!(known.selections.len(), 1);
        assert_eq!(
            known.selections.values().next().unwrap().to_string(),
            PINNED
        );

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
        record.select("reg.example/org/other:1.2.0", None, 1);
        let snapshot = Snapshot {
            images: BTreeMap::from([("team-a:app".to_string(), record)]),
            ..Snapshot::default()
        };
        assert_eq!(known_selections(&config, &snapshot), Known::new());
        let records = scan_records(
            &config,
            &snapshot,
            &[report("team-a:app", APP, Some(PINNED), None)],
            5,
        );
        assert_eq!(records[0].1.image, APP, "started over for the new image");
    }

    #[test]
    fn the_listing_goes_with_its_selection_and_only_to_the_same_policy() {
        let config = config();
        let mut made = report("team-a:app", APP, Some(PINNED), None);
        made.listing = Some(Listed {
            id: "listing-1".into(),
            tags: 3,
        });
        let first = scan_records(&config, &Snapshot::default(), &[made], 10);
        assert_eq!(first[0].1.listing.as_deref(), Some("listing-1"));
        let mut snapshot = Snapshot {
            images: first.into_iter().collect::<BTreeMap<_, _>>(),
            ..Snapshot::default()
        };
        let known = known_selections(&config, &snapshot);
        let id: crate::model::PolicyId = "team-a:app".parse().unwrap();
        assert_eq!(
            known.listings.get(&id),
            Some(&Listed {
                id: "listing-1".into(),
                tags: 3
            }),
            "with the count of the scan"
        );

        // A failed scan keeps the pair; a scan with nothing acceptable, or a selection made
        // with gates (no listing), drops the listing.
        let failed = scan_records(
            &config,
            &snapshot,
            &[report("team-a:app", APP, None, Some("registry down"))],
            20,
        );
        assert_eq!(failed[0].1.listing.as_deref(), Some("listing-1"));
        let nothing = scan_records(
            &config,
            &snapshot,
            &[report("team-a:app", APP, None, None)],
            20,
        );
        assert_eq!(nothing[0].1.listing, None);
        let gated = scan_records(
            &config,
            &snapshot,
            &[report("team-a:app", APP, Some(PINNED), None)],
            20,
        );
        assert_eq!(gated[0].1.listing, None);

        // An edited policy keeps the digest of the same tag but ranks the list itself.
        snapshot.images.get_mut("team-a:app").unwrap().policy = "an older policy".into();
        let known = known_selections(&config, &snapshot);
        assert!(known.selections.contains_key(&id));
        assert!(known.listings.is_empty());
    }
}
