//! `push.pullRequest`: validated settings for delivering through a pull request on GitHub, a
//! merge request on GitLab, or a pull request on Gitea or Forgejo.

use std::fmt;
use std::path::PathBuf;

use serde_saphyr::Spanned;

use super::{Secret, Validator, raw, valid_branch};

pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The kind of forge whose API opens the pull (merge) request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForgeKind {
    #[default]
    GitHub,
    GitLab,
    /// Gitea and Forgejo (Forgejo keeps Gitea's API).
    Gitea,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
            Self::Gitea => "gitea",
        }
    }

    /// The REST API's path below the web host of a self-managed instance.
    fn api_path(self) -> &'static str {
        match self {
            Self::GitHub => "/api/v3",
            Self::GitLab => "/api/v4",
            Self::Gitea => "/api/v1",
        }
    }
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scheme and host (with port) of a Git remote URL (https, ssh or scp-like).
fn url_host(text: &str) -> Option<(&str, &str)> {
    let t = text.trim();
    let (scheme, rest) = match t.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => {
            let (host, _) = t.split_once(':')?;
            if host.contains('/') {
                return None;
            }
            ("ssh", host)
        }
    };
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then_some((scheme, host))
}

/// The forge a Git remote obviously belongs to: only the public hosts are obvious.
pub fn forge_from_url(git_url: &str) -> Option<ForgeKind> {
    let (_, host) = url_host(git_url)?;
    let host = host.split(':').next()?.to_ascii_lowercase();
    match host.as_str() {
        "github.com" => Some(ForgeKind::GitHub),
        "gitlab.com" => Some(ForgeKind::GitLab),
        "codeberg.org" => Some(ForgeKind::Gitea),
        _ => None,
    }
}

/// The API of a self-managed forge on the Git remote's host: `https://HOST/api/v4` for
/// GitLab, `/api/v1` for Gitea; the public hosts have their own.
fn default_api_url(forge: ForgeKind, git_url: &str) -> Option<String> {
    let (scheme, host) = url_host(git_url)?;
    let bare = host.split(':').next()?.to_ascii_lowercase();
    match (forge, bare.as_str()) {
        (ForgeKind::GitHub, _) => Some(DEFAULT_API_URL.to_string()),
        (ForgeKind::GitLab, "gitlab.com") => Some("https://gitlab.com/api/v4".into()),
        (ForgeKind::Gitea, "codeberg.org") => Some("https://codeberg.org/api/v1".into()),
        _ => {
            // An ssh remote's port is sshd's, not the web server's.
            let (scheme, host) = match scheme {
                "http" | "https" => (scheme, host),
                "file" => return None,
                _ => ("https", bare.as_str()),
            };
            Some(format!("{scheme}://{host}{}", forge.api_path()))
        }
    }
}

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
    /// Usernames (GitLab and Gitea).
    pub assignees: Vec<String>,
    pub draft: bool,
    pub auto_merge: AutoMerge,
    pub forge: ForgeKind,
    /// GitLab: the namespace, which may hold subgroups (`group/subgroup`).
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

/// A GitLab project path, `namespace/name` where the namespace may hold subgroups, from the
/// path itself or a remote URL.
pub fn project_from(text: &str) -> Option<(String, String)> {
    let t = text.trim().trim_end_matches('/');
    let t = t.strip_suffix(".git").unwrap_or(t);
    let path = if let Some((_, rest)) = t.split_once("://") {
        rest.split_once('/')?.1
    } else if let Some((host, rest)) = t.split_once(':') {
        if host.contains('/') {
            return None;
        }
        rest
    } else {
        t
    };
    let path = path.trim_matches('/');
    let (namespace, name) = path.rsplit_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            })
    };
    (ok(namespace) && ok(name)).then(|| (namespace.to_string(), name.to_string()))
}

impl Validator<'_> {
    pub(super) fn pull_request(
        &mut self,
        target: &str,
        git_url_at: &Spanned<String>,
        git_branch: &str,
        raw: raw::RawPullRequest,
    ) -> Option<PullRequestSettings> {
        let before = self.problems.len();
        let git_url = git_url_at.value.as_str();
        let forge = match &raw.forge {
            Some(f) => match f.value.as_str() {
                "github" => ForgeKind::GitHub,
                "gitlab" => ForgeKind::GitLab,
                "gitea" | "forgejo" => ForgeKind::Gitea,
                other => {
                    self.problem(f, format!("forge {other:?}: use github, gitlab or gitea"));
                    return None;
                }
            },
            None => match forge_from_url(git_url) {
                Some(kind) => kind,
                // The API paths are the forges' own; before `forge` existed every pull
                // request was GitHub's, configured for GitHub Enterprise (or a test double)
                // through `apiUrl`: that still holds.
                None if raw.api_url.is_some() => {
                    let api = raw
                        .api_url
                        .as_ref()
                        .map_or("", |a| a.value.trim_end_matches('/'));
                    if api.ends_with("/api/v4") {
                        ForgeKind::GitLab
                    } else if api.ends_with("/api/v1") {
                        ForgeKind::Gitea
                    } else {
                        ForgeKind::GitHub
                    }
                }
                None => {
                    self.problem(
                        git_url_at,
                        format!(
                            "target {target}: cannot tell the forge from git.url {git_url:?}; set pullRequest.forge: github, gitlab or gitea (and apiUrl)"
                        ),
                    );
                    return None;
                }
            },
        };
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
            // GitLab merges with the project's merge method; squashing is per request.
            Some("rebase") if forge == ForgeKind::GitLab => {
                let at = raw.auto_merge.as_ref()?;
                self.problem(
                    at,
                    "autoMerge \"rebase\": gitlab merges with the project's merge method; use merge or squash",
                );
                AutoMerge::Off
            }
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
        let from_text = |text: &str| match forge {
            ForgeKind::GitLab => project_from(text),
            ForgeKind::GitHub | ForgeKind::Gitea => repository_from(text),
        };
        let shape = match forge {
            ForgeKind::GitLab => "group/project (subgroups allowed)",
            ForgeKind::GitHub | ForgeKind::Gitea => "owner/name",
        };
        let repository = match &raw.repository {
            Some(r) => from_text(&r.value).or_else(|| {
                self.problem(r, format!("repository {:?}: use {shape}", r.value));
                None
            }),
            None => from_text(git_url).or_else(|| {
                self.problem(
                    git_url_at,
                    format!(
                        "target {target}: cannot tell the {forge} repository from git.url; set pullRequest.repository: {shape}"
                    ),
                );
                None
            }),
        };
        let api_url = match &raw.api_url {
            None => default_api_url(forge, git_url).unwrap_or_else(|| {
                self.problem(
                    git_url_at,
                    format!("target {target}: cannot tell the {forge} API from git.url; set pullRequest.apiUrl"),
                );
                String::new()
            }),
            Some(u) if u.value.starts_with("https://") || u.value.starts_with("http://") => {
                u.value.trim_end_matches('/').to_string()
            }
            Some(u) => {
                self.problem(u, format!("apiUrl {:?} is not an http(s) URL", u.value));
                String::new()
            }
        };
        let at = raw.forge.as_ref().unwrap_or(git_url_at);
        if forge == ForgeKind::GitHub && !raw.assignees.is_empty() {
            self.problem(
                at,
                format!("target {target}: pullRequest.assignees is for gitlab and gitea; github pull requests take reviewers"),
            );
        }
        if forge == ForgeKind::GitLab
            && let Some(team) = raw.reviewers.iter().find(|r| r.contains('/'))
        {
            self.problem(
                at,
                format!(
                    "target {target}: reviewer {team:?}: gitlab reviewers are users, not teams"
                ),
            );
        }
        let auth = raw.auth.unwrap_or_default();
        if forge != ForgeKind::GitHub && auth.app.is_some() {
            self.problem(
                at,
                format!("target {target}: pullRequest.auth.app is a GitHub App; {forge} takes tokenEnv or tokenFile"),
            );
            return None;
        }
        let auth = self.github_auth(target, auth);
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
            assignees: raw.assignees,
            draft: raw.draft,
            auto_merge,
            forge,
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

    #[test]
    fn gitlab_projects_keep_their_subgroups() {
        let cases = [
            ("group/project", Some(("group", "project"))),
            (
                "https://gitlab.com/group/sub/project.git",
                Some(("group/sub", "project")),
            ),
            (
                "git@gitlab.example.com:a/b/c/project.git",
                Some(("a/b/c", "project")),
            ),
            ("project", None),
            ("group//project", None),
        ];
        for (text, want) in cases {
            let want = want.map(|(o, r)| (o.to_string(), r.to_string()));
            assert_eq!(project_from(text), want, "{text}");
        }
    }

    #[test]
    fn forges_and_apis_from_remote_urls() {
        let cases = [
            ("https://github.com/org/repo.git", Some(ForgeKind::GitHub)),
            ("git@github.com:org/repo.git", Some(ForgeKind::GitHub)),
            ("https://GitLab.com/g/p.git", Some(ForgeKind::GitLab)),
            ("ssh://git@codeberg.org:22/o/r.git", Some(ForgeKind::Gitea)),
            ("https://git.example.com/o/r.git", None),
            ("file:///srv/git/r.git", None),
        ];
        for (url, want) in cases {
            assert_eq!(forge_from_url(url), want, "{url}");
        }
        let apis = [
            (
                ForgeKind::GitLab,
                "https://gitlab.com/g/p.git",
                Some("https://gitlab.com/api/v4"),
            ),
            (
                ForgeKind::GitLab,
                "git@gitlab.example.com:g/p.git",
                Some("https://gitlab.example.com/api/v4"),
            ),
            (
                ForgeKind::Gitea,
                "http://127.0.0.1:3000/o/r.git",
                Some("http://127.0.0.1:3000/api/v1"),
            ),
            (
                ForgeKind::Gitea,
                "ssh://git@codeberg.org/o/r.git",
                Some("https://codeberg.org/api/v1"),
            ),
            (ForgeKind::Gitea, "file:///srv/git/r.git", None),
        ];
        for (forge, url, want) in apis {
            assert_eq!(
                default_api_url(forge, url).as_deref(),
                want,
                "{forge} {url}"
            );
        }
    }
}
