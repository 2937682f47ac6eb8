//! Paging of `/v2/<name>/tags/list`: `Link` header parsing and the decision where to go next.
//!
//! Registries page in three ways seen in the wild: spec style (`n`/`last` plus a `Link` to the
//! next page), Link-only (an opaque cursor in the `Link`, `last` ignored), and not at all (every
//! tag in one response, `n` and `last` ignored). The pager copes with all three and always ends:
//! a page without a `Link` ends the listing unless it looks cut at `n`, in which case one `last`
//! probe is made, and a probe that brings no new tags ends it too.

use std::collections::HashSet;
use std::collections::hash_map::{Entry, HashMap};
use std::hash::{BuildHasher as _, BuildHasherDefault, Hasher};
use std::time::Duration;

use reqwest::Url;

/// Bounds on one repository's listing: a registry that keeps sending new links or new tags,
/// or huge answers, must not keep a scan running or growing forever. Each limit that is hit
/// fails the listing with an error that names it; a partial list is never passed off as whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingLimits {
    /// Pages read for one repository.
    pub max_pages: usize,
    /// Distinct tags kept for one repository.
    pub max_tags: usize,
    /// Bytes of one tag list answer (and of one manifest or token answer).
    pub max_response_bytes: u64,
    /// Bytes of all the answers of one listing together.
    pub max_listing_bytes: u64,
    /// Time for a whole listing, every page and retry included.
    pub max_time: Duration,
}

impl Default for ListingLimits {
    fn default() -> Self {
        Self {
            max_pages: 10_000,
            max_tags: 500_000,
            max_response_bytes: 16 * 1024 * 1024,
            max_listing_bytes: 256 * 1024 * 1024,
            max_time: Duration::from_secs(600),
        }
    }
}

/// Links followed in a row without a single new tag before the listing is declared stuck.
/// Ending quietly there would pass off a partial list as the whole.
pub const MAX_PAGES_WITHOUT_PROGRESS: usize = 10;

/// The target of the first `rel="next"` link in `Link` header values, as written (may be relative).
pub fn next_link<'a, I>(values: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    values
        .into_iter()
        .flat_map(split_links)
        .find_map(|(target, params)| has_rel_next(params).then(|| target.to_string()))
}

/// Splits one header value into `(target, params)` pairs. Commas may appear inside `<...>`
/// and inside quoted parameter values, so a plain `split(',')` is not enough.
fn split_links(value: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let Some(after_open) = rest.strip_prefix('<') else {
            break;
        };
        let Some(close) = after_open.find('>') else {
            break;
        };
        let target = &after_open[..close];
        let params_start = &after_open[close + 1..];
        let mut in_quotes = false;
        let mut end = params_start.len();
        for (i, c) in params_start.char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        out.push((target, &params_start[..end]));
        rest = &params_start[end..];
    }
    out
}

fn has_rel_next(params: &str) -> bool {
    params.split(';').any(|param| {
        let Some((key, value)) = param.split_once('=') else {
            return false;
        };
        key.trim().eq_ignore_ascii_case("rel")
            && value
                .trim()
                .trim_matches('"')
                .split_ascii_whitespace()
                .any(|rel| rel.eq_ignore_ascii_case("next"))
    })
}

/// What to fetch after a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Fetch(Url),
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error("next link {link:?} is not a valid url")]
    BadLink { link: String },
    #[error("next link {link} leaves the registry {origin}")]
    OtherOrigin { link: String, origin: String },
    #[error("more than {max} pages (the limit per listing)")]
    TooManyPages { max: usize },
    #[error("more than {max} distinct tags (the limit per listing)")]
    TooManyTags { max: usize },
    #[error("more than {max} bytes of tag lists (the limit per listing)")]
    TooManyBytes { max: u64 },
    #[error("not done after {max:?} (the time limit per listing)")]
    TooLong { max: Duration },
    #[error("{pages} pages in a row brought no new tags")]
    NoProgress { pages: usize },
}

/// Collects tags across pages in registry order, without duplicates. Tags are fed one at a
/// time as the answer is parsed, so only new tags are ever copied; each is kept once, with
/// an index of hashes to find duplicates.
#[derive(Debug)]
pub struct Pager {
    page_size: Option<u32>,
    limits: ListingLimits,
    tags: Vec<Box<str>>,
    /// Hash of a tag to the index of the first kept tag with that hash.
    index: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    hasher: std::collections::hash_map::RandomState,
    /// Tags whose hash another, different tag already has (a 64-bit collision).
    collided: HashSet<Box<str>>,
    visited: HashSet<Url>,
    pages: usize,
    bytes: u64,
    pages_without_progress: usize,
    page: PageStats,
}

/// What the page being read has brought so far.
#[derive(Debug, Default)]
struct PageStats {
    len: usize,
    new: usize,
    last: String,
}

/// The `index` map's hasher: its keys are already hashes (by `Pager::hasher`, keyed per
/// listing), so hashing them again would only cost time.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys come here; anything else is folded in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Pager {
    pub fn new(page_size: Option<u32>, limits: ListingLimits) -> Self {
        Self {
            page_size,
            limits,
            tags: Vec::new(),
            index: HashMap::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            collided: HashSet::new(),
            visited: HashSet::new(),
            pages: 0,
            bytes: 0,
            pages_without_progress: 0,
            page: PageStats::default(),
        }
    }

    /// The first page's url: `base` is `<scheme>://<host>`.
    pub fn first_url(&self, base: &Url, repository: &str) -> Url {
        let mut url = base.clone();
        url.set_path(&format!("/v2/{repository}/tags/list"));
        if let Some(n) = self.page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        url
    }

    /// Counts one answer's size against the listing's byte limit, before it is parsed.
    pub fn count_bytes(&mut self, len: usize) -> Result<(), PagingError> {
        self.bytes = self.bytes.saturating_add(len as u64);
        if self.bytes > self.limits.max_listing_bytes {
            return Err(PagingError::TooManyBytes {
                max: self.limits.max_listing_bytes,
            });
        }
        // Room for the page at once rather than growing tag by tag, estimated at eight bytes
        // of JSON a tag (`"1.2.3",`): longer tags leave some of it unused, and it never goes
        // beyond the tag limit.
        let room = (len / 8).min(self.limits.max_tags.saturating_sub(self.tags.len()));
        self.tags.reserve(room);
        self.index.reserve(room);
        Ok(())
    }

    /// One tag of the page being read, in the order sent.
    pub fn add(&mut self, tag: &str) -> Result<(), PagingError> {
        self.page.len += 1;
        self.page.last.clear();
        self.page.last.push_str(tag);
        if self.insert(tag) {
            self.page.new += 1;
            if self.tags.len() > self.limits.max_tags {
                return Err(PagingError::TooManyTags {
                    max: self.limits.max_tags,
                });
            }
        }
        Ok(())
    }

    /// Keeps `tag` unless it was seen before; says whether it was new.
    fn insert(&mut self, tag: &str) -> bool {
        let hash = self.hasher.hash_one(tag);
        let Ok(position) = u32::try_from(self.tags.len()) else {
            // Far beyond any tag limit; refusing more tags beats wrapping the index.
            return false;
        };
        match self.index.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(position);
            }
            Entry::Occupied(slot) => {
                if *self.tags[*slot.get() as usize] == *tag || self.collided.contains(tag) {
                    return false;
                }
                self.collided.insert(tag.into());
            }
        }
        self.tags.push(tag.into());
        true
    }

    /// Takes one page (its url, its tags in the order sent, its `rel="next"` link) and decides
    /// what to fetch next.
    pub fn accept(
        &mut self,
        page_url: &Url,
        page_tags: Vec<String>,
        link: Option<&str>,
    ) -> Result<Next, PagingError> {
        for tag in &page_tags {
            self.add(tag)?;
        }
        self.end_page(page_url, link)
    }

    /// Ends the page whose tags were given to [`Pager::add`] and decides what to fetch next.
    pub fn end_page(&mut self, page_url: &Url, link: Option<&str>) -> Result<Next, PagingError> {
        let page = std::mem::take(&mut self.page);
        let (page_len, new_tags) = (page.len, page.new);
        let last_on_page = (page_len > 0).then_some(page.last);
        self.pages += 1;
        self.visited.insert(page_url.clone());
        let next = self.decide(page_url, link, page_len, new_tags, last_on_page)?;
        if matches!(next, Next::Fetch(_)) && self.pages >= self.limits.max_pages {
            return Err(PagingError::TooManyPages {
                max: self.limits.max_pages,
            });
        }
        Ok(next)
    }

    fn decide(
        &mut self,
        page_url: &Url,
        link: Option<&str>,
        page_len: usize,
        new_tags: usize,
        last_on_page: Option<String>,
    ) -> Result<Next, PagingError> {
        if new_tags == 0 {
            self.pages_without_progress += 1;
        } else {
            self.pages_without_progress = 0;
        }
        if let Some(link) = link {
            let next = page_url.join(link).map_err(|_| PagingError::BadLink {
                link: link.to_string(),
            })?;
            if next.origin() != page_url.origin() {
                // Credentials go with every request; never hand them to another host.
                return Err(PagingError::OtherOrigin {
                    link: next.to_string(),
                    origin: page_url.origin().ascii_serialization(),
                });
            }
            // A link back to a page already read can only repeat what we have.
            if self.visited.contains(&next) {
                return Ok(Next::Done);
            }
            if self.pages_without_progress >= MAX_PAGES_WITHOUT_PROGRESS {
                return Err(PagingError::NoProgress {
                    pages: self.pages_without_progress,
                });
            }
            return Ok(Next::Fetch(next));
        }
        // No link: the listing ended, unless the page was cut at `n` by a registry that pages
        // with `last` but sends no links. One probe tells; no new tags from it ends the listing.
        let (Some(n), Some(last)) = (self.page_size, last_on_page) else {
            return Ok(Next::Done);
        };
        if new_tags == 0 || page_len < n as usize {
            return Ok(Next::Done);
        }
        let mut probe = page_url.clone();
        let kept: Vec<(String, String)> = page_url
            .query_pairs()
            .filter(|(k, _)| k != "last" && k != "n")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        probe.set_query(None);
        {
            let mut q = probe.query_pairs_mut();
            for (k, v) in &kept {
                q.append_pair(k, v);
            }
            q.append_pair("n", &n.to_string());
            q.append_pair("last", &last);
        }
        Ok(if self.visited.contains(&probe) {
            Next::Done
        } else {
            Next::Fetch(probe)
        })
    }

    pub fn pages(&self) -> usize {
        self.pages
    }

    pub fn into_tags(self) -> Vec<String> {
        self.tags.into_iter().map(String::from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_next_among_several_links_and_rel_forms() {
        assert_eq!(
            next_link(["</v2/a/tags/list?n=2&last=b>; rel=\"next\""]),
            Some("/v2/a/tags/list?n=2&last=b".to_string())
        );
        assert_eq!(
            next_link(["<https://x/prev>; rel=\"prev\", <https://x/n?a=1,2>; rel=next"]),
            Some("https://x/n?a=1,2".to_string())
        );
        assert_eq!(
            next_link([
                "<https://x/p>; title=\"a, b\"; rel=\"prev\"",
                "<https://x/q>; REL=\"last next\""
            ]),
            Some("https://x/q".to_string())
        );
        assert_eq!(next_link(["<https://x/p>; rel=\"prev\""]), None);
        assert_eq!(next_link(["garbage"]), None);
        assert_eq!(next_link(Vec::<&str>::new()), None);
    }

    #[test]
    fn follows_links_relative_to_the_page_and_dedups_in_order() {
        let mut p = Pager::new(None, ListingLimits::default());
        let first = p.first_url(&url("http://r:5000"), "org/app");
        assert_eq!(first.as_str(), "http://r:5000/v2/org/app/tags/list");
        let next = p
            .accept(
                &first,
                tags(&["b", "a"]),
                Some("/v2/org/app/tags/list?next_page=x"),
            )
            .unwrap();
        let Next::Fetch(second) = next else {
            panic!("{next:?}")
        };
        assert_eq!(
            second.as_str(),
            "http://r:5000/v2/org/app/tags/list?next_page=x"
        );
        assert_eq!(
            p.accept(&second, tags(&["a", "c"]), None).unwrap(),
            Next::Done
        );
        assert_eq!(p.into_tags(), tags(&["b", "a", "c"]));
    }

    #[test]
    fn a_full_page_without_link_is_probed_once_with_last() {
        let mut p = Pager::new(Some(2), ListingLimits::default());
        let first = p.first_url(&url("http://r"), "app");
        assert_eq!(first.query(), Some("n=2"));
        let Next::Fetch(probe) = p.accept(&first, tags(&["a", "b"]), None).unwrap() else {
            panic!()
        };
        assert_eq!(probe.query(), Some("n=2&last=b"));
        // A registry that ignores `last` sends the same page again: nothing new, so it ends.
        assert_eq!(
            p.accept(&probe, tags(&["a", "b"]), None).unwrap(),
            Next::Done
        );
        assert_eq!(p.into_tags(), tags(&["a", "b"]));
    }

    #[test]
    fn registry_ignoring_n_ends_after_one_probe() {
        let mut p = Pager::new(Some(2), ListingLimits::default());
        let first = p.first_url(&url("http://r"), "app");
        let all = tags(&["x", "a", "q"]);
        let Next::Fetch(probe) = p.accept(&first, all.clone(), None).unwrap() else {
            panic!()
        };
        assert_eq!(p.accept(&probe, all.clone(), None).unwrap(), Next::Done);
        assert_eq!(p.into_tags(), all);
    }

    #[test]
    fn short_page_without_link_ends() {
        let mut p = Pager::new(Some(5), ListingLimits::default());
        let first = p.first_url(&url("http://r"), "app");
        assert_eq!(p.accept(&first, tags(&["a"]), None).unwrap(), Next::Done);
        let mut p = Pager::new(Some(5), ListingLimits::default());
        assert_eq!(p.accept(&first, vec![], None).unwrap(), Next::Done);
    }

    #[test]
    fn endless_fresh_links_without_new_tags_fail_instead_of_truncating() {
        let mut p = Pager::new(None, ListingLimits::default());
        let mut page = url("http://r/v2/app/tags/list");
        let mut result = p.accept(&page, tags(&["a"]), Some("/v2/app/tags/list?c=0"));
        let mut i = 0;
        while let Ok(Next::Fetch(next)) = result {
            i += 1;
            assert!(i < 100, "never stopped");
            page = next;
            result = p.accept(
                &page,
                tags(&["a"]),
                Some(&format!("/v2/app/tags/list?c={i}")),
            );
        }
        assert_eq!(
            result,
            Err(PagingError::NoProgress {
                pages: MAX_PAGES_WITHOUT_PROGRESS
            })
        );
    }

    #[test]
    fn limits_on_pages_tags_and_bytes_fail_the_listing() {
        let limits = ListingLimits {
            max_pages: 3,
            max_tags: 5,
            max_listing_bytes: 100,
            ..ListingLimits::default()
        };
        let mut p = Pager::new(None, limits);
        let page = |i: usize| url(&format!("http://r/v2/app/tags/list?p={i}"));
        let next = Some("/v2/app/tags/list?p=next");
        assert!(p.accept(&page(0), tags(&["a"]), next).is_ok());
        assert!(p.accept(&page(1), tags(&["b"]), next).is_ok());
        assert_eq!(
            p.accept(&page(2), tags(&["c"]), next),
            Err(PagingError::TooManyPages { max: 3 })
        );
        // The last page may be the limit's own: only a page that wants more fails.
        let mut p = Pager::new(None, limits);
        p.accept(&page(0), tags(&["a"]), next).unwrap();
        p.accept(&page(1), tags(&["b"]), next).unwrap();
        assert_eq!(p.accept(&page(2), tags(&["c"]), None), Ok(Next::Done));

        let mut p = Pager::new(None, limits);
        let err = p.accept(&page(0), tags(&["a", "b", "a", "c", "d", "e", "f"]), None);
        assert_eq!(err, Err(PagingError::TooManyTags { max: 5 }));
        let mut p = Pager::new(None, limits);
        assert!(p.count_bytes(60).is_ok());
        assert_eq!(
            p.count_bytes(41),
            Err(PagingError::TooManyBytes { max: 100 })
        );
    }

    #[test]
    fn link_loops_end_and_foreign_links_fail() {
        let mut p = Pager::new(None, ListingLimits::default());
        let first = url("http://r/v2/app/tags/list");
        assert_eq!(
            p.accept(&first, tags(&["a"]), Some("/v2/app/tags/list"))
                .unwrap(),
            Next::Done
        );
        let mut p = Pager::new(None, ListingLimits::default());
        let err = p
            .accept(&first, tags(&["a"]), Some("http://evil/v2/app/tags/list"))
            .unwrap_err();
        assert!(matches!(err, PagingError::OtherOrigin { .. }), "{err}");
    }
}
