#![allow(clippy::unwrap_used)]

//! The pull request head branch tagsmith owns: replaced with force-with-lease against real
//! remotes, and never over commits someone else pushed (file:// and smart HTTP with a writer
//! racing the push), nor over a person's amend of tagsmith's own commit (the binary against
//! the real registry, real Git and the fake GitHub).

use std::path::Path;
use std::process::{Command, Output};

use crate::github_fake::FakeGitHub;
use crate::gitserver::{GitHttpServer, bare_repo, commit_elsewhere, git, rev, show};
use crate::support::workspace::{author, commit_file, head_text, source};
use crate::support::{Auth, Registry};
use tagsmith::git::{ForeignReason, GitError, Workspace};

const HEAD: &str = "tagsmith/prod";

/// Syncs onto main, writes `content`, commits: what a pull request run does before pushing.
fn update(ws: &Workspace, content: &str) -> (git2::Oid, Option<git2::Oid>) {
    let synced = ws.sync_onto_base("main", HEAD).unwrap();
    assert_eq!(
        head_text(ws, "a.yaml"),
        "x: 1\n",
        "always computed on the base, never on the old head"
    );
    let c = commit_file(ws, "a.yaml", content, &author(), "update").unwrap();
    assert_eq!(c.parent, synced.base);
    (c.id, synced.push_head)
}

#[test]
fn the_head_branch_is_replaced_with_a_lease_and_foreign_commits_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let ws = Workspace::open_objects(
        &tmp.path().join("ws"),
        &source(&format!("file://{}", bare.display())),
    )
    .unwrap();

    let (first, expected) = update(&ws, "x: 2\n");
    assert_eq!(expected, None);
    ws.push_with_lease(first, HEAD, None).unwrap();
    assert_eq!(rev(&bare, HEAD), first.to_string());
    let base = ws.sync_onto_base("main", HEAD).unwrap().base;
    assert_eq!(
        ws.foreign_commit(HEAD, first, base, &author()).unwrap(),
        None
    );

    // A new update replaces (not extends) the head: a forced, leased push.
    let (second, expected) = update(&ws, "x: 3\n");
    assert_eq!(expected, Some(first));
    assert!(!ws.same_tree(first, second).unwrap());
    ws.push_with_lease(second, HEAD, expected).unwrap();
    assert_eq!(rev(&bare, HEAD), second.to_string());
    assert_eq!(rev(&bare, &format!("{HEAD}^")), rev(&bare, "main"));

    // Someone else pushes to the head: their commit is not ours, and a lease on what we saw fails.
    commit_elsewhere(&bare, HEAD, "b.yaml", "theirs\n");
    let theirs = rev(&bare, HEAD);
    let (third, _) = update(&ws, "x: 4\n");
    let err = ws.push_with_lease(third, HEAD, Some(second)).unwrap_err();
    assert!(matches!(err, GitError::NonFastForward { .. }), "{err}");
    assert_eq!(rev(&bare, HEAD), theirs);
    assert_eq!(show(&bare, HEAD, "b.yaml"), "theirs\n");
    let synced = ws.sync_onto_base("main", HEAD).unwrap();
    let head = synced.push_head.unwrap();
    let foreign = ws
        .foreign_commit(HEAD, head, synced.base, &author())
        .unwrap()
        .unwrap();
    assert_eq!(foreign.commit, head);
    assert_eq!(
        foreign.reason,
        ForeignReason::Author("Test Person <person@example.invalid>".into())
    );
}

#[test]
fn a_writer_racing_the_push_over_smart_http_breaks_the_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    crate::gitserver::git(&bare, &["branch", HEAD, "main"]);
    let other = bare.clone();
    let server = GitHttpServer::start(
        tmp.path(),
        None,
        Some(Box::new(move || {
            commit_elsewhere(&other, HEAD, "b.yaml", "theirs\n")
        })),
    );
    let ws = Workspace::open_objects(
        &tmp.path().join("ws"),
        &source(&format!("{}/m.git", server.base_url)),
    )
    .unwrap();
    let (ours, expected) = update(&ws, "x: 2\n");
    assert_eq!(expected.map(|e| e.to_string()), Some(rev(&bare, "main")));
    let err = ws.push_with_lease(ours, HEAD, expected).unwrap_err();
    assert!(matches!(err, GitError::NonFastForward { .. }), "{err}");
    assert_eq!(show(&bare, HEAD, "b.yaml"), "theirs\n");
    assert_eq!(show(&bare, HEAD, "a.yaml"), "x: 1\n");
}

/// `git commit --amend` on `branch` of `bare` from a throwaway clone, then a force push: the
/// author stays, the committer is `committer` (name, email).
fn amend_elsewhere(bare: &Path, branch: &str, path: &str, content: &str, committer: (&str, &str)) {
    let dir = bare.with_extension("amend");
    let _ = std::fs::remove_dir_all(&dir);
    git(
        bare.parent().unwrap(),
        &[
            "clone",
            "-q",
            "-b",
            branch,
            bare.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    std::fs::write(dir.join(path), content).unwrap();
    let out = Command::new("git")
        .args(["commit", "-qa", "--amend", "--no-edit"])
        .current_dir(&dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_COMMITTER_NAME", committer.0)
        .env("GIT_COMMITTER_EMAIL", committer.1)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git(&dir, &["push", "-qf", "origin", branch]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_amend_keeping_tagsmith_as_author_is_not_tagsmiths_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let ws = Workspace::open_objects(
        &tmp.path().join("ws"),
        &source(&format!("file://{}", bare.display())),
    )
    .unwrap();
    let (first, _) = update(&ws, "x: 2\n");
    ws.push_with_lease(first, HEAD, None).unwrap();

    // A person amends: the author is still tagsmith, the committer is them.
    amend_elsewhere(
        &bare,
        HEAD,
        "a.yaml",
        "x: 2 # keep\n",
        ("Test Person", "person@example.invalid"),
    );
    let synced = ws.sync_onto_base("main", HEAD).unwrap();
    let head = synced.push_head.unwrap();
    let foreign = ws
        .foreign_commit(HEAD, head, synced.base, &author())
        .unwrap()
        .unwrap();
    assert_eq!(foreign.commit, head);
    assert_eq!(
        foreign.reason,
        ForeignReason::Committer("Test Person <person@example.invalid>".into())
    );
    assert!(foreign.to_string().contains(&head.to_string()), "{foreign}");

    // Even as tagsmith's committer too, it is not the commit tagsmith pushed.
    amend_elsewhere(
        &bare,
        HEAD,
        "a.yaml",
        "x: 2 # mine\n",
        ("tagsmith", "tagsmith@example.invalid"),
    );
    let synced = ws.sync_onto_base("main", HEAD).unwrap();
    let head = synced.push_head.unwrap();
    let foreign = ws
        .foreign_commit(HEAD, head, synced.base, &author())
        .unwrap()
        .unwrap();
    assert_eq!(foreign.reason, ForeignReason::NotPushedByUs);

    // A workspace with no record (a new state directory) can go by identities alone.
    let fresh = Workspace::open_objects(
        &tmp.path().join("fresh"),
        &source(&format!("file://{}", bare.display())),
    )
    .unwrap();
    let synced = fresh.sync_onto_base("main", HEAD).unwrap();
    assert_eq!(
        fresh
            .foreign_commit(HEAD, head, synced.base, &author())
            .unwrap(),
        None
    );

    // A damaged record is no record: it cannot stop every run.
    std::fs::write(tmp.path().join("ws/.git/tagsmith-pushed.json"), b"{garbage").unwrap();
    assert_eq!(
        ws.foreign_commit(HEAD, head, synced.base, &author())
            .unwrap(),
        None
    );

    // Two commits of tagsmith's, one on the other: tagsmith never writes that.
    fresh.sync(HEAD, HEAD).unwrap();
    let on_top = commit_file(&fresh, "a.yaml", "x: 5\n", &author(), "more").unwrap();
    let foreign = fresh
        .foreign_commit(HEAD, on_top.id, synced.base, &author())
        .unwrap()
        .unwrap();
    assert_eq!(foreign.reason, ForeignReason::Stacked(2));
}

const TOKEN: &str = "ghp_tagsmithtest0123456789";
const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: REG/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\n";

fn push_tags(registry: &Registry, tags: &[&str]) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags("org/app", &tags));
}

#[test]
fn the_binary_refuses_to_force_push_over_a_persons_amend_and_names_the_commit() {
    let registry = Registry::start(Auth::None);
    push_tags(&registry, &["1.0.0", "1.1.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "manifests",
        &[("apps/app.yaml", &APP.replace("REG", &registry.host))],
    );
    let github = FakeGitHub::start(&bare, TOKEN);
    let config = tmp.path().join("tagsmith.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n  - policy: team-a:app\n    image: {reg}/org/app\n    semver: '^1'\n\
             targets:\n  - name: prod\n    git: {{ url: 'file://{bare}', branch: main }}\n    paths: [apps]\n\
             \x20   commit: {{ author: {{ name: tagsmith-bot, email: bot@example.invalid }} }}\n\
             \x20   push:\n      pullRequest:\n        repository: org/manifests\n        apiUrl: {api}\n\
             \x20       auth: {{ tokenEnv: TAGSMITH_TEST_GITHUB_TOKEN }}\n\
             registries:\n  - host: {reg}\n    insecure: true\n",
            reg = registry.host,
            bare = bare.display(),
            api = github.url,
        ),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let once = || -> Output {
        Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args(["once", "-c"])
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .env_remove("DOCKER_CONFIG")
            .env("HOME", "/nonexistent")
            .env("TAGSMITH_TEST_GITHUB_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let text = |o: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let out = once();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("pull request #1 created"),
        "{}",
        text(&out)
    );

    // tagsmith's own head is replaced when a new tag comes.
    push_tags(&registry, &["1.2.0"]);
    let out = once();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("pull request #1 updated"),
        "{}",
        text(&out)
    );

    // A person amends tagsmith's commit (tagsmith stays the author) and force-pushes.
    amend_elsewhere(
        &bare,
        "tagsmith/prod",
        "apps/app.yaml",
        &show(&bare, "tagsmith/prod", "apps/app.yaml")
            .replace("kind: Deployment", "kind: Deployment # reviewed"),
        ("Test Person", "person@example.invalid"),
    );
    let theirs = rev(&bare, "tagsmith/prod");
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an", "tagsmith/prod"]).trim(),
        "tagsmith-bot"
    );
    push_tags(&registry, &["1.3.0"]);
    let out = once();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("holds commits tagsmith did not write"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "commit {theirs} is committed by Test Person <person@example.invalid>"
        )),
        "{said}"
    );
    assert_eq!(rev(&bare, "tagsmith/prod"), theirs, "the amend is kept");
    assert!(show(&bare, "tagsmith/prod", "apps/app.yaml").contains("# reviewed"));

    // The same amend made to look like tagsmith's (committer too) is still not what it pushed.
    amend_elsewhere(
        &bare,
        "tagsmith/prod",
        "apps/app.yaml",
        &show(&bare, "tagsmith/prod", "apps/app.yaml").replace("# reviewed", "# reviewed twice"),
        ("tagsmith-bot", "bot@example.invalid"),
    );
    let theirs = rev(&bare, "tagsmith/prod");
    let out = once();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "commit {theirs} is not the commit tagsmith last pushed there"
        )),
        "{said}"
    );
    assert_eq!(rev(&bare, "tagsmith/prod"), theirs);
}
