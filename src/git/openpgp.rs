//! OpenPGP commit signatures, as image-automation-controller makes them with its signingKey
//! (internal/source/signing.go loadGPGSigner; fluxcd/pkg git/signature OpenPGPSigner): one
//! armored secret key, unlocked with a passphrase when it is protected, and an armored
//! detached signature over the commit (what `git commit -S` stores in `gpgsig`).

use std::path::Path;

use pgp::composed::{ArmorOptions, Deserializable as _, DetachedSignature, SignedSecretKey};
use pgp::packet::{SecretKey, SecretSubkey};
use pgp::types::{KeyDetails as _, Password, SigningKey};

use super::GitError;
use crate::config::Secret;

/// The armored detached signature of `content` with the key in `key_file`.
pub(super) fn sign(
    key_file: &Path,
    passphrase: Option<&Secret>,
    content: &[u8],
) -> Result<String, GitError> {
    let fail = |m: String| GitError::Sign {
        key: key_file.to_path_buf(),
        message: m,
    };
    let armored = std::fs::read_to_string(key_file).map_err(|e| fail(e.to_string()))?;
    let mut keys = SignedSecretKey::from_armor_many(armored.as_bytes())
        .map_err(|e| fail(format!("cannot read the OpenPGP key: {e}")))?
        .0
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("cannot read the OpenPGP key: {e}")))?;
    if keys.len() > 1 {
        return Err(fail(
            "the file holds several OpenPGP keys: cannot tell which to sign with".into(),
        ));
    }
    let key = keys
        .pop()
        .ok_or_else(|| fail("the file holds no OpenPGP secret key".into()))?;
    let password = match passphrase {
        None => Password::empty(),
        Some(secret) => Password::from(
            secret
                .read()
                .map_err(|e| fail(format!("cannot read the passphrase from {secret}: {e}")))?
                .as_str(),
        ),
    };
    let (primary, subkey) = signing_key(&key);
    let locked = subkey.map_or(primary.secret_params().is_encrypted(), |s| {
        s.secret_params().is_encrypted()
    });
    if locked && passphrase.is_none() {
        return Err(fail(
            "the OpenPGP key is passphrase-protected and no passphrase is configured".into(),
        ));
    }
    let signed = match subkey {
        Some(s) => detached(s, &password, content),
        None => detached(primary, &password, content),
    };
    let signature = signed.map_err(|e| {
        fail(if locked {
            format!("cannot unlock or use the OpenPGP key (is the passphrase right?): {e}")
        } else {
            format!("cannot sign with the OpenPGP key: {e}")
        })
    })?;
    signature
        .to_armored_string(ArmorOptions::default())
        .map_err(|e| fail(e.to_string()))
}

fn detached(
    key: &impl SigningKey,
    password: &Password,
    content: &[u8],
) -> pgp::errors::Result<DetachedSignature> {
    DetachedSignature::sign_binary_data(rand::thread_rng(), key, password, key.hash_alg(), content)
}

/// The key that signs, as go-crypto's Entity.SigningKey picks it: the newest subkey flagged
/// for signing when there is one, else the primary key.
fn signing_key(key: &SignedSecretKey) -> (&SecretKey, Option<&SecretSubkey>) {
    let subkey = key
        .secret_subkeys
        .iter()
        .filter(|s| s.signatures.iter().any(|sig| sig.key_flags().sign()))
        .max_by_key(|s| s.key.created_at())
        .map(|s| &s.key);
    (&key.primary_key, subkey)
}
