//! Webhook receivers: one pure parser per vendor (bytes and headers in, image names or a precise
//! error out) and the checks that prove a request came from whoever holds the receiver's secret.
//!
//! A receiver never decides a version: an accepted event only names images to rescan.

mod acr;
mod auth;
mod distribution;
mod dockerhub;
mod gcr;
mod generic;
mod ghcr;
mod harbor;
mod quay;

use std::fmt;
use std::str::FromStr;

use axum::http::HeaderMap;
use thiserror::Error;

pub use self::auth::{SecretKey, sign, verify};
use crate::model::{ImageName, ImageRef, Tag};
use crate::secret::Secret;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WebhookError {
    /// The request does not prove knowledge of the receiver's secret.
    #[error("unauthorized: {reason}")]
    Unauthorized { reason: &'static str },
    /// The body is not what the vendor sends; `reason` is safe to return to the sender.
    #[error("malformed payload: {reason}")]
    Malformed { reason: String },
    #[error("cannot read the secret of receiver {receiver} from {source_name}: {reason}")]
    Secret {
        receiver: String,
        source_name: String,
        reason: String,
    },
    #[error("unknown receiver type {input:?}: expected one of {}", ReceiverKind::NAMES.join(", "))]
    Kind { input: String },
}

impl WebhookError {
    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed {
            reason: reason.into(),
        }
    }
}

/// Which vendor's payload and which proof of origin a receiver expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiverKind {
    /// The distribution registry's notifications envelope; only manifest pushes count.
    Distribution,
    DockerHub,
    /// GitHub `package` and `registry_package` events, signed with `X-Hub-Signature-256`.
    Ghcr,
    Harbor,
    Quay,
    Acr,
    /// Artifact Registry (and Container Registry) notifications through a Pub/Sub push subscription.
    Gcr,
    /// `{"images": [...]}` with `Authorization: Bearer <secret>`.
    Generic,
    /// `{"images": [...]}` signed with `X-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    GenericHmac,
}

impl ReceiverKind {
    pub const ALL: [ReceiverKind; 9] = [
        Self::Distribution,
        Self::DockerHub,
        Self::Ghcr,
        Self::Harbor,
        Self::Quay,
        Self::Acr,
        Self::Gcr,
        Self::Generic,
        Self::GenericHmac,
    ];
    pub const NAMES: [&'static str; 9] = [
        "distribution",
        "dockerhub",
        "ghcr",
        "harbor",
        "quay",
        "acr",
        "gcr",
        "generic",
        "generic-hmac",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Distribution => "distribution",
            Self::DockerHub => "dockerhub",
            Self::Ghcr => "ghcr",
            Self::Harbor => "harbor",
            Self::Quay => "quay",
            Self::Acr => "acr",
            Self::Gcr => "gcr",
            Self::Generic => "generic",
            Self::GenericHmac => "generic-hmac",
        }
    }

    /// How a request proves it knows the secret.
    pub fn proof(self) -> Proof {
        match self {
            Self::Ghcr => Proof::HubSignature,
            Self::GenericHmac => Proof::Signature,
            Self::Generic => Proof::Bearer,
            // These vendors sign nothing: the secret travels in the URL path (or, where the
            // vendor lets users add a header, as a bearer token).
            _ => Proof::PathToken,
        }
    }
}

impl FromStr for ReceiverKind {
    type Err = WebhookError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| WebhookError::Kind {
                input: s.to_string(),
            })
    }
}

impl fmt::Display for ReceiverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a receiver authenticates requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// `/hook/<receiver>/<secret>`, or `Authorization: Bearer <secret>`.
    PathToken,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// GitHub's `X-Hub-Signature-256: sha256=<hex>`.
    HubSignature,
    /// `X-Signature: sha256=<hex>`.
    Signature,
}

/// A configured receiver: `receivers[]` in `tagsmith.yaml`. The secret is read by [`Receiver::arm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
    pub secret: Secret,
    /// Names images for payloads that carry only a repository path, or overrides the host the
    /// payload names (a registry behind a proxy reports the host it was called by).
    pub registry: Option<String>,
}

impl Receiver {
    /// Reads the secret; the receiver can then check requests.
    pub fn arm(&self) -> Result<ArmedReceiver, WebhookError> {
        let key = SecretKey::read(&self.secret).map_err(|reason| WebhookError::Secret {
            receiver: self.name.clone(),
            source_name: self.secret.to_string(),
            reason: reason.to_string(),
        })?;
        Ok(ArmedReceiver {
            receiver: self.clone(),
            key,
        })
    }
}

/// A receiver with its secret loaded.
#[derive(Debug, Clone)]
pub struct ArmedReceiver {
    pub receiver: Receiver,
    key: SecretKey,
}

impl ArmedReceiver {
    pub fn new(receiver: Receiver, key: SecretKey) -> Self {
        Self { receiver, key }
    }

    /// Checks the request's proof of origin; `path_token` is the URL segment after the name.
    pub fn verify(
        &self,
        path_token: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), WebhookError> {
        verify(self.receiver.kind, &self.key, path_token, headers, body)
    }

    pub fn parse(&self, headers: &HeaderMap, body: &[u8]) -> Result<Event, WebhookError> {
        parse(
            self.receiver.kind,
            headers,
            body,
            self.receiver.registry.as_deref(),
        )
    }

    /// The tags an accepted payload says were pushed, per image, where the vendor names them
    /// (so far the distribution registry, whose notification can arrive before its tag list
    /// shows the tag). Empty for the others: their scan needs no second look.
    pub fn announced(&self, body: &[u8]) -> Vec<(ImageName, Tag)> {
        match self.receiver.kind {
            ReceiverKind::Distribution => {
                distribution::announced(body, self.receiver.registry.as_deref())
            }
            _ => Vec::new(),
        }
    }
}

/// What a valid request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Rescan these images (deduplicated, in payload order).
    Scan(Vec<ImageName>),
    /// A valid event that asks for nothing (a pull, a delete, a test ping); the reason says which.
    Ignored(String),
}

/// Parses a vendor's payload. Pure: no IO, no clock.
pub fn parse(
    kind: ReceiverKind,
    headers: &HeaderMap,
    body: &[u8],
    registry: Option<&str>,
) -> Result<Event, WebhookError> {
    match kind {
        ReceiverKind::Distribution => distribution::parse(body, registry),
        ReceiverKind::DockerHub => dockerhub::parse(body),
        ReceiverKind::Ghcr => ghcr::parse(headers, body),
        ReceiverKind::Harbor => harbor::parse(body, registry),
        ReceiverKind::Quay => quay::parse(body),
        ReceiverKind::Acr => acr::parse(body, registry),
        ReceiverKind::Gcr => gcr::parse(body),
        ReceiverKind::Generic | ReceiverKind::GenericHmac => generic::parse(body),
    }
}

/// Deduplicates image names in order.
fn scan(images: Vec<ImageName>, nothing: impl Into<String>) -> Event {
    let mut out: Vec<ImageName> = Vec::with_capacity(images.len());
    for image in images {
        if !out.iter().any(|i| i.canonical() == image.canonical()) {
            out.push(image);
        }
    }
    if out.is_empty() {
        Event::Ignored(nothing.into())
    } else {
        Event::Scan(out)
    }
}

fn json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, WebhookError> {
    serde_json::from_slice(body).map_err(|e| WebhookError::malformed(format!("invalid JSON: {e}")))
}

/// `host/path[:tag][@digest]` or `path` with `registry` in front: the repository only.
fn image_from_reference(reference: &str) -> Result<ImageName, WebhookError> {
    let reference = reference
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    reference
        .parse::<ImageRef>()
        .map(|r| r.name)
        .or_else(|_| reference.parse::<ImageName>())
        .map_err(|e| WebhookError::malformed(e.to_string()))
}

/// `registry/repository`, where a missing registry means the vendor's default.
fn image_in(registry: &str, repository: &str) -> Result<ImageName, WebhookError> {
    let repository = repository.trim_matches('/');
    if repository.is_empty() {
        return Err(WebhookError::malformed("empty repository name"));
    }
    image_from_reference(&format!("{}/{repository}", registry.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        assert_eq!(
            ReceiverKind::ALL.map(ReceiverKind::as_str),
            ReceiverKind::NAMES
        );
        for kind in ReceiverKind::ALL {
            assert_eq!(kind.as_str().parse::<ReceiverKind>().unwrap(), kind);
        }
        let err = "github".parse::<ReceiverKind>().unwrap_err();
        assert!(err.to_string().contains("generic-hmac"), "{err}");
    }

    #[test]
    fn references_lose_tags_and_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for (input, want) in [
            ("ghcr.io/org/app:v1", "ghcr.io/org/app"),
            ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b"),
            ("https://quay.io/org/app", "quay.io/org/app"),
        ] {
            assert_eq!(image_from_reference(input).unwrap().as_str(), want);
        }
        let pinned = format!("eu.gcr.io/p/app@{digest}");
        assert_eq!(
            image_from_reference(&pinned).unwrap().as_str(),
            "eu.gcr.io/p/app"
        );
        assert!(image_from_reference("Not An Image").is_err());
        assert!(image_in("docker.io", "").is_err());
    }

    #[test]
    fn scan_deduplicates_by_canonical_name() {
        let a: ImageName = "nginx".parse().unwrap();
        let b: ImageName = "docker.io/library/nginx".parse().unwrap();
        assert_eq!(scan(vec![a.clone(), b], "none"), Event::Scan(vec![a]));
        assert_eq!(scan(vec![], "none"), Event::Ignored("none".into()));
    }
}
