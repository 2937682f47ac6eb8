//! Test harness: an in-process fake of GitLab's REST API v4 (merge requests and the users
//! lookup) on 127.0.0.1. It answers in the JSON shapes of GitLab's API documentation
//! (https://docs.gitlab.com/api/merge_requests/, https://docs.gitlab.com/api/users/), keeps
//! merge request state, reads head commits from the real bare repository, checks the
//! `PRIVATE-TOKEN` header and records every request. [`serve`] is the small HTTP server the
//! Gitea fake shares.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

pub const PROJECT: &str = "org/manifests";
/// Users the fake knows, as `/users?username=` finds them.
pub const USERS: [(&str, u64); 2] = [("alice", 11), ("bob", 12)];

/// A request as the handler sees it (headers lower-cased).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

impl Req {
    pub fn param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// An answer: status, headers, body.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

pub fn reply(status: u16, body: Value) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

/// An HTTP/1 server on 127.0.0.1 answering with `handler`; stops when dropped.
pub struct Server {
    pub url: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub fn serve<F: Fn(Req) -> Canned + Send + Sync + 'static>(handler: F) -> Server {
    let handler = Arc::new(handler);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    let (shutdown_tx, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap(),
                    _ = &mut shutdown_rx => return,
                };
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let handler = Arc::clone(&handler);
                            async move {
                                let method = req.method().to_string();
                                let path = req.uri().path().to_string();
                                let query = req.uri().query().unwrap_or("").to_string();
                                let headers = req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_string(),
                                            v.to_str().unwrap_or("").to_string(),
                                        )
                                    })
                                    .collect();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                let canned = handler(Req {
                                    method,
                                    path,
                                    query,
                                    headers,
                                    body,
                                });
                                let mut response = Response::builder()
                                    .status(StatusCode::from_u16(canned.status).unwrap())
                                    .header("content-type", "application/json");
                                for (k, v) in canned.headers {
                                    response = response.header(k, v);
                                }
                                Ok::<_, Infallible>(
                                    response.body(Full::new(Bytes::from(canned.body))).unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    Server {
        url: format!("http://{}", addr_rx.recv().unwrap()),
        _shutdown: shutdown_tx,
    }
}

/// The commit a branch of the bare repository holds, if it exists.
pub fn branch_sha(bare: &Path, branch: &str) -> Option<String> {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Whether the request carried the accepted token in `PRIVATE-TOKEN`.
    pub authorized: bool,
}

#[derive(Debug, Clone)]
pub struct MergeRequest {
    pub iid: u64,
    /// `opened`, `closed` or `merged`.
    pub state: String,
    pub title: String,
    pub description: String,
    pub source_branch: String,
    pub target_branch: String,
    pub labels: Vec<String>,
    pub assignee_ids: Vec<u64>,
    pub reviewer_ids: Vec<u64>,
    pub merge_when_pipeline_succeeds: bool,
    pub squash: bool,
    /// The head when it was closed (GitLab stops following the branch).
    pub closed_sha: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    mrs: Vec<MergeRequest>,
    requests: Vec<Recorded>,
    injected: Vec<Canned>,
}

pub struct FakeGitLab {
    /// The API base, `http://127.0.0.1:PORT/api/v4`.
    pub api_url: String,
    state: Arc<Mutex<State>>,
    bare: PathBuf,
    _server: Server,
}

fn user(username: &str, id: u64) -> Value {
    json!({
        "id": id, "username": username, "name": username, "state": "active", "locked": false,
        "avatar_url": format!("https://gitlab.example.com/uploads/-/system/user/avatar/{id}/avatar.png"),
        "web_url": format!("https://gitlab.example.com/{username}")
    })
}

/// A merge request as "Get single MR" documents it (fields tagsmith does not read included).
fn mr_json(bare: &Path, mr: &MergeRequest) -> Value {
    let sha = if mr.state == "opened" {
        branch_sha(bare, &mr.source_branch)
    } else {
        mr.closed_sha.clone()
    };
    let users = |ids: &[u64]| -> Vec<Value> {
        ids.iter()
            .map(|id| {
                let name = USERS.iter().find(|(_, i)| i == id).map_or("?", |(n, _)| n);
                user(name, *id)
            })
            .collect()
    };
    let assignees = users(&mr.assignee_ids);
    json!({
        "id": 9000 + mr.iid, "iid": mr.iid, "project_id": 3,
        "title": mr.title, "description": mr.description, "state": mr.state,
        "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
        "merged_by": null, "merge_user": null, "merged_at": null, "closed_by": null,
        "closed_at": if mr.state == "closed" { json!("2026-01-02T00:00:00.000Z") } else { Value::Null },
        "target_branch": mr.target_branch, "source_branch": mr.source_branch,
        "user_notes_count": 0, "upvotes": 0, "downvotes": 0,
        "author": user("tagsmith-bot", 99), "assignee": assignees.first().cloned(),
        "assignees": assignees, "reviewers": users(&mr.reviewer_ids),
        "source_project_id": 3, "target_project_id": 3, "labels": mr.labels,
        "draft": mr.title.to_ascii_lowercase().starts_with("draft:"),
        "work_in_progress": mr.title.to_ascii_lowercase().starts_with("draft:"),
        "milestone": null, "merge_when_pipeline_succeeds": mr.merge_when_pipeline_succeeds,
        "merge_status": "can_be_merged", "detailed_merge_status": "mergeable",
        "sha": sha, "merge_commit_sha": null, "squash_commit_sha": null,
        "discussion_locked": null, "should_remove_source_branch": null,
        "force_remove_source_branch": false, "reference": format!("!{}", mr.iid),
        "references": { "short": format!("!{}", mr.iid), "relative": format!("!{}", mr.iid),
                        "full": format!("{PROJECT}!{}", mr.iid) },
        "web_url": format!("https://gitlab.example.com/{PROJECT}/-/merge_requests/{}", mr.iid),
        "time_stats": { "time_estimate": 0, "total_time_spent": 0, "human_time_estimate": null, "human_total_time_spent": null },
        "squash": mr.squash, "squash_on_merge": mr.squash,
        "task_completion_status": { "count": 0, "completed_count": 0 },
        "has_conflicts": false, "blocking_discussions_resolved": true
    })
}

fn message(status: u16, text: &str) -> Canned {
    reply(status, json!({ "message": text }))
}

impl FakeGitLab {
    /// Serves project `org/manifests` whose git side is `bare`, accepting `token`.
    pub fn start(bare: &Path, token: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let bare_path = bare.to_path_buf();
        let token = token.to_string();
        let server = serve(move |req| handle(&shared, &bare_path, &token, req));
        Self {
            api_url: format!("{}/api/v4", server.url),
            state,
            bare: bare.to_path_buf(),
            _server: server,
        }
    }

    pub fn mrs(&self) -> Vec<MergeRequest> {
        self.state.lock().unwrap().mrs.clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    /// What a person closing the merge request in the web interface does.
    pub fn close(&self, iid: u64) {
        let mut state = self.state.lock().unwrap();
        let mr = state.mrs.iter_mut().find(|m| m.iid == iid).unwrap();
        mr.state = "closed".into();
        mr.closed_sha = branch_sha(&self.bare, &mr.source_branch);
    }

    /// The next request gets this answer instead.
    pub fn inject(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        self.state.lock().unwrap().injected.push(Canned {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string(),
        });
    }
}

fn handle(state: &Mutex<State>, bare: &Path, token: &str, req: Req) -> Canned {
    let authorized = req.headers.get("private-token").map(String::as_str) == Some(token);
    let injected = {
        let mut s = state.lock().unwrap();
        s.requests.push(Recorded {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            authorized,
        });
        (!s.injected.is_empty()).then(|| s.injected.remove(0))
    };
    if let Some(canned) = injected {
        return canned;
    }
    if !authorized {
        return message(401, "401 Unauthorized");
    }
    let Some(route) = req.path.strip_prefix("/api/v4/") else {
        return message(404, "404 Not Found");
    };
    let segments: Vec<&str> = route.split('/').collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["users"]) => {
            let wanted = req.param("username").unwrap_or_default();
            let found: Vec<Value> = USERS
                .iter()
                .filter(|(n, _)| *n == wanted)
                .map(|(n, id)| user(n, *id))
                .collect();
            reply(200, Value::Array(found))
        }
        (_, ["projects", id, ..]) if *id != "org%2Fmanifests" => {
            message(404, "404 Project Not Found")
        }
        ("GET", ["projects", _, "merge_requests"]) => {
            let source = req.param("source_branch");
            let target = req.param("target_branch");
            let wanted = req.param("state");
            let mrs = state.lock().unwrap().mrs.clone();
            let list: Vec<Value> = mrs
                .iter()
                .rev()
                .filter(|m| source.as_ref().is_none_or(|s| *s == m.source_branch))
                .filter(|m| target.as_ref().is_none_or(|t| *t == m.target_branch))
                .filter(|m| wanted.as_ref().is_none_or(|w| w == "all" || *w == m.state))
                .map(|m| mr_json(bare, m))
                .collect();
            reply(200, Value::Array(list))
        }
        ("POST", ["projects", _, "merge_requests"]) => {
            let source = req.body["source_branch"].as_str().unwrap_or("").to_string();
            let target = req.body["target_branch"].as_str().unwrap_or("").to_string();
            if branch_sha(bare, &source).is_none() {
                return message(400, "Source branch does not exist");
            }
            let mut s = state.lock().unwrap();
            if let Some(open) = s.mrs.iter().find(|m| {
                m.state == "opened" && m.source_branch == source && m.target_branch == target
            }) {
                return reply(
                    409,
                    json!({ "message": [format!("Another open merge request already exists for this source branch: !{}", open.iid)] }),
                );
            }
            let ids = |key: &str| -> Vec<u64> {
                req.body[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect()
            };
            let mr = MergeRequest {
                iid: s.mrs.len() as u64 + 1,
                state: "opened".into(),
                title: req.body["title"].as_str().unwrap_or("").into(),
                description: req.body["description"].as_str().unwrap_or("").into(),
                source_branch: source,
                target_branch: target,
                labels: Vec::new(),
                assignee_ids: ids("assignee_ids"),
                reviewer_ids: ids("reviewer_ids"),
                merge_when_pipeline_succeeds: false,
                squash: false,
                closed_sha: None,
            };
            s.mrs.push(mr.clone());
            reply(201, mr_json(bare, &mr))
        }
        ("PUT", ["projects", _, "merge_requests", iid]) => {
            let mut s = state.lock().unwrap();
            let Some(mr) = s.mrs.iter_mut().find(|m| m.iid.to_string() == *iid) else {
                return message(404, "404 Not found");
            };
            if let Some(t) = req.body["title"].as_str() {
                mr.title = t.into();
            }
            if let Some(d) = req.body["description"].as_str() {
                mr.description = d.into();
            }
            if let Some(add) = req.body["add_labels"].as_str() {
                for l in add.split(',').filter(|l| !l.is_empty()) {
                    if !mr.labels.iter().any(|x| x == l) {
                        mr.labels.push(l.to_string());
                    }
                }
            }
            if let Some(ids) = req.body["reviewer_ids"].as_array() {
                mr.reviewer_ids = ids.iter().filter_map(Value::as_u64).collect();
            }
            let mr = mr.clone();
            drop(s);
            reply(200, mr_json(bare, &mr))
        }
        ("PUT", ["projects", _, "merge_requests", iid, "merge"]) => {
            let mut s = state.lock().unwrap();
            let Some(mr) = s.mrs.iter_mut().find(|m| m.iid.to_string() == *iid) else {
                return message(404, "404 Not found");
            };
            if mr.state != "opened" {
                return message(405, "405 Method Not Allowed");
            }
            if let Some(sha) = req.body["sha"].as_str()
                && Some(sha.to_string()) != branch_sha(bare, &mr.source_branch)
            {
                return message(409, "SHA does not match HEAD of source branch");
            }
            mr.merge_when_pipeline_succeeds = req.body["merge_when_pipeline_succeeds"]
                == json!(true)
                || req.body["auto_merge"] == json!(true);
            mr.squash = req.body["squash"] == json!(true);
            let mr = mr.clone();
            drop(s);
            reply(200, mr_json(bare, &mr))
        }
        _ => message(404, "404 Not Found"),
    }
}

/// Everything the fake was asked, for assertion messages.
pub fn describe(requests: &[Recorded]) -> String {
    requests
        .iter()
        .map(|r| format!("{} {}?{} [{}]", r.method, r.path, r.query, r.authorized))
        .collect::<Vec<_>>()
        .join("\n")
}
