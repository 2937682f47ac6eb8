//! Tag listing: every tag of a repository, across pages, and many repositories at once.

use futures_util::StreamExt as _;
use reqwest::Method;
use reqwest::header::LINK;
use serde::Deserialize;

use super::link::{Next, Pager};
use super::{Client, Error};
use crate::model::{ImageName, Tag};

#[derive(Debug, Deserialize)]
struct TagList {
    /// Distribution sends `null` for a repository whose tags were all deleted.
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Client {
    /// Every tag of `image`, in the order the registry sent them, without duplicates.
    /// A failed scan is an error, never an empty list; an empty list means the registry
    /// answered that there are no tags.
    #[tracing::instrument(level = "debug", skip_all, fields(%image))]
    pub async fn list_tags(&self, image: &ImageName) -> Result<Vec<Tag>, Error> {
        let host = self.host(image)?;
        let mut pager = Pager::new(host.page_size);
        let mut url = pager.first_url(&host.base, &image.repository());
        loop {
            let reply = host
                .send(image, Method::GET, &url, "application/json", "tag list")
                .await?;
            let list: TagList =
                serde_json::from_slice(&reply.body).map_err(|e| Error::TagList {
                    image: image.to_string(),
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
            let link = super::link::next_link(
                reply
                    .headers
                    .get_all(LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            let next = pager
                .accept(&url, list.tags.unwrap_or_default(), link.as_deref())
                .map_err(|source| Error::Paging {
                    image: image.to_string(),
                    source,
                })?;
            match next {
                Next::Fetch(next_url) => url = next_url,
                Next::Done => break,
            }
        }
        let pages = pager.pages();
        let mut tags = Vec::new();
        let mut invalid = 0usize;
        for raw in pager.into_tags() {
            match raw.parse::<Tag>() {
                Ok(tag) => tags.push(tag),
                Err(_) => invalid += 1,
            }
        }
        if invalid > 0 {
            tracing::warn!(%image, invalid, "registry listed tags that are not valid tag names; skipped");
        }
        tracing::debug!(%image, tags = tags.len(), pages, "listed tags");
        Ok(tags)
    }

    /// Lists the tags of many images, at most `Options::scan_concurrency` at once (and each
    /// host's own limits), returning one result per image in input order.
    pub async fn scan_all(
        &self,
        images: &[ImageName],
    ) -> Vec<(ImageName, Result<Vec<Tag>, Error>)> {
        futures_util::stream::iter(images.iter().cloned())
            .map(|image| async move {
                let started = std::time::Instant::now();
                let result = self.list_tags(&image).await;
                let m = crate::metrics::metrics();
                m.scan_duration.observe(started.elapsed().as_secs_f64());
                let outcome = if result.is_ok() { "ok" } else { "error" };
                m.scans
                    .get_or_create(&crate::metrics::label("result", outcome))
                    .inc();
                (image, result)
            })
            .buffered(self.options().scan_concurrency.max(1))
            .collect()
            .await
    }
}
