#![allow(clippy::unwrap_used)]

//! Git delivery against real remotes: bare repositories over file:// and smart HTTP with basic auth.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::gitserver::{GitHttpServer, bare_repo, commit_elsewhere, count_commits, rev, show};
use crate::support::workspace::{author, commit_file, head_text, source};
use tagsmith::config::{GitAuth, Secret, Username};
use tagsmith::git::{GitError, Workspace};

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

#[test]
fn sync_commit_push_over_file_url() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "manifests", &[("app.yaml", "image: a:1\n")]);
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&file_url(&bare))).unwrap();
    let synced = ws.sync("main", "main").unwrap();
    assert_eq!(synced.base.to_string(), rev(&bare, "main"));
    assert_eq!(head_text(&ws, "app.yaml"), "image: a:1\n");

    let commit = commit_file(
        &ws,
        "app.yaml",
        "image: a:2\n",
        &author(),
        "Update a to 2\n",
    )
    .unwrap();
    assert_eq!(commit.parent, synced.base);
    ws.push(commit.id, "main").unwrap();

    assert_eq!(rev(&bare, "main"), commit.id.to_string());
    assert_eq!(show(&bare, "main", "app.yaml"), "image: a:2\n");
    let log = crate::gitserver::git(&bare, &["log", "-1", "--format=%an <%ae>|%s", "main"]);
    assert_eq!(
        log.trim(),
        "tagsmith <tagsmith@example.invalid>|Update a to 2"
    );
}

/// A run cut off after its commit and before its push (or whose push failed) leaves HEAD on
/// a commit the remote never got: the next sync builds on the remote's head, not on that one.
/// Files in the workspace folder (from a person or an older tagsmith) are not read and go.
#[test]
fn sync_discards_leftovers_of_an_interrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let dir = tmp.path().join("ws");
    let ws = Workspace::open_objects(&dir, &source(&file_url(&bare))).unwrap();
    let synced = ws.sync("main", "main").unwrap();
    let unpushed = commit_file(&ws, "a.yaml", "x: half-done\n", &author(), "cut off").unwrap();
    assert_eq!(ws.head().unwrap(), unpushed.id);
    drop(ws);
    std::fs::write(dir.join("a.yaml"), "x: stray\n").unwrap();
    std::fs::create_dir_all(dir.join("dir/sub")).unwrap();
    std::fs::write(dir.join("dir/sub/c.yaml"), "stray").unwrap();

    let ws = Workspace::open_objects(&dir, &source(&file_url(&bare))).unwrap();
    let again = ws.sync("main", "main").unwrap();
    assert_eq!(again.base, synced.base);
    assert_eq!(ws.head().unwrap(), synced.base);
    assert_eq!(head_text(&ws, "a.yaml"), "x: 1\n");
    assert!(!dir.join("a.yaml").exists());
    assert!(!dir.join("dir").exists());
    let next = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "whole").unwrap();
    assert_eq!(next.parent, synced.base);
    ws.push(next.id, "main").unwrap();
    assert_eq!(count_commits(&bare, "main"), 2);
    assert_eq!(show(&bare, "main", "a.yaml"), "x: 2\n");
}

#[test]
fn a_remote_that_moved_is_non_fast_forward_and_nothing_is_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&file_url(&bare))).unwrap();
    ws.sync("main", "main").unwrap();
    let commit = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "ours").unwrap();

    commit_elsewhere(&bare, "main", "b.yaml", "theirs\n");
    let theirs = rev(&bare, "main");
    let err = ws.push(commit.id, "main").unwrap_err();
    assert!(matches!(err, GitError::NonFastForward { .. }), "{err}");
    assert!(err.is_transient());
    assert_eq!(
        rev(&bare, "main"),
        theirs,
        "the other writer's commit survives"
    );

    // The retry path: fetch, re-apply on the new head, push.
    let synced = ws.sync("main", "main").unwrap();
    assert_eq!(synced.base.to_string(), theirs);
    let commit = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "ours again").unwrap();
    ws.push(commit.id, "main").unwrap();
    assert_eq!(show(&bare, "main", "b.yaml"), "theirs\n");
    assert_eq!(show(&bare, "main", "a.yaml"), "x: 2\n");
    assert_eq!(count_commits(&bare, "main"), 3);
}

#[test]
fn a_separate_push_branch_accumulates_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&file_url(&bare))).unwrap();
    let first = ws.sync("main", "tagsmith/prod").unwrap();
    assert_eq!(first.push_head, None);
    let c1 = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "one").unwrap();
    ws.push(c1.id, "tagsmith/prod").unwrap();
    assert_eq!(rev(&bare, "main"), first.base.to_string(), "main untouched");

    let second = ws.sync("main", "tagsmith/prod").unwrap();
    assert_eq!(second.base, c1.id, "work continues on the push branch");
    assert_eq!(second.push_head, Some(c1.id));
    assert_eq!(head_text(&ws, "a.yaml"), "x: 2\n");
}

#[test]
fn a_hook_rejection_is_reported_with_its_status() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'protected branch' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = rev(&bare, "main");

    let server = GitHttpServer::start(tmp.path(), None, None);
    let ws = Workspace::open_objects(
        &tmp.path().join("ws"),
        &source(&format!("{}/m.git", server.base_url)),
    )
    .unwrap();
    ws.sync("main", "main").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "blocked").unwrap();
    let err = ws.push(c.id, "main").unwrap_err();
    assert!(matches!(err, GitError::PushRejected { .. }), "{err}");
    assert!(
        err.to_string().contains("pre-receive hook declined"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(rev(&bare, "main"), before);
}

#[test]
fn smart_http_with_basic_auth_and_a_concurrent_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let other = bare.clone();
    let server = GitHttpServer::start(
        tmp.path(),
        Some(("bot", "s3cret-token")),
        Some(Box::new(move || {
            commit_elsewhere(&other, "main", "b.yaml", "theirs\n")
        })),
    );
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let mut src = source(&format!("{}/m.git", server.base_url));
    src.auth = GitAuth {
        username: Some(Username::Literal("bot".into())),
        password: Some(Secret::File(token_file)),
        ssh: None,
    };
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &src).unwrap();
    ws.sync("main", "main").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "ours").unwrap();
    let err = ws.push(c.id, "main").unwrap_err();
    assert!(matches!(err, GitError::NonFastForward { .. }), "{err}");

    ws.sync("main", "main").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "ours").unwrap();
    ws.push(c.id, "main").unwrap();
    assert_eq!(rev(&bare, "main"), c.id.to_string());
    assert_eq!(show(&bare, "main", "b.yaml"), "theirs\n");
    assert!(
        server
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("git-receive-pack"))
    );
}

#[test]
fn wrong_credentials_fail_after_a_few_tries_without_leaking_the_secret() {
    let tmp = tempfile::tempdir().unwrap();
    bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let server = GitHttpServer::start(tmp.path(), Some(("bot", "right")), None);
    let unauthorized = Arc::clone(&server.unauthorized);
    let token_file = tmp.path().join("wrong-token");
    std::fs::write(&token_file, "wrong-secret-value").unwrap();
    let mut src = source(&format!("{}/m.git", server.base_url));
    src.auth = GitAuth {
        username: Some(Username::Literal("bot".into())),
        password: Some(Secret::File(token_file.clone())),
        ssh: None,
    };
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &src).unwrap();
    let err = ws.sync("main", "main").unwrap_err().to_string();
    assert!(
        err.contains(&format!("file {}", token_file.display())),
        "{err}"
    );
    assert!(!err.contains("wrong-secret-value"), "{err}");
    let tries = unauthorized.load(Ordering::SeqCst);
    assert!((1..=4).contains(&tries), "{tries} unauthorized requests");
}

#[test]
fn a_missing_branch_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let ws = Workspace::open_objects(&tmp.path().join("ws"), &source(&file_url(&bare))).unwrap();
    let err = ws.sync("release", "release").unwrap_err().to_string();
    assert!(err.contains("branch release does not exist"), "{err}");
}

#[test]
fn commits_are_signed_with_an_ssh_key_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let key = tmp.path().join("signing");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tagsmith", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen: install it with apt (openssh-client)");
    assert!(out.status.success());
    let mut ws =
        Workspace::open_objects(&tmp.path().join("ws"), &source(&file_url(&bare))).unwrap();
    ws.sign_commits_with(Some(key.clone()));
    ws.sync("main", "main").unwrap();
    let c = commit_file(&ws, "a.yaml", "x: 2\n", &author(), "signed").unwrap();
    ws.push(c.id, "main").unwrap();

    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = tmp.path().join("allowed_signers");
    std::fs::write(&allowed, format!("tagsmith@example.invalid {public}")).unwrap();
    let verify = crate::gitserver::git(
        &bare,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", allowed.display()),
            "log",
            "-1",
            "--format=%G?",
            "main",
        ],
    );
    assert_eq!(verify.trim(), "G", "a good signature");

    let mut ws =
        Workspace::open_objects(&tmp.path().join("ws"), &source(&file_url(&bare))).unwrap();
    ws.sign_commits_with(Some(tmp.path().join("missing-key")));
    ws.sync("main", "main").unwrap();
    let err = commit_file(&ws, "a.yaml", "x: 3\n", &author(), "unsigned")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot sign the commit with") && err.contains("missing-key"),
        "{err}"
    );
}
