//! tagsmith's own format for CI jobs and scripts: `{"images": ["ghcr.io/org/app", ...]}` or
//! `{"image": "ghcr.io/org/app:1.2.3"}`. Tags and digests may be given and are dropped: the
//! event only says where to look.

use serde::Deserialize;

use super::{Event, WebhookError, image_from_reference, json, scan};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    images: Vec<String>,
}

pub(super) fn parse(body: &[u8]) -> Result<Event, WebhookError> {
    let payload: Payload = json(body)?;
    let names: Vec<&String> = payload.image.iter().chain(payload.images.iter()).collect();
    if names.is_empty() {
        return Err(WebhookError::malformed("give \"image\" or \"images\""));
    }
    let images = names
        .into_iter()
        .map(|n| image_from_reference(n))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(scan(images, "no image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_image() {
        let body = include_str!("../../../tests/fixtures/webhooks/generic.json");
        assert_eq!(
            parse(body.as_bytes()).unwrap(),
            Event::Scan(vec![
                "ghcr.io/acme/api".parse().unwrap(),
                "127.0.0.1:5000/demo/app".parse().unwrap(),
            ])
        );
        assert_eq!(
            parse(br#"{"image":"nginx:1.27"}"#).unwrap(),
            Event::Scan(vec!["nginx".parse().unwrap()])
        );
    }

    #[test]
    fn bad_requests_say_why() {
        for (body, needle) in [
            (&br#"{}"#[..], "give"),
            (br#"{"imgs":[]}"#, "unknown field"),
            (br#"{"images":["UPPER/case"]}"#, "invalid image name"),
            (br#"{"images":"x"}"#, "invalid type"),
        ] {
            let err = parse(body).unwrap_err().to_string();
            assert!(err.contains(needle), "{body:?}: {err}");
        }
    }
}
