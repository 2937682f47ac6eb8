//! `tagsmith policy eval --policy NS:NAME`: a configured policy against the real registry, with
//! the configured credentials, as `argocd-image-updater test` evaluates one.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::{Auth, Registry};

fn tagsmith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .env("REG_USER", "ci")
        .env("REG_PASSWORD", "pw-from-env")
        // --policy reads no stdin: a closed one proves it.
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

struct Fixture {
    registry: Registry,
    _dir: tempfile::TempDir,
    config: PathBuf,
    /// The digest every pushed tag points at.
    digest: String,
}

/// A registry that needs a password, `org/app` tagged 1.0.0, 1.4.2, 2.0.0 and latest, and a
/// config with three policies on it.
fn fixture() -> Fixture {
    let registry = Registry::start(Auth::Htpasswd {
        user: "ci".into(),
        password: "pw-from-env".into(),
    });
    let tags: Vec<String> = ["1.0.0", "1.4.2", "2.0.0", "latest"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    let digest = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.pusher().push_tags("org/app", &tags));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &registry.host);
    Fixture {
        registry,
        _dir: dir,
        config,
        digest,
    }
}

fn write_config(dir: &Path, reg: &str) -> PathBuf {
    let path = dir.join("tagsmith.yaml");
    std::fs::write(
        &path,
        format!(
            "images:\n\
             \x20 - policy: team-a:app\n    image: {reg}/org/app\n    semver: '^1'\n\
             \x20 - policy: team-a:pinned\n    image: {reg}/org/app\n    semver: '>=1.0.0'\n    digest: Always\n\
             \x20 - policy: team-a:none\n    image: {reg}/org/app\n    semver: '^3'\n\
             registries:\n  - host: {reg}\n    auth: {{ basic: {{ usernameEnv: REG_USER, passwordEnv: REG_PASSWORD }} }}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn selects_from_the_registry_with_the_configured_credentials() {
    let f = fixture();
    let config = f.config.to_str().unwrap();
    let o = tagsmith(&["policy", "eval", "-c", config, "--policy", "team-a:app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "1.4.2\n");

    // A policy that pins digests prints the digest the registry holds for the tag.
    let o = tagsmith(&["policy", "eval", "-c", config, "--policy", "team-a:pinned"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("2.0.0@{}\n", f.digest));

    let o = tagsmith(&[
        "policy",
        "eval",
        "-c",
        config,
        "--policy",
        "team-a:pinned",
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["policy"], "team-a:pinned");
    assert_eq!(json["image"], format!("{}/org/app", f.registry.host));
    assert_eq!(json["selected"], "2.0.0");
    assert_eq!(json["digest"], f.digest.as_str());
    assert_eq!(json["stats"]["tags"], 4);
    assert_eq!(json["stats"]["notSemver"], 1);
}

#[test]
fn explain_gives_every_registry_tag_a_verdict() {
    let f = fixture();
    let config = f.config.to_str().unwrap();
    let o = tagsmith(&[
        "policy",
        "eval",
        "-c",
        config,
        "--policy",
        "team-a:app",
        "--explain",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines.contains(&"selected  1.4.2: the best candidate"),
        "{out}"
    );
    assert!(lines.contains(&"kept      1.0.0: lost to 1.4.2"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("dropped   2.0.0: ") && l.contains("range")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("dropped   latest: ")),
        "{out}"
    );
    assert_eq!(lines[4], "1.4.2");

    let o = tagsmith(&[
        "policy",
        "eval",
        "-c",
        config,
        "--policy",
        "team-a:app",
        "--explain",
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let verdicts = json["tags"].as_array().unwrap();
    assert_eq!(verdicts.len(), 4);
    let selected: Vec<&str> = verdicts
        .iter()
        .filter(|v| v["verdict"] == "selected")
        .map(|v| v["tag"].as_str().unwrap())
        .collect();
    assert_eq!(selected, ["1.4.2"]);
}

#[test]
fn nothing_selected_exits_one_naming_the_policy() {
    let f = fixture();
    let o = tagsmith(&[
        "policy",
        "eval",
        "-c",
        f.config.to_str().unwrap(),
        "--policy",
        "team-a:none",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "");
    let err = text(&o.stderr);
    assert!(
        err.contains("team-a:none") && err.contains("no tag selected from 4 tags"),
        "{err}"
    );
}

#[test]
fn an_unknown_policy_exits_two_with_a_suggestion() {
    let f = fixture();
    let o = tagsmith(&[
        "policy",
        "eval",
        "-c",
        f.config.to_str().unwrap(),
        "--policy",
        "team-a:ap",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(text(&o.stdout), "");
    let err = text(&o.stderr);
    assert!(
        err.contains("unknown policy `team-a:ap`") && err.contains("did you mean `team-a:app`?"),
        "{err}"
    );
}

#[test]
fn a_registry_refusing_the_credentials_exits_two() {
    let f = fixture();
    let o = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["policy", "eval", "-c", f.config.to_str().unwrap()])
        .args(["--policy", "team-a:app"])
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent")
        .env("REG_USER", "ci")
        .env("REG_PASSWORD", "wrong-password")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("unauthorized"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
}

#[test]
fn policy_conflicts_with_a_rule_given_on_the_command_line() {
    let o = tagsmith(&["policy", "eval", "--policy", "team-a:app", "--semver", "^1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("cannot be used with"),
        "{}",
        text(&o.stderr)
    );
    let o = tagsmith(&["policy", "eval", "--policy", "team-a:app", "--filter", "^1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("cannot be used with"),
        "{}",
        text(&o.stderr)
    );
}
