//! Requests the gates make: a manifest by digest, a blob (checked against its digest), and the
//! OCI 1.1 referrers list of a digest.

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;

use super::digest::sha256_digest;
use super::oci::{self, Descriptor, Manifest};
use super::{Client, Error, MANIFEST_ACCEPT};
use crate::model::ImageName;

/// A manifest as fetched: its bytes parsed, and the media type the registry sent.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub manifest: Manifest,
    pub media_type: Option<String>,
}

impl Client {
    /// The manifest (or index) `reference` names: a digest or a tag.
    #[tracing::instrument(level = "debug", skip_all, fields(%image, %reference))]
    pub async fn manifest(&self, image: &ImageName, reference: &str) -> Result<Fetched, Error> {
        let host = self.host(image)?;
        let mut url = host.base.clone();
        url.set_path(&format!("/v2/{}/manifests/{reference}", image.repository()));
        let what = format!("manifest {reference}");
        let reply = host
            .send(image, Method::GET, &url, MANIFEST_ACCEPT, &what)
            .await?;
        if reference.starts_with("sha256:")
            && sha256_digest(&reply.body).is_none_or(|d| d.as_str() != reference)
        {
            return Err(Error::Document {
                image: image.to_string(),
                what,
                reason: "the bytes do not match the digest".into(),
            });
        }
        let manifest = oci::parse(&reply.body).map_err(|reason| Error::Document {
            image: image.to_string(),
            what: what.clone(),
            reason,
        })?;
        let media_type = reply
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        Ok(Fetched {
            manifest,
            media_type,
        })
    }

    /// The blob `digest`, refused unless its bytes hash to the digest.
    #[tracing::instrument(level = "debug", skip_all, fields(%image, %digest))]
    pub async fn blob(&self, image: &ImageName, digest: &str) -> Result<Vec<u8>, Error> {
        let host = self.host(image)?;
        let mut url = host.base.clone();
        url.set_path(&format!("/v2/{}/blobs/{digest}", image.repository()));
        let what = format!("blob {digest}");
        let reply = host.send(image, Method::GET, &url, "*/*", &what).await?;
        if sha256_digest(&reply.body).is_none_or(|d| d.as_str() != digest) {
            return Err(Error::Document {
                image: image.to_string(),
                what,
                reason: "the bytes do not match the digest".into(),
            });
        }
        Ok(reply.body)
    }

    /// The referrers of `digest` (OCI distribution spec 1.1), or `None` when the registry
    /// does not offer the API (a 404 from registries that predate it).
    #[tracing::instrument(level = "debug", skip_all, fields(%image, %digest))]
    pub async fn referrers(
        &self,
        image: &ImageName,
        digest: &str,
    ) -> Result<Option<Vec<Descriptor>>, Error> {
        let host = self.host(image)?;
        let mut url = host.base.clone();
        url.set_path(&format!("/v2/{}/referrers/{digest}", image.repository()));
        let what = format!("referrers of {digest}");
        let reply = match host
            .send(image, Method::GET, &url, oci::OCI_INDEX, &what)
            .await
        {
            Ok(reply) => reply,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let is_index = reply
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(oci::OCI_INDEX));
        // A registry without the API may answer with something else entirely (an HTML page,
        // an error document): only an index is a referrers list.
        if !is_index {
            return Ok(None);
        }
        let list: Manifest = oci::parse(&reply.body).map_err(|reason| Error::Document {
            image: image.to_string(),
            what,
            reason,
        })?;
        Ok(Some(list.manifests))
    }
}
