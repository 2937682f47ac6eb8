//! GitLab merge requests through the REST API v4 (gitlab.com or a self-managed instance at
//! `apiUrl`). A personal, group or project access token goes in the `PRIVATE-TOKEN` header,
//! which GitLab accepts for all three. Draft is GitLab's `Draft:` title prefix (the API has no
//! draft flag on create or update); auto-merge is "merge when pipeline succeeds".
//! API reference: https://docs.gitlab.com/api/merge_requests/ and https://docs.gitlab.com/api/users/

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Action, ForgeError};
use super::http::{Answer, Rest, encode, quote, read_token};
use super::{DraftTitles, NewPullRequest, PrState, PullRequestView};
use crate::config::{AutoMerge, ForgeKind, GitHubAuth, PullRequestSettings};

const FORGE: ForgeKind = ForgeKind::GitLab;
/// The prefixes GitLab reads as "draft" (case-insensitive), the first being the one it writes.
const DRAFT_PREFIXES: [&str; 3] = ["Draft:", "[Draft]", "(Draft)"];

/// The merge request fields tagsmith reads.
#[derive(Debug, Deserialize)]
struct MergeRequest {
    iid: u64,
    title: String,
    #[serde(default)]
    description: Option<String>,
    state: String,
    web_url: String,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    merge_when_pipeline_succeeds: bool,
}

#[derive(Debug, Deserialize)]
struct User {
    id: u64,
    username: String,
}

pub struct GitLab {
    rest: Rest,
    /// The project id as GitLab takes it in a path: `namespace%2Fname`.
    project: String,
    assignees: Vec<String>,
    /// Whether each merge request seen is a draft, so an update keeps its prefix.
    drafts: DraftTitles,
}

impl std::fmt::Debug for GitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLab")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// What a call needs, for 401 and plain 403 answers.
fn needs(action: Action) -> String {
    let scope = match action {
        Action::ListPullRequests | Action::FindUser => "read_api (or api)",
        _ => "api",
    };
    let role = match action {
        Action::EnableAutoMerge => "a role allowed to merge into the target branch",
        Action::ListPullRequests | Action::FindUser => "at least the Reporter role",
        _ => "at least the Developer role",
    };
    format!(
        "a personal, group or project access token with the {scope} scope and {role} on the project"
    )
}

/// GitLab's `message` is a string, a list, or a map of field to list.
fn message_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(message_of).collect::<Vec<_>>().join("; "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", message_of(v)))
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A failed answer explained. GitLab's 403 for a token without the scope is OAuth's
/// `{"error":"insufficient_scope","error_description":...,"scope":"api"}`.
fn explain(action: Action, status: u16, body: &str) -> ForgeError {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = match (value.get("message"), value.get("error")) {
        (Some(m), _) => message_of(m),
        (None, Some(e)) => {
            let description = value
                .get("error_description")
                .map(message_of)
                .unwrap_or_default();
            format!("{}: {description}", message_of(e))
        }
        (None, None) => quote(body),
    };
    match status {
        401 => ForgeError::TokenRejected {
            forge: FORGE,
            action,
            needs: needs(action),
        },
        403 if value.get("error").and_then(Value::as_str) == Some("insufficient_scope") => {
            let scope = value.get("scope").and_then(Value::as_str).unwrap_or("api");
            ForgeError::Refused {
                forge: FORGE,
                action,
                message,
                needs: format!("a token with the {scope} scope (the token lacks it)"),
            }
        }
        403 => ForgeError::Refused {
            forge: FORGE,
            action,
            message,
            needs: needs(action),
        },
        404 => ForgeError::Answered {
            forge: FORGE,
            action,
            status,
            message: format!(
                "{message}: the project does not exist or the token cannot see it; needs {}",
                needs(action)
            ),
        },
        405 | 406 if action == Action::EnableAutoMerge => ForgeError::Answered {
            forge: FORGE,
            action,
            status,
            message: format!(
                "{message}: the merge request cannot be merged now (a draft, conflicts, or unresolved discussions)"
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

impl GitLab {
    pub fn connect(settings: &PullRequestSettings) -> Result<Self, ForgeError> {
        let GitHubAuth::Token(secret) = &settings.auth else {
            // Config validation refuses an app for GitLab.
            return Err(ForgeError::Token {
                forge: FORGE,
                source_name: "pullRequest.auth".into(),
                reason: "gitlab takes tokenEnv or tokenFile".into(),
            });
        };
        let token = read_token(FORGE, secret)?;
        let rest = Rest::new(FORGE, &settings.api_url, "private-token", &token)?;
        Ok(Self {
            rest,
            project: encode(&format!("{}/{}", settings.owner, settings.repo)),
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

    fn mr_route(&self) -> String {
        format!("/projects/{}/merge_requests", self.project)
    }

    fn view(&self, mr: MergeRequest) -> PullRequestView {
        let title = self.drafts.read(mr.iid, &mr.title, mr.draft);
        PullRequestView {
            number: mr.iid,
            node_id: None,
            url: mr.web_url,
            title: title.to_string(),
            body: mr.description.unwrap_or_default(),
            merged: mr.state == "merged",
            head_sha: mr.sha.unwrap_or_default(),
            auto_merge: mr.merge_when_pipeline_succeeds,
        }
    }

    /// Usernames to user ids, as `assignee_ids` and `reviewer_ids` require.
    async fn user_ids(&self, names: &[String]) -> Result<Vec<u64>, ForgeError> {
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            let action = Action::FindUser;
            let answer = self
                .call(
                    action,
                    Method::GET,
                    &format!("/users?username={}", encode(name)),
                    None,
                )
                .await?;
            let users: Vec<User> = self.rest.decode(action, &answer)?;
            let user = users
                .into_iter()
                .find(|u| u.username.eq_ignore_ascii_case(name))
                .ok_or_else(|| ForgeError::Unknown {
                    forge: FORGE,
                    action,
                    what: "user",
                    name: name.clone(),
                })?;
            ids.push(user.id);
        }
        Ok(ids)
    }
}

impl super::ForgeApi for GitLab {
    async fn find(
        &self,
        head: &str,
        base: &str,
        state: PrState,
    ) -> Result<Vec<PullRequestView>, ForgeError> {
        // Closed mirrors GitHub's "closed", which includes merged: GitLab keeps them apart,
        // so list every state and keep those two.
        let state_param = match state {
            PrState::Open => "&state=opened",
            PrState::Closed => "",
        };
        let route = format!(
            "{}?source_branch={}&target_branch={}{state_param}&order_by=created_at&sort=desc&per_page=20",
            self.mr_route(),
            encode(head),
            encode(base)
        );
        let action = Action::ListPullRequests;
        let answer = self.call(action, Method::GET, &route, None).await?;
        let found: Vec<MergeRequest> = self.rest.decode(action, &answer)?;
        Ok(found
            .into_iter()
            .filter(|mr| match state {
                PrState::Open => mr.state == "opened",
                PrState::Closed => mr.state == "closed" || mr.state == "merged",
            })
            .map(|mr| self.view(mr))
            .collect())
    }

    async fn create(&self, new: NewPullRequest<'_>) -> Result<PullRequestView, ForgeError> {
        let assignees = self.user_ids(&self.assignees).await?;
        let title = self.drafts.create(new.title, new.draft);
        let mut payload = json!({
            "source_branch": new.head,
            "target_branch": new.base,
            "title": title,
            "description": new.body,
        });
        if !assignees.is_empty() {
            payload["assignee_ids"] = json!(assignees);
        }
        let action = Action::CreatePullRequest;
        let answer = self
            .call(action, Method::POST, &self.mr_route(), Some(&payload))
            .await?;
        Ok(self.view(self.rest.decode(action, &answer)?))
    }

    async fn update(
        &self,
        iid: u64,
        title: Option<&str>,
        body: Option<&str>,
    ) -> Result<PullRequestView, ForgeError> {
        let mut payload = serde_json::Map::new();
        if let Some(title) = title {
            payload.insert("title".into(), self.drafts.update(iid, title).into());
        }
        if let Some(body) = body {
            payload.insert("description".into(), body.into());
        }
        let action = Action::UpdatePullRequest;
        let answer = self
            .call(
                action,
                Method::PUT,
                &format!("{}/{iid}", self.mr_route()),
                Some(&Value::Object(payload)),
            )
            .await?;
        Ok(self.view(self.rest.decode(action, &answer)?))
    }

    async fn add_labels(&self, iid: u64, labels: &[String]) -> Result<(), ForgeError> {
        if labels.is_empty() {
            return Ok(());
        }
        // `add_labels` keeps labels people set; GitLab creates labels it does not know.
        self.call(
            Action::AddLabels,
            Method::PUT,
            &format!("{}/{iid}", self.mr_route()),
            Some(&json!({ "add_labels": labels.join(",") })),
        )
        .await?;
        Ok(())
    }

    async fn request_reviewers(&self, iid: u64, reviewers: &[String]) -> Result<(), ForgeError> {
        if reviewers.is_empty() {
            return Ok(());
        }
        let ids = self.user_ids(reviewers).await?;
        self.call(
            Action::RequestReviewers,
            Method::PUT,
            &format!("{}/{iid}", self.mr_route()),
            Some(&json!({ "reviewer_ids": ids })),
        )
        .await?;
        Ok(())
    }

    /// "Merge when pipeline succeeds": `merge_when_pipeline_succeeds`, and `auto_merge`, its
    /// name since GitLab 17.11 (each version ignores the one it does not know). `sha` makes
    /// GitLab refuse if the head moved since we looked.
    async fn enable_auto_merge(
        &self,
        pr: &PullRequestView,
        how: AutoMerge,
    ) -> Result<(), ForgeError> {
        if how == AutoMerge::Off {
            return Ok(());
        }
        let mut payload = json!({
            "merge_when_pipeline_succeeds": true,
            "auto_merge": true,
            "squash": how == AutoMerge::Squash,
        });
        if !pr.head_sha.is_empty() {
            payload["sha"] = json!(pr.head_sha);
        }
        self.call(
            Action::EnableAutoMerge,
            Method::PUT,
            &format!("{}/{}/merge", self.mr_route(), pr.number),
            Some(&payload),
        )
        .await?;
        Ok(())
    }

    fn writes(&self) -> u32 {
        self.rest.writes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies as GitLab documents them (https://docs.gitlab.com/api/rest/troubleshooting/ and
    /// https://docs.gitlab.com/api/rest/authentication/).
    #[test]
    fn errors_name_the_missing_scope() {
        let body = r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token.","scope":"api"}"#;
        let e = explain(Action::CreatePullRequest, 403, body);
        let text = e.to_string();
        assert!(
            text.contains("gitlab refused creating the pull request (403: insufficient_scope"),
            "{text}"
        );
        assert!(text.contains("the api scope"), "{text}");
        assert!(!e.is_transient());

        let e = explain(
            Action::ListPullRequests,
            401,
            r#"{"message":"401 Unauthorized"}"#,
        );
        assert!(e.to_string().contains("read_api"), "{e}");

        let e = explain(
            Action::CreatePullRequest,
            403,
            r#"{"message":"403 Forbidden"}"#,
        );
        assert!(e.to_string().contains("Developer role"), "{e}");

        let body = r#"{"message":["Another open merge request already exists for this source branch: !1"]}"#;
        let e = explain(Action::CreatePullRequest, 409, body);
        assert!(e.to_string().contains("Another open merge request"), "{e}");

        let e = explain(Action::ListPullRequests, 502, "<html>bad gateway</html>");
        assert!(e.is_transient());
    }
}
