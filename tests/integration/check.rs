#![allow(clippy::unwrap_used)]

//! `tagsmith check`: the config alone, then the markers of a checkout.

use std::path::Path;
use std::process::{Command, Output};

fn tagsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .output()
        .unwrap()
}

fn write(root: &Path, path: &str, text: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, text).unwrap();
}

const CONFIG: &str = "images:\n  - policy: team-a:app\n    image: ghcr.io/org/app\n    semver: '^1'\n  - policy: team-b:api\n    image: ghcr.io/org/api\n    semver: '^2'\ntargets:\n  - name: prod\n    git: { url: 'file:///nonexistent' }\n    paths: [apps]\n    tenancy: { 'apps/team-a/**': [team-a], 'apps/shared/**': ['*'] }\n";

#[test]
fn a_valid_config_alone_passes() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "tagsmith.yaml", CONFIG);
    let cfg = tmp.path().join("tagsmith.yaml");
    let out = tagsmith(&["check", "-c", cfg.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (2 images, 1 targets)"));
}

#[test]
fn an_invalid_config_exits_two_with_its_location() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "tagsmith.yaml",
        &CONFIG.replace("'^2'", "'^two'"),
    );
    let cfg = tmp.path().join("tagsmith.yaml");
    let out = tagsmith(&["check", "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tagsmith.yaml:7:13: invalid semver range"),
        "{err}"
    );
}

#[test]
fn markers_are_checked_against_policies_and_tenancy() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "tagsmith.yaml", CONFIG);
    let repo = tmp.path().join("repo");
    write(
        &repo,
        "apps/team-a/app.yaml",
        "image: ghcr.io/org/app:1.0.0 # {\"$imagepolicy\": \"team-a:app\"}\n",
    );
    write(
        &repo,
        "apps/team-a/api.yaml",
        "image: ghcr.io/org/api:2.0.0 # {\"$imagepolicy\": \"team-b:api\"}\n",
    );
    write(
        &repo,
        "apps/shared/api.yaml",
        "image: ghcr.io/org/api:2.0.0 # {\"$imagepolicy\": \"team-b:api\"}\n",
    );
    write(
        &repo,
        "apps/team-a/ghost.yaml",
        "a: 1\nimage: x:1 # {\"$imagepolicy\": \"team-a:ghost\"}\n",
    );
    write(
        &repo,
        "apps/team-a/near.yaml",
        "image: x:1 # {\"$imagepolicy\": \"team-a:app\"} please\n",
    );
    write(
        &repo,
        "other/outside.yaml",
        "image: x:1 # {\"$imagepolicy\": \"team-a:ghost\"}\n",
    );
    let cfg = tmp.path().join("tagsmith.yaml");

    let out = tagsmith(&["check", "-c", cfg.to_str().unwrap(), repo.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("warning") || l.starts_with("error"))
        .collect();
    assert_eq!(problems.len(), 3, "{stdout}");
    assert!(
        stdout.contains(
            "apps/team-a/api.yaml:1: policy team-b:api may not change this file (tenancy)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("apps/team-a/ghost.yaml:2: unknown policy team-a:ghost"),
        "{stdout}"
    );
    assert!(
        stdout.contains("apps/team-a/near.yaml:1: looks like a marker but is not one"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("other/outside.yaml"),
        "outside the target's paths: {stdout}"
    );

    let out = tagsmith(&[
        "check",
        "-c",
        cfg.to_str().unwrap(),
        repo.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["problems"].as_array().unwrap().len(), 3);

    let out = tagsmith(&[
        "check",
        "-c",
        cfg.to_str().unwrap(),
        repo.to_str().unwrap(),
        "--target",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// `git init` in `dir`, with `origin` at `url` when given.
fn git_checkout(dir: &Path, origin: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    if let Some(url) = origin {
        git(&["remote", "add", "origin", url]);
    }
}

const TWO_TARGETS: &str = "images:\n  - policy: team-a:app\n    image: ghcr.io/org/app\n    semver: '^1'\ntargets:\n  - name: prod\n    git: { url: 'https://git.example.invalid/org/prod.git' }\n  - name: staging\n    git: { url: 'https://git.example.invalid/org/staging.git' }\n    paths: [apps]\n";

#[test]
fn a_checkout_is_checked_against_its_own_target_once() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "tagsmith.yaml", TWO_TARGETS);
    let cfg = tmp.path().join("tagsmith.yaml");
    let repo = tmp.path().join("repo");
    // The same repository as staging's git.url, written the scp-like way.
    git_checkout(&repo, Some("git@git.example.invalid:org/staging"));
    write(
        &repo,
        "apps/a.yaml",
        "a: 1\nimage: x:1 # {\"$imagepolicy\": \"team-a:ap\"}\n",
    );
    write(
        &repo,
        "other/b.yaml",
        "image: x:1 # {\"$imagepolicy\": \"team-a:ghost\"}\n",
    );

    let out = tagsmith(&["check", "-c", cfg.to_str().unwrap(), repo.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("error") || l.starts_with("warning"))
        .collect();
    // Only staging's paths, once: not once per target, and not prod's whole tree.
    assert_eq!(
        problems,
        [
            "warning: target staging: apps/a.yaml:2: unknown policy team-a:ap: no selection; did you mean `team-a:app`?"
        ],
        "{stdout}"
    );

    let out = tagsmith(&[
        "check",
        "-c",
        cfg.to_str().unwrap(),
        repo.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = json["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{json}");
    assert_eq!(problems[0]["file"], "apps/a.yaml", "{json}");
    assert_eq!(problems[0]["line"], 2, "{json}");
    assert_eq!(problems[0]["scope"], "target staging", "{json}");
    assert_eq!(problems[0]["severity"], "warning", "{json}");
}

#[test]
fn a_checkout_matching_no_single_target_asks_for_one() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "tagsmith.yaml", TWO_TARGETS);
    let cfg = tmp.path().join("tagsmith.yaml");
    for (name, origin) in [
        ("none", None),
        ("other", Some("https://git.example.invalid/org/other.git")),
    ] {
        let repo = tmp.path().join(name);
        git_checkout(&repo, origin);
        let out = tagsmith(&["check", "-c", cfg.to_str().unwrap(), repo.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("--target (prod, staging)"),
            "{name}: {stderr}"
        );
    }
    let out = tagsmith(&[
        "check",
        "-c",
        cfg.to_str().unwrap(),
        tmp.path().join("none").to_str().unwrap(),
        "--target",
        "stagin",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `staging`?"));
}

#[test]
fn config_problems_in_json_carry_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "tagsmith.yaml",
        &CONFIG
            .replace("semver: '^2'", "semvar: '^2'")
            .replace("paths:", "pahts:"),
    );
    let cfg = tmp.path().join("tagsmith.yaml");
    let out = tagsmith(&["check", "-c", cfg.to_str().unwrap(), "--output", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    let problems = json["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{json}");
    assert_eq!(problems[0]["file"], cfg.to_str().unwrap());
    assert_eq!(
        (problems[0]["line"].clone(), problems[0]["column"].clone()),
        (7.into(), 5.into()),
        "{json}"
    );
    assert_eq!(
        problems[0]["message"],
        "unknown key `semvar` in images[1]; did you mean `semver`?"
    );
    assert_eq!(
        (problems[1]["line"].clone(), problems[1]["column"].clone()),
        (11.into(), 5.into()),
        "{json}"
    );
}
