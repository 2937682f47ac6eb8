//! Pull requests on a forge: the pure parts (body, what to do with an existing pull request),
//! the [`Forge`] trait the engine delivers through, and one API client per forge: GitHub
//! (octocrab), GitLab merge requests and Gitea/Forgejo pull requests (both on [`http`]'s
//! small REST client). A forge is one file implementing [`Forge`] plus its settings and a
//! match arm in [`connect`].

mod body;
mod error;
mod gitea;
mod github;
mod gitlab;
mod http;

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

/// What the engine needs of a forge. Async (an HTTP API); a blocking caller uses `block_on`.
pub trait Forge: Send + Sync {
    /// Pull requests from `head` (a branch of the repository) into `base`, newest first.
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
    /// Sets the title or body, whichever is given.
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
    /// Asks the forge to merge `pr` once its checks pass.
    fn enable_auto_merge<'a>(
        &'a self,
        pr: &'a PullRequestView,
        how: AutoMerge,
    ) -> BoxFuture<'a, Result<(), ForgeError>>;
    /// A password for Git when the forge's own credential is the only one (a GitHub App's
    /// installation token); `None` when Git has its own.
    fn git_password(&self) -> BoxFuture<'_, Result<Option<SecretString>, ForgeError>>;
    /// API writes made so far, so a run can say it made none.
    fn writes(&self) -> u32;
}

/// The client for a target's pull request settings. Needs a tokio runtime.
pub async fn connect(settings: &PullRequestSettings) -> Result<Box<dyn Forge>, ForgeError> {
    Ok(match settings.forge {
        ForgeKind::GitHub => Box::new(GitHub::connect(settings).await?),
        ForgeKind::GitLab => Box::new(GitLab::connect(settings)?),
        ForgeKind::Gitea => Box::new(Gitea::connect(settings)?),
    })
}

/// Forges without a draft flag mark a draft by a title prefix; the title tagsmith compares
/// is the one without it, so a draft is not "updated" away on the next run.
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

#[cfg(test)]
mod tests {
    use super::strip_draft_prefix;

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
}
