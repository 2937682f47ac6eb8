//! Test harness: an in-process fake of Gitea's (and Forgejo's) REST API v1 for pull requests
//! on 127.0.0.1, answering in the JSON shapes of Gitea's API document
//! (https://gitea.com/api/swagger: PullRequest, PRBranchInfo, Label, APIError). It keeps pull
//! request state, reads head commits from the real bare repository, checks the
//! `Authorization: token ...` header and records every request. The HTTP server is the GitLab
//! fake's [`serve`].

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::gitlab_fake::{Canned, Req, Server, branch_sha, reply, serve};

pub const OWNER: &str = "org";
pub const REPO: &str = "manifests";
/// Labels the repository has: (id, name).
pub const LABELS: [(u64, &str); 3] = [(1, "automated"), (2, "images"), (3, "bug")];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorized: bool,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    /// `open` or `closed`.
    pub state: String,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub merged: bool,
    pub label_ids: Vec<u64>,
    pub assignees: Vec<String>,
    pub reviewers: Vec<String>,
    pub team_reviewers: Vec<String>,
    /// The `Do` of a scheduled auto-merge.
    pub auto_merge: Option<String>,
    pub closed_sha: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    pulls: Vec<Pull>,
    requests: Vec<Recorded>,
    injected: Vec<Canned>,
}

pub struct FakeGitea {
    /// The API base, `http://127.0.0.1:PORT/api/v1`.
    pub api_url: String,
    state: Arc<Mutex<State>>,
    bare: PathBuf,
    _server: Server,
}

fn user(login: &str, id: u64) -> Value {
    json!({
        "id": id, "login": login, "login_name": "", "full_name": "", "email": format!("{login}@noreply.gitea.example.com"),
        "avatar_url": format!("https://gitea.example.com/avatars/{id}"), "language": "", "is_admin": false,
        "last_login": "2026-01-01T00:00:00Z", "created": "2026-01-01T00:00:00Z", "restricted": false,
        "active": true, "prohibit_login": false, "location": "", "website": "", "description": "",
        "visibility": "public", "followers_count": 0, "following_count": 0, "starred_repos_count": 0,
        "username": login
    })
}

fn label(id: u64) -> Value {
    let name = LABELS
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("?", |(_, n)| n);
    json!({
        "id": id, "name": name, "exclusive": false, "is_archived": false, "color": "e11d21",
        "description": "", "url": format!("https://gitea.example.com/api/v1/repos/{OWNER}/{REPO}/labels/{id}")
    })
}

fn repository() -> Value {
    json!({
        "id": 7, "owner": user(OWNER, 2), "name": REPO, "full_name": format!("{OWNER}/{REPO}"),
        "private": true, "fork": false, "html_url": format!("https://gitea.example.com/{OWNER}/{REPO}"),
        "default_branch": "main"
    })
}

/// A pull request as the API document's `PullRequest` definition has it.
fn pull_json(bare: &Path, pr: &Pull) -> Value {
    let sha = if pr.state == "open" {
        branch_sha(bare, &pr.head)
    } else {
        pr.closed_sha.clone()
    };
    let html = format!(
        "https://gitea.example.com/{OWNER}/{REPO}/pulls/{}",
        pr.number
    );
    let branch = |name: &str, sha: Option<String>| json!({ "label": name, "ref": name, "sha": sha.unwrap_or_default(), "repo_id": 7, "repo": repository() });
    let assignees: Vec<Value> = pr
        .assignees
        .iter()
        .enumerate()
        .map(|(i, a)| user(a, 20 + i as u64))
        .collect();
    json!({
        "id": 500 + pr.number, "url": html, "number": pr.number, "user": user("tagsmith-bot", 9),
        "title": pr.title, "body": pr.body,
        "labels": pr.label_ids.iter().map(|id| label(*id)).collect::<Vec<_>>(),
        "milestone": null, "assignee": assignees.first().cloned(), "assignees": assignees,
        "requested_reviewers": pr.reviewers.iter().enumerate().map(|(i, r)| user(r, 30 + i as u64)).collect::<Vec<_>>(),
        "state": pr.state, "draft": pr.title.starts_with("WIP:"), "is_locked": false, "comments": 0,
        "additions": 1, "deletions": 1, "changed_files": 1,
        "html_url": html, "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
        "mergeable": true, "merged": pr.merged, "merged_at": null, "merge_commit_sha": null, "merged_by": null,
        "allow_maintainer_edit": false,
        "base": branch(&pr.base, branch_sha(bare, &pr.base)), "head": branch(&pr.head, sha),
        "merge_base": branch_sha(bare, &pr.base).unwrap_or_default(),
        "due_date": null, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "closed_at": if pr.state == "closed" { json!("2026-01-02T00:00:00Z") } else { Value::Null },
        "pin_order": 0
    })
}

/// Gitea's `APIError`.
fn error(status: u16, message: &str) -> Canned {
    reply(
        status,
        json!({ "message": message, "url": "https://gitea.example.com/api/swagger" }),
    )
}

impl FakeGitea {
    /// Serves `org/manifests` whose git side is `bare`, accepting `token`.
    pub fn start(bare: &Path, token: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let bare_path = bare.to_path_buf();
        let expected = format!("token {token}");
        let server = serve(move |req| handle(&shared, &bare_path, &expected, req));
        Self {
            api_url: format!("{}/api/v1", server.url),
            state,
            bare: bare.to_path_buf(),
            _server: server,
        }
    }

    pub fn pulls(&self) -> Vec<Pull> {
        self.state.lock().unwrap().pulls.clone()
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

    pub fn close(&self, number: u64) {
        let mut state = self.state.lock().unwrap();
        let pr = state.pulls.iter_mut().find(|p| p.number == number).unwrap();
        pr.state = "closed".into();
        pr.closed_sha = branch_sha(&self.bare, &pr.head);
    }

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

fn handle(state: &Mutex<State>, bare: &Path, expected: &str, req: Req) -> Canned {
    let authorized = req.headers.get("authorization").map(String::as_str) == Some(expected);
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
        return error(401, "token is required");
    }
    let Some(route) = req.path.strip_prefix("/api/v1/") else {
        return error(404, "not found");
    };
    let segments: Vec<&str> = route.split('/').collect();
    let find = |s: &mut State, n: &str| s.pulls.iter().position(|p| p.number.to_string() == n);
    match (req.method.as_str(), segments.as_slice()) {
        (_, ["repos", o, r, ..]) if *o != OWNER || *r != REPO => {
            error(404, "The target couldn't be found.")
        }
        ("GET", ["repos", _, _, "pulls"]) => {
            let wanted = req.param("state").unwrap_or_else(|| "open".into());
            let page: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let limit: usize = req
                .param("limit")
                .and_then(|p| p.parse().ok())
                .unwrap_or(30);
            let pulls = state.lock().unwrap().pulls.clone();
            let list: Vec<Value> = pulls
                .iter()
                .rev()
                .filter(|p| wanted == "all" || p.state == wanted)
                .skip((page.max(1) - 1) * limit)
                .take(limit)
                .map(|p| pull_json(bare, p))
                .collect();
            reply(200, Value::Array(list))
        }
        ("POST", ["repos", _, _, "pulls"]) => {
            let head = req.body["head"].as_str().unwrap_or("").to_string();
            let base = req.body["base"].as_str().unwrap_or("").to_string();
            let (Some(head_sha), Some(base_sha)) =
                (branch_sha(bare, &head), branch_sha(bare, &base))
            else {
                return error(404, "The target couldn't be found.");
            };
            if head_sha == base_sha {
                return error(422, "There are no changes between the head and the base");
            }
            let mut s = state.lock().unwrap();
            if let Some(open) = s
                .pulls
                .iter()
                .find(|p| p.state == "open" && p.head == head && p.base == base)
            {
                return error(
                    409,
                    &format!(
                        "pull request already exists for these targets [id: {}, issue_id: {}, head_repo_id: 7, base_repo_id: 7, head_branch: {head}, base_branch: {base}]",
                        500 + open.number,
                        open.number
                    ),
                );
            }
            let pr = Pull {
                number: s.pulls.len() as u64 + 1,
                state: "open".into(),
                title: req.body["title"].as_str().unwrap_or("").into(),
                body: req.body["body"].as_str().unwrap_or("").into(),
                head,
                base,
                merged: false,
                label_ids: req.body["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect(),
                assignees: req.body["assignees"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(String::from))
                    .collect(),
                reviewers: Vec::new(),
                team_reviewers: Vec::new(),
                auto_merge: None,
                closed_sha: None,
            };
            s.pulls.push(pr.clone());
            reply(201, pull_json(bare, &pr))
        }
        ("PATCH", ["repos", _, _, "pulls", n]) => {
            let mut s = state.lock().unwrap();
            let Some(i) = find(&mut s, n) else {
                return error(404, "The target couldn't be found.");
            };
            let pr = &mut s.pulls[i];
            if let Some(t) = req.body["title"].as_str() {
                pr.title = t.into();
            }
            if let Some(b) = req.body["body"].as_str() {
                pr.body = b.into();
            }
            let pr = pr.clone();
            reply(201, pull_json(bare, &pr))
        }
        ("GET", ["repos", _, _, "labels"]) => {
            let page: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let list: Vec<Value> = if page == 1 {
                LABELS.iter().map(|(id, _)| label(*id)).collect()
            } else {
                Vec::new()
            };
            reply(200, Value::Array(list))
        }
        ("POST", ["repos", _, _, "issues", n, "labels"]) => {
            let mut s = state.lock().unwrap();
            let Some(i) = find(&mut s, n) else {
                return error(404, "The target couldn't be found.");
            };
            let pr = &mut s.pulls[i];
            for id in req.body["labels"].as_array().into_iter().flatten() {
                let Some(id) = id.as_u64().filter(|id| LABELS.iter().any(|(l, _)| l == id)) else {
                    return error(422, &format!("label does not exist [id: {id}]"));
                };
                if !pr.label_ids.contains(&id) {
                    pr.label_ids.push(id);
                }
            }
            reply(
                200,
                Value::Array(pr.label_ids.iter().map(|id| label(*id)).collect()),
            )
        }
        ("POST", ["repos", _, _, "pulls", n, "requested_reviewers"]) => {
            let mut s = state.lock().unwrap();
            let Some(i) = find(&mut s, n) else {
                return error(404, "The target couldn't be found.");
            };
            let pr = &mut s.pulls[i];
            let names = |key: &str| -> Vec<String> {
                req.body[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            };
            pr.reviewers.extend(names("reviewers"));
            pr.team_reviewers.extend(names("team_reviewers"));
            let reviews: Vec<Value> = pr.reviewers.iter().enumerate().map(|(k, r)| json!({
                "id": 70 + k, "user": user(r, 30 + k as u64), "team": null, "state": "REQUEST_REVIEW",
                "body": "", "commit_id": "", "stale": false, "official": false, "dismissed": false,
                "comments_count": 0, "submitted_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                "html_url": "", "pull_request_url": ""
            })).collect();
            reply(201, Value::Array(reviews))
        }
        ("POST", ["repos", _, _, "pulls", n, "merge"]) => {
            let mut s = state.lock().unwrap();
            let Some(i) = find(&mut s, n) else {
                return error(404, "The target couldn't be found.");
            };
            let pr = &mut s.pulls[i];
            if req.body["merge_when_checks_succeed"] != json!(true) {
                return error(405, "this fake only schedules auto-merges");
            }
            if let Some(sha) = req.body["head_commit_id"].as_str()
                && Some(sha.to_string()) != branch_sha(bare, &pr.head)
            {
                return error(409, "head out of date");
            }
            if pr.auto_merge.is_some() {
                // models/pull/automerge.go: ErrAlreadyScheduledToAutoMerge
                return error(
                    409,
                    &format!(
                        "Pull request is already scheduled to auto merge when checks succeed [pull_id: {}]",
                        500 + pr.number
                    ),
                );
            }
            pr.auto_merge = req.body["Do"].as_str().map(String::from);
            Canned {
                status: 200,
                headers: Vec::new(),
                body: String::new(),
            }
        }
        _ => error(404, "not found"),
    }
}

pub fn describe(requests: &[Recorded]) -> String {
    requests
        .iter()
        .map(|r| format!("{} {}?{} [{}]", r.method, r.path, r.query, r.authorized))
        .collect::<Vec<_>>()
        .join("\n")
}
