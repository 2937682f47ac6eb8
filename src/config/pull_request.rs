//! `push.pullRequest`: validated settings for delivering through a GitHub pull request.

use std::path::PathBuf;

use super::{Secret, Validator, raw, valid_branch};

pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Whether and how GitHub merges the pull request by itself once its checks pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoMerge {
    #[default]
    Off,
    Merge,
    Squash,
    Rebase,
}

impl AutoMerge {
    /// The `PullRequestMergeMethod` GraphQL enum value.
    pub fn graphql_method(self) -> Option<&'static str> {
        match self {
            Self::Off => None,
            Self::Merge => Some("MERGE"),
            Self::Squash => Some("SQUASH"),
            Self::Rebase => Some("REBASE"),
        }
    }
}

/// How tagsmith authenticates to GitHub's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitHubAuth {
    Token(Secret),
    App {
        app_id: u64,
        private_key: PathBuf,
        /// `None`: looked up from the repository.
        installation_id: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestSettings {
    /// The branch the pull request merges into (and updates are computed on).
    pub base: String,
    /// The head branch tagsmith owns and force-updates (with a lease).
    pub branch: String,
    pub title: String,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub draft: bool,
    pub auto_merge: AutoMerge,
    pub owner: String,
    pub repo: String,
    /// Without a trailing slash, e.g. `https://github.example.com/api/v3`.
    pub api_url: String,
    pub auth: GitHubAuth,
}

/// `owner/name` from `owner/name`, or from a GitHub remote URL (https, ssh or scp-like).
pub fn repository_from(text: &str) -> Option<(String, String)> {
    let t = text.trim().trim_end_matches('/');
    let t = t.strip_suffix(".git").unwrap_or(t);
    let path = if let Some((_, rest)) = t.split_once("://") {
        // Drop the host (and any user info and port).
        rest.split_once('/')?.1
    } else if let Some((host, rest)) = t.split_once(':') {
        if host.contains('/') {
            return None;
        }
        rest
    } else {
        t
    };
    let mut parts = path.rsplitn(3, '/');
    let repo = parts.next()?;
    let owner = parts.next()?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    (ok(owner) && ok(repo)).then(|| (owner.to_string(), repo.to_string()))
}

impl Validator<'_> {
    pub(super) fn pull_request(
        &mut self,
        target: &str,
        git_url: &str,
        git_branch: &str,
        raw: raw::RawPullRequest,
    ) -> Option<PullRequestSettings> {
        let before = self.problems.len();
        let base = raw.base.unwrap_or_else(|| git_branch.to_string());
        let branch = raw.branch.unwrap_or_else(|| format!("tagsmith/{target}"));
        for (what, b) in [("base", &base), ("branch", &branch)] {
            if !valid_branch(b) {
                self.problem_here(format!("target {target}: invalid pullRequest.{what} {b:?}"));
            }
        }
        if base == branch {
            self.problem_here(format!(
                "target {target}: pullRequest.branch must differ from its base {base:?}"
            ));
        }
        let auto_merge = match raw.auto_merge.as_ref().map(|m| m.value.as_str()) {
            None | Some("off") => AutoMerge::Off,
            Some("merge") => AutoMerge::Merge,
            Some("squash") => AutoMerge::Squash,
            Some("rebase") => AutoMerge::Rebase,
            Some(other) => {
                let at = raw.auto_merge.as_ref()?;
                self.problem(
                    at,
                    format!("autoMerge {other:?}: use off, merge, squash or rebase"),
                );
                AutoMerge::Off
            }
        };
        let repository = match &raw.repository {
            Some(r) => repository_from(&r.value).or_else(|| {
                self.problem(r, format!("repository {:?}: use owner/name", r.value));
                None
            }),
            None => repository_from(git_url).or_else(|| {
                self.problem_here(format!(
                    "target {target}: cannot tell the GitHub repository from git.url; set pullRequest.repository: owner/name"
                ));
                None
            }),
        };
        let api_url = match &raw.api_url {
            None => DEFAULT_API_URL.to_string(),
            Some(u) if u.value.starts_with("https://") || u.value.starts_with("http://") => {
                u.value.trim_end_matches('/').to_string()
            }
            Some(u) => {
                self.problem(u, format!("apiUrl {:?} is not an http(s) URL", u.value));
                String::new()
            }
        };
        let auth = self.github_auth(target, raw.auth.unwrap_or_default());
        if self.problems.len() > before {
            return None;
        }
        let (owner, repo) = repository?;
        Some(PullRequestSettings {
            base,
            branch,
            title: raw
                .title
                .unwrap_or_else(|| format!("Update container images ({target})")),
            labels: raw.labels,
            reviewers: raw.reviewers,
            draft: raw.draft,
            auto_merge,
            owner,
            repo,
            api_url,
            auth: auth?,
        })
    }

    fn github_auth(&mut self, target: &str, raw: raw::RawGitHubAuth) -> Option<GitHubAuth> {
        match (raw.token_env, raw.token_file, raw.app) {
            (Some(env), None, None) => Some(GitHubAuth::Token(Secret::Env(env))),
            (None, Some(file), None) => Some(GitHubAuth::Token(Secret::File(self.resolve(&file)))),
            (None, None, Some(app)) => Some(GitHubAuth::App {
                app_id: app.app_id,
                private_key: self.resolve(&app.private_key_file),
                installation_id: app.installation_id,
            }),
            (None, None, None) => {
                self.problem_here(format!(
                    "target {target}: pullRequest.auth needs tokenEnv, tokenFile or app"
                ));
                None
            }
            _ => {
                self.problem_here(format!(
                    "target {target}: pullRequest.auth: give one of tokenEnv, tokenFile or app"
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_from_urls() {
        let cases = [
            ("org/repo", Some(("org", "repo"))),
            ("https://github.com/org/repo.git", Some(("org", "repo"))),
            ("https://github.com/org/repo", Some(("org", "repo"))),
            (
                "https://x:y@github.example.com:8443/org/repo.git/",
                Some(("org", "repo")),
            ),
            ("git@github.com:org/repo.git", Some(("org", "repo"))),
            ("ssh://git@github.com/org/repo.git", Some(("org", "repo"))),
            ("repo", None),
            ("https://github.com/", None),
            ("org/re po", None),
        ];
        for (text, want) in cases {
            let got = repository_from(text);
            let want = want.map(|(o, r)| (o.to_string(), r.to_string()));
            assert_eq!(got, want, "{text}");
        }
    }
}
