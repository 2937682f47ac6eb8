//! Gitea and Forgejo pull requests through their REST API (`/api/v1`; Forgejo keeps Gitea's).
//! The token goes in `Authorization: token ...`. Draft is the `WIP:` title prefix Gitea reads
//! as work in progress; labels are set by id, looked up by name; auto-merge is "merge when
//! checks succeed". API reference: https://gitea.com/api/swagger (the same document is served
//! by every instance at /api/swagger) and https://codeberg.org/api/swagger for Forgejo.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Action, ForgeError};
use super::http::{Answer, Rest, encode, quote, read_token};
use super::{DraftTitles, NewPullRequest, PrState, PullRequestView, split_reviewers};
use crate::config::{AutoMerge, ForgeKind, GitHubAuth, PullRequestSettings};

const FORGE: ForgeKind = ForgeKind::Gitea;
/// Gitea's default `WORK_IN_PROGRESS_PREFIXES`; the first is the one written.
const DRAFT_PREFIXES: [&str; 2] = ["WIP:", "[WIP]"];
const PAGE: usize = 50;
/// Pages of pull requests looked through for the head branch (newest activity first).
const MAX_PAGES: u32 = 5;

#[derive(Debug, Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    name: String,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    repo_id: Option<u64>,
}

/// The pull request fields tagsmith reads.
#[derive(Debug, Deserialize)]
struct Pull {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    html_url: String,
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    draft: bool,
    head: Branch,
    base: Branch,
}

#[derive(Debug, Deserialize)]
struct Label {
    id: u64,
    name: String,
}

pub struct Gitea {
    rest: Rest,
    /// `/repos/{owner}/{repo}`
    repo_route: String,
    assignees: Vec<String>,
    drafts: DraftTitles,
}

impl std::fmt::Debug for Gitea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gitea")
            .field("repo", &self.repo_route)
            .finish_non_exhaustive()
    }
}

/// The token scope and repository access a call needs.
fn needs(action: Action) -> String {
    let scope = match action {
        Action::ListPullRequests | Action::FindLabels => "read:repository",
        Action::AddLabels => "write:issue",
        _ => "write:repository",
    };
    let access = match action {
        Action::ListPullRequests | Action::FindLabels => "read",
        _ => "write",
    };
    format!("a token with the {scope} scope and {access} access to the repository")
}

/// A failed answer explained; Gitea's errors are `{"message": ..., "url": ...}`, and a token
/// without a scope gets "token does not have at least one of required scope(s): [...]".
fn explain(action: Action, status: u16, body: &str) -> ForgeError {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| quote(body), str::to_string);
    match status {
        401 => ForgeError::TokenRejected {
            forge: FORGE,
            action,
            needs: needs(action),
        },
        403 => {
            let needs = match required_scopes(&message) {
                Some(scopes) => format!("a token with the scope {scopes} (the token lacks it)"),
                None => needs(action),
            };
            ForgeError::Refused {
                forge: FORGE,
                action,
                message,
                needs,
            }
        }
        404 => ForgeError::Answered {
            forge: FORGE,
            action,
            status,
            message: format!(
                "{message}: the repository does not exist or the token cannot see it; needs {}",
                needs(action)
            ),
        },
        _ => ForgeError::Answered {
            forge: FORGE,
            action,
            status,
            message,
        },
    }
}

/// The scopes a 403 names: `required=[write:repository]` (Gitea 1.20 on, Forgejo) or
/// `required scope(s): [...]`.
fn required_scopes(message: &str) -> Option<&str> {
    if let Some((_, rest)) = message.split_once("required=") {
        let end = rest.find(']').map_or(rest.len(), |i| i + 1);
        return Some(rest[..end].trim());
    }
    message
        .split_once("required scope(s):")
        .map(|(_, rest)| rest.trim())
}

impl Gitea {
    pub fn connect(settings: &PullRequestSettings) -> Result<Self, ForgeError> {
        let GitHubAuth::Token(secret) = &settings.auth else {
            return Err(ForgeError::Token {
                forge: FORGE,
                source_name: "pullRequest.auth".into(),
                reason: "gitea takes tokenEnv or tokenFile".into(),
            });
        };
        let token = read_token(FORGE, secret)?;
        let rest = Rest::new(
            FORGE,
            &settings.api_url,
            "authorization",
            &format!("token {token}"),
        )?;
        Ok(Self {
            rest,
            repo_route: format!(
                "/repos/{}/{}",
                encode(&settings.owner),
                encode(&settings.repo)
            ),
            assignees: settings.assignees.clone(),
            drafts: DraftTitles::new(&DRAFT_PREFIXES),
        })
    }

    async fn call(
        &self,
        action: Action,
        method: Method,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ForgeError> {
        let answer = self.rest.send(action, method, route, body).await?;
        if answer.ok() {
            return Ok(answer);
        }
        Err(answer
            .redirect(FORGE, action)
            .unwrap_or_else(|| explain(action, answer.status, &answer.text)))
    }

    fn view(&self, pull: Pull) -> PullRequestView {
        let title = self.drafts.read(pull.number, &pull.title, pull.draft);
        PullRequestView {
            number: pull.number,
            node_id: None,
            url: pull.html_url,
            title: title.to_string(),
            body: pull.body.unwrap_or_default(),
            merged: pull.merged,
            head_sha: pull.head.sha.unwrap_or_default(),
            // Gitea does not say whether auto-merge is scheduled; scheduling twice is a 409
            // that enable_auto_merge takes as done.
            auto_merge: false,
        }
    }

    /// Label names to ids: Gitea's create and label calls take ids, and labels must exist.
    async fn label_ids(&self, names: &[String]) -> Result<Vec<u64>, ForgeError> {
        let action = Action::FindLabels;
        let mut known: Vec<Label> = Vec::new();
        for page in 1..=MAX_PAGES {
            let route = format!("{}/labels?page={page}&limit={PAGE}", self.repo_route);
            let answer = self.call(action, Method::GET, &route, None).await?;
            let labels: Vec<Label> = self.rest.decode(action, &answer)?;
            let full = labels.len() >= PAGE;
            known.extend(labels);
            if !full {
                break;
            }
        }
        names
            .iter()
            .map(|name| {
                known
                    .iter()
                    .find(|l| l.name == *name)
                    .map(|l| l.id)
                    .ok_or_else(|| ForgeError::Unknown {
                        forge: FORGE,
                        action,
                        what: "label",
                        name: name.clone(),
                    })
            })
            .collect()
    }
}

impl super::ForgeApi for Gitea {
    /// Gitea's list has no head filter: pages of the state, newest activity first, filtered
    /// here to the head branch of this repository (not a fork's) and the base.
    async fn find(
        &self,
        head: &str,
        base: &str,
        state: PrState,
    ) -> Result<Vec<PullRequestView>, ForgeError> {
        let state = match state {
            PrState::Open => "open",
            PrState::Closed => "closed",
        };
        let action = Action::ListPullRequests;
        let mut found = Vec::new();
        for page in 1..=MAX_PAGES {
            let route = format!(
                "{}/pulls?state={state}&sort=recentupdate&page={page}&limit={PAGE}",
                self.repo_route
            );
            let answer = self.call(action, Method::GET, &route, None).await?;
            let pulls: Vec<Pull> = self.rest.decode(action, &answer)?;
            let full = pulls.len() >= PAGE;
            found.extend(pulls.into_iter().filter(|p| {
                p.head.name == head
                    && p.base.name == base
                    && (p.head.repo_id.is_none() || p.head.repo_id == p.base.repo_id)
            }));
            if !found.is_empty() || !full {
                break;
            }
        }
        found.sort_by_key(|p| std::cmp::Reverse(p.number));
        Ok(found.into_iter().map(|p| self.view(p)).collect())
    }

    async fn create(&self, new: NewPullRequest<'_>) -> Result<PullRequestView, ForgeError> {
        let title = self.drafts.create(new.title, new.draft);
        let mut payload = json!({
            "head": new.head,
            "base": new.base,
            "title": title,
            "body": new.body,
        });
        if !self.assignees.is_empty() {
            payload["assignees"] = json!(self.assignees);
        }
        let action = Action::CreatePullRequest;
        let answer = self
            .call(
                action,
                Method::POST,
                &format!("{}/pulls", self.repo_route),
                Some(&payload),
            )
            .await?;
        Ok(self.view(self.rest.decode(action, &answer)?))
    }

    async fn update(
        &self,
        number: u64,
        title: Option<&str>,
        body: Option<&str>,
    ) -> Result<PullRequestView, ForgeError> {
        let mut payload = serde_json::Map::new();
        if let Some(title) = title {
            payload.insert("title".into(), self.drafts.update(number, title).into());
        }
        if let Some(body) = body {
            payload.insert("body".into(), body.into());
        }
        let action = Action::UpdatePullRequest;
        let answer = self
            .call(
                action,
                Method::PATCH,
                &format!("{}/pulls/{number}", self.repo_route),
                Some(&Value::Object(payload)),
            )
            .await?;
        Ok(self.view(self.rest.decode(action, &answer)?))
    }

    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError> {
        if labels.is_empty() {
            return Ok(());
        }
        let ids = self.label_ids(labels).await?;
        self.call(
            Action::AddLabels,
            Method::POST,
            &format!("{}/issues/{number}/labels", self.repo_route),
            Some(&json!({ "labels": ids })),
        )
        .await?;
        Ok(())
    }

    /// `org/team` names a team (Gitea takes the team's name), anything else a user.
    async fn request_reviewers(&self, number: u64, reviewers: &[String]) -> Result<(), ForgeError> {
        if reviewers.is_empty() {
            return Ok(());
        }
        let (users, teams) = split_reviewers(reviewers);
        self.call(
            Action::RequestReviewers,
            Method::POST,
            &format!("{}/pulls/{number}/requested_reviewers", self.repo_route),
            Some(&json!({ "reviewers": users, "team_reviewers": teams })),
        )
        .await?;
        Ok(())
    }

    /// `merge_when_checks_succeed`; `head_commit_id` makes Gitea refuse if the head moved.
    async fn enable_auto_merge(
        &self,
        pr: &PullRequestView,
        how: AutoMerge,
    ) -> Result<(), ForgeError> {
        let method = match how {
            AutoMerge::Off => return Ok(()),
            AutoMerge::Merge => "merge",
            AutoMerge::Squash => "squash",
            AutoMerge::Rebase => "rebase",
        };
        let mut payload = json!({ "Do": method, "merge_when_checks_succeed": true });
        if !pr.head_sha.is_empty() {
            payload["head_commit_id"] = json!(pr.head_sha);
        }
        let action = Action::EnableAutoMerge;
        let answer = self
            .rest
            .send(
                action,
                Method::POST,
                &format!("{}/pulls/{}/merge", self.repo_route, pr.number),
                Some(&payload),
            )
            .await?;
        if answer.ok() {
            return Ok(());
        }
        // Scheduled by an earlier run (Gitea does not show it on the pull request).
        if answer.status == 409 && answer.text.to_ascii_lowercase().contains("scheduled") {
            return Ok(());
        }
        Err(explain(action, answer.status, &answer.text))
    }

    fn writes(&self) -> u32 {
        self.rest.writes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message Gitea's `tokenRequiresScopes` writes (routers/api/v1/api.go).
    #[test]
    fn errors_name_the_missing_scope() {
        let body = r#"{"message":"token does not have at least one of required scope(s), required=[write:repository], token scope=read:repository","url":"https://gitea.example.com/api/swagger"}"#;
        let text = explain(Action::CreatePullRequest, 403, body).to_string();
        assert!(
            text.contains("gitea refused creating the pull request (403"),
            "{text}"
        );
        assert!(text.contains("write:repository"), "{text}");
        let text =
            explain(Action::AddLabels, 401, r#"{"message":"token is required"}"#).to_string();
        assert!(text.contains("write:issue"), "{text}");
        let e = explain(Action::ListPullRequests, 503, "");
        assert!(e.is_transient());
    }
}
