//! Tag to manifest digest: `HEAD` with every manifest type accepted, `GET` as the fallback.

use futures_util::StreamExt as _;
use reqwest::Method;
use sha2::{Digest as _, Sha256};

use super::{Client, Error};
use crate::model::{Digest, ImageName, Tag};

/// Index types first: for a multi-arch image the digest users pin is the index's.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

const DIGEST_HEADER: &str = "docker-content-digest";

impl Client {
    /// The digest of the manifest (or index) `image:tag` points at.
    #[tracing::instrument(level = "debug", skip_all, fields(%image, %tag))]
    pub async fn resolve_digest(&self, image: &ImageName, tag: &Tag) -> Result<Digest, Error> {
        let host = self.host(image)?;
        let mut url = host.base.clone();
        url.set_path(&format!("/v2/{}/manifests/{tag}", image.repository()));
        let what = format!("manifest {tag}");
        match host
            .send(image, Method::HEAD, &url, MANIFEST_ACCEPT, &what)
            .await
        {
            Ok(reply) => {
                if let Some(digest) = header_digest(&reply.headers) {
                    return Ok(digest);
                }
            }
            // The name or the credentials are wrong, or the answer is refused; a GET will not
            // say otherwise.
            Err(
                e @ (Error::NotFound { .. }
                | Error::Unauthorized { .. }
                | Error::Denied { .. }
                | Error::Redirected { .. }),
            ) => {
                return Err(e);
            }
            Err(e) => tracing::debug!(%image, %tag, error = %e, "manifest head failed; trying get"),
        }
        let reply = host
            .send(image, Method::GET, &url, MANIFEST_ACCEPT, &what)
            .await?;
        if let Some(digest) = header_digest(&reply.headers) {
            return Ok(digest);
        }
        if reply.body.is_empty() {
            return Err(Error::Digest {
                image: image.to_string(),
                tag: tag.to_string(),
                reason: "no digest header and an empty body".into(),
            });
        }
        sha256_digest(&reply.body).ok_or_else(|| Error::Digest {
            image: image.to_string(),
            tag: tag.to_string(),
            reason: "cannot form a sha256 digest".into(),
        })
    }

    /// Digests for many tags of one image, in the order given, at most
    /// `Options::digest_concurrency` requests at once.
    pub async fn resolve_digests(
        &self,
        image: &ImageName,
        tags: &[Tag],
    ) -> Vec<(Tag, Result<Digest, Error>)> {
        futures_util::stream::iter(tags.iter().cloned())
            .map(|tag| async move {
                let result = self.resolve_digest(image, &tag).await;
                (tag, result)
            })
            .buffered(self.options().digest_concurrency.max(1))
            .collect()
            .await
    }
}

fn header_digest(headers: &reqwest::header::HeaderMap) -> Option<Digest> {
    headers
        .get(DIGEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The digest of exactly the bytes the registry sent: a manifest's digest is over its
/// serialised form, never a re-encoding.
pub fn sha256_digest(body: &[u8]) -> Option<Digest> {
    let hash = Sha256::digest(body);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_digest(b"abc").unwrap().as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
