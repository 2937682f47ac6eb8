#![allow(clippy::unwrap_used)]

//! The pull request head branch tagsmith owns: replaced with force-with-lease against real
//! remotes, and never over commits someone else pushed (file:// and smart HTTP with a writer
//! racing the push).

mod gitserver;

use std::path::Path;

use gitserver::{GitHttpServer, bare_repo, commit_elsewhere, rev, show};
use tagsmith::config::{Author, GitAuth, GitSource};
use tagsmith::git::{GitError, Workspace};

const HEAD: &str = "tagsmith/prod";

fn source(url: &str) -> GitSource {
    GitSource {
        url: url.to_string(),
        branch: "main".into(),
        auth: GitAuth::default(),
    }
}

fn author() -> Author {
    Author {
        name: "tagsmith".into(),
        email: "tagsmith@example.invalid".into(),
    }
}

/// Syncs onto main, writes `content`, commits: what a pull request run does before pushing.
fn update(ws: &Workspace, content: &str) -> (git2::Oid, Option<git2::Oid>) {
    let synced = ws.sync_onto_base("main", HEAD).unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.root().join("a.yaml")).unwrap(),
        "x: 1\n",
        "always computed on the base, never on the old head"
    );
    std::fs::write(ws.root().join("a.yaml"), content).unwrap();
    let c = ws
        .commit(&[Path::new("a.yaml")], &author(), "update")
        .unwrap();
    assert_eq!(c.parent, synced.base);
    (c.id, synced.push_head)
}

#[test]
fn the_head_branch_is_replaced_with_a_lease_and_foreign_commits_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let ws = Workspace::open(
        &tmp.path().join("ws"),
        &source(&format!("file://{}", bare.display())),
    )
    .unwrap();

    let (first, expected) = update(&ws, "x: 2\n");
    assert_eq!(expected, None);
    ws.push_with_lease(first, HEAD, None).unwrap();
    assert_eq!(rev(&bare, HEAD), first.to_string());
    let base = ws.sync_onto_base("main", HEAD).unwrap().base;
    assert!(ws.is_own_commit(first, base, &author()).unwrap());

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
    assert!(!ws.is_own_commit(head, synced.base, &author()).unwrap());
}

#[test]
fn a_writer_racing_the_push_over_smart_http_breaks_the_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    gitserver::git(&bare, &["branch", HEAD, "main"]);
    let other = bare.clone();
    let server = GitHttpServer::start(
        tmp.path(),
        None,
        Some(Box::new(move || {
            commit_elsewhere(&other, HEAD, "b.yaml", "theirs\n")
        })),
    );
    let ws = Workspace::open(
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
