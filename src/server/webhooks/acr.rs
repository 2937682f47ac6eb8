//! Azure Container Registry: one event per request, `action` `push` with `target.repository`
//! and `request.host` (the registry's login server). ACR adds only the headers users configure,
//! so the secret rides in the URL or in a custom `Authorization: Bearer` header.

use serde::Deserialize;

use super::{Event, WebhookError, image_in, json, scan};

#[derive(Deserialize)]
struct Payload {
    action: String,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    request: Option<Request>,
}

#[derive(Deserialize)]
struct Target {
    #[serde(default)]
    repository: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    host: Option<String>,
}

pub(super) fn parse(body: &[u8], registry: Option<&str>) -> Result<Event, WebhookError> {
    let payload: Payload = json(body)?;
    if payload.action != "push" {
        // `ping`, `delete`, `quarantine`, `chart_push`, `chart_delete`.
        return Ok(Event::Ignored(format!(
            "{} is not an image push",
            payload.action
        )));
    }
    let repository = payload
        .target
        .and_then(|t| t.repository)
        .ok_or_else(|| WebhookError::malformed("push without target.repository"))?;
    let host = registry
        .map(str::to_string)
        .or(payload.request.and_then(|r| r.host))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            WebhookError::malformed("push without request.host: set the receiver's registry")
        })?;
    Ok(scan(vec![image_in(&host, &repository)?], "no repository"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_names_login_server_and_repository() {
        let body = include_str!("../../../tests/fixtures/webhooks/acr-push.json");
        assert_eq!(
            parse(body.as_bytes(), None).unwrap(),
            Event::Scan(vec!["acme.azurecr.io/team-a/api".parse().unwrap()])
        );
    }

    #[test]
    fn other_actions_ignored_garbage_rejected() {
        let ping = br#"{"id":"1","timestamp":"2026-01-01T00:00:00Z","action":"ping"}"#;
        assert!(matches!(parse(ping, None).unwrap(), Event::Ignored(_)));
        let err = parse(br#"{"action":"push","target":{}}"#, None).unwrap_err();
        assert!(err.to_string().contains("target.repository"), "{err}");
        let err = parse(br#"{"action":"push","target":{"repository":"a"}}"#, None).unwrap_err();
        assert!(err.to_string().contains("request.host"), "{err}");
        assert!(parse(br#"{"target":{}}"#, None).is_err());
    }
}
