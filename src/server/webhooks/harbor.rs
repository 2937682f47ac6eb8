//! Harbor: `PUSH_ARTIFACT` events in its default format (`type`, `event_data.resources[]` with
//! `resource_url`, `event_data.repository`) or as a CloudEvent (`harbor.artifact.pushed` with the
//! same `data`). Harbor can send a fixed `Authorization` header, or the secret rides in the URL.

use serde::Deserialize;

use super::{Event, WebhookError, image_from_reference, image_in, json, scan};

#[derive(Deserialize)]
struct Payload {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    specversion: Option<String>,
    #[serde(default)]
    event_data: Option<EventData>,
    #[serde(default)]
    data: Option<EventData>,
}

#[derive(Deserialize)]
struct EventData {
    #[serde(default)]
    resources: Vec<Resource>,
    #[serde(default)]
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(default)]
    resource_url: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    repo_full_name: String,
}

pub(super) fn parse(body: &[u8], registry: Option<&str>) -> Result<Event, WebhookError> {
    let payload: Payload = json(body)?;
    let kind = payload.kind.as_deref().unwrap_or_default();
    let (push, data) = if payload.specversion.is_some() {
        (kind == "harbor.artifact.pushed", payload.data)
    } else {
        (kind == "PUSH_ARTIFACT", payload.event_data)
    };
    if kind.is_empty() {
        return Err(WebhookError::malformed("missing event type"));
    }
    if !push {
        return Ok(Event::Ignored(format!("{kind} is not a push")));
    }
    let data = data.ok_or_else(|| WebhookError::malformed("push event without event data"))?;
    let mut images = Vec::new();
    match registry {
        // The configured host wins: Harbor reports its own external URL, which may not be the
        // name users write.
        Some(host) => {
            let repo = data
                .repository
                .ok_or_else(|| WebhookError::malformed("push event without repository"))?;
            images.push(image_in(host, &repo.repo_full_name)?);
        }
        None => {
            for resource in &data.resources {
                if let Some(url) = &resource.resource_url {
                    images.push(image_from_reference(url)?);
                }
            }
            if images.is_empty() {
                return Err(WebhookError::malformed(
                    "push event without resource_url: set the receiver's registry",
                ));
            }
        }
    }
    Ok(scan(images, "no artifact"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUSH: &str = include_str!("../../../tests/fixtures/webhooks/harbor-push.json");

    #[test]
    fn push_artifact_names_resource_urls() {
        assert_eq!(
            parse(PUSH.as_bytes(), None).unwrap(),
            Event::Scan(vec!["harbor.example.com/library/app".parse().unwrap()])
        );
        assert_eq!(
            parse(PUSH.as_bytes(), Some("registry.example.com")).unwrap(),
            Event::Scan(vec!["registry.example.com/library/app".parse().unwrap()])
        );
    }

    #[test]
    fn cloud_events_format() {
        let body = include_str!("../../../tests/fixtures/webhooks/harbor-cloudevent.json");
        assert_eq!(
            parse(body.as_bytes(), None).unwrap(),
            Event::Scan(vec!["harbor.example.com/library/app".parse().unwrap()])
        );
    }

    #[test]
    fn pulls_ignored_garbage_rejected() {
        let pull = PUSH.replace("PUSH_ARTIFACT", "PULL_ARTIFACT");
        assert!(matches!(
            parse(pull.as_bytes(), None).unwrap(),
            Event::Ignored(_)
        ));
        let err = parse(br#"{"event_data":{}}"#, None).unwrap_err();
        assert!(err.to_string().contains("event type"), "{err}");
        let err = parse(
            br#"{"type":"PUSH_ARTIFACT","event_data":{"resources":[]}}"#,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("resource_url"), "{err}");
    }
}
