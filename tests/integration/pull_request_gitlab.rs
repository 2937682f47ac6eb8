//! Merge request delivery on GitLab end to end: the binary against the real registry, a real
//! bare Git repository (head branches checked) and the in-process fake of GitLab's API v4.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use crate::gitlab_fake::{FakeGitLab, describe};
use crate::gitserver::{bare_repo, rev, show};
use crate::support::{Auth, Registry};

const TOKEN: &str = "glpat-tagsmithtest0123456789";
const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: REG/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\n";
const URL: &str = "https://gitlab.example.com/org/manifests/-/merge_requests";

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
    registry: Registry,
    _tmp: tempfile::TempDir,
    bare: std::path::PathBuf,
    gitlab: FakeGitLab,
    config: String,
    state: String,
}

fn setup() -> Setup {
    let registry = Registry::start(Auth::None);
    push(&registry, "org/app", &["1.0.0", "1.1.0", "2.0.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[("apps/app.yaml", &APP.replace("REG", &registry.host))],
    );
    let gitlab = FakeGitLab::start(&bare, TOKEN);
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n\
             \x20 - policy: team-a:app\n    image: {reg}/org/app\n    semver: '^1'\n\
             targets:\n\
             \x20 - name: prod\n    git: {{ url: 'file://{bare}', branch: main }}\n    paths: [apps]\n\
             \x20   commit: {{ author: {{ name: tagsmith-bot, email: bot@example.invalid }} }}\n\
             \x20   push:\n      pullRequest:\n        forge: gitlab\n        repository: org/manifests\n        apiUrl: {api}\n\
             \x20       labels: [automated, images]\n        reviewers: [bob]\n        assignees: [alice]\n\
             \x20       draft: true\n        autoMerge: squash\n        auth: {{ tokenEnv: TAGSMITH_TEST_GITLAB_TOKEN }}\n\
             registries:\n  - host: {reg}\n    insecure: true\n",
            reg = registry.host,
            bare = bare.display(),
            api = gitlab.api_url,
        ),
    )
    .unwrap();
    let state = tmp.path().join("state").display().to_string();
    Setup {
        config: config.display().to_string(),
        registry,
        _tmp: tmp,
        bare,
        gitlab,
        state,
    }
}

impl Setup {
    fn once(&self, extra: &[&str]) -> (Output, String) {
        let mut args = vec!["once", "-c", &self.config, "--state-dir", &self.state];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args(&args)
            .env_remove("DOCKER_CONFIG")
            .env("HOME", "/nonexistent")
            .env("TAGSMITH_TEST_GITLAB_TOKEN", TOKEN)
            .output()
            .unwrap();
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
            describe(&self.gitlab.requests())
        );
        stdout
    }
}

#[test]
fn opens_then_updates_the_same_merge_request_then_writes_nothing() {
    let s = setup();
    let main_before = rev(&s.bare, "main");

    let stdout = s.once_ok();
    assert!(
        stdout.contains(&format!("target prod: pull request #1 created {URL}/1")),
        "{stdout}"
    );
    assert_eq!(rev(&s.bare, "main"), main_before);
    assert_eq!(rev(&s.bare, "tagsmith/prod^"), main_before);
    assert!(show(&s.bare, "tagsmith/prod", "apps/app.yaml").contains("org/app:1.1.0 #"));
    let mrs = s.gitlab.mrs();
    assert_eq!(mrs.len(), 1);
    let mr = &mrs[0];
    assert_eq!(
        (mr.source_branch.as_str(), mr.target_branch.as_str()),
        ("tagsmith/prod", "main")
    );
    // GitLab's draft is the title prefix (docs.gitlab.com/user/project/merge_requests/drafts/).
    assert_eq!(mr.title, "Draft: Update container images (prod)");
    assert!(
        mr.description
            .contains(&format!("`{}/org/app:1.1.0`", s.registry.host)),
        "{}",
        mr.description
    );
    assert_eq!(mr.labels, ["automated", "images"]);
    // Usernames resolved through the users API: alice is 11, bob 12 in the fake.
    assert_eq!(mr.assignee_ids, [11]);
    assert_eq!(mr.reviewer_ids, [12]);
    assert!(mr.merge_when_pipeline_succeeds && mr.squash);
    let requests = s.gitlab.requests();
    assert!(
        requests.iter().all(|r| r.authorized),
        "{}",
        describe(&requests)
    );

    // A new tag: the same merge request, its description brought up to date in one write.
    push(&s.registry, "org/app", &["1.2.0"]);
    let writes_before = s.gitlab.writes().len();
    let stdout = s.once_ok();
    assert!(
        stdout.contains(&format!("target prod: pull request #1 updated {URL}/1")),
        "{stdout}"
    );
    assert!(show(&s.bare, "tagsmith/prod", "apps/app.yaml").contains("org/app:1.2.0 #"));
    let mrs = s.gitlab.mrs();
    assert_eq!(mrs.len(), 1);
    assert!(mrs[0].description.contains("/org/app:1.2.0`"));
    assert_eq!(
        mrs[0].title, "Draft: Update container images (prod)",
        "still a draft"
    );
    let writes = s.gitlab.writes();
    let new_writes = &writes[writes_before..];
    assert_eq!(new_writes.len(), 1, "{}", describe(new_writes));
    assert_eq!(new_writes[0].method, "PUT");

    // Nothing new: no push, no API write.
    let head = rev(&s.bare, "tagsmith/prod");
    let writes_before = s.gitlab.writes().len();
    let (out, stdout) = s.once(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["targets"][0]["action"], "unchanged", "{stdout}");
    assert_eq!(report["targets"][0]["url"], format!("{URL}/1"));
    assert_eq!(rev(&s.bare, "tagsmith/prod"), head);
    assert_eq!(
        s.gitlab.writes().len(),
        writes_before,
        "{}",
        describe(&s.gitlab.writes())
    );
}

#[test]
fn a_closed_merge_request_is_not_reopened_until_there_are_new_changes() {
    let s = setup();
    assert!(s.once_ok().contains("pull request #1 created"));
    s.gitlab.close(1);

    let writes_before = s.gitlab.writes().len();
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 left_closed"), "{stdout}");
    assert_eq!(s.gitlab.writes().len(), writes_before);

    push(&s.registry, "org/app", &["1.3.0"]);
    let stdout = s.once_ok();
    assert!(
        stdout.contains(&format!("pull request #2 created {URL}/2")),
        "{stdout}"
    );
    let mrs = s.gitlab.mrs();
    assert_eq!(mrs[0].state, "closed", "the closed one stays closed");
    assert_eq!(mrs[1].state, "opened");
}

#[test]
fn a_missing_scope_is_named_and_rate_limits_are_waited_out() {
    let s = setup();
    // The body GitLab sends for a token without the scope
    // (docs.gitlab.com/api/rest/troubleshooting/#status-code-403).
    s.gitlab.inject(
        403,
        &[],
        r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token.","scope":"api"}"#,
    );
    let (out, stdout) = s.once(&[]);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("gitlab refused listing pull requests (403: insufficient_scope"),
        "{stdout}"
    );
    assert!(stdout.contains("a token with the api scope"), "{stdout}");
    assert!(!stdout.contains(TOKEN) && !text(&out.stderr).contains(TOKEN));
    assert!(s.gitlab.mrs().is_empty());

    // GitLab's rate limit answer: 429 with Retry-After and RateLimit-* headers
    // (docs.gitlab.com/administration/settings/user_and_ip_rate_limits/#response-headers).
    let reset = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    s.gitlab.inject(
        429,
        &[
            ("retry-after", "1"),
            ("ratelimit-limit", "60"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", &reset),
        ],
        "Retry later\n",
    );
    let started = std::time::Instant::now();
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 created"), "{stdout}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

#[test]
fn a_token_gitlab_rejects_fails_the_target_with_the_scope_it_needs() {
    let s = setup();
    let (out, stdout) = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["once", "-c", &s.config, "--state-dir", &s.state])
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .env("TAGSMITH_TEST_GITLAB_TOKEN", "glpat-revoked")
        .output()
        .map(|o| {
            let stdout = text(&o.stdout);
            (o, stdout)
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("gitlab rejected the token (401)"),
        "{stdout}"
    );
    assert!(stdout.contains("read_api"), "{stdout}");
    assert!(s.gitlab.writes().is_empty());
    assert!(!stdout.contains("glpat-revoked") && !text(&out.stderr).contains("glpat-revoked"));
}

fn parse(text: &str) -> Result<tagsmith::config::Config, String> {
    tagsmith::config::Config::parse(text, Path::new("/etc/tagsmith/tagsmith.yaml"))
        .map_err(|e| e.to_string())
}

#[test]
fn the_forge_and_its_api_come_from_the_remote_or_must_be_named() {
    use tagsmith::config::ForgeKind;
    let target = |url: &str, pr: &str| {
        format!(
            "targets:\n  - name: prod\n    git: {{ url: '{url}', branch: main }}\n    push:\n      pullRequest: {pr}\n"
        )
    };
    let c = parse(&target(
        "https://gitlab.com/group/sub/manifests.git",
        "{ auth: { tokenEnv: T } }",
    ))
    .unwrap();
    let pr = c.targets[0].pull_request.as_ref().unwrap();
    assert_eq!(pr.forge, ForgeKind::GitLab);
    assert_eq!(
        (pr.owner.as_str(), pr.repo.as_str()),
        ("group/sub", "manifests")
    );
    assert_eq!(pr.api_url, "https://gitlab.com/api/v4");

    let c = parse(&target(
        "https://gitlab.corp.example/platform/manifests.git",
        "{ forge: gitlab, auth: { tokenFile: /run/secrets/gitlab } }",
    ))
    .unwrap();
    let pr = c.targets[0].pull_request.as_ref().unwrap();
    assert_eq!(pr.api_url, "https://gitlab.corp.example/api/v4");

    let forge_of = |api: &str| {
        let c = parse(&target(
            "https://git.example.com/org/manifests.git",
            &format!("{{ apiUrl: '{api}', auth: {{ tokenEnv: T }} }}"),
        ))
        .unwrap();
        c.targets[0].pull_request.as_ref().unwrap().forge
    };
    assert_eq!(
        forge_of("https://git.example.com/api/v4/"),
        ForgeKind::GitLab
    );
    assert_eq!(forge_of("https://git.example.com/api/v1"), ForgeKind::Gitea);
    assert_eq!(
        forge_of("https://git.example.com/api/v3"),
        ForgeKind::GitHub
    );

    let e = parse(&target(
        "https://git.example.com/org/manifests.git",
        "{ auth: { tokenEnv: T } }",
    ))
    .unwrap_err();
    assert!(
        e.contains("tagsmith.yaml:3:")
            && e.contains("set pullRequest.forge: github, gitlab or gitea"),
        "{e}"
    );

    let e = parse(&target(
        "https://gitlab.com/org/manifests.git",
        "{ autoMerge: rebase, reviewers: [org/team], auth: { tokenEnv: T } }",
    ))
    .unwrap_err();
    assert!(e.contains("project's merge method"), "{e}");
    assert!(e.contains("gitlab reviewers are users"), "{e}");

    let e = parse(&target(
        "https://github.com/org/manifests.git",
        "{ assignees: [alice], auth: { tokenEnv: T } }",
    ))
    .unwrap_err();
    assert!(e.contains("assignees is for gitlab and gitea"), "{e}");

    let e = parse(&target(
        "https://gitlab.com/org/manifests.git",
        "{ forge: bitbucket, auth: { tokenEnv: T } }",
    ))
    .unwrap_err();
    assert!(e.contains("forge \"bitbucket\""), "{e}");

    // The commit status is GitHub's: not sent to a GitLab API.
    let e = parse(
        "targets:\n  - name: prod\n    git: { url: 'https://gitlab.com/org/manifests.git', branch: main }\n    push:\n      status: true\n      pullRequest: { auth: { tokenEnv: T } }\n",
    )
    .unwrap_err();
    assert!(
        e.contains("push.status sets a GitHub commit status; gitlab pull requests have none here"),
        "{e}"
    );
}

/// A redirect is not followed: the token goes to `apiUrl`'s host and nowhere else.
#[test]
fn the_token_is_not_sent_where_a_redirect_points() {
    let s = setup();
    let elsewhere = FakeGitLab::start(&s.bare, TOKEN);
    let target = format!(
        "{}/projects/org%2Fmanifests/merge_requests",
        elsewhere.api_url
    );
    s.gitlab.inject(302, &[("location", &target)], "");
    let (out, stdout) = s.once(&[]);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "gitlab answered 302 while listing pull requests: redirected to {target}; not followed"
        )),
        "{stdout}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "{}",
        describe(&elsewhere.requests())
    );
}
