//! Proof of origin: HMAC signatures over the raw body, or the shared secret itself in the URL
//! path or a bearer header. Every comparison runs in constant time; no secret is ever printed.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{Proof, ReceiverKind, WebhookError};
use crate::secret::{Secret, SecretError};

/// A receiver's secret. `Debug` prints its length only.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({} bytes)", self.0.len())
    }
}

impl SecretKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Reads an env var or file (see [`Secret::read`]). The error names the problem, never
    /// the value.
    pub fn read(secret: &Secret) -> Result<Self, SecretError> {
        secret.read().map(Self::new)
    }

    fn matches(&self, candidate: &[u8]) -> bool {
        // `ct_eq` on slices of different lengths returns false at once; the length of the
        // secret is not worth hiding, its bytes are.
        bool::from(self.0.as_slice().ct_eq(candidate))
    }
}

const UNAUTHORIZED_TOKEN: WebhookError = WebhookError::Unauthorized {
    reason: "missing or wrong token",
};

/// Checks that the request proves knowledge of `key` the way `kind` expects.
pub fn verify(
    kind: ReceiverKind,
    key: &SecretKey,
    path_token: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), WebhookError> {
    match kind.proof() {
        Proof::PathToken => match (path_token, bearer(headers)) {
            (Some(token), _) if key.matches(token.as_bytes()) => Ok(()),
            (None, Some(token)) if key.matches(token) => Ok(()),
            _ => Err(UNAUTHORIZED_TOKEN),
        },
        Proof::Bearer => match bearer(headers) {
            Some(token) if path_token.is_none() && key.matches(token) => Ok(()),
            _ => Err(WebhookError::Unauthorized {
                reason: "missing or wrong bearer token",
            }),
        },
        Proof::HubSignature => signature(key, headers, "x-hub-signature-256", body),
        Proof::Signature => signature(key, headers, "x-signature", body),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at(value.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
}

fn signature(
    key: &SecretKey,
    headers: &HeaderMap,
    header: &'static str,
    body: &[u8],
) -> Result<(), WebhookError> {
    let missing = WebhookError::Unauthorized {
        reason: "missing or malformed signature header",
    };
    let value = headers.get(header).ok_or(missing.clone())?.as_bytes();
    let hex = value.strip_prefix(b"sha256=").ok_or(missing.clone())?;
    let given = decode_hex(hex).ok_or(missing)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key.0).map_err(|_| WebhookError::Unauthorized {
            reason: "unusable key",
        })?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| WebhookError::Unauthorized {
            reason: "signature does not match",
        })
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    hex.chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// `sha256=<hex>` of the body, as senders compute it (used by tests and docs examples).
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const KEY: &[u8] = b"It's a Secret to Everybody";

    #[test]
    fn github_documented_signature() {
        // The example in GitHub's guide to validating webhook deliveries.
        let key = SecretKey::new(KEY);
        let h = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        verify(ReceiverKind::Ghcr, &key, None, &h, b"Hello, World!").unwrap();
        let err = verify(ReceiverKind::Ghcr, &key, None, &h, b"Hello, World?").unwrap_err();
        assert_eq!(
            err,
            WebhookError::Unauthorized {
                reason: "signature does not match"
            }
        );
        assert_eq!(
            sign(KEY, b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn signatures_need_the_right_header_and_form() {
        let key = SecretKey::new(KEY);
        let good = sign(KEY, b"{}");
        verify(
            ReceiverKind::GenericHmac,
            &key,
            None,
            &headers(&[("x-signature", &good)]),
            b"{}",
        )
        .unwrap();
        for bad in [
            headers(&[]),
            headers(&[("x-hub-signature-256", &good)]),
            headers(&[("x-signature", good.trim_start_matches("sha256="))]),
            headers(&[("x-signature", "sha256=zz")]),
            headers(&[("x-signature", "sha1=00")]),
        ] {
            assert!(matches!(
                verify(ReceiverKind::GenericHmac, &key, None, &bad, b"{}"),
                Err(WebhookError::Unauthorized { .. })
            ));
        }
    }

    #[test]
    fn tokens_in_path_or_bearer() {
        let key = SecretKey::new("s3cret");
        let none = headers(&[]);
        let kind = ReceiverKind::DockerHub;
        verify(kind, &key, Some("s3cret"), &none, b"").unwrap();
        assert!(verify(kind, &key, Some("s3cre"), &none, b"").is_err());
        assert!(verify(kind, &key, Some("s3cret!"), &none, b"").is_err());
        assert!(verify(kind, &key, None, &none, b"").is_err());
        let auth = headers(&[("authorization", "Bearer s3cret")]);
        verify(kind, &key, None, &auth, b"").unwrap();
        // A wrong path token is not rescued by a right header: the URL is what users configure.
        assert!(verify(kind, &key, Some("nope"), &auth, b"").is_err());
        verify(ReceiverKind::Generic, &key, None, &auth, b"").unwrap();
        let wrong = headers(&[("authorization", "Bearer s3cre")]);
        assert!(verify(ReceiverKind::Generic, &key, None, &wrong, b"").is_err());
        assert!(verify(ReceiverKind::Generic, &key, Some("s3cret"), &none, b"").is_err());
        let basic = headers(&[("authorization", "Basic s3cret")]);
        assert!(verify(ReceiverKind::Generic, &key, None, &basic, b"").is_err());
    }

    #[test]
    fn secrets_are_read_without_trailing_newline_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hook");
        std::fs::write(&path, "abc\n").unwrap();
        let key = SecretKey::read(&Secret::File(path)).unwrap();
        assert!(key.matches(b"abc"));
        assert_eq!(format!("{key:?}"), "SecretKey(3 bytes)");
        let unset = Secret::Env("TAGSMITH_TEST_HOOK_SURELY_UNSET".into());
        assert_eq!(SecretKey::read(&unset).unwrap_err().to_string(), "not set");
    }
}
