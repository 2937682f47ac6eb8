//! Artifact Registry and Container Registry publish to the Pub/Sub topic `gcr`; a push
//! subscription POSTs `{"message": {"data": <base64 JSON>, ...}, "subscription": ...}`. The
//! decoded data has `action` (`INSERT` or `DELETE`), `digest` and, for tags, `tag`: full
//! references with the registry host. Pub/Sub signs nothing we can check offline, so the secret
//! rides in the push endpoint's URL.

use base64::Engine as _;
use serde::Deserialize;

use super::{Event, WebhookError, image_from_reference, json, scan};

#[derive(Deserialize)]
struct Push {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    data: String,
}

#[derive(Deserialize)]
struct Notification {
    action: String,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    tag: Option<String>,
}

pub(super) fn parse(body: &[u8]) -> Result<Event, WebhookError> {
    let push: Push = json(body)?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(push.message.data.trim())
        .map_err(|e| WebhookError::malformed(format!("message.data is not base64: {e}")))?;
    let notification: Notification = serde_json::from_slice(&data)
        .map_err(|e| WebhookError::malformed(format!("message.data is not a notification: {e}")))?;
    if notification.action != "INSERT" {
        return Ok(Event::Ignored(format!(
            "{} is not an insert",
            notification.action
        )));
    }
    let reference = notification
        .tag
        .or(notification.digest)
        .ok_or_else(|| WebhookError::malformed("insert without tag or digest"))?;
    Ok(scan(vec![image_from_reference(&reference)?], "no image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(data: &str) -> Vec<u8> {
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        format!(r#"{{"message":{{"data":"{data}","messageId":"1"}},"subscription":"projects/p/subscriptions/s"}}"#)
            .into_bytes()
    }

    #[test]
    fn insert_names_the_repository() {
        let body = include_str!("../../../tests/fixtures/webhooks/gcr-push.json");
        assert_eq!(
            parse(body.as_bytes()).unwrap(),
            Event::Scan(vec![
                "us-east1-docker.pkg.dev/acme-prod/apps/api"
                    .parse()
                    .unwrap()
            ])
        );
        let digest_only = format!(
            r#"{{"action":"INSERT","digest":"gcr.io/acme/api@sha256:{}"}}"#,
            "0".repeat(64)
        );
        assert_eq!(
            parse(&wrap(&digest_only)).unwrap(),
            Event::Scan(vec!["gcr.io/acme/api".parse().unwrap()])
        );
    }

    #[test]
    fn deletes_ignored_garbage_rejected() {
        let delete = wrap(r#"{"action":"DELETE","tag":"gcr.io/acme/api:1"}"#);
        assert!(matches!(parse(&delete).unwrap(), Event::Ignored(_)));
        let err = parse(br#"{"message":{"data":"%%%"}}"#).unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
        let err = parse(&wrap("[]")).unwrap_err();
        assert!(err.to_string().contains("not a notification"), "{err}");
        let err = parse(&wrap(r#"{"action":"INSERT"}"#)).unwrap_err();
        assert!(err.to_string().contains("tag or digest"), "{err}");
    }
}
