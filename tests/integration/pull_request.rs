//! Pull request delivery end to end: the binary against the real registry, real Git remotes
//! (bare repositories, pushed branches checked) and the in-process fake of GitHub's API.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use crate::github_fake::{APP_ID, FakeGitHub, INSTALLATION_ID, describe};
use crate::gitserver::{GitHttpServer, bare_repo, commit_elsewhere, count_commits, git, rev, show};
use crate::support::{Auth, Registry};

const TOKEN: &str = "ghp_tagsmithtest0123456789";
const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: REG/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\n";

fn tagsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .env("TAGSMITH_TEST_GITHUB_TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn push(registry: &Registry, repo: &str, tags: &[&str]) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags(repo, &tags));
}

struct Setup {
    _git_server: Option<GitHttpServer>,
    registry: Registry,
    _tmp: tempfile::TempDir,
    bare: std::path::PathBuf,
    github: FakeGitHub,
    config: String,
    state: String,
}

/// `auth` is the YAML of `pullRequest.auth`.
fn setup(auth: &str, token: &str) -> Setup {
    setup_at(auth, token, "")
}

/// `api_path`: appended to the fake's URL for `apiUrl` (GitHub Enterprise: `/api/v3`).
fn setup_at(auth: &str, token: &str, api_path: &str) -> Setup {
    setup_full(auth, token, api_path, None)
}

/// `git_basic_auth`: serve the repository over smart HTTP with these credentials instead of file://.
fn setup_full(
    auth: &str,
    token: &str,
    api_path: &str,
    git_basic_auth: Option<(&str, &str)>,
) -> Setup {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.1.0", "2.0.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[
            ("apps/app.yaml", &APP.replace("REG", &registry.host)),
            ("apps/copy.yaml", &APP.replace("REG", &registry.host)),
        ],
    );
    let github = FakeGitHub::start(&bare, token);
    let git_server =
        git_basic_auth.map(|creds| GitHttpServer::start(tmp.path(), Some(creds), None));
    let git_url = match &git_server {
        Some(server) => format!("{}/manifests.git", server.base_url),
        None => format!("file://{}", bare.display()),
    };
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n\
             \x20 - policy: team-a:app\n    image: {reg}/org/app\n    semver: '^1'\n\
             targets:\n\
             \x20 - name: prod\n    git: {{ url: '{git_url}', branch: main }}\n    paths: [apps]\n\
             \x20   commit: {{ author: {{ name: tagsmith-bot, email: bot@example.invalid }} }}\n\
             \x20   push:\n      pullRequest:\n        repository: org/manifests\n        apiUrl: {api}{api_path}\n\
             \x20       labels: [automated, images]\n        reviewers: [alice, org/platform]\n\
             \x20       autoMerge: squash\n        auth: {auth}\n\
             registries:\n  - host: {reg}\n    insecure: true\n",
            reg = registry.host,
            api = github.url,
        ),
    )
    .unwrap();
    let state = tmp.path().join("state").display().to_string();
    Setup {
        _git_server: git_server,
        config: config.display().to_string(),
        registry,
        _tmp: tmp,
        bare,
        github,
        state,
    }
}

impl Setup {
    fn once(&self, extra: &[&str]) -> (Output, String) {
        let mut args = vec!["once", "-c", &self.config, "--state-dir", &self.state];
        args.extend_from_slice(extra);
        let out = tagsmith(&args);
        let stdout = text(&out.stdout);
        (out, stdout)
    }

    fn once_ok(&self) -> String {
        let (out, stdout) = self.once(&[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}{}\nrequests:\n{}",
            text(&out.stderr),
            describe(&self.github.requests())
        );
        stdout
    }
}

fn token_setup() -> Setup {
    setup("{ tokenEnv: TAGSMITH_TEST_GITHUB_TOKEN }", TOKEN)
}

#[test]
fn opens_then_updates_the_same_pull_request_then_writes_nothing() {
    let s = token_setup();
    let main_before = rev(&s.bare, "main");

    // First run: a pull request from the head branch, main untouched.
    let stdout = s.once_ok();
    assert!(
        stdout.contains(
            "target prod: pull request #1 created https://github.com/org/manifests/pull/1"
        ),
        "{stdout}"
    );
    assert_eq!(rev(&s.bare, "main"), main_before);
    let head1 = rev(&s.bare, "tagsmith/prod");
    assert_eq!(rev(&s.bare, "tagsmith/prod^"), main_before);
    assert!(show(&s.bare, "tagsmith/prod", "apps/app.yaml").contains("org/app:1.1.0 #"));
    let pulls = s.github.pulls();
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0];
    assert_eq!(
        (pr.head.as_str(), pr.base.as_str()),
        ("tagsmith/prod", "main")
    );
    assert_eq!(pr.title, "Update container images (prod)");
    let row = format!(
        "| `{}/org/app` | `{reg}/org/app:1.0.0` -> `{reg}/org/app:1.1.0` | `apps/app.yaml`<br>`apps/copy.yaml` | `team-a:app` |",
        s.registry.host,
        reg = s.registry.host
    );
    assert!(pr.body.contains(&row), "{}\nwanted {row}", pr.body);
    assert_eq!(pr.labels, ["automated", "images"]);
    assert_eq!(pr.reviewers, ["alice"]);
    assert_eq!(pr.team_reviewers, ["platform"]);
    assert_eq!(pr.auto_merge.as_deref(), Some("SQUASH"));
    let requests = s.github.requests();
    assert!(
        requests.iter().all(|r| r.auth == "token"),
        "{}",
        describe(&requests)
    );

    // Second run with a new tag: the same pull request, a new head commit on top of main.
    push(&s.registry, "org/app", &["1.2.0"]);
    let writes_before = s.github.writes().len();
    let stdout = s.once_ok();
    assert!(
        stdout.contains(
            "target prod: pull request #1 updated https://github.com/org/manifests/pull/1"
        ),
        "{stdout}"
    );
    let head2 = rev(&s.bare, "tagsmith/prod");
    assert_ne!(head2, head1);
    assert_eq!(rev(&s.bare, "tagsmith/prod^"), main_before);
    assert!(show(&s.bare, "tagsmith/prod", "apps/app.yaml").contains("org/app:1.2.0 #"));
    let pulls = s.github.pulls();
    assert_eq!(pulls.len(), 1);
    assert!(
        pulls[0].body.contains("/org/app:1.2.0`"),
        "{}",
        pulls[0].body
    );
    let writes = s.github.writes();
    let new_writes = &writes[writes_before..];
    assert_eq!(new_writes.len(), 1, "{}", describe(new_writes));
    assert_eq!(new_writes[0].method, "PATCH");
    assert_eq!(
        pulls[0].labels,
        ["automated", "images"],
        "labels are set once"
    );

    // Third run, nothing new: no push, no API write.
    let writes_before = s.github.writes().len();
    let (out, stdout) = s.once(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let target = &report["targets"][0];
    assert_eq!(target["outcome"], "pull_request", "{stdout}");
    assert_eq!(target["action"], "unchanged", "{stdout}");
    assert_eq!(target["number"], 1, "{stdout}");
    assert_eq!(target["url"], "https://github.com/org/manifests/pull/1");
    assert_eq!(rev(&s.bare, "tagsmith/prod"), head2);
    assert_eq!(
        s.github.writes().len(),
        writes_before,
        "{}",
        describe(&s.github.writes())
    );
}

#[test]
fn a_closed_pull_request_is_not_reopened_until_there_are_new_changes() {
    let s = token_setup();
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 created"), "{stdout}");
    let head = rev(&s.bare, "tagsmith/prod");
    s.github.close(1);

    let writes_before = s.github.writes().len();
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 left_closed"), "{stdout}");
    assert_eq!(
        s.github.writes().len(),
        writes_before,
        "{}",
        describe(&s.github.writes())
    );
    assert_eq!(rev(&s.bare, "tagsmith/prod"), head);
    assert_eq!(s.github.pulls().len(), 1);

    push(&s.registry, "org/app", &["1.3.0"]);
    let stdout = s.once_ok();
    assert!(
        stdout.contains("pull request #2 created https://github.com/org/manifests/pull/2"),
        "{stdout}"
    );
    let pulls = s.github.pulls();
    assert_eq!(pulls.len(), 2);
    assert_eq!(pulls[0].state, "closed", "the closed one stays closed");
    assert_eq!(pulls[1].state, "open");
    assert!(show(&s.bare, "tagsmith/prod", "apps/app.yaml").contains("org/app:1.3.0 #"));
}

#[test]
fn github_app_issues_and_uses_an_installation_token() {
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github_app/app-key.pem");
    let s = setup(
        &format!(
            "{{ app: {{ appId: {APP_ID}, privateKeyFile: '{}' }} }}",
            key.display()
        ),
        "",
    );
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 created"), "{stdout}");
    let requests = s.github.requests();
    let all = describe(&requests);
    assert_eq!(
        requests[0].path, "/repos/org/manifests/installation",
        "{all}"
    );
    assert_eq!(requests[0].auth, "jwt", "{all}");
    assert_eq!(
        requests[1].path,
        format!("/app/installations/{INSTALLATION_ID}/access_tokens"),
        "{all}"
    );
    assert_eq!(requests[1].auth, "jwt", "{all}");
    // One token, issued once and used for every repository call (the cache works).
    assert_eq!(s.github.issued_tokens(), ["ghs_fake0001"], "{all}");
    let api: Vec<_> = requests[2..].iter().collect();
    assert!(api.len() >= 4, "{all}");
    assert!(
        api.iter().all(|r| r.auth == "installation:ghs_fake0001"),
        "{all}"
    );
    assert_eq!(s.github.pulls()[0].auto_merge.as_deref(), Some("SQUASH"));
}

#[test]
fn without_git_credentials_a_github_app_pushes_with_its_installation_token() {
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github_app/app-key.pem");
    // The fake issues ghs_fake0001 first; the Git server accepts nothing else.
    let s = setup_full(
        &format!(
            "{{ app: {{ appId: {APP_ID}, privateKeyFile: '{}', installationId: {INSTALLATION_ID} }} }}",
            key.display()
        ),
        "",
        "",
        Some(("x-access-token", "ghs_fake0001")),
    );
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 created"), "{stdout}");
    assert!(show(&s.bare, "tagsmith/prod", "apps/app.yaml").contains("org/app:1.1.0 #"));
    assert_eq!(s.github.issued_tokens(), ["ghs_fake0001"]);
    let workspaces = Path::new(&s.state).join("workspaces");
    let leftovers: Vec<_> = std::fs::read_dir(&workspaces)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(leftovers, ["prod"], "the token file is removed");
}

#[test]
fn installation_tokens_near_expiry_are_renewed() {
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github_app/app-key.pem");
    let s = setup(
        &format!(
            "{{ app: {{ appId: {APP_ID}, privateKeyFile: '{}', installationId: {INSTALLATION_ID} }} }}",
            key.display()
        ),
        "",
    );
    // Tokens that expire within seconds are not reused: each call gets a fresh one.
    s.github.set_token_lifetime(10);
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 created"), "{stdout}");
    let requests = s.github.requests();
    let all = describe(&requests);
    assert!(
        requests
            .iter()
            .all(|r| r.path != "/repos/org/manifests/installation"),
        "a configured installation is not looked up: {all}"
    );
    let api: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/repos/") || r.path == "/graphql")
        .collect();
    let issued = s.github.issued_tokens();
    assert!(issued.len() >= 3, "{all}");
    // The first token went to Git (no git.auth), then one per API call.
    assert_eq!(issued.len(), api.len() + 1, "{all}");
    for (request, token) in api.iter().zip(&issued[1..]) {
        assert_eq!(request.auth, format!("installation:{token}"), "{all}");
    }
}

#[test]
fn github_enterprise_paths_for_rest_and_graphql() {
    let s = setup_at("{ tokenEnv: TAGSMITH_TEST_GITHUB_TOKEN }", TOKEN, "/api/v3");
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 created"), "{stdout}");
    let requests = s.github.requests();
    let all = describe(&requests);
    assert!(
        requests
            .iter()
            .all(|r| r.path.starts_with("/api/v3/repos/org/manifests/") || r.path == "/api/graphql"),
        "{all}"
    );
    assert!(requests.iter().all(|r| r.auth == "token"), "{all}");
    assert_eq!(s.github.pulls()[0].auto_merge.as_deref(), Some("SQUASH"));
}

#[test]
fn someone_elses_commits_on_the_head_branch_are_not_overwritten() {
    let s = token_setup();
    s.once_ok();
    commit_elsewhere(
        &s.bare,
        "tagsmith/prod",
        "apps/notes.yaml",
        "fixed: by hand\n",
    );
    let theirs = rev(&s.bare, "tagsmith/prod");
    push(&s.registry, "org/app", &["1.4.0"]);
    let (out, stdout) = s.once(&[]);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("holds commits tagsmith did not write"),
        "{stdout}"
    );
    assert_eq!(rev(&s.bare, "tagsmith/prod"), theirs);
}

#[test]
fn changes_merged_into_the_base_push_nothing() {
    let s = token_setup();
    s.once_ok();
    let head = rev(&s.bare, "tagsmith/prod");
    // What merging the pull request (fast-forward) does to main.
    git(&s.bare, &["update-ref", "refs/heads/main", &head]);
    let writes_before = s.github.writes().len();
    let stdout = s.once_ok();
    assert!(stdout.contains("target prod: unchanged"), "{stdout}");
    assert_eq!(s.github.writes().len(), writes_before);
    assert_eq!(rev(&s.bare, "tagsmith/prod"), head);
    assert_eq!(count_commits(&s.bare, "main"), 2);
}

#[test]
fn api_errors_name_the_permission_and_rate_limits_are_waited_out() {
    let s = token_setup();
    s.github.inject(
        403,
        &[],
        r#"{"message":"Resource not accessible by personal access token","documentation_url":"https://docs.github.com/rest"}"#,
    );
    let (out, stdout) = s.once(&[]);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("pull requests: read"), "{stdout}");
    assert!(stdout.contains("Resource not accessible"), "{stdout}");
    assert!(!stdout.contains(TOKEN) && !text(&out.stderr).contains(TOKEN));

    // A secondary rate limit: Retry-After is honoured, then the run goes on.
    s.github.inject(
        403,
        &[("retry-after", "1")],
        r#"{"message":"You have exceeded a secondary rate limit"}"#,
    );
    let started = std::time::Instant::now();
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 created"), "{stdout}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

/// What happened to a pull request is a metric label (`tagsmith_pull_requests_total{action}`)
/// and a JSON value: one word without spaces, the same in both (issue 18: it was
/// `action="left closed"`).
#[test]
fn pull_request_actions_are_label_values_without_spaces() {
    use tagsmith::engine::PullRequestAction;
    for action in [
        PullRequestAction::Created,
        PullRequestAction::Updated,
        PullRequestAction::Unchanged,
        PullRequestAction::LeftClosed,
    ] {
        let label = action.as_str();
        assert!(
            !label.is_empty() && label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{label:?}"
        );
        assert_eq!(serde_json::to_value(action).unwrap(), label);
    }
    assert_eq!(PullRequestAction::LeftClosed.as_str(), "left_closed");
}
