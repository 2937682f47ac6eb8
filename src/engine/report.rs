//! What a target run tells its callers, in one place: the outcome and report `once` prints,
//! the typed error the schedule reads to choose a retry, and the record the state store keeps.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use crate::forge::ForgeError;
use crate::git::GitError;
use crate::rewrite::Change;
use crate::rewrite::walk::WalkError;
use crate::state::TargetRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestAction {
    Created,
    /// New head commit, or new title or body.
    Updated,
    /// The open pull request already says and holds all of it: nothing pushed, nothing written.
    Unchanged,
    /// A person closed a pull request with these very changes: not reopened, none opened.
    LeftClosed,
}

impl PullRequestAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::LeftClosed => "left_closed",
        }
    }

    /// Whether the forge now holds something new.
    pub fn wrote(self) -> bool {
        matches!(self, Self::Created | Self::Updated)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every marker already reads its selection: no commit.
    Unchanged,
    /// `--dry-run`: what would be committed.
    WouldCommit {
        diff: String,
    },
    Pushed {
        branch: String,
        commit: String,
    },
    /// Delivered through a pull request from `branch`, whose head is `commit`.
    PullRequest {
        number: u64,
        url: String,
        action: PullRequestAction,
        branch: String,
        commit: String,
    },
    Failed {
        error: String,
    },
}

impl Outcome {
    /// The low-cardinality name used in metrics, `/status` and the state store.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::WouldCommit { .. } => "would_commit",
            Self::Pushed { .. } => "pushed",
            Self::PullRequest { .. } => "pull_request",
            Self::Failed { .. } => "failed",
        }
    }

    /// The commit that reached the remote in this run, if one did.
    pub fn delivered(&self) -> Option<&str> {
        match self {
            Self::Pushed { commit, .. } => Some(commit),
            Self::PullRequest { commit, action, .. } if action.wrote() => Some(commit),
            _ => None,
        }
    }
}

/// How the schedule should come back to a failed run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Retry {
    /// Try again after the usual backoff.
    #[default]
    Backoff,
    /// The other side asked us to wait this long (a rate limit).
    After(Duration),
    /// Trying again will not help until something changes (credentials, a person's commit):
    /// wait for a new selection, the target's interval or a manual trigger.
    Stalled,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub target: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub changes: Vec<ChangeReport>,
    /// file:line: message, warnings and errors both.
    pub problems: Vec<String>,
    /// The problems that kept a file from being processed (a syntax error, a write that
    /// failed, ...): the run is then partial, and counts as failed.
    pub file_errors: Vec<String>,
    pub push_attempts: u32,
    /// Markers left as a person rolled them back, as they stand after this run.
    pub holds: Vec<crate::status::HoldStatus>,
    pub timings: Timings,
    /// Every policy the target's markers name; the service runs the target when one changes.
    #[serde(skip)]
    pub policies: Vec<String>,
    /// How to retry, when the run failed.
    #[serde(skip)]
    pub retry: Retry,
}

impl TargetReport {
    pub fn new(target: &str) -> Self {
        Self {
            target: target.to_string(),
            outcome: Outcome::Unchanged,
            changes: Vec::new(),
            problems: Vec::new(),
            file_errors: Vec::new(),
            push_attempts: 0,
            holds: Vec::new(),
            timings: Timings::default(),
            policies: Vec::new(),
            retry: Retry::Backoff,
        }
    }

    pub fn failed(target: &str, error: &RunError) -> Self {
        let mut report = Self::new(target);
        report.fail(error);
        report
    }

    pub fn fail(&mut self, error: &RunError) {
        self.outcome = Outcome::Failed {
            error: chain(error),
        };
        self.retry = error.retry();
    }

    /// The run did not do all it should: it failed, or some files could not be processed.
    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. }) || !self.file_errors.is_empty()
    }

    /// Why the run counts as failed, in one line.
    pub fn error(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Failed { error } => Some(error.clone()),
            _ if !self.file_errors.is_empty() => Some(format!(
                "{} file(s) could not be processed: {}",
                self.file_errors.len(),
                self.file_errors.join("; ")
            )),
            _ => None,
        }
    }

    /// What the state store keeps of this run. `kept` are the policies of the last good run,
    /// kept when this one failed before it could read the markers.
    pub fn record(&self, finished_at: u64, kept: &[String]) -> TargetRecord {
        let policies = match self.outcome {
            Outcome::Failed { .. } => kept.to_vec(),
            _ => {
                let mut used = self.policies.clone();
                used.sort();
                used.dedup();
                used
            }
        };
        TargetRecord {
            finished_at,
            outcome: self.outcome.label().to_string(),
            commit: self.outcome.delivered().map(str::to_string),
            error: self.error(),
            policies,
        }
    }
}

/// Where a target's run spent its time, in milliseconds, summed over push attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    /// Opening or cloning the workspace.
    pub open_ms: u64,
    /// Fetching and resetting the workspace.
    pub sync_ms: u64,
    /// Finding markers, planning, applying and verifying edits, writing files.
    pub rewrite_ms: u64,
    pub commit_ms: u64,
    pub push_ms: u64,
}

/// Runs `f`, adding the milliseconds it took to `slot`.
pub fn timed<T>(slot: &mut u64, f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let value = f();
    let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    *slot = slot.saturating_add(ms);
    value
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeReport {
    pub file: String,
    pub line: usize,
    pub policy: String,
    pub old: String,
    pub new: String,
}

impl From<&Change> for ChangeReport {
    fn from(c: &Change) -> Self {
        Self {
            file: c.file.display().to_string(),
            line: c.line,
            policy: c.policy.to_string(),
            old: c.old.clone(),
            new: c.new.clone(),
        }
    }
}

/// Why a target run failed, by the step that failed.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error(transparent)]
    Rewrite(#[from] WalkError),
    #[error(
        "branch {branch} holds commits tagsmith did not write ({foreign}); not overwriting them: merge or close the pull request, or delete the branch"
    )]
    ForeignCommits {
        branch: String,
        foreign: crate::git::ForeignCommit,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot hand the installation token to git through {path}", path = path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the target run panicked")]
    Panicked,
    /// The target's holds file cannot be read: writing without it could undo a rollback.
    #[error("holds: {0}")]
    Holds(#[from] crate::state::StateError),
    /// The Flux messageTemplate failed on this run's changes (as Flux, no commit is made).
    #[error("commit.goTemplate: {0}")]
    Message(#[from] crate::config::flux::gotemplate::TemplateError),
}

impl RunError {
    /// Whether the same run may succeed later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Git(e) => e.is_transient(),
            Self::Forge(e) => e.is_transient(),
            // A checkout that cannot be read and a process that could not start a runtime may
            // be short of disk space or file handles; a panic is a bug, but a retry is cheap.
            Self::Rewrite(_) | Self::Runtime(_) | Self::TokenFile { .. } | Self::Panicked => true,
            Self::ForeignCommits { .. } | Self::Message(_) | Self::Holds(_) => false,
        }
    }

    /// How long the other side asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Forge(ForgeError::RateLimited { wait, .. }) => Some(*wait),
            _ => None,
        }
    }

    pub fn retry(&self) -> Retry {
        match self.retry_after() {
            Some(wait) => Retry::After(wait),
            None if self.is_transient() => Retry::Backoff,
            None => Retry::Stalled,
        }
    }
}

/// The full error text with its causes, for the one place an error is logged or shown.
pub fn chain(error: &dyn std::error::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::Action;

    #[test]
    fn a_rate_limit_waits_as_asked_and_a_foreign_commit_stalls() {
        let limited = RunError::Forge(ForgeError::RateLimited {
            action: Action::CreatePullRequest,
            wait: Duration::from_secs(42),
        });
        assert_eq!(limited.retry(), Retry::After(Duration::from_secs(42)));
        let foreign = RunError::ForeignCommits {
            branch: "tagsmith/prod".into(),
            foreign: crate::git::ForeignCommit {
                commit: git2::Oid::ZERO_SHA1,
                reason: crate::git::ForeignReason::NotPushedByUs,
            },
        };
        assert!(!foreign.is_transient());
        assert_eq!(foreign.retry(), Retry::Stalled);
        let denied = RunError::Forge(ForgeError::Unauthorized {
            action: Action::ListPullRequests,
        });
        assert_eq!(denied.retry(), Retry::Stalled);
        let down = RunError::Forge(ForgeError::Status {
            action: Action::ListPullRequests,
            status: 502,
            message: String::new(),
        });
        assert_eq!(down.retry(), Retry::Backoff);
    }

    #[test]
    fn git_failures_are_classified_by_git2_code_not_message() {
        use crate::git::Cause;
        let auth = git2::Error::new(
            git2::ErrorCode::Auth,
            git2::ErrorClass::Http,
            "401 Not Found",
        );
        assert_eq!(Cause::of(&auth), Cause::Rejected);
        let cert = git2::Error::new(git2::ErrorCode::Certificate, git2::ErrorClass::Ssh, "x");
        assert_eq!(Cause::of(&cert), Cause::Rejected);
        // A message that reads like an auth failure is not one.
        let net = git2::Error::new(
            git2::ErrorCode::GenericError,
            git2::ErrorClass::Net,
            "authentication server unreachable (403 in the message)",
        );
        assert_eq!(Cause::of(&net), Cause::Other);
        let fetch = |cause| {
            RunError::Git(GitError::Fetch {
                url: "https://git.example/m.git".into(),
                message: "x".into(),
                cause,
            })
        };
        assert_eq!(fetch(Cause::Rejected).retry(), Retry::Stalled);
        assert_eq!(fetch(Cause::Other).retry(), Retry::Backoff);
    }

    #[test]
    fn file_errors_make_a_partial_run_that_counts_as_failed() {
        let mut report = TargetReport::new("prod");
        assert!(!report.is_failure());
        report.file_errors = vec!["a.yaml:3: syntax error; file not edited".into()];
        assert!(report.is_failure());
        let record = report.record(7, &[]);
        assert_eq!(record.outcome, "unchanged");
        assert!(record.error.unwrap().contains("a.yaml:3"));
    }

    #[test]
    fn a_chain_names_each_cause_once() {
        let io = std::io::Error::other("disk full");
        let e = RunError::TokenFile {
            path: "/s/.t".into(),
            source: io,
        };
        assert_eq!(
            chain(&e),
            "cannot hand the installation token to git through /s/.t: disk full"
        );
    }
}
