//! Quay: repository notifications share one shape (`docker_url` names the image); only the
//! "repository push" event carries `updated_tags`, build events carry `build_id` instead.

use serde::Deserialize;

use super::{Event, WebhookError, image_from_reference, json, scan};

#[derive(Deserialize)]
struct Payload {
    docker_url: String,
    #[serde(default)]
    updated_tags: Option<serde_json::Value>,
}

pub(super) fn parse(body: &[u8]) -> Result<Event, WebhookError> {
    let payload: Payload = json(body)?;
    if payload.updated_tags.is_none() {
        return Ok(Event::Ignored("not a repository push".into()));
    }
    let image = image_from_reference(&payload.docker_url)?;
    Ok(scan(vec![image], "no repository"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_push_names_docker_url() {
        let body = include_str!("../../../tests/fixtures/webhooks/quay-push.json");
        assert_eq!(
            parse(body.as_bytes()).unwrap(),
            Event::Scan(vec!["quay.io/acme/api".parse().unwrap()])
        );
        // Older deliveries map tags to image ids instead of listing them.
        let old = br#"{"docker_url":"quay.io/acme/api","updated_tags":{"latest":"b750fe"}}"#;
        assert!(matches!(parse(old).unwrap(), Event::Scan(_)));
    }

    #[test]
    fn build_events_are_ignored_and_garbage_is_not() {
        let build =
            br#"{"build_id":"296ec063","docker_url":"quay.io/acme/api","docker_tags":["latest"]}"#;
        assert!(matches!(parse(build).unwrap(), Event::Ignored(_)));
        let err = parse(br#"{"repository":"acme/api"}"#).unwrap_err();
        assert!(err.to_string().contains("docker_url"), "{err}");
    }
}
