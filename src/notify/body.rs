//! The bytes each kind of sink receives for an event, and the webhook signature. Pure.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::event::Event;
use crate::config::{SinkKind, WebhookFormat};

/// The header a signed webhook carries: `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const SIGNATURE_HEADER: &str = "X-Tagsmith-Signature";
/// The CloudEvents `type` prefix: `io.tagsmith.delivered`, `io.tagsmith.failed`, ...
pub const CLOUDEVENTS_TYPE_PREFIX: &str = "io.tagsmith.";

/// A request body and its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

pub fn render(kind: &SinkKind, event: &Event) -> Rendered {
    let (content_type, value) = match kind {
        SinkKind::Slack => ("application/json", slack(event)),
        SinkKind::Teams => ("application/json", teams(event)),
        SinkKind::Webhook {
            format: WebhookFormat::Json,
            ..
        } => ("application/json", json!(event)),
        SinkKind::Webhook {
            format: WebhookFormat::CloudEvents,
            ..
        } => ("application/cloudevents+json", cloudevent(event)),
    };
    Rendered {
        content_type,
        body: value.to_string().into_bytes(),
    }
}

/// `sha256=<hex>` over exactly the bytes sent.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Lines of text shared by the chat sinks: what moved, and why it failed.
fn detail_lines(event: &Event, code: fn(&str) -> String) -> Vec<String> {
    let mut lines: Vec<String> = event
        .images
        .iter()
        .map(|i| format!("{} -> {}", code(&i.old), code(&i.new)))
        .collect();
    if let Some(error) = &event.error {
        lines.push(error.clone());
    }
    lines
}

/// Slack's `&`, `<` and `>` are control characters in mrkdwn text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook message: `text` as the notification fallback, `blocks` for the
/// layout (a header section, the changes, a context line with the link).
fn slack(event: &Event) -> Value {
    let headline = slack_escape(&event.headline());
    let mut blocks = vec![json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": format!("*{headline}*") }
    })];
    let details = detail_lines(event, |s| format!("`{}`", slack_escape(s)));
    if !details.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": details.join("\n") }
        }));
    }
    let mut context = vec![format!("target `{}`", slack_escape(&event.target))];
    if let Some(link) = event.link() {
        let label = match (&event.pull_request, &event.commit) {
            (Some(pr), _) => format!("pull request #{}", pr.number),
            (None, Some(c)) => format!("commit {}", &c[..c.len().min(12)]),
            (None, None) => "link".to_string(),
        };
        context.push(format!("<{}|{label}>", slack_escape(link)));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": context.join(" · ") }]
    }));
    json!({ "text": headline, "blocks": blocks })
}

/// What a Teams workflow ("When a Teams webhook request is received") posts: a message whose
/// one attachment is an Adaptive Card.
fn teams(event: &Event) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": event.headline(),
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true
    })];
    for line in detail_lines(event, ToString::to_string) {
        body.push(json!({ "type": "TextBlock", "text": line, "wrap": true }));
    }
    let mut facts = vec![json!({ "title": "Target", "value": event.target })];
    if let Some(commit) = &event.commit {
        facts.push(json!({ "title": "Commit", "value": commit }));
    }
    body.push(json!({ "type": "FactSet", "facts": facts }));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body
    });
    if let Some(link) = event.link() {
        let title = if event.pull_request.is_some() {
            "Open the pull request"
        } else {
            "Open the commit"
        };
        card["actions"] = json!([{ "type": "Action.OpenUrl", "title": title, "url": link }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card
        }]
    })
}

/// A CloudEvents 1.0 event in structured mode: the context attributes beside `data`.
fn cloudevent(event: &Event) -> Value {
    json!({
        "specversion": "1.0",
        "id": event.id,
        "source": "/tagsmith",
        "type": format!("{CLOUDEVENTS_TYPE_PREFIX}{}", event.kind.as_str()),
        "subject": event.target,
        "time": event.time,
        "datacontenttype": "application/json",
        "data": event
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_in_hex() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn slack_text_is_escaped() {
        assert_eq!(slack_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
