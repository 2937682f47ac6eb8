//! The signature gate: a tag is eligible only if its digest carries a cosign signature that
//! one of the image's public keys verifies.
//!
//! cosign's "simple signing" layout: each signature is a layer whose blob is a JSON payload
//! naming the signed manifest digest (`critical.image.docker-manifest-digest`) and whose
//! annotation `dev.cosignproject.cosign/signature` holds the base64 signature over exactly the
//! payload bytes: ECDSA P-256 with SHA-256 (ASN.1 DER) or Ed25519. Keyless signatures
//! (Fulcio certificates, Rekor entries) are not verified: only keys the user configures.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;

/// The annotation holding a layer's signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The artifact type cosign gives signatures stored as OCI 1.1 referrers.
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// `critical.type` of a container image signature (sigstore `payload.CosignSignatureType`).
const SIGNATURE_TYPE: &str = "cosign container image signature";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{name}: not a PEM public key (expected -----BEGIN PUBLIC KEY-----)")]
    NotPem { name: String },
    #[error("{name}: neither an ECDSA P-256 nor an Ed25519 public key")]
    Unsupported { name: String },
}

#[derive(Clone)]
enum Key {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// One configured key, named by where it came from (a file path or an environment variable).
#[derive(Clone)]
pub struct PublicKey {
    pub name: String,
    key: Key,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.key {
            Key::P256(_) => "ecdsa-p256",
            Key::Ed25519(_) => "ed25519",
        };
        write!(f, "PublicKey({}, {kind})", self.name)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl PublicKey {
    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `cosign generate-key-pair` writes `cosign.pub`.
    pub fn from_pem(name: &str, pem: &str) -> Result<Self, KeyError> {
        use p256::pkcs8::DecodePublicKey as _;
        if !pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(KeyError::NotPem {
                name: name.to_string(),
            });
        }
        let pem = pem.trim();
        let key = if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            Key::P256(k)
        } else if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            Key::Ed25519(k)
        } else {
            return Err(KeyError::Unsupported {
                name: name.to_string(),
            });
        };
        Ok(Self {
            name: name.to_string(),
            key,
        })
    }

    fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        match &self.key {
            Key::P256(k) => {
                if let Ok(sig) = p256::ecdsa::DerSignature::from_bytes(signature) {
                    return k.verify(payload, &sig).is_ok();
                }
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| k.verify(payload, &sig).is_ok())
            }
            Key::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| k.verify_strict(payload, &sig).is_ok()),
        }
    }
}

/// One signature as found in the registry: the payload blob and the layer's annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub payload: Vec<u8>,
    /// The base64 annotation, when the layer has one.
    pub signature: Option<String>,
}

/// Why one signature did not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flaw {
    NoAnnotation,
    NotBase64,
    /// No configured key verifies it (another key, or payload bytes changed after signing).
    NoKeyVerifies,
    NotSimpleSigning(String),
    /// Valid, but for another manifest.
    OtherDigest(String),
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAnnotation => write!(f, "no {SIGNATURE_ANNOTATION} annotation"),
            Self::NotBase64 => f.write_str("signature is not base64"),
            Self::NoKeyVerifies => f.write_str("no configured key verifies it"),
            Self::NotSimpleSigning(why) => write!(f, "payload is not a cosign payload: {why}"),
            Self::OtherDigest(d) => write!(f, "it signs {d}"),
        }
    }
}

/// Why a candidate has no valid signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No signature artifact at all.
    Unsigned,
    /// Signatures, none valid; one flaw per signature.
    Invalid(Vec<Flaw>),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsigned => f.write_str("no cosign signature"),
            Self::Invalid(flaws) => {
                write!(f, "no valid cosign signature ({} found: ", flaws.len())?;
                for (i, flaw) in flaws.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{flaw}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// The name of the key that verifies a signature over `digest`, or why none does. The
/// signature is checked over the payload bytes first; only a verified payload is read.
pub fn verify<'k>(
    keys: &'k [PublicKey],
    digest: &str,
    signatures: &[Signature],
) -> Result<&'k str, Refusal> {
    if signatures.is_empty() {
        return Err(Refusal::Unsigned);
    }
    let mut flaws = Vec::with_capacity(signatures.len());
    for s in signatures {
        match check_one(keys, digest, s) {
            Ok(name) => return Ok(name),
            Err(flaw) => flaws.push(flaw),
        }
    }
    Err(Refusal::Invalid(flaws))
}

fn check_one<'k>(keys: &'k [PublicKey], digest: &str, s: &Signature) -> Result<&'k str, Flaw> {
    let text = s.signature.as_deref().ok_or(Flaw::NoAnnotation)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| Flaw::NotBase64)?;
    let key = keys
        .iter()
        .find(|k| k.verifies(&s.payload, &raw))
        .ok_or(Flaw::NoKeyVerifies)?;
    let payload: Payload =
        serde_json::from_slice(&s.payload).map_err(|e| Flaw::NotSimpleSigning(e.to_string()))?;
    if payload.critical.kind != SIGNATURE_TYPE {
        return Err(Flaw::NotSimpleSigning(format!(
            "type {:?}",
            payload.critical.kind
        )));
    }
    if payload.critical.image.digest != digest {
        return Err(Flaw::OtherDigest(payload.critical.image.digest));
    }
    Ok(&key.name)
}

/// The tag cosign stores an image's signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn payload(digest: &str) -> Vec<u8> {
        format!(r#"{{"critical":{{"identity":{{"docker-reference":"r/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#).into_bytes()
    }

    fn ecdsa(seed: u8) -> (p256::ecdsa::SigningKey, PublicKey) {
        let sk = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let pem = sk
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        (sk, PublicKey::from_pem("cosign.pub", &pem).unwrap())
    }

    fn sign_ecdsa(sk: &p256::ecdsa::SigningKey, payload: Vec<u8>) -> Signature {
        let sig: p256::ecdsa::DerSignature = sk.sign(&payload);
        Signature {
            signature: Some(base64::engine::general_purpose::STANDARD.encode(sig.as_bytes())),
            payload,
        }
    }

    #[test]
    fn ecdsa_signature_over_the_digest_verifies() {
        let (sk, key) = ecdsa(7);
        let sig = sign_ecdsa(&sk, payload(DIGEST));
        assert_eq!(verify(&[key], DIGEST, &[sig]), Ok("cosign.pub"));
    }

    #[test]
    fn ed25519_signature_verifies() {
        use ed25519_dalek::Signer as _;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let pem = sk
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let key = PublicKey::from_pem("ed.pub", &pem).unwrap();
        let body = payload(DIGEST);
        let sig = Signature {
            signature: Some(
                base64::engine::general_purpose::STANDARD.encode(sk.sign(&body).to_bytes()),
            ),
            payload: body,
        };
        assert_eq!(verify(&[key], DIGEST, &[sig]), Ok("ed.pub"));
    }

    #[test]
    fn wrong_key_tampered_payload_other_digest_and_none_are_refused() {
        let (sk, key) = ecdsa(7);
        let (_, other) = ecdsa(9);
        let good = sign_ecdsa(&sk, payload(DIGEST));
        assert_eq!(
            verify(
                std::slice::from_ref(&other),
                DIGEST,
                std::slice::from_ref(&good)
            ),
            Err(Refusal::Invalid(vec![Flaw::NoKeyVerifies]))
        );
        let mut tampered = good.clone();
        tampered.payload = payload(&DIGEST.replace('1', "2"));
        assert_eq!(
            verify(std::slice::from_ref(&key), DIGEST, &[tampered]),
            Err(Refusal::Invalid(vec![Flaw::NoKeyVerifies]))
        );
        let elsewhere = DIGEST.replace('1', "3");
        let for_other = sign_ecdsa(&sk, payload(&elsewhere));
        assert_eq!(
            verify(std::slice::from_ref(&key), DIGEST, &[for_other]),
            Err(Refusal::Invalid(vec![Flaw::OtherDigest(elsewhere)]))
        );
        assert_eq!(verify(&[key], DIGEST, &[]), Err(Refusal::Unsigned));
    }

    #[test]
    fn keys_that_are_not_pem_public_keys_are_refused() {
        assert!(matches!(
            PublicKey::from_pem("k", "hello"),
            Err(KeyError::NotPem { .. })
        ));
        let junk = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            PublicKey::from_pem("k", junk),
            Err(KeyError::Unsupported { .. })
        ));
    }

    #[test]
    fn signature_tag_is_cosigns() {
        assert_eq!(signature_tag("sha256:abc"), "sha256-abc.sig");
    }
}
