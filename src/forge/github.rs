//! GitHub's REST API through octocrab: authentication (token or GitHub App installation, whose
//! tokens octocrab caches and renews before they expire), pull request lookups and writes, and
//! rate limits honoured. Requests go through octocrab's raw calls so that status codes and
//! rate-limit headers reach us; answers are parsed into octocrab's own models.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use octocrab::Octocrab;
use octocrab::models::pulls::PullRequest;
use octocrab::secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::body::graphql_endpoint;
use super::error::{Action, ForgeError, RateLimit, rate_limit_wait};

use crate::config::{AutoMerge, GitHubAuth, PullRequestSettings, Secret};

/// Rate-limited attempts of one request before giving up for this cycle.
const MAX_ATTEMPTS: u32 = 3;
/// Longer waits are not sat out inside a cycle: the error says when to come back.
const MAX_WAIT: Duration = Duration::from_secs(120);

/// The parts of a pull request tagsmith looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestView {
    pub number: u64,
    pub node_id: Option<String>,
    pub url: String,
    pub title: String,
    pub body: String,
    pub merged: bool,
    pub head_sha: String,
    pub auto_merge: bool,
}

impl From<PullRequest> for PullRequestView {
    fn from(pr: PullRequest) -> Self {
        Self {
            number: pr.number,
            node_id: pr.node_id,
            url: pr
                .html_url
                .map(|u| u.to_string())
                .unwrap_or_else(|| pr.url.clone()),
            title: pr.title.unwrap_or_default(),
            body: pr.body.unwrap_or_default(),
            merged: pr.merged_at.is_some() || pr.merged == Some(true),
            head_sha: pr.head.sha,
            auto_merge: pr.auto_merge.is_some(),
        }
    }
}

pub struct GitHub {
    crab: Octocrab,
    owner: String,
    repo: String,
    api_url: String,
    /// A configured token; `None` for app installations, whose tokens octocrab keeps.
    token: Option<SecretString>,
    /// Counts writes, so a run can say it made none.
    writes: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_url", &self.api_url)
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

fn read_secret(secret: &Secret) -> Result<String, ForgeError> {
    let err = |reason: String| ForgeError::Credentials {
        source_name: secret.to_string(),
        reason,
    };
    let value = match secret {
        Secret::Env(name) => std::env::var(name).map_err(|_| err("not set".into()))?,
        Secret::File(path) => std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?,
    };
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(value)
}

/// Query values: GitHub's `head` is `owner:branch`, and branches may hold `/` or `+`.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// octocrab's own errors: transport trouble, or GitHub refusing the installation token.
fn from_octocrab(action: Action, e: octocrab::Error) -> ForgeError {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let action = if action == Action::FindInstallation {
                action
            } else {
                Action::IssueToken
            };
            let body = json!({ "message": source.message }).to_string();
            ForgeError::from_status(action, source.status_code.as_u16(), &body)
        }
        other => ForgeError::Http {
            action,
            message: other.to_string(),
        },
    }
}

/// Where the client points: a repository on an API, with its credentials.
struct Place<'a> {
    api_url: &'a str,
    owner: &'a str,
    repo: &'a str,
    auth: &'a GitHubAuth,
}

enum Method {
    Get,
    Post,
    Patch,
}

impl GitHub {
    /// Builds the client; for a GitHub App, finds the installation when not configured.
    /// Needs a tokio runtime.
    pub async fn connect(settings: &PullRequestSettings) -> Result<Self, ForgeError> {
        Self::connect_to(
            &settings.api_url,
            &settings.owner,
            &settings.repo,
            &settings.auth,
        )
        .await
    }

    /// [`GitHub::connect`] for a repository and credentials alone (commit statuses need no
    /// pull request settings).
    pub async fn connect_to(
        api_url: &str,
        owner: &str,
        repo: &str,
        auth: &GitHubAuth,
    ) -> Result<Self, ForgeError> {
        let settings = Place {
            api_url,
            owner,
            repo,
            auth,
        };
        let client_err = |e: octocrab::Error| ForgeError::Client {
            api_url: settings.api_url.to_string(),
            message: e.to_string(),
        };
        let builder = Octocrab::builder()
            .base_uri(settings.api_url)
            .map_err(client_err)?;
        let mut token = None;
        let crab = match settings.auth {
            GitHubAuth::Token(secret) => {
                let secret = SecretString::from(read_secret(secret)?);
                token = Some(secret.clone());
                builder.personal_token(secret).build().map_err(client_err)?
            }
            GitHubAuth::App {
                app_id,
                private_key,
                installation_id,
            } => {
                let key_err = |reason: String| ForgeError::PrivateKey {
                    path: private_key.clone(),
                    reason,
                };
                let pem = std::fs::read(private_key).map_err(|e| key_err(e.to_string()))?;
                let app = builder
                    .app_from_rsa_pem((*app_id).into(), pem)
                    .map_err(|_| key_err("not an RSA private key in PEM form".into()))?
                    .build()
                    .map_err(client_err)?;
                let installation = match installation_id {
                    Some(id) => *id,
                    None => {
                        let as_app = Self::new(app.clone(), &settings, None);
                        let found: octocrab::models::Installation = as_app
                            .request(
                                Action::FindInstallation,
                                Method::Get,
                                &format!(
                                    "/repos/{}/{}/installation",
                                    settings.owner, settings.repo
                                ),
                                None,
                            )
                            .await?;
                        found.id.0
                    }
                };
                tracing::debug!(installation, "using the github app installation");
                app.installation(installation.into()).map_err(client_err)?
            }
        };
        Ok(Self::new(crab, &settings, token))
    }

    fn new(crab: Octocrab, settings: &Place<'_>, token: Option<SecretString>) -> Self {
        Self {
            crab,
            token,
            owner: settings.owner.to_string(),
            repo: settings.repo.to_string(),
            api_url: settings.api_url.to_string(),
            writes: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// API writes made so far.
    pub fn writes(&self) -> u32 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn request<T: DeserializeOwned>(
        &self,
        action: Action,
        method: Method,
        route: &str,
        body: Option<&Value>,
    ) -> Result<T, ForgeError> {
        self.request_on(&self.crab, action, method, route, body)
            .await
    }

    async fn request_on<T: DeserializeOwned>(
        &self,
        crab: &Octocrab,
        action: Action,
        method: Method,
        route: &str,
        body: Option<&Value>,
    ) -> Result<T, ForgeError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if !matches!(method, Method::Get) {
                self.writes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let sent = match method {
                Method::Get => crab._get(route).await,
                Method::Post => crab._post(route, body).await,
                Method::Patch => crab._patch(route, body).await,
            };
            let response = sent.map_err(|e| from_octocrab(action, e))?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let limit = RateLimit {
                retry_after: header("retry-after"),
                remaining: header("x-ratelimit-remaining"),
                reset: header("x-ratelimit-reset"),
            };
            let text = crab
                .body_to_string(response)
                .await
                .map_err(|e| from_octocrab(action, e))?;
            if (200..300).contains(&status) {
                let text = if text.trim().is_empty() {
                    "null"
                } else {
                    &text
                };
                return serde_json::from_str(text).map_err(|e| ForgeError::Decode {
                    action,
                    message: e.to_string(),
                });
            }
            if let Some(wait) = rate_limit_wait(status, &limit, &text, now_unix()) {
                if attempt >= MAX_ATTEMPTS || wait > MAX_WAIT {
                    return Err(ForgeError::RateLimited { action, wait });
                }
                tracing::warn!(
                    action = action.describe(),
                    wait_secs = wait.as_secs(),
                    "github rate limit; waiting"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(ForgeError::from_status(action, status, &text));
        }
    }

    fn pulls_route(&self) -> String {
        format!("/repos/{}/{}/pulls", self.owner, self.repo)
    }

    /// `POST /repos/{owner}/{repo}/statuses/{sha}`: `state` is `success`, `failure`,
    /// `error` or `pending`.
    pub async fn create_status(
        &self,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), ForgeError> {
        let mut body = json!({ "state": state, "context": context, "description": description });
        if let Some(url) = target_url {
            body["target_url"] = json!(url);
        }
        let _: Value = self
            .request(
                Action::CreateStatus,
                Method::Post,
                &format!("/repos/{}/{}/statuses/{sha}", self.owner, self.repo),
                Some(&body),
            )
            .await?;
        Ok(())
    }

    /// GraphQL `enablePullRequestAutoMerge`; GraphQL reports failures in `errors` with 200.
    async fn enable_auto_merge_graphql(
        &self,
        node_id: &str,
        method: &str,
    ) -> Result<(), ForgeError> {
        let action = Action::EnableAutoMerge;
        let (origin, path) = graphql_endpoint(&self.api_url);
        let query = "mutation($id: ID!, $method: PullRequestMergeMethod!) { enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: $method}) { pullRequest { number } } }";
        let payload = json!({ "query": query, "variables": { "id": node_id, "method": method } });
        // The endpoint sits outside a GitHub Enterprise REST base path: same credentials,
        // another origin-rooted client.
        let crab = if origin == self.api_url {
            self.crab.clone()
        } else {
            let token = self.token().await?;
            Octocrab::builder()
                .base_uri(origin.as_str())
                .and_then(|b| b.personal_token(token).build())
                .map_err(|e| ForgeError::Client {
                    api_url: origin.clone(),
                    message: e.to_string(),
                })?
        };
        let answer: Value = self
            .request_on(&crab, action, Method::Post, &path, Some(&payload))
            .await?;
        if let Some(errors) = answer.get("errors").and_then(|e| e.as_array())
            && !errors.is_empty()
        {
            let message = errors
                .iter()
                .filter_map(|e| e.get("message").and_then(|m| m.as_str()))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ForgeError::Forbidden { action, message });
        }
        Ok(())
    }

    /// The bearer token octocrab sends (an installation token is renewed when near expiry).
    pub async fn token(&self) -> Result<SecretString, ForgeError> {
        match &self.token {
            Some(token) => Ok(token.clone()),
            None => self
                .crab
                .installation_token()
                .await
                .map_err(|e| from_octocrab(Action::IssueToken, e)),
        }
    }
}

impl super::ForgeApi for GitHub {
    async fn find(
        &self,
        head: &str,
        base: &str,
        state: super::PrState,
    ) -> Result<Vec<PullRequestView>, ForgeError> {
        let state = match state {
            super::PrState::Open => "open",
            super::PrState::Closed => "closed",
        };
        let route = format!(
            "{}?state={state}&head={}&base={}&sort=created&direction=desc&per_page=20",
            self.pulls_route(),
            encode(&format!("{}:{head}", self.owner)),
            encode(base)
        );
        let found: Vec<PullRequest> = self
            .request(Action::ListPullRequests, Method::Get, &route, None)
            .await?;
        Ok(found.into_iter().map(PullRequestView::from).collect())
    }

    async fn create(&self, new: super::NewPullRequest<'_>) -> Result<PullRequestView, ForgeError> {
        let payload = json!({
            "title": new.title,
            "head": new.head,
            "base": new.base,
            "body": new.body,
            "draft": new.draft,
            "maintainer_can_modify": false,
        });
        let pr: PullRequest = self
            .request(
                Action::CreatePullRequest,
                Method::Post,
                &self.pulls_route(),
                Some(&payload),
            )
            .await?;
        Ok(pr.into())
    }

    async fn update(
        &self,
        number: u64,
        title: Option<&str>,
        body: Option<&str>,
    ) -> Result<PullRequestView, ForgeError> {
        let mut payload = serde_json::Map::new();
        if let Some(title) = title {
            payload.insert("title".into(), title.into());
        }
        if let Some(body) = body {
            payload.insert("body".into(), body.into());
        }
        let pr: PullRequest = self
            .request(
                Action::UpdatePullRequest,
                Method::Patch,
                &format!("{}/{number}", self.pulls_route()),
                Some(&Value::Object(payload)),
            )
            .await?;
        Ok(pr.into())
    }

    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError> {
        if labels.is_empty() {
            return Ok(());
        }
        let _: Value = self
            .request(
                Action::AddLabels,
                Method::Post,
                &format!("/repos/{}/{}/issues/{number}/labels", self.owner, self.repo),
                Some(&json!({ "labels": labels })),
            )
            .await?;
        Ok(())
    }

    /// `org/team` names a team, anything else a user.
    async fn request_reviewers(&self, number: u64, reviewers: &[String]) -> Result<(), ForgeError> {
        if reviewers.is_empty() {
            return Ok(());
        }
        let (users, teams) = super::split_reviewers(reviewers);
        let _: Value = self
            .request(
                Action::RequestReviewers,
                Method::Post,
                &format!("{}/{number}/requested_reviewers", self.pulls_route()),
                Some(&json!({ "reviewers": users, "team_reviewers": teams })),
            )
            .await?;
        Ok(())
    }

    async fn enable_auto_merge(
        &self,
        pr: &PullRequestView,
        how: AutoMerge,
    ) -> Result<(), ForgeError> {
        match (how.graphql_method(), &pr.node_id) {
            (Some(method), Some(node)) => self.enable_auto_merge_graphql(node, method).await,
            _ => Ok(()),
        }
    }

    async fn git_password(&self) -> Result<Option<SecretString>, ForgeError> {
        // A configured token is for the API only; an app's installation token also works for Git.
        match self.token {
            Some(_) => Ok(None),
            None => self.token().await.map(Some),
        }
    }

    fn writes(&self) -> u32 {
        GitHub::writes(self)
    }
}
