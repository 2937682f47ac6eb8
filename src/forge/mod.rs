//! Pull requests on a forge: the pure parts (body, what to do with an existing pull request),
//! the [`Forge`] trait the engine delivers through, and one API client per forge: GitHub
//! (octocrab), GitLab merge requests and Gitea/Forgejo pull requests (both on [`http`]'s
//! small REST client). A forge is one file implementing `ForgeApi` (plain async methods)
//! plus its settings and a match arm in [`connect`].

mod body;
mod error;
mod gitea;
mod github;
mod gitlab;
mod http;

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use octocrab::secrecy::SecretString;

pub use self::body::{
    BodyRow, Desired, Existing, HeldRow, Plan, decide, graphql_endpoint, render_body,
    render_body_with_holds, rows,
};
pub use self::error::{Action, ForgeError, RateLimit, explain_unprocessable, rate_limit_wait};
pub use self::gitea::Gitea;
pub use self::github::{GitHub, PullRequestView};
pub use self::gitlab::GitLab;
use crate::config::{AutoMerge, ForgeKind, PullRequestSettings};

/// Which pull requests [`Forge::find`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    Open,
    Closed,
}

/// A pull request to open.
#[derive(Debug, Clone, Copy)]
pub struct NewPullRequest<'a> {
    pub head: &'a str,
    pub base: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub draft: bool,
}

/// What the engine needs of a forge, as each forge writes it: plain async methods. The
/// engine holds a forge as `dyn` [`Forge`], which every `ForgeApi` is.
pub(crate) trait ForgeApi: Send + Sync {
    /// Pull requests from `head` (a branch of the repository) into `base`, newest first.
    fn find(
        &self,
        head: &str,
        base: &str,
        state: PrState,
    ) -> impl Future<Output = Result<Vec<PullRequestView>, ForgeError>> + Send;
    fn create(
        &self,
        new: NewPullRequest<'_>,
    ) -> impl Future<Output = Result<PullRequestView, ForgeError>> + Send;
    /// Sets the title or body, whichever is given.
    fn update(
        &self,
        number: u64,
        title: Option<&str>,
        body: Option<&str>,
    ) -> impl Future<Output = Result<PullRequestView, ForgeError>> + Send;
    fn add_labels(
        &self,
        number: u64,
        labels: &[String],
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;
    fn request_reviewers(
        &self,
        number: u64,
        reviewers: &[String],
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;
    /// Asks the forge to merge `pr` once its checks pass.
    fn enable_auto_merge(
        &self,
        pr: &PullRequestView,
        how: AutoMerge,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;
    /// A password for Git when the forge's own credential is the only one (a GitHub App's
    /// installation token); `None` when Git has its own, as it does unless a forge says so.
    fn git_password(
        &self,
    ) -> impl Future<Output = Result<Option<SecretString>, ForgeError>> + Send {
        async { Ok(None) }
    }
    /// API writes made so far, so a run can say it made none.
    fn writes(&self) -> u32;
}

/// [`ForgeApi`] with boxed futures, so that the engine can hold any forge as one type.
/// Async (an HTTP API); a blocking caller uses `block_on`.
pub trait Forge: Send + Sync {
    fn find<'a>(
        &'a self,
        head: &'a str,
        base: &'a str,
        state: PrState,
    ) -> BoxFuture<'a, Result<Vec<PullRequestView>, ForgeError>>;
    fn create<'a>(
        &'a self,
        new: NewPullRequest<'a>,
    ) -> BoxFuture<'a, Result<PullRequestView, ForgeError>>;
    fn update<'a>(
        &'a self,
        number: u64,
        title: Option<&'a str>,
        body: Option<&'a str>,
    ) -> BoxFuture<'a, Result<PullRequestView, ForgeError>>;
    fn add_labels<'a>(
        &'a self,
        number: u64,
        labels: &'a [String],
    ) -> BoxFuture<'a, Result<(), ForgeError>>;
    fn request_reviewers<'a>(
        &'a self,
        number: u64,
        reviewers: &'a [String],
    ) -> BoxFuture<'a, Result<(), ForgeError>>;
    fn enable_auto_merge<'a>(
        &'a self,
        pr: &'a PullRequestView,
        how: AutoMerge,
    ) -> BoxFuture<'a, Result<(), ForgeError>>;
    fn git_password(&self) -> BoxFuture<'_, Result<Option<SecretString>, ForgeError>>;
    fn writes(&self) -> u32;
}

impl<T: ForgeApi> Forge for T {
    fn find<'a>(
        &'a self,
        head: &'a str,
        base: &'a str,
        state: PrState,
    ) -> BoxFuture<'a, Result<Vec<PullRequestView>, ForgeError>> {
        Box::pin(ForgeApi::find(self, head, base, state))
    }

    fn create<'a>(
        &'a self,
        new: NewPullRequest<'a>,
    ) -> BoxFuture<'a, Result<PullRequestView, ForgeError>> {
        Box::pin(ForgeApi::create(self, new))
    }

    fn update<'a>(
        &'a self,
        number: u64,
        title: Option<&'a str>,
        body: Option<&'a str>,
    ) -> BoxFuture<'a, Result<PullRequestView, ForgeError>> {
        Box::pin(ForgeApi::update(self, number, title, body))
    }

    fn add_labels<'a>(
        &'a self,
        number: u64,
        labels: &'a [String],
    ) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(ForgeApi::add_labels(self, number, labels))
    }

    fn request_reviewers<'a>(
        &'a self,
        number: u64,
        reviewers: &'a [String],
    ) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(ForgeApi::request_reviewers(self, number, reviewers))
    }

    fn enable_auto_merge<'a>(
        &'a self,
        pr: &'a PullRequestView,
        how: AutoMerge,
    ) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(ForgeApi::enable_auto_merge(self, pr, how))
    }

    fn git_password(&self) -> BoxFuture<'_, Result<Option<SecretString>, ForgeError>> {
        Box::pin(ForgeApi::git_password(self))
    }

    fn writes(&self) -> u32 {
        ForgeApi::writes(self)
    }
}

/// The client for a target's pull request settings. Needs a tokio runtime.
pub async fn connect(settings: &PullRequestSettings) -> Result<Box<dyn Forge>, ForgeError> {
    Ok(match settings.forge {
        ForgeKind::GitHub => Box::new(GitHub::connect(settings).await?),
        ForgeKind::GitLab => Box::new(GitLab::connect(settings)?),
        ForgeKind::Gitea => Box::new(Gitea::connect(settings)?),
    })
}

/// Drafts on forges without a draft flag, marked by a title prefix: the title tagsmith
/// compares is the one without it, so a draft is not "updated" away on the next run, and an
/// update of a pull request that was a draft when last seen keeps the prefix (a person may
/// have marked it ready, which is then kept too).
struct DraftTitles {
    /// The prefixes the forge reads as "draft" (case-insensitive), the first the one it writes.
    prefixes: &'static [&'static str],
    /// Whether each pull request seen is a draft.
    seen: Mutex<HashMap<u64, bool>>,
}

impl DraftTitles {
    fn new(prefixes: &'static [&'static str]) -> Self {
        Self {
            prefixes,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `title` of pull request `number` without its draft prefix; `flag` is the forge's own
    /// draft flag, if it has one. Remembers whether the pull request is a draft.
    fn read<'a>(&self, number: u64, title: &'a str, flag: bool) -> &'a str {
        let (title, prefixed) = strip_draft_prefix(title, self.prefixes);
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(number, flag || prefixed);
        }
        title
    }

    /// The title to write for a new pull request.
    fn create(&self, title: &str, draft: bool) -> String {
        match (draft, self.prefixes.first()) {
            (true, Some(prefix)) => format!("{prefix} {title}"),
            _ => title.to_string(),
        }
    }

    /// The title to write to pull request `number`: a draft stays one.
    fn update(&self, number: u64, title: &str) -> String {
        let draft = self
            .seen
            .lock()
            .map(|seen| seen.get(&number).copied().unwrap_or(false))
            .unwrap_or(false);
        self.create(title, draft)
    }
}

fn strip_draft_prefix<'a>(title: &'a str, prefixes: &[&str]) -> (&'a str, bool) {
    for prefix in prefixes {
        if title.len() >= prefix.len()
            && title.is_char_boundary(prefix.len())
            && title[..prefix.len()].eq_ignore_ascii_case(prefix)
        {
            return (title[prefix.len()..].trim_start(), true);
        }
    }
    (title, false)
}

/// Reviewers as users and team names: `org/team` names a team (the forges take its name
/// within the organisation), anything else a user.
fn split_reviewers(reviewers: &[String]) -> (Vec<&str>, Vec<&str>) {
    let (teams, users): (Vec<&String>, Vec<&String>) =
        reviewers.iter().partition(|r| r.contains('/'));
    let users = users.into_iter().map(String::as_str).collect();
    let teams = teams
        .into_iter()
        .filter_map(|t| t.split_once('/').map(|(_, name)| name))
        .collect();
    (users, teams)
}

#[cfg(test)]
mod tests {
    use super::{DraftTitles, split_reviewers, strip_draft_prefix};

    #[test]
    fn draft_prefixes_are_not_part_of_the_title() {
        let gitlab = ["Draft:", "[Draft]", "(Draft)"];
        assert_eq!(
            strip_draft_prefix("Draft: Update", &gitlab),
            ("Update", true)
        );
        assert_eq!(
            strip_draft_prefix("draft:Update", &gitlab),
            ("Update", true)
        );
        assert_eq!(
            strip_draft_prefix("[Draft] Update", &gitlab),
            ("Update", true)
        );
        assert_eq!(strip_draft_prefix("Update", &gitlab), ("Update", false));
        assert_eq!(strip_draft_prefix("Drafting", &gitlab), ("Drafting", false));
        assert_eq!(
            strip_draft_prefix("WIP: x", &["WIP:", "[WIP]"]),
            ("x", true)
        );
    }

    #[test]
    fn drafts_keep_their_prefix_on_update() {
        let drafts = DraftTitles::new(&["WIP:", "[WIP]"]);
        assert_eq!(drafts.create("Update", true), "WIP: Update");
        assert_eq!(drafts.create("Update", false), "Update");
        assert_eq!(drafts.read(1, "[wip] Update", false), "Update");
        assert_eq!(drafts.read(2, "Update", true), "Update");
        assert_eq!(drafts.read(3, "Update", false), "Update");
        assert_eq!(drafts.update(1, "New"), "WIP: New");
        assert_eq!(drafts.update(2, "New"), "WIP: New");
        assert_eq!(drafts.update(3, "New"), "New");
        assert_eq!(drafts.update(4, "New"), "New", "never seen: not a draft");
    }

    #[test]
    fn reviewers_split_into_users_and_team_names() {
        let reviewers = [
            "alice".to_string(),
            "org/platform".to_string(),
            "bob".to_string(),
        ];
        assert_eq!(
            split_reviewers(&reviewers),
            (vec!["alice", "bob"], vec!["platform"])
        );
    }
}
