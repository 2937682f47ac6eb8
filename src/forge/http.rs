//! A small JSON REST client for the forges octocrab does not speak (GitLab, Gitea): one API
//! base URL, one credential header sent to it alone (redirects are not followed, so the token
//! never travels to another host), timeouts, and rate limits (429 with `Retry-After` or
//! `RateLimit-Reset`) waited out a bounded number of times before the engine's retry takes
//! over.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{Action, ForgeError};
use crate::config::{ForgeKind, Secret};

/// Rate-limited attempts of one request before giving up for this cycle.
const MAX_ATTEMPTS: u32 = 3;
/// Longer waits are not sat out inside a cycle: the error says when to come back.
const MAX_WAIT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(30);
/// Without any header, how long a 429 waits.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// Error bodies are quoted in messages only this far.
const QUOTE: usize = 300;

pub(super) struct Rest {
    forge: ForgeKind,
    http: reqwest::Client,
    base: String,
    credential: (HeaderName, HeaderValue),
    writes: AtomicU32,
}

/// A non-rate-limited answer: the status and the body text.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub text: String,
    /// A redirect's `Location`, which is not followed.
    pub location: Option<String>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A redirect, explained: the credential would go wherever it points, so it is not taken.
    pub fn redirect(&self, forge: ForgeKind, action: Action) -> Option<ForgeError> {
        (300..400).contains(&self.status).then(|| ForgeError::Answered {
            forge,
            action,
            status: self.status,
            message: format!(
                "redirected to {}; not followed, so the token stays with apiUrl's host: set apiUrl to the API's own address",
                self.location.as_deref().unwrap_or("?")
            ),
        })
    }
}

/// Reads a token; the error names where it was looked for, never the value.
pub(super) fn read_token(forge: ForgeKind, secret: &Secret) -> Result<String, ForgeError> {
    let value = secret.read().map_err(|e| ForgeError::Token {
        forge,
        source_name: secret.to_string(),
        reason: e.to_string(),
    })?;
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(ForgeError::Token {
            forge,
            source_name: secret.to_string(),
            reason: "empty".into(),
        });
    }
    Ok(value)
}

impl Rest {
    /// `header`/`value`: the credential, sent with every request to `api_url` and nowhere else.
    pub fn new(
        forge: ForgeKind,
        api_url: &str,
        header: &'static str,
        value: &str,
    ) -> Result<Self, ForgeError> {
        let setup = |message: String| ForgeError::Setup {
            forge,
            api_url: api_url.to_string(),
            message,
        };
        let mut credential = HeaderValue::from_str(value)
            .map_err(|_| setup("the token is not a valid header value".into()))?;
        // Keeps it out of reqwest's and hyper's debug output.
        credential.set_sensitive(true);
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("tagsmith/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        // A self-managed forge behind a private CA: the same bundle variable the registry
        // client honours.
        if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
            let pem = std::fs::read(&path)
                .map_err(|e| setup(format!("SSL_CERT_FILE {}: {e}", path.to_string_lossy())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| setup(format!("SSL_CERT_FILE {}: {e}", path.to_string_lossy())))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| setup(e.to_string()))?;
        Ok(Self {
            forge,
            http,
            base: api_url.trim_end_matches('/').to_string(),
            credential: (HeaderName::from_static(header), credential),
            writes: AtomicU32::new(0),
        })
    }

    pub fn writes(&self) -> u32 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Sends `route` (below the API base, starting with `/`), waiting out rate limits.
    pub async fn send(
        &self,
        action: Action,
        method: Method,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ForgeError> {
        let url = format!("{}{route}", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if method != Method::GET {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header(self.credential.0.clone(), self.credential.1.clone())
                .header("accept", "application/json");
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.unreachable(action, &e))?;
            let status = response.status().as_u16();
            let wait = (status == 429).then(|| rate_limit_wait(response.headers(), now_unix()));
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let text = response
                .text()
                .await
                .map_err(|e| self.unreachable(action, &e))?;
            let Some(wait) = wait else {
                return Ok(Answer {
                    status,
                    text,
                    location,
                });
            };
            if attempt >= MAX_ATTEMPTS || wait > MAX_WAIT {
                return Err(ForgeError::RateLimited { action, wait });
            }
            tracing::warn!(
                forge = %self.forge,
                action = action.describe(),
                wait_secs = wait.as_secs(),
                "forge rate limit; waiting"
            );
            tokio::time::sleep(wait).await;
        }
    }

    fn unreachable(&self, action: Action, error: &reqwest::Error) -> ForgeError {
        let mut message = if error.is_timeout() {
            "timed out".to_string()
        } else {
            error.to_string()
        };
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        ForgeError::Unreachable {
            forge: self.forge,
            action,
            message,
        }
    }

    /// A 2xx answer's JSON.
    pub fn decode<T: DeserializeOwned>(
        &self,
        action: Action,
        answer: &Answer,
    ) -> Result<T, ForgeError> {
        let text = if answer.text.trim().is_empty() {
            "null"
        } else {
            &answer.text
        };
        serde_json::from_str(text).map_err(|e| ForgeError::Unexpected {
            forge: self.forge,
            action,
            message: e.to_string(),
        })
    }
}

/// The start of an error body, for messages.
pub(super) fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(QUOTE) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// How long a 429 asks us to wait: `Retry-After` (seconds or an HTTP date) first, else
/// `RateLimit-Reset` (Unix seconds, as GitLab sends it), else a minute.
pub(super) fn rate_limit_wait(headers: &HeaderMap, now_unix: u64) -> Duration {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(value) = header("retry-after") {
        if let Ok(secs) = value.parse::<u64>() {
            return Duration::from_secs(secs);
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            let at = at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            return Duration::from_secs(at.saturating_sub(now_unix).max(1));
        }
    }
    if let Some(reset) = header("ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
        return Duration::from_secs(reset.saturating_sub(now_unix).max(1));
    }
    DEFAULT_WAIT
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A path segment or query value, percent-encoded (GitLab project paths hold `/`, which must
/// be `%2F` inside the project id).
pub(super) fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_waits() {
        let mut h = HeaderMap::new();
        assert_eq!(rate_limit_wait(&h, 100), DEFAULT_WAIT);
        h.insert("ratelimit-reset", HeaderValue::from_static("130"));
        assert_eq!(rate_limit_wait(&h, 100), Duration::from_secs(30));
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(rate_limit_wait(&h, 100), Duration::from_secs(7));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Thu, 01 Jan 1970 00:03:00 GMT"),
        );
        assert_eq!(rate_limit_wait(&h, 100), Duration::from_secs(80));
    }

    #[test]
    fn encodes_project_paths() {
        assert_eq!(encode("group/sub/project"), "group%2Fsub%2Fproject");
        assert_eq!(encode("tagsmith/prod+x"), "tagsmith%2Fprod%2Bx");
    }
}
