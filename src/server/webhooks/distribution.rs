//! The distribution registry's notifications: an envelope `{"events": [...]}` where each event
//! has an `action`, a `target` (repository, mediaType, digest, tag, url) and the `request`
//! that caused it (its `host`). Pulls, deletes, mounts and blob pushes are not news.

use serde::Deserialize;

use super::{Event, WebhookError, image_in, json, scan};
use crate::model::{ImageName, Tag};

#[derive(Deserialize)]
struct Envelope {
    events: Vec<RegistryEvent>,
}

#[derive(Deserialize)]
struct RegistryEvent {
    action: String,
    target: Target,
    #[serde(default)]
    request: Option<Request>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    media_type: Option<String>,
    repository: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    host: Option<String>,
}

/// Media types of manifests and indexes; blob pushes carry layer or config types.
const MANIFEST_TYPES: [&str; 6] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

impl Target {
    fn is_manifest(&self) -> bool {
        self.tag.is_some()
            || self
                .media_type
                .as_deref()
                .is_some_and(|m| MANIFEST_TYPES.contains(&m))
            || self
                .url
                .as_deref()
                .is_some_and(|u| u.contains("/manifests/"))
    }
}

pub(super) fn parse(body: &[u8], registry: Option<&str>) -> Result<Event, WebhookError> {
    let images = pushes(body, registry)?
        .into_iter()
        .map(|(image, _)| image)
        .collect();
    Ok(scan(images, "no manifest push in the envelope"))
}

/// The tags the manifest pushes name, per image. The registry sends the notification before
/// it links the tag, so a scan right after it may not list the tag yet; the service rescans
/// until it does (see `engine::service`). A payload `parse` refuses names none.
pub(super) fn announced(body: &[u8], registry: Option<&str>) -> Vec<(ImageName, Tag)> {
    pushes(body, registry)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(image, tag)| Some((image, tag?.parse::<Tag>().ok()?)))
        .collect()
}

/// Every manifest push in the envelope: its image and the tag it names, if any.
fn pushes(
    body: &[u8],
    registry: Option<&str>,
) -> Result<Vec<(ImageName, Option<String>)>, WebhookError> {
    let envelope: Envelope = json(body)?;
    let mut pushes = Vec::new();
    for event in envelope.events {
        if event.action != "push" || !event.target.is_manifest() {
            continue;
        }
        let host = registry
            .or(event.request.as_ref().and_then(|r| r.host.as_deref()))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                WebhookError::malformed(
                    "manifest push without request.host: set the receiver's registry",
                )
            })?;
        pushes.push((image_in(host, &event.target.repository)?, event.target.tag));
    }
    Ok(pushes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUSH: &str = include_str!("../../../tests/fixtures/webhooks/distribution-push.json");

    #[test]
    fn manifest_push_names_host_and_repository() {
        let event = parse(PUSH.as_bytes(), None).unwrap();
        assert_eq!(
            event,
            Event::Scan(vec![
                "registry.example.com:5000/team-a/app".parse().unwrap()
            ])
        );
        let moved = parse(PUSH.as_bytes(), Some("registry.internal")).unwrap();
        assert_eq!(
            moved,
            Event::Scan(vec!["registry.internal/team-a/app".parse().unwrap()])
        );
    }

    #[test]
    fn manifest_pushes_announce_their_tags() {
        assert_eq!(
            announced(PUSH.as_bytes(), None),
            vec![(
                "registry.example.com:5000/team-a/app".parse().unwrap(),
                "1.4.2".parse().unwrap()
            )]
        );
        // A push by digest names no tag; a tag no registry would accept is not announced.
        let by_digest = PUSH.replace(r#""tag": "1.4.2""#, r#""tag": null"#);
        assert_eq!(announced(by_digest.as_bytes(), None), vec![]);
        let odd = PUSH.replace(r#""tag": "1.4.2""#, r#""tag": "-bad tag""#);
        assert_eq!(announced(odd.as_bytes(), None), vec![]);
        assert_eq!(announced(b"not json", None), vec![]);
    }

    #[test]
    fn pulls_and_blob_pushes_are_ignored() {
        let body = PUSH.replace(r#""action": "push""#, r#""action": "pull""#);
        assert!(matches!(
            parse(body.as_bytes(), None).unwrap(),
            Event::Ignored(_)
        ));
        let blob = r#"{"events":[{"id":"1","action":"push","target":{"mediaType":"application/octet-stream","digest":"sha256:00","repository":"a/b","url":"http://r/v2/a/b/blobs/sha256:00"},"request":{"host":"r:5000"}}]}"#;
        assert!(matches!(
            parse(blob.as_bytes(), None).unwrap(),
            Event::Ignored(_)
        ));
        assert!(matches!(
            parse(br#"{"events":[]}"#, None).unwrap(),
            Event::Ignored(_)
        ));
    }

    #[test]
    fn malformed_envelopes_say_why() {
        for (body, needle) in [
            (&b"not json"[..], "invalid JSON"),
            (br#"{"event":[]}"#, "missing field `events`"),
            (br#"{"events":[{"action":"push"}]}"#, "missing field `target`"),
            (
                br#"{"events":[{"action":"push","target":{"repository":"a/b","tag":"1"}}]}"#,
                "request.host",
            ),
            (
                br#"{"events":[{"action":"push","target":{"repository":"A/b","tag":"1"},"request":{"host":"r"}}]}"#,
                "lower-case",
            ),
        ] {
            let err = parse(body, None).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
