//! Registry IO: list every tag of a repository and resolve tag digests, with auth, paging,
//! retries and per-registry limits.
//!
//! # Why an own client rather than `oci-client`
//!
//! tagsmith needs three calls: the tag list (paged), a manifest `HEAD` (and `GET` as fallback)
//! and the token dance. `oci-client` 0.18 cannot page tag lists (it neither exposes nor follows
//! `Link`), and one of its clients keeps the first credentials it saw per registry, so the tag
//! lister would need our own HTTP client and auth anyway. Manifest digests are two requests
//! with the right `Accept` header. Sharing one `reqwest` client, one token cache and one set
//! of limits per host for all three calls is less code and fewer surprises than keeping a
//! second client with its own auth state in step, so tagsmith does not depend on `oci-client`.
//!
//! Layout: pure parts (`link` paging, `challenge` parsing, `backoff`, `limit` arithmetic,
//! `settings`) carry the unit tests; `client` does the HTTP exchange, `auth` finds credentials,
//! `scan` and `digest` are the public operations.

mod artifact;
pub mod auth;
pub mod backoff;
pub mod challenge;
mod client;
mod digest;
pub mod limit;
pub mod link;
pub mod oci;
mod scan;
pub mod settings;
mod token;

use thiserror::Error;

pub use artifact::Fetched;
pub use backoff::RetryPolicy;
pub use client::{Client, Options, is_loopback};
pub use digest::MANIFEST_ACCEPT;
pub use link::ListingLimits;
pub use scan::Listing;
pub use settings::{AuthSettings, BasicAuth, ExecAuth, RegistrySettings};

#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid settings for registry {host}: {reason}")]
    Settings { host: String, reason: String },
    #[error("cannot read ca bundle {path} for registry {host}: {reason}")]
    CaBundle {
        host: String,
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot set up the http client for registry {host}")]
    ClientSetup {
        host: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{image}: cannot get credentials")]
    Credentials {
        image: String,
        #[source]
        source: auth::AuthError,
    },
    #[error("{image}: {what} failed after {attempts} attempt(s): {reason}")]
    Request {
        image: String,
        what: String,
        attempts: u32,
        reason: String,
        transient: bool,
    },
    #[error("{image}: token request to {realm} failed using {credential}: {reason}")]
    Token {
        image: String,
        realm: String,
        credential: String,
        reason: String,
        transient: bool,
    },
    #[error("{image}: {what} unauthorized (http 401) using {credential}")]
    Unauthorized {
        image: String,
        what: String,
        credential: String,
    },
    #[error("{image}: {what} denied (http 403) using {credential}")]
    Denied {
        image: String,
        what: String,
        credential: String,
    },
    #[error("{image}: {what} not found (http 404) using {credential}")]
    NotFound {
        image: String,
        what: String,
        credential: String,
    },
    #[error("{image}: {what} got unexpected http {status}")]
    Status {
        image: String,
        what: String,
        status: u16,
    },
    #[error("{image}: invalid tag list from {url}: {reason}")]
    TagList {
        image: String,
        url: String,
        reason: String,
    },
    #[error("{image}: listing tags at {registry} stopped: {source}")]
    Paging {
        image: String,
        registry: String,
        #[source]
        source: link::PagingError,
    },
    #[error("{image}: {what} from {registry} is larger than {limit} bytes (the limit per answer)")]
    TooLarge {
        image: String,
        what: String,
        registry: String,
        limit: u64,
    },
    #[error(
        "{image}: {what} was redirected to {to}, which asks for credentials; the credentials for \
         {registry} go only to {registry} and the token service it names"
    )]
    Redirected {
        image: String,
        what: String,
        to: String,
        registry: String,
    },
    #[error("{image}: {what} is not usable: {reason}")]
    Document {
        image: String,
        what: String,
        reason: String,
    },
    #[error("{image}:{tag}: no usable manifest digest: {reason}")]
    Digest {
        image: String,
        tag: String,
        reason: String,
    },
}

impl Error {
    /// Whether trying again later may succeed (the registry was busy, down or unreachable),
    /// as opposed to a wrong name, wrong credentials or a broken registry answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Request { transient, .. } | Self::Token { transient, .. } => *transient,
            Self::Credentials { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}
