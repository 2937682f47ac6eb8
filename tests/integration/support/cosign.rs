//! cosign signatures made in the tests with real keys: simple-signing payloads signed with
//! ECDSA P-256 (SHA-256, ASN.1 DER) or Ed25519, base64 as cosign puts them in the annotation.

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{EncodePublicKey as _, LineEnding};

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// A signing key and its PEM public key (as `cosign.pub`).
pub enum Key {
    Ecdsa(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl Key {
    /// A fixed key from `seed` (reproducible, no randomness needed).
    pub fn ecdsa(seed: u8) -> Self {
        Self::Ecdsa(p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap())
    }

    pub fn ed25519(seed: u8) -> Self {
        Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    pub fn public_pem(&self) -> String {
        match self {
            Self::Ecdsa(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
            Self::Ed25519(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
        }
        .unwrap()
    }

    /// The base64 signature over exactly `payload`.
    pub fn sign(&self, payload: &[u8]) -> String {
        let raw = match self {
            Self::Ecdsa(k) => {
                let sig: p256::ecdsa::DerSignature = k.sign(payload);
                sig.as_bytes().to_vec()
            }
            Self::Ed25519(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(payload).to_bytes().to_vec()
            }
        };
        base64::engine::general_purpose::STANDARD.encode(raw)
    }
}

/// The simple-signing payload `cosign sign` writes for `reference` at `digest`.
pub fn payload(reference: &str, digest: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}
