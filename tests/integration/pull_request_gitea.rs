//! Pull request delivery on Gitea and Forgejo end to end: the binary against the real registry,
//! a real bare Git repository (head branches checked) and the in-process fake of Gitea's API v1.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use crate::gitea_fake::{FakeGitea, describe};
use crate::gitserver::{bare_repo, rev, show};
use crate::support::{Auth, Registry};

const TOKEN: &str = "8f2c1e0d9b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e";
const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: REG/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\n";
const URL: &str = "https://gitea.example.com/org/manifests/pulls";

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
    gitea: FakeGitea,
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
    let gitea = FakeGitea::start(&bare, TOKEN);
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n\
             \x20 - policy: team-a:app\n    image: {reg}/org/app\n    semver: '^1'\n\
             targets:\n\
             \x20 - name: prod\n    git: {{ url: 'file://{bare}', branch: main }}\n    paths: [apps]\n\
             \x20   commit: {{ author: {{ name: tagsmith-bot, email: bot@example.invalid }} }}\n\
             \x20   push:\n      pullRequest:\n        forge: forgejo\n        repository: org/manifests\n        apiUrl: {api}\n\
             \x20       labels: [automated, images]\n        reviewers: [bob, org/platform]\n        assignees: [alice]\n\
             \x20       draft: true\n        autoMerge: squash\n        auth: {{ tokenEnv: TAGSMITH_TEST_GITEA_TOKEN }}\n\
             registries:\n  - host: {reg}\n    insecure: true\n",
            reg = registry.host,
            bare = bare.display(),
            api = gitea.api_url,
        ),
    )
    .unwrap();
    let state = tmp.path().join("state").display().to_string();
    Setup {
        config: config.display().to_string(),
        registry,
        _tmp: tmp,
        bare,
        gitea,
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
            .env("TAGSMITH_TEST_GITEA_TOKEN", TOKEN)
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
            describe(&self.gitea.requests())
        );
        stdout
    }
}

#[test]
fn opens_then_updates_the_same_pull_request_then_writes_nothing() {
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
    let pulls = s.gitea.pulls();
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0];
    assert_eq!(
        (pr.head.as_str(), pr.base.as_str()),
        ("tagsmith/prod", "main")
    );
    // Gitea's draft is a work-in-progress title prefix (its default WORK_IN_PROGRESS_PREFIXES).
    assert_eq!(pr.title, "WIP: Update container images (prod)");
    assert!(
        pr.body
            .contains(&format!("`{}/org/app:1.1.0`", s.registry.host)),
        "{}",
        pr.body
    );
    // Label names resolved to the repository's label ids (automated 1, images 2).
    assert_eq!(pr.label_ids, [1, 2]);
    assert_eq!(pr.assignees, ["alice"]);
    assert_eq!(pr.reviewers, ["bob"]);
    assert_eq!(pr.team_reviewers, ["platform"]);
    assert_eq!(pr.auto_merge.as_deref(), Some("squash"));
    let requests = s.gitea.requests();
    assert!(
        requests.iter().all(|r| r.authorized),
        "{}",
        describe(&requests)
    );

    // A new tag: the same pull request, its body brought up to date; scheduling auto-merge
    // again is answered "already scheduled", which is not an error.
    push(&s.registry, "org/app", &["1.2.0"]);
    let stdout = s.once_ok();
    assert!(
        stdout.contains(&format!("target prod: pull request #1 updated {URL}/1")),
        "{stdout}"
    );
    assert!(show(&s.bare, "tagsmith/prod", "apps/app.yaml").contains("org/app:1.2.0 #"));
    let pulls = s.gitea.pulls();
    assert_eq!(pulls.len(), 1);
    assert!(pulls[0].body.contains("/org/app:1.2.0`"));
    assert_eq!(
        pulls[0].title, "WIP: Update container images (prod)",
        "still a draft"
    );
    assert_eq!(pulls[0].label_ids, [1, 2], "labels are set once");

    // Nothing new: no push, no API write.
    let head = rev(&s.bare, "tagsmith/prod");
    let writes_before = s.gitea.writes().len();
    let (out, stdout) = s.once(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["targets"][0]["action"], "unchanged", "{stdout}");
    assert_eq!(report["targets"][0]["url"], format!("{URL}/1"));
    assert_eq!(rev(&s.bare, "tagsmith/prod"), head);
    assert_eq!(
        s.gitea.writes().len(),
        writes_before,
        "{}",
        describe(&s.gitea.writes())
    );
}

#[test]
fn a_closed_pull_request_is_not_reopened_until_there_are_new_changes() {
    let s = setup();
    assert!(s.once_ok().contains("pull request #1 created"));
    s.gitea.close(1);

    let writes_before = s.gitea.writes().len();
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 left_closed"), "{stdout}");
    assert_eq!(s.gitea.writes().len(), writes_before);

    push(&s.registry, "org/app", &["1.3.0"]);
    let stdout = s.once_ok();
    assert!(
        stdout.contains(&format!("pull request #2 created {URL}/2")),
        "{stdout}"
    );
    let pulls = s.gitea.pulls();
    assert_eq!(pulls[0].state, "closed", "the closed one stays closed");
    assert_eq!(pulls[1].state, "open");
}

#[test]
fn a_missing_scope_is_named_and_rate_limits_are_waited_out() {
    let s = setup();
    // Gitea's tokenRequiresScopes answer (routers/api/v1/api.go).
    s.gitea.inject(
        403,
        &[],
        r#"{"message":"token does not have at least one of required scope(s), required=[read:repository], token scope=read:user","url":"https://gitea.example.com/api/swagger"}"#,
    );
    let (out, stdout) = s.once(&[]);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("gitea refused listing pull requests (403"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a token with the scope [read:repository]"),
        "{stdout}"
    );
    assert!(!stdout.contains(TOKEN) && !text(&out.stderr).contains(TOKEN));
    assert!(s.gitea.pulls().is_empty());

    // A proxy's rate limit in front of the instance (as on public hosts): 429 + Retry-After.
    s.gitea.inject(
        429,
        &[("retry-after", "1")],
        r#"{"message":"rate limited"}"#,
    );
    let started = std::time::Instant::now();
    let stdout = s.once_ok();
    assert!(stdout.contains("pull request #1 created"), "{stdout}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

#[test]
fn a_label_the_repository_lacks_is_named() {
    let s = setup();
    let config = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        config.replace("labels: [automated, images]", "labels: [automated, nosuch]"),
    )
    .unwrap();
    let (out, stdout) = s.once(&[]);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("gitea has no label named \"nosuch\""),
        "{stdout}"
    );
}

fn parse(text: &str) -> Result<tagsmith::config::Config, String> {
    tagsmith::config::Config::parse(text, Path::new("/etc/tagsmith/tagsmith.yaml"))
        .map_err(|e| e.to_string())
}

#[test]
fn codeberg_remotes_are_gitea_and_self_hosted_ones_take_the_forge_name() {
    use tagsmith::config::ForgeKind;
    let target = |url: &str, pr: &str| {
        format!(
            "targets:\n  - name: prod\n    git: {{ url: '{url}', branch: main }}\n    push:\n      pullRequest: {pr}\n"
        )
    };
    let c = parse(&target(
        "https://codeberg.org/org/manifests.git",
        "{ auth: { tokenEnv: T } }",
    ))
    .unwrap();
    let pr = c.targets[0].pull_request.as_ref().unwrap();
    assert_eq!(pr.forge, ForgeKind::Gitea);
    assert_eq!(pr.api_url, "https://codeberg.org/api/v1");
    assert_eq!((pr.owner.as_str(), pr.repo.as_str()), ("org", "manifests"));

    let c = parse(&target(
        "https://git.example.com:3000/org/manifests.git",
        "{ forge: gitea, auth: { tokenEnv: T } }",
    ))
    .unwrap();
    assert_eq!(
        c.targets[0].pull_request.as_ref().unwrap().api_url,
        "https://git.example.com:3000/api/v1"
    );

    let e = parse(&target(
        "https://codeberg.org/org/manifests.git",
        "{ auth: { app: { appId: 1, privateKeyFile: k.pem } } }",
    ))
    .unwrap_err();
    assert!(
        e.contains("auth.app is a GitHub App; gitea takes tokenEnv or tokenFile"),
        "{e}"
    );
}
