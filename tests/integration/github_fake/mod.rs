//! Test harness: an in-process fake of GitHub's REST API (and the one GraphQL mutation tagsmith
//! uses) on 127.0.0.1. It answers in GitHub's JSON shapes, so octocrab's own models parse them,
//! keeps pull request state, reads head commits from the real bare repository, checks the
//! `Authorization` header of every request (a token, an app JWT signed with the test key, or an
//! installation token it issued) and records every request.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

pub const OWNER: &str = "org";
pub const REPO: &str = "manifests";
pub const APP_ID: u64 = 4242;
pub const INSTALLATION_ID: u64 = 777;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    /// What the Authorization header proved: "token", "jwt", "installation:<token>", or "none".
    pub auth: String,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub state: String,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub draft: bool,
    pub merged: bool,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub team_reviewers: Vec<String>,
    pub auto_merge: Option<String>,
    /// The head commit when the pull request was closed (GitHub stops following the branch).
    pub closed_sha: Option<String>,
}

/// A canned answer: status, headers, body.
type Canned = (u16, Vec<(String, String)>, String);

#[derive(Debug, Default)]
struct State {
    pulls: Vec<Pull>,
    requests: Vec<Recorded>,
    issued_tokens: Vec<String>,
    /// The next answers to give instead of the real ones: (status, headers, body).
    injected: Vec<Canned>,
    /// Seconds an installation token lives; default an hour, as on GitHub.
    token_lifetime: Option<u64>,
    /// Commit statuses set: (sha, request body).
    statuses: Vec<(String, Value)>,
}

#[derive(Clone)]
pub struct FakeGitHub {
    pub url: String,
    state: Arc<Mutex<State>>,
    bare: PathBuf,
    token: String,
    _shutdown: Arc<tokio::sync::oneshot::Sender<()>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (days to civil date after Howard Hinnant).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn user(login: &str, id: u64, kind: &str) -> Value {
    let u = format!("https://api.github.com/users/{login}");
    json!({
        "login": login, "id": id, "node_id": format!("U_{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "", "url": u, "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"), "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"), "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"), "type": kind, "site_admin": false
    })
}

fn repository() -> Value {
    json!({
        "id": 1296269, "node_id": "R_kgDOABCDEF", "name": REPO, "full_name": format!("{OWNER}/{REPO}"),
        "owner": user(OWNER, 9919, "Organization"), "private": true,
        "html_url": format!("https://github.com/{OWNER}/{REPO}"),
        "url": format!("https://api.github.com/repos/{OWNER}/{REPO}"),
        "fork": false, "default_branch": "main", "visibility": "private"
    })
}

fn label(name: &str, id: u64) -> Value {
    json!({
        "id": id, "node_id": format!("LA_{id}"),
        "url": format!("https://api.github.com/repos/{OWNER}/{REPO}/labels/{name}"),
        "name": name, "description": null, "color": "ededed", "default": false
    })
}

impl FakeGitHub {
    /// Serves GitHub for `org/manifests` whose git side is `bare`; `token` is the one personal
    /// token it accepts.
    pub fn start(bare: &Path, token: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let bare_path = bare.to_path_buf();
        let accepted = token.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let mut shutdown_rx = shutdown_rx;
                loop {
                    let (stream, _) = tokio::select! {
                        accepted = listener.accept() => accepted.unwrap(),
                        _ = &mut shutdown_rx => return,
                    };
                    let ctx = Ctx {
                        state: Arc::clone(&shared),
                        bare: bare_path.clone(),
                        token: accepted.clone(),
                        base_url: format!("http://{}", listener.local_addr().unwrap()),
                    };
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let ctx = ctx.clone();
                            async move { Ok::<_, Infallible>(ctx.handle(req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        let addr = addr_rx.recv().unwrap();
        Self {
            url: format!("http://{addr}"),
            state,
            bare: bare.to_path_buf(),
            token: token.to_string(),
            _shutdown: Arc::new(shutdown_tx),
        }
    }

    pub fn pulls(&self) -> Vec<Pull> {
        self.state.lock().unwrap().pulls.clone()
    }

    /// Commit statuses set, oldest first: (sha, request body).
    pub fn statuses(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().statuses.clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests that change something on GitHub (issuing tokens does not count).
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.path.ends_with("/access_tokens"))
            .collect()
    }

    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().issued_tokens.clone()
    }

    /// What a person closing the pull request in the web interface does.
    pub fn close(&self, number: u64) {
        let sha = {
            let state = self.state.lock().unwrap();
            let pr = state.pulls.iter().find(|p| p.number == number).unwrap();
            head_sha(&self.bare, &pr.head)
        };
        let mut state = self.state.lock().unwrap();
        let pr = state.pulls.iter_mut().find(|p| p.number == number).unwrap();
        pr.state = "closed".into();
        pr.closed_sha = sha;
    }

    /// Installation tokens issued from now on expire after `secs`.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.state.lock().unwrap().token_lifetime = Some(secs);
    }

    /// The next request gets this answer instead.
    pub fn inject(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        self.state.lock().unwrap().injected.push((
            status,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body.to_string(),
        ));
    }
}

fn head_sha(bare: &Path, branch: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args([
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}"),
        ])
        .current_dir(bare)
        .output()
        .unwrap_or_else(|e| panic!("cannot run git ({e}): install it with apt (git)"));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[derive(Clone)]
struct Ctx {
    state: Arc<Mutex<State>>,
    bare: PathBuf,
    token: String,
    base_url: String,
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json; charset=utf-8")
        .header("x-github-media-type", "github.v3; format=json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn error(status: u16, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        json!({ "message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string() }),
    )
}

/// Checks an RS256 app JWT against the test public key and the app id.
fn valid_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return false;
    }
    let key = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github_app/app-pub.der"),
    )
    .unwrap();
    let Ok(signature) = URL_SAFE_NO_PAD.decode(parts[2]) else {
        return false;
    };
    let signed = format!("{}.{}", parts[0], parts[1]);
    let verified =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
            .verify(signed.as_bytes(), &signature)
            .is_ok();
    let Ok(claims) = URL_SAFE_NO_PAD.decode(parts[1]) else {
        return false;
    };
    let claims: Value = serde_json::from_slice(&claims).unwrap_or(Value::Null);
    let iss_ok = claims["iss"] == json!(APP_ID.to_string()) || claims["iss"] == json!(APP_ID);
    let exp_ok = claims["exp"]
        .as_u64()
        .is_some_and(|e| e > now() && e <= now() + 600 + 60);
    verified && iss_ok && exp_ok
}

impl Ctx {
    fn html(&self, number: u64) -> String {
        format!("https://github.com/{OWNER}/{REPO}/pull/{number}")
    }

    fn pull_json(&self, pr: &Pull) -> Value {
        let sha = if pr.state == "open" {
            head_sha(&self.bare, &pr.head)
        } else {
            pr.closed_sha.clone()
        };
        let base_sha = head_sha(&self.bare, &pr.base).unwrap_or_default();
        let api = format!("https://api.github.com/repos/{OWNER}/{REPO}");
        json!({
            "url": format!("{api}/pulls/{}", pr.number),
            "id": 1000 + pr.number, "node_id": format!("PR_kwDO{}", pr.number),
            "html_url": self.html(pr.number),
            "diff_url": format!("{}.diff", self.html(pr.number)),
            "patch_url": format!("{}.patch", self.html(pr.number)),
            "issue_url": format!("{api}/issues/{}", pr.number),
            "commits_url": format!("{api}/pulls/{}/commits", pr.number),
            "review_comments_url": format!("{api}/pulls/{}/comments", pr.number),
            "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
            "comments_url": format!("{api}/issues/{}/comments", pr.number),
            "statuses_url": format!("{api}/statuses/{}", sha.clone().unwrap_or_default()),
            "number": pr.number, "state": pr.state, "locked": false, "title": pr.title,
            "user": user("tagsmith[bot]", 41898282, "Bot"), "body": pr.body,
            "labels": pr.labels.iter().enumerate().map(|(i, l)| label(l, i as u64 + 1)).collect::<Vec<_>>(),
            "milestone": null, "active_lock_reason": null,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "closed_at": if pr.state == "closed" { json!("2026-01-02T00:00:00Z") } else { Value::Null },
            "merged_at": if pr.merged { json!("2026-01-02T00:00:00Z") } else { Value::Null },
            "merge_commit_sha": null, "assignee": null, "assignees": [],
            "requested_reviewers": pr.reviewers.iter().enumerate().map(|(i, r)| user(r, 500 + i as u64, "User")).collect::<Vec<_>>(),
            "requested_teams": [],
            "head": { "label": format!("{OWNER}:{}", pr.head), "ref": pr.head, "sha": sha.unwrap_or_default(),
                      "user": user(OWNER, 9919, "Organization"), "repo": repository() },
            "base": { "label": format!("{OWNER}:{}", pr.base), "ref": pr.base, "sha": base_sha,
                      "user": user(OWNER, 9919, "Organization"), "repo": repository() },
            "_links": {}, "author_association": "NONE",
            "auto_merge": pr.auto_merge.as_ref().map(|m| json!({ "enabled_by": null, "merge_method": m.to_lowercase(), "commit_title": null, "commit_message": null })),
            "draft": pr.draft, "merged": pr.merged, "mergeable": null, "rebaseable": null,
            "mergeable_state": "unknown", "merged_by": null, "comments": 0, "review_comments": 0,
            "maintainer_can_modify": false, "commits": 1, "additions": 1, "deletions": 1, "changed_files": 1
        })
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let header = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let bearer = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("token "))
            .unwrap_or("");
        let auth = {
            let state = self.state.lock().unwrap();
            if !self.token.is_empty() && bearer == self.token {
                "token".to_string()
            } else if state.issued_tokens.iter().any(|t| t == bearer) {
                format!("installation:{bearer}")
            } else if valid_jwt(bearer) {
                "jwt".to_string()
            } else {
                "none".to_string()
            }
        };
        let injected = {
            let mut state = self.state.lock().unwrap();
            state.requests.push(Recorded {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                auth: auth.clone(),
            });
            (!state.injected.is_empty()).then(|| state.injected.remove(0))
        };
        if let Some((status, headers, text)) = injected {
            let mut response = Response::builder().status(status);
            for (k, v) in headers {
                response = response.header(k, v);
            }
            return response
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(text)))
                .unwrap();
        }
        if auth == "none" {
            return error(401, "Bad credentials");
        }
        // GitHub Enterprise serves the same API under /api/v3 and GraphQL at /api/graphql.
        let routed = match path.strip_prefix("/api/v3") {
            Some(rest) => rest.to_string(),
            None if path == "/api/graphql" => "/graphql".to_string(),
            None => path.clone(),
        };
        let segments: Vec<&str> = routed.trim_matches('/').split('/').collect();
        let app_only = segments.first() == Some(&"app")
            || (segments.len() == 4 && segments[3] == "installation");
        if app_only != (auth == "jwt") {
            return error(
                401,
                "A JSON web token could not be decoded or is not allowed here",
            );
        }
        match (method.as_str(), segments.as_slice()) {
            ("POST", ["app", "installations", id, "access_tokens"]) => {
                if *id != INSTALLATION_ID.to_string() {
                    return error(404, "Not Found");
                }
                let (token, lifetime) = {
                    let mut state = self.state.lock().unwrap();
                    let token = format!("ghs_fake{:04}", state.issued_tokens.len() + 1);
                    state.issued_tokens.push(token.clone());
                    (token, state.token_lifetime.unwrap_or(3600))
                };
                reply(
                    201,
                    json!({
                        "token": token, "expires_at": rfc3339(now() + lifetime),
                        "permissions": { "pull_requests": "write", "contents": "write", "issues": "write" },
                        "repository_selection": "selected"
                    }),
                )
            }
            ("GET", ["repos", o, r, "installation"]) if *o == OWNER && *r == REPO => reply(
                200,
                json!({
                    "id": INSTALLATION_ID, "account": user(OWNER, 9919, "Organization"),
                    "access_tokens_url": format!("{}/app/installations/{INSTALLATION_ID}/access_tokens", self.base_url),
                    "repositories_url": format!("{}/installation/repositories", self.base_url),
                    "html_url": format!("https://github.com/organizations/{OWNER}/settings/installations/{INSTALLATION_ID}"),
                    "app_id": APP_ID, "target_id": 9919, "target_type": "Organization",
                    "permissions": { "pull_requests": "write", "contents": "write", "issues": "write", "metadata": "read" },
                    "events": [], "single_file_name": null, "repository_selection": "selected",
                    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                    "app_slug": "tagsmith", "suspended_by": null, "suspended_at": null
                }),
            ),
            (_, ["repos", o, r, ..]) if *o != OWNER || *r != REPO => error(404, "Not Found"),
            // POST /repos/{owner}/{repo}/statuses/{sha}: GitHub answers 201 with the status
            // (docs.github.com, REST "Create a commit status").
            ("POST", ["repos", _, _, "statuses", sha]) => {
                let sha = sha.to_string();
                self.state
                    .lock()
                    .unwrap()
                    .statuses
                    .push((sha.clone(), body.clone()));
                reply(
                    201,
                    json!({
                        "url": format!("https://api.github.com/repos/{OWNER}/{REPO}/statuses/{sha}"),
                        "avatar_url": null, "id": 1, "node_id": "SC_kwDO1",
                        "state": body["state"], "description": body["description"],
                        "target_url": body["target_url"], "context": body["context"],
                        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                        "creator": user("tagsmith[bot]", 41898282, "Bot")
                    }),
                )
            }
            ("GET", ["repos", _, _, "pulls"]) => {
                let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
                let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let state_filter = get("state").unwrap_or_else(|| "open".into());
                let head = get("head");
                let base = get("base");
                let pulls = self.state.lock().unwrap().pulls.clone();
                let mut list: Vec<Value> = pulls
                    .iter()
                    .rev()
                    .filter(|p| state_filter == "all" || p.state == state_filter)
                    .filter(|p| {
                        head.as_ref()
                            .is_none_or(|h| *h == format!("{OWNER}:{}", p.head))
                    })
                    .filter(|p| base.as_ref().is_none_or(|b| *b == p.base))
                    .map(|p| self.pull_json(p))
                    .collect();
                list.truncate(30);
                reply(200, Value::Array(list))
            }
            ("POST", ["repos", _, _, "pulls"]) => {
                let head = body["head"].as_str().unwrap_or("").to_string();
                let base = body["base"].as_str().unwrap_or("").to_string();
                let (Some(head_sha), Some(base_sha)) =
                    (head_sha(&self.bare, &head), head_sha(&self.bare, &base))
                else {
                    return reply(
                        422,
                        json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "field": "head", "code": "invalid" }] }),
                    );
                };
                if head_sha == base_sha {
                    return reply(
                        422,
                        json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "code": "custom", "message": format!("No commits between {base} and {head}") }] }),
                    );
                }
                let mut state = self.state.lock().unwrap();
                if state
                    .pulls
                    .iter()
                    .any(|p| p.state == "open" && p.head == head && p.base == base)
                {
                    return reply(
                        422,
                        json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {OWNER}:{head}.") }] }),
                    );
                }
                let pr = Pull {
                    number: state.pulls.len() as u64 + 1,
                    state: "open".into(),
                    title: body["title"].as_str().unwrap_or("").into(),
                    body: body["body"].as_str().unwrap_or("").into(),
                    head,
                    base,
                    draft: body["draft"].as_bool().unwrap_or(false),
                    merged: false,
                    labels: Vec::new(),
                    reviewers: Vec::new(),
                    team_reviewers: Vec::new(),
                    auto_merge: None,
                    closed_sha: None,
                };
                state.pulls.push(pr.clone());
                drop(state);
                reply(201, self.pull_json(&pr))
            }
            ("PATCH", ["repos", _, _, "pulls", n]) => {
                let mut state = self.state.lock().unwrap();
                let Some(pr) = state.pulls.iter_mut().find(|p| p.number.to_string() == *n) else {
                    return error(404, "Not Found");
                };
                if let Some(t) = body["title"].as_str() {
                    pr.title = t.into();
                }
                if let Some(b) = body["body"].as_str() {
                    pr.body = b.into();
                }
                let pr = pr.clone();
                drop(state);
                reply(200, self.pull_json(&pr))
            }
            ("POST", ["repos", _, _, "issues", n, "labels"]) => {
                let mut state = self.state.lock().unwrap();
                let Some(pr) = state.pulls.iter_mut().find(|p| p.number.to_string() == *n) else {
                    return error(404, "Not Found");
                };
                for l in body["labels"].as_array().into_iter().flatten() {
                    let l = l.as_str().unwrap_or("").to_string();
                    if !pr.labels.contains(&l) {
                        pr.labels.push(l);
                    }
                }
                let labels: Vec<Value> = pr
                    .labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| label(l, i as u64 + 1))
                    .collect();
                reply(200, Value::Array(labels))
            }
            ("POST", ["repos", _, _, "pulls", n, "requested_reviewers"]) => {
                let mut state = self.state.lock().unwrap();
                let Some(pr) = state.pulls.iter_mut().find(|p| p.number.to_string() == *n) else {
                    return error(404, "Not Found");
                };
                for r in body["reviewers"].as_array().into_iter().flatten() {
                    pr.reviewers.push(r.as_str().unwrap_or("").into());
                }
                for t in body["team_reviewers"].as_array().into_iter().flatten() {
                    pr.team_reviewers.push(t.as_str().unwrap_or("").into());
                }
                let pr = pr.clone();
                drop(state);
                reply(201, self.pull_json(&pr))
            }
            ("POST", ["graphql"]) => {
                let query = body["query"].as_str().unwrap_or("");
                if !query.contains("enablePullRequestAutoMerge") {
                    return reply(
                        200,
                        json!({ "errors": [{ "message": "unsupported query" }] }),
                    );
                }
                let id = body["variables"]["id"].as_str().unwrap_or("");
                let method = body["variables"]["method"].as_str().unwrap_or("");
                let mut state = self.state.lock().unwrap();
                let Some(pr) = state
                    .pulls
                    .iter_mut()
                    .find(|p| format!("PR_kwDO{}", p.number) == id)
                else {
                    return reply(
                        200,
                        json!({ "errors": [{ "type": "NOT_FOUND", "message": format!("Could not resolve to a node with the global id of '{id}'") }] }),
                    );
                };
                pr.auto_merge = Some(method.to_string());
                let number = pr.number;
                reply(
                    200,
                    json!({ "data": { "enablePullRequestAutoMerge": { "pullRequest": { "number": number } } } }),
                )
            }
            _ => error(404, "Not Found"),
        }
    }
}

/// Everything the fake was asked, for assertion messages.
pub fn describe(requests: &[Recorded]) -> String {
    requests
        .iter()
        .map(|r| format!("{} {}?{} [{}]", r.method, r.path, r.query, r.auth))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn labels_of(pr: &Pull) -> BTreeSet<String> {
    pr.labels.iter().cloned().collect()
}
