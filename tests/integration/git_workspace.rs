#![allow(clippy::unwrap_used)]

//! A target's workspace against a real remote: created owner-only, a checkout an older tagsmith
//! left is emptied, and a damaged `.git` is set aside and cloned again instead of failing
//! every run.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::gitserver::{bare_repo, commit_elsewhere, git, rev};
use crate::support::workspace::{file_source as source, head_text};
use tagsmith::git::Workspace;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_aside(dir: &Path) -> Vec<PathBuf> {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{name}.damaged-"))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn workspaces_are_created_owner_only_and_old_ones_are_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let dir = tmp.path().join("state/workspaces/prod");
    let ws = Workspace::open_objects(&dir, &source(&bare)).unwrap();
    ws.sync("main", "main").unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&tmp.path().join("state/workspaces")), 0o700);
    assert_eq!(mode(&tmp.path().join("state")), 0o700);
    drop(ws);
    // One an older tagsmith left world-readable.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    Workspace::open_objects(&dir, &source(&bare)).unwrap();
    assert_eq!(mode(&dir), 0o700);
}

/// A workspace an older tagsmith checked out (files, index and all): its files go, so nothing
/// stale can pass for the repository's, and it syncs to the remote's head as a bare one. A
/// damaged index in it is no damage: nothing reads it.
#[test]
fn a_checkout_left_by_an_older_tagsmith_is_emptied() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        tmp.path(),
        "m",
        &[("a.yaml", "x: 1\n"), ("sub/b.yaml", "y\n")],
    );
    let dir = tmp.path().join("workspaces/prod");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            &format!("file://{}", bare.display()),
            "workspaces/prod",
        ],
    );
    std::fs::write(dir.join("a.yaml"), "x: half-written\n").unwrap();
    std::fs::write(dir.join("stray.yaml"), "stray\n").unwrap();
    std::fs::write(dir.join(".git/index"), b"DIRC\0\0").unwrap();
    commit_elsewhere(&bare, "main", "a.yaml", "x: 2\n");

    let ws = Workspace::open_objects(&dir, &source(&bare)).unwrap();
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [".git"]);
    assert!(
        !dir.join(".git/index").exists(),
        "the checkout's index goes too"
    );
    let synced = ws.sync("main", "main").unwrap();
    assert_eq!(synced.base.to_string(), rev(&bare, "main"));
    assert_eq!(head_text(&ws, "a.yaml"), "x: 2\n");
    assert_eq!(head_text(&ws, "sub/b.yaml"), "y\n");
    assert!(set_aside(&dir).is_empty(), "a checkout is no damage");
}

/// Each way of damaging `.git` that made every run fail: the workspace opens again, the next
/// sync holds the remote's files, and the damaged copy is kept (one per workspace).
#[test]
fn a_damaged_workspace_is_set_aside_and_cloned_again() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let dir = tmp.path().join("workspaces/prod");
    let ws = Workspace::open_objects(&dir, &source(&bare)).unwrap();
    ws.sync("main", "main").unwrap();
    drop(ws);

    type Damage = fn(&Path);
    let damages: [(&str, Damage); 4] = [
        ("HEAD overwritten", |git| {
            std::fs::write(git.join("HEAD"), b"\0\0garbage\n").unwrap()
        }),
        ("objects lost", |git| {
            std::fs::remove_dir_all(git.join("objects")).unwrap();
            std::fs::create_dir(git.join("objects")).unwrap();
        }),
        ("a remote-tracking reference garbled", |git| {
            std::fs::write(git.join("refs/remotes/origin/main"), b"not a sha\n").unwrap()
        }),
        ("config garbled", |git| {
            std::fs::write(
                git.join("config"),
                b"[core\n\trepositoryformatversion = ???\n",
            )
            .unwrap()
        }),
    ];
    for (i, (what, damage)) in damages.iter().enumerate() {
        commit_elsewhere(&bare, "main", "a.yaml", &format!("x: {}\n", i + 2));
        damage(&dir.join(".git"));
        let ws =
            Workspace::open_objects(&dir, &source(&bare)).unwrap_or_else(|e| panic!("{what}: {e}"));
        let synced = ws
            .sync("main", "main")
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(synced.base.to_string(), rev(&bare, "main"), "{what}");
        assert_eq!(
            head_text(&ws, "a.yaml"),
            format!("x: {}\n", i + 2),
            "{what}"
        );
        let aside = set_aside(&dir);
        assert_eq!(aside.len(), 1, "{what}: one damaged copy kept: {aside:?}");
        assert!(aside[0].join(".git").exists(), "{what}");
        assert_eq!(mode(&dir), 0o700, "{what}");
    }
}
