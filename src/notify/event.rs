//! What a message is about, built from a finished run's report. Pure.

use serde::Serialize;

use crate::config::{EventKind, Target};
use crate::engine::{ChangeReport, Outcome, PullRequestAction, Retry, TargetReport};

/// One thing that happened to a target, in the shape every sink renders (and the generic
/// webhook sends as it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique per event: receivers use it to drop a retried duplicate.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// RFC 3339, UTC.
    pub time: String,
    pub target: String,
    /// The Git repository's URL (config refuses credentials in it).
    pub repository: String,
    /// The branch the commit went to (the pull request's head branch for a pull request).
    pub branch: Option<String>,
    /// Each image reference that moved, once.
    pub images: Vec<ImageChange>,
    /// Each marker that moved.
    pub changes: Vec<ChangeReport>,
    pub commit: Option<String>,
    /// A web link to `commit`, when the repository is on an https forge.
    pub commit_url: Option<String>,
    pub pull_request: Option<PullRequestRef>,
    /// Why the run failed or stalled, or what holds the change.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChange {
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequestRef {
    pub number: u64,
    pub url: String,
    /// `created` or `updated`.
    pub action: &'static str,
}

impl Event {
    /// The event a finished (not dry) run makes, if any: nothing for a run that changed
    /// nothing, or whose pull request already held it all.
    pub fn from_report(target: &Target, report: &TargetReport, time: String) -> Option<Self> {
        let kind = if report.is_failure() {
            if report.retry == Retry::Stalled {
                EventKind::Stalled
            } else {
                EventKind::Failed
            }
        } else if report.outcome.delivered().is_some() {
            EventKind::Delivered
        } else {
            return None;
        };
        let mut event = Self::new(kind, target, time);
        event.error = report.error();
        event.changes.clone_from(&report.changes);
        event.images = images(&report.changes);
        match &report.outcome {
            Outcome::Pushed { branch, commit } => {
                event.branch = Some(branch.clone());
                event.commit = Some(commit.clone());
            }
            Outcome::PullRequest {
                number,
                url,
                action,
                branch,
                commit,
            } if action.wrote() => {
                event.branch = Some(branch.clone());
                event.commit = Some(commit.clone());
                event.pull_request = Some(PullRequestRef {
                    number: *number,
                    url: url.clone(),
                    action: if *action == PullRequestAction::Created {
                        "created"
                    } else {
                        "updated"
                    },
                });
            }
            _ => {}
        }
        event.commit_url = event
            .commit
            .as_deref()
            .and_then(|sha| commit_url(&target.git.url, sha));
        Some(event)
    }

    /// A gate holds `changes` back from delivery for `reason`.
    pub fn held(target: &Target, changes: &[ChangeReport], reason: &str, time: String) -> Self {
        let mut event = Self::new(EventKind::Held, target, time);
        event.changes = changes.to_vec();
        event.images = images(changes);
        event.error = Some(reason.to_string());
        event
    }

    fn new(kind: EventKind, target: &Target, time: String) -> Self {
        Self {
            id: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            kind,
            time,
            target: target.name.clone(),
            repository: target.git.url.clone(),
            branch: None,
            images: Vec::new(),
            changes: Vec::new(),
            commit: None,
            commit_url: None,
            pull_request: None,
            error: None,
        }
    }

    /// The page a person opens: the pull request, else the commit.
    pub fn link(&self) -> Option<&str> {
        self.pull_request
            .as_ref()
            .map(|p| p.url.as_str())
            .or(self.commit_url.as_deref())
    }

    /// One line: what happened to which target.
    pub fn headline(&self) -> String {
        let t = &self.target;
        match self.kind {
            EventKind::Delivered => {
                let n = self.images.len();
                match &self.pull_request {
                    Some(pr) => format!(
                        "tagsmith {} pull request #{} for {t}: {n} image change(s)",
                        pr.action, pr.number
                    ),
                    None => format!(
                        "tagsmith pushed {} to {t}: {n} image change(s)",
                        self.commit.as_deref().map_or("", |c| &c[..c.len().min(12)])
                    ),
                }
            }
            EventKind::Failed => format!("tagsmith: {t} failed; retrying with backoff"),
            EventKind::Stalled => {
                format!("tagsmith: {t} is stalled; retrying will not help until something changes")
            }
            EventKind::Held => format!("tagsmith: changes to {t} are held"),
        }
    }
}

/// Each (old, new) pair once, in the order the changes name them.
fn images(changes: &[ChangeReport]) -> Vec<ImageChange> {
    let mut out: Vec<ImageChange> = Vec::new();
    for c in changes {
        if !out.iter().any(|i| i.old == c.old && i.new == c.new) {
            out.push(ImageChange {
                old: c.old.clone(),
                new: c.new.clone(),
            });
        }
    }
    out
}

/// `https://host/owner/repo(.git)` -> `https://host/owner/repo/commit/<sha>`, the page GitHub,
/// GitLab and Gitea all serve; other remotes (ssh, file) have no web page we can know.
pub fn commit_url(git_url: &str, sha: &str) -> Option<String> {
    let rest = git_url.strip_prefix("https://")?;
    let base = rest.trim_end_matches('/');
    let base = base.strip_suffix(".git").unwrap_or(base);
    // Needs a host and a path; credentials are refused by config, but never pass them on.
    if !base.contains('/') || base.contains('@') || base.contains(['?', '#']) {
        return None;
    }
    Some(format!("https://{base}/commit/{sha}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_links_only_for_https_remotes() {
        assert_eq!(
            commit_url("https://github.com/org/manifests.git", "abc").as_deref(),
            Some("https://github.com/org/manifests/commit/abc")
        );
        assert_eq!(
            commit_url("https://gitlab.example/group/sub/repo/", "abc").as_deref(),
            Some("https://gitlab.example/group/sub/repo/commit/abc")
        );
        assert_eq!(commit_url("git@github.com:org/m.git", "abc"), None);
        assert_eq!(commit_url("file:///srv/m.git", "abc"), None);
        assert_eq!(commit_url("https://host", "abc"), None);
    }

    #[test]
    fn image_pairs_are_listed_once() {
        let change = |file: &str, old: &str, new: &str| ChangeReport {
            file: file.into(),
            line: 1,
            policy: "a:b".into(),
            old: old.into(),
            new: new.into(),
        };
        let pairs = images(&[
            change("a.yaml", "app:1", "app:2"),
            change("b.yaml", "app:1", "app:2"),
            change("c.yaml", "1", "2"),
        ]);
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1].new, "2");
    }
}
