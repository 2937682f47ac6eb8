//! Tag listing: every tag of a repository, across pages, and many repositories at once.

use futures_util::StreamExt as _;
use reqwest::Method;
use reqwest::header::LINK;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::client::Host;
use super::link::{Next, Pager, PagingError};
use super::{Client, Error};
use crate::model::{ImageName, Tag};

/// The id of the answers hashed so far (see [`Listing::Tags`]).
fn listing_id(hasher: &blake3::Hasher) -> String {
    hasher.finalize().to_hex()[..32].to_string()
}

/// `{"name": .., "tags": [..]}`, read straight into the pager: each tag is looked at where it
/// lies in the answer and copied only when it is new.
struct TagListSeed<'a> {
    pager: &'a mut Pager,
    /// The first limit the answer ran into; parsing stops there.
    limit: &'a mut Option<PagingError>,
}

impl<'de> DeserializeSeed<'de> for TagListSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TagListSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a tag list object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "tags" {
                // Distribution sends `null` for a repository whose tags were all deleted.
                map.next_value_seed(OptionalTags {
                    pager: &mut *self.pager,
                    limit: &mut *self.limit,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct OptionalTags<'a> {
    pager: &'a mut Pager,
    limit: &'a mut Option<PagingError>,
}

impl<'de> DeserializeSeed<'de> for OptionalTags<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptionalTags<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of tags or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(tag) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
            if let Err(e) = self.pager.add(&tag) {
                *self.limit = Some(e);
                return Err(de::Error::custom("listing limit reached"));
            }
        }
        Ok(())
    }
}

/// A repository's tag listing, or word that it is the one the caller has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The tags, and the listing's id: a BLAKE3 hash of the caller's salt and of every
    /// answer's bytes, so the same answers give the same id.
    Tags { tags: Vec<Tag>, id: String },
    /// The registry answered, in one page, byte for byte what the id the caller gave was made
    /// from: not read again.
    Unchanged,
}

impl Client {
    /// Every tag of `image`, in the order the registry sent them, without duplicates.
    /// A failed scan is an error, never an empty list; an empty list means the registry
    /// answered that there are no tags. A listing beyond its limits (pages, tags, bytes,
    /// time) fails with the limit named.
    pub async fn list_tags(&self, image: &ImageName) -> Result<Vec<Tag>, Error> {
        match self.list_tags_since(image, b"", None).await? {
            Listing::Tags { tags, .. } => Ok(tags),
            // Nothing was seen, so nothing can be unchanged.
            Listing::Unchanged => Ok(Vec::new()),
        }
    }

    /// [`Client::list_tags`] with the listing's id (made with `salt`, see [`Listing`]), or
    /// [`Listing::Unchanged`] when the answer is the one `seen` was made from.
    #[tracing::instrument(level = "debug", skip_all, fields(%image))]
    pub async fn list_tags_since(
        &self,
        image: &ImageName,
        salt: &[u8],
        seen: Option<&str>,
    ) -> Result<Listing, Error> {
        let host = self.host(image)?;
        let max = host.limits.max_time;
        match tokio::time::timeout(max, self.list_tags_on(&host, image, salt, seen)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Paging {
                image: image.to_string(),
                registry: host.registry.clone(),
                source: PagingError::TooLong { max },
            }),
        }
    }

    async fn list_tags_on(
        &self,
        host: &Host,
        image: &ImageName,
        salt: &[u8],
        seen: Option<&str>,
    ) -> Result<Listing, Error> {
        let mut pager = Pager::new(host.page_size, host.limits);
        let mut url = pager.first_url(&host.base, &image.repository());
        let paging = |source| Error::Paging {
            image: image.to_string(),
            registry: host.registry.clone(),
            source,
        };
        let mut id = blake3::Hasher::new();
        id.update(&(salt.len() as u64).to_le_bytes());
        id.update(salt);
        loop {
            let reply = host
                .send(image, Method::GET, &url, "application/json", "tag list")
                .await?;
            pager.count_bytes(reply.body.len()).map_err(paging)?;
            id.update(&(reply.body.len() as u64).to_le_bytes());
            id.update(&reply.body);
            let link = super::link::next_link(
                reply
                    .headers
                    .get_all(LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            // A first page with no link and no page size asked for is the whole listing.
            if let Some(seen) = seen
                && pager.pages() == 0
                && link.is_none()
                && host.page_size.is_none()
                && listing_id(&id) == seen
            {
                tracing::debug!(%image, "tag list unchanged");
                return Ok(Listing::Unchanged);
            }
            let mut limit = None;
            let parsed = {
                let mut json = serde_json::Deserializer::from_slice(&reply.body);
                TagListSeed {
                    pager: &mut pager,
                    limit: &mut limit,
                }
                .deserialize(&mut json)
                .and_then(|()| json.end())
            };
            if let Some(limit) = limit {
                return Err(paging(limit));
            }
            parsed.map_err(|e| Error::TagList {
                image: image.to_string(),
                url: url.to_string(),
                reason: e.to_string(),
            })?;
            drop(reply);
            match pager.end_page(&url, link.as_deref()).map_err(paging)? {
                Next::Fetch(next_url) => url = next_url,
                Next::Done => break,
            }
        }
        let pages = pager.pages();
        let mut tags = Vec::new();
        let mut invalid = 0usize;
        for raw in pager.into_tags() {
            match Tag::try_from(raw) {
                Ok(tag) => tags.push(tag),
                Err(_) => invalid += 1,
            }
        }
        if invalid > 0 {
            tracing::warn!(%image, invalid, "registry listed tags that are not valid tag names; skipped");
        }
        tracing::debug!(%image, tags = tags.len(), pages, "listed tags");
        Ok(Listing::Tags {
            tags,
            id: listing_id(&id),
        })
    }

    /// Lists the tags of many images, at most `Options::scan_concurrency` at once (and each
    /// host's own limits), returning one result per image in input order. Counts nothing in
    /// the metrics: a scan is counted once, by the engine, after selection and digest lookup.
    pub async fn scan_all(
        &self,
        images: &[ImageName],
    ) -> Vec<(ImageName, Result<Vec<Tag>, Error>)> {
        futures_util::stream::iter(images.iter().cloned())
            .map(|image| async move {
                let result = self.list_tags(&image).await;
                (image, result)
            })
            .buffered(self.options().scan_concurrency.max(1))
            .collect()
            .await
    }
}
