#![allow(clippy::unwrap_used)]

//! A target's workspace against a real remote: created owner-only, and a damaged `.git` is set
//! aside and cloned again instead of failing every run.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::gitserver::{bare_repo, commit_elsewhere, rev};
use tagsmith::config::{GitAuth, GitSource};
use tagsmith::git::Workspace;

fn source(bare: &Path) -> GitSource {
    GitSource {
        checkout: None,
        push_options: Vec::new(),
        url: format!("file://{}", bare.display()),
        branch: "main".into(),
        auth: GitAuth::default(),
    }
}

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
    let ws = Workspace::open(&dir, &source(&bare)).unwrap();
    ws.sync("main", "main").unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&tmp.path().join("state/workspaces")), 0o700);
    assert_eq!(mode(&tmp.path().join("state")), 0o700);
    drop(ws);
    // One an older tagsmith left world-readable.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    Workspace::open(&dir, &source(&bare)).unwrap();
    assert_eq!(mode(&dir), 0o700);
}

/// Each way of damaging `.git` that made every run fail: the workspace opens again, the next
/// sync holds the remote's files, and the damaged copy is kept (one per workspace).
#[test]
fn a_damaged_workspace_is_set_aside_and_cloned_again() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "m", &[("a.yaml", "x: 1\n")]);
    let dir = tmp.path().join("workspaces/prod");
    let ws = Workspace::open(&dir, &source(&bare)).unwrap();
    ws.sync("main", "main").unwrap();
    drop(ws);

    type Damage = fn(&Path);
    let damages: [(&str, Damage); 5] = [
        ("HEAD overwritten", |git| {
            std::fs::write(git.join("HEAD"), b"\0\0garbage\n").unwrap()
        }),
        ("index truncated", |git| {
            std::fs::write(git.join("index"), b"DIRC\0\0").unwrap()
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
        let ws = Workspace::open(&dir, &source(&bare)).unwrap_or_else(|e| panic!("{what}: {e}"));
        let synced = ws
            .sync("main", "main")
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(synced.base.to_string(), rev(&bare, "main"), "{what}");
        assert_eq!(
            std::fs::read_to_string(dir.join("a.yaml")).unwrap(),
            format!("x: {}\n", i + 2),
            "{what}"
        );
        let aside = set_aside(&dir);
        assert_eq!(aside.len(), 1, "{what}: one damaged copy kept: {aside:?}");
        assert!(aside[0].join(".git").exists(), "{what}");
        assert_eq!(mode(&dir), 0o700, "{what}");
    }
}
