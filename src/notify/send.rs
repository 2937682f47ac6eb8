//! Sending one message: the HTTP POST to a sink, or the commit status through GitHub's API,
//! each retried with backoff while the failure is one a retry can fix.

use std::time::Duration;

use super::NotifyError;
use super::body::{SIGNATURE_HEADER, render, signature};
use super::event::Event;
use crate::config::{CommitStatus, EventKind, Secret, Sink, SinkKind};
use crate::forge::GitHub;

/// Each request's own limit: a receiver that hangs costs this, not the queue.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest Retry-After honoured; a receiver asking for more gets the message later.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How often and how patiently a message is retried.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry {
    pub attempts: u32,
    /// The first wait; each next one doubles, with jitter.
    pub first: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 5,
            first: Duration::from_millis(500),
        }
    }
}

impl Retry {
    fn wait(self, attempt: u32) -> Duration {
        let base = self
            .first
            .saturating_mul(1 << attempt.saturating_sub(1).min(10));
        // Up to a quarter more, so sinks failing together do not retry together.
        let jitter = base.mul_f64(fastrand::f64() / 4.0);
        base + jitter
    }
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        // A redirect would carry the body (and signature) to a host nobody configured.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tagsmith/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

fn read(secret: &Secret, err: fn(String, String) -> NotifyError) -> Result<String, NotifyError> {
    secret
        .read()
        .map(|v| v.trim().to_string())
        .map_err(|e| err(secret.to_string(), e.to_string()))
}

/// POSTs the event to the sink's webhook.
pub(super) async fn post(
    client: &reqwest::Client,
    sink: &Sink,
    event: &Event,
    retry: Retry,
) -> Result<(), NotifyError> {
    // Read for each message: a rotated secret is picked up without a restart.
    let url = read(&sink.url, |source_name, reason| NotifyError::Url {
        source_name,
        reason,
    })?;
    let url = reqwest::Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| NotifyError::BadUrl {
            source_name: sink.url.to_string(),
        })?;
    let rendered = render(&sink.kind, event);
    let signed = match &sink.kind {
        SinkKind::Webhook {
            signing_key: Some(key),
            ..
        } => {
            let key = read(key, |source_name, reason| NotifyError::Key {
                source_name,
                reason,
            })?;
            Some(signature(key.as_bytes(), &rendered.body))
        }
        _ => None,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut request = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, rendered.content_type)
            .header("X-Tagsmith-Event", event.kind.as_str())
            .header("X-Tagsmith-Delivery", &event.id)
            .body(rendered.body.clone());
        if let Some(sig) = &signed {
            request = request.header(SIGNATURE_HEADER, sig);
        }
        let (error, asked) = match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status().as_u16();
                let asked = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body: String = response
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                (NotifyError::Status { status, body }, asked)
            }
            // Never the URL: it is the credential.
            Err(e) => (
                NotifyError::Http {
                    message: chain(&e.without_url()),
                },
                None,
            ),
        };
        if !error.is_transient() || attempt >= retry.attempts {
            return Err(error);
        }
        let wait = asked.map_or_else(|| retry.wait(attempt), |a| a.min(MAX_RETRY_AFTER));
        tracing::debug!(attempt, wait_ms = wait.as_millis(), %error, "notification failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

/// Sets `success` on the delivered commit, linking the pull request (or the commit).
pub(super) async fn commit_status(
    settings: &CommitStatus,
    event: &Event,
    retry: Retry,
) -> Result<(), NotifyError> {
    let (EventKind::Delivered, Some(sha)) = (event.kind, event.commit.as_deref()) else {
        return Ok(());
    };
    let description = format!("Updated {} image reference(s)", event.images.len());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let github = GitHub::connect_to(
                &settings.api_url,
                &settings.owner,
                &settings.repo,
                &settings.auth,
            )
            .await?;
            github
                .create_status(sha, "success", "tagsmith", &description, event.link())
                .await
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && attempt < retry.attempts => {
                tracing::debug!(attempt, error = %e, "commit status failed; retrying");
                tokio::time::sleep(retry.wait(attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The error with its causes ("error sending request: connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}
