//! Forge API failures, explained: which permission or token scope is missing, what a 422
//! means, how long a rate limit asks us to wait.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::config::ForgeKind;

/// What tagsmith was doing when a request failed, and the permission that needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    FindInstallation,
    IssueToken,
    ListPullRequests,
    CreatePullRequest,
    UpdatePullRequest,
    AddLabels,
    RequestReviewers,
    EnableAutoMerge,
    /// GitLab: usernames to user ids for assignees and reviewers.
    FindUser,
    /// Gitea: label names to label ids.
    FindLabels,
    CreateStatus,
}

impl Action {
    pub fn describe(self) -> &'static str {
        match self {
            Self::FindInstallation => "looking up the app's installation on the repository",
            Self::IssueToken => "issuing an installation token",
            Self::ListPullRequests => "listing pull requests",
            Self::CreatePullRequest => "creating the pull request",
            Self::UpdatePullRequest => "updating the pull request",
            Self::AddLabels => "adding labels",
            Self::RequestReviewers => "requesting reviewers",
            Self::EnableAutoMerge => "enabling auto-merge",
            Self::FindUser => "looking up users",
            Self::FindLabels => "looking up labels",
            Self::CreateStatus => "setting the commit status",
        }
    }

    /// The fine-grained token or GitHub App permission the call needs.
    pub fn permission(self) -> &'static str {
        match self {
            Self::FindInstallation | Self::IssueToken => {
                "a GitHub App installed on the repository (check the app id, private key and installation)"
            }
            Self::ListPullRequests => "\"pull requests: read\" on the repository",
            Self::CreatePullRequest | Self::UpdatePullRequest | Self::RequestReviewers => {
                "\"pull requests: write\" on the repository"
            }
            Self::AddLabels => "\"issues: write\" or \"pull requests: write\" on the repository",
            Self::EnableAutoMerge => {
                "\"pull requests: write\" and \"contents: write\", with auto-merge allowed in the repository settings"
            }
            Self::FindUser | Self::FindLabels => "read access to the repository",
            Self::CreateStatus => "\"commit statuses: write\" on the repository",
        }
    }
}

#[derive(Debug, Error)]
pub enum ForgeError {
    #[error("cannot read the github token from {source_name}: {reason}")]
    Credentials { source_name: String, reason: String },
    #[error("cannot use the github app private key {path}: {reason}", path = path.display())]
    PrivateKey { path: PathBuf, reason: String },
    #[error("cannot set up the github client for {api_url}: {message}")]
    Client { api_url: String, message: String },
    #[error("github api unreachable while {}: {message}", action.describe())]
    Http { action: Action, message: String },
    #[error("github rejected the credentials (401) while {}: the token is invalid or expired, or the app key does not match; needs {}", action.describe(), action.permission())]
    Unauthorized { action: Action },
    #[error("github refused {} (403: {message}): needs {}", action.describe(), action.permission())]
    Forbidden { action: Action, message: String },
    #[error("github found nothing while {} (404): the repository does not exist or the credentials cannot see it; needs {}", action.describe(), action.permission())]
    NotFound { action: Action },
    #[error("github could not process {} (422): {explanation}", action.describe())]
    Unprocessable { action: Action, explanation: String },
    /// Any forge's (the log line before it names the forge).
    #[error("api rate limit while {}: retry in {}s", action.describe(), wait.as_secs())]
    RateLimited { action: Action, wait: Duration },
    #[error("github answered {status} while {}: {message}", action.describe())]
    Status {
        action: Action,
        status: u16,
        message: String,
    },
    #[error("unexpected github answer while {}: {message}", action.describe())]
    Decode { action: Action, message: String },
    // GitLab and Gitea: the variants above speak of GitHub's permissions.
    #[error("cannot read the {forge} token from {source_name}: {reason}")]
    Token {
        forge: ForgeKind,
        source_name: String,
        reason: String,
    },
    #[error("cannot set up the {forge} client for {api_url}: {message}")]
    Setup {
        forge: ForgeKind,
        api_url: String,
        message: String,
    },
    #[error("{forge} api unreachable while {}: {message}", action.describe())]
    Unreachable {
        forge: ForgeKind,
        action: Action,
        message: String,
    },
    #[error("{forge} rejected the token (401) while {}: it is invalid, expired or revoked; needs {needs}", action.describe())]
    TokenRejected {
        forge: ForgeKind,
        action: Action,
        needs: String,
    },
    #[error("{forge} refused {} (403: {message}): needs {needs}", action.describe())]
    Refused {
        forge: ForgeKind,
        action: Action,
        message: String,
        needs: String,
    },
    #[error("{forge} answered {status} while {}: {message}", action.describe())]
    Answered {
        forge: ForgeKind,
        action: Action,
        status: u16,
        message: String,
    },
    #[error("{forge} has no {what} named {name:?} (while {})", action.describe())]
    Unknown {
        forge: ForgeKind,
        action: Action,
        what: &'static str,
        name: String,
    },
    #[error("unexpected {forge} answer while {}: {message}", action.describe())]
    Unexpected {
        forge: ForgeKind,
        action: Action,
        message: String,
    },
}

impl ForgeError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http { .. } | Self::RateLimited { .. } | Self::Unreachable { .. } => true,
            Self::Status { status, .. } | Self::Answered { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// From a status and GitHub's error body (`{"message": ..., "errors": [...]}`).
    pub fn from_status(action: Action, status: u16, body: &str) -> Self {
        let message = error_message(body);
        match status {
            401 => Self::Unauthorized { action },
            403 => Self::Forbidden { action, message },
            404 => Self::NotFound { action },
            422 => Self::Unprocessable {
                action,
                explanation: explain_unprocessable(&message),
            },
            _ => Self::Status {
                action,
                status,
                message,
            },
        }
    }
}

/// GitHub's `message` plus the messages of its `errors` list.
fn error_message(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.chars().take(200).collect();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = value.get("message").and_then(|m| m.as_str()) {
        parts.push(m.to_string());
    }
    for e in value
        .get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
    {
        match e.get("message").and_then(|m| m.as_str()) {
            Some(m) => parts.push(m.to_string()),
            None => {
                if let Some(code) = e.get("code").and_then(|c| c.as_str()) {
                    let field = e.get("field").and_then(|f| f.as_str()).unwrap_or("?");
                    parts.push(format!("{field}: {code}"));
                }
            }
        }
    }
    parts.join("; ")
}

/// A 422 in words a user can act on.
pub fn explain_unprocessable(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    let hint = if m.contains("no commits between") {
        "no commits between base and head: the head branch holds nothing the base lacks"
    } else if m.contains("already exists") {
        "a pull request for this head and base already exists"
    } else if m.contains("collaborator") {
        "reviewers must be collaborators of the repository"
    } else if m.contains("head") && m.contains("invalid") {
        "the head branch does not exist on the repository (was it pushed?)"
    } else if m.contains("base") && m.contains("invalid") {
        "the base branch does not exist on the repository"
    } else if m.contains("draft") {
        "draft pull requests are not available for this repository's plan"
    } else {
        "github refused the request as invalid"
    };
    if message.is_empty() {
        hint.to_string()
    } else {
        format!("{hint} (github: {message})")
    }
}

/// The rate-limit headers of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub retry_after: Option<String>,
    pub remaining: Option<String>,
    /// Unix seconds.
    pub reset: Option<String>,
}

/// How long a 403 or 429 asks us to wait, `None` when it is not a rate limit. `Retry-After`
/// (secondary limits) wins; else an exhausted primary limit waits until `x-ratelimit-reset`.
pub fn rate_limit_wait(
    status: u16,
    limit: &RateLimit,
    body: &str,
    now_unix: u64,
) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(secs) = limit
        .retry_after
        .as_deref()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_secs(secs));
    }
    let exhausted = limit.remaining.as_deref().map(str::trim) == Some("0");
    let secondary = body.to_ascii_lowercase().contains("secondary rate limit");
    if let Some(reset) = limit
        .reset
        .as_deref()
        .and_then(|v| v.trim().parse::<u64>().ok())
        && (exhausted || secondary)
    {
        return Some(Duration::from_secs(reset.saturating_sub(now_unix).max(1)));
    }
    // GitHub's advice for a secondary limit without headers: wait at least a minute.
    (status == 429 || secondary).then_some(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_named() {
        let e = ForgeError::from_status(
            Action::CreatePullRequest,
            403,
            r#"{"message":"Resource not accessible by integration"}"#,
        );
        let text = e.to_string();
        assert!(text.contains("pull requests: write"), "{text}");
        assert!(text.contains("Resource not accessible"), "{text}");
        assert!(!e.is_transient());
        let e = ForgeError::from_status(Action::ListPullRequests, 401, "{}");
        assert!(e.to_string().contains("401"), "{e}");
    }

    #[test]
    fn unprocessable_is_explained() {
        let body = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"No commits between main and tagsmith/prod"}]}"#;
        let e = ForgeError::from_status(Action::CreatePullRequest, 422, body);
        let text = e.to_string();
        assert!(text.contains("no commits between base and head"), "{text}");
        assert!(
            text.contains("No commits between main and tagsmith/prod"),
            "{text}"
        );
        let body = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"head","code":"invalid"}]}"#;
        let text = ForgeError::from_status(Action::CreatePullRequest, 422, body).to_string();
        assert!(text.contains("head branch does not exist"), "{text}");
    }

    #[test]
    fn rate_limits() {
        let none = RateLimit::default();
        assert_eq!(rate_limit_wait(403, &none, "{}", 100), None);
        assert_eq!(rate_limit_wait(500, &none, "{}", 100), None);
        let retry = RateLimit {
            retry_after: Some("7".into()),
            ..RateLimit::default()
        };
        assert_eq!(
            rate_limit_wait(403, &retry, "", 100),
            Some(Duration::from_secs(7))
        );
        let reset = RateLimit {
            remaining: Some("0".into()),
            reset: Some("130".into()),
            ..RateLimit::default()
        };
        assert_eq!(
            rate_limit_wait(403, &reset, "", 100),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            rate_limit_wait(429, &none, "", 100),
            Some(Duration::from_secs(60))
        );
        let body = r#"{"message":"You have exceeded a secondary rate limit"}"#;
        assert_eq!(
            rate_limit_wait(403, &none, body, 100),
            Some(Duration::from_secs(60))
        );
    }
}
