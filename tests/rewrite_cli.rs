//! `tagsmith apply` as users run it: the built binary on a temp tree.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const DEPLOY: &str = "\
spec:
  containers:
    - name: app
      image: ghcr.io/org/app:1.0.0 # {\"$imagepolicy\": \"apps:app\"}
    - name: other
      image: ghcr.io/org/other:1.0.0 # {\"$imagepolicy\": \"apps:other\"}
";
const KUSTOMIZATION: &str = "\
images:
  - name: app
    newTag: 1.0.0 # {\"$imagepolicy\": \"apps:app:tag\"}
";

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("deploy.yaml"), DEPLOY).unwrap();
    fs::create_dir(dir.path().join("base")).unwrap();
    fs::write(dir.path().join("base/Kustomization"), KUSTOMIZATION).unwrap();
    dir
}

fn apply(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .arg("apply")
        .arg(dir)
        .args(["--set", "apps:app=ghcr.io/org/app:1.10"])
        .args(extra)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn check_reports_pending_changes_without_writing() {
    let dir = tree();
    let out = apply(dir.path(), &["--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        fs::read_to_string(dir.path().join("deploy.yaml")).unwrap(),
        DEPLOY
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("deploy.yaml:4: apps:app: ghcr.io/org/app:1.0.0 -> ghcr.io/org/app:1.10"),
        "{stdout}"
    );
    assert!(
        stdout.contains("base/Kustomization:3: apps:app: 1.0.0 -> 1.10"),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: deploy.yaml:6: unknown policy apps:other"),
        "{stderr}"
    );
}

#[test]
fn dry_run_prints_a_unified_diff_and_writes_nothing() {
    let dir = tree();
    let out = apply(dir.path(), &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("--- a/base/Kustomization\n+++ b/base/Kustomization\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-    newTag: 1.0.0 # {\"$imagepolicy\": \"apps:app:tag\"}\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+    newTag: \"1.10\" # {\"$imagepolicy\": \"apps:app:tag\"}\n"),
        "{stdout}"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("base/Kustomization")).unwrap(),
        KUSTOMIZATION
    );
}

#[test]
fn apply_writes_then_check_is_clean() {
    let dir = tree();
    let out = apply(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let deploy = fs::read_to_string(dir.path().join("deploy.yaml")).unwrap();
    assert_eq!(deploy, DEPLOY.replace("app:1.0.0", "app:1.10"));
    let kustomization = fs::read_to_string(dir.path().join("base/Kustomization")).unwrap();
    assert_eq!(
        kustomization,
        KUSTOMIZATION.replace("newTag: 1.0.0", "newTag: \"1.10\"")
    );

    let again = apply(dir.path(), &["--check"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), "");
}

#[test]
fn json_output_lists_changes_and_problems() {
    let dir = tree();
    let out = apply(dir.path(), &["--check", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = doc["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["file"], "base/Kustomization");
    assert_eq!(changes[0]["line"], 3);
    assert_eq!(changes[0]["old"], "1.0.0");
    assert_eq!(changes[0]["new"], "1.10");
    assert_eq!(doc["problems"][0]["severity"], "warning");
    assert_eq!(doc["problems"][0]["line"], 6);
    assert_eq!(doc["written"], false);
    assert_eq!(doc["files"]["changed"], 2);
}

#[test]
fn errors_exit_2_after_processing_the_rest() {
    let dir = tree();
    fs::write(
        dir.path().join("broken.yaml"),
        "a: [b\nc: d # {\"$imagepolicy\": \"apps:app\"}\n",
    )
    .unwrap();
    let out = apply(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: broken.yaml:1: syntax error"),
        "{stderr}"
    );
    let deploy = fs::read_to_string(dir.path().join("deploy.yaml")).unwrap();
    assert!(
        deploy.contains("ghcr.io/org/app:1.10"),
        "the good file was still rewritten"
    );
}

#[test]
fn bad_selections_are_rejected() {
    let dir = tree();
    for bad in [
        "apps:app",
        "apps=ghcr.io/x:1",
        "apps:app=Bad/Name:1",
        "apps:app=x@sha256:12",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args(["apply", dir.path().to_str().unwrap(), "--set", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(!text(&out.stderr).is_empty());
    }
    assert_eq!(
        fs::read_to_string(dir.path().join("deploy.yaml")).unwrap(),
        DEPLOY
    );
}

#[test]
fn apply_rewrites_cue_files_next_to_yaml() {
    let dir = tree();
    let cue = "package apps\n\napp: image: #\"ghcr.io/org/app:1.0.0\"# // {\"$imagepolicy\": \"apps:app\"}\nref: app.image // {\"$imagepolicy\": \"apps:app\"}\n";
    fs::write(dir.path().join("apps.cue"), cue).unwrap();
    let out = apply(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        fs::read_to_string(dir.path().join("apps.cue")).unwrap(),
        cue.replace("app:1.0.0", "app:1.10")
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("apps.cue:3: apps:app: ghcr.io/org/app:1.0.0 -> ghcr.io/org/app:1.10"),
        "{stdout}"
    );
    assert!(stdout.contains("deploy.yaml:4: apps:app:"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: apps.cue:4: marker on a reference"),
        "{stderr}"
    );
}

#[test]
fn a_single_file_can_be_named() {
    let dir = tree();
    let out = apply(&dir.path().join("base/Kustomization"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Kustomization:3: apps:app: 1.0.0 -> 1.10\n"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("deploy.yaml")).unwrap(),
        DEPLOY
    );
    let kustomization = fs::read_to_string(dir.path().join("base/Kustomization")).unwrap();
    assert!(
        kustomization.contains("newTag: \"1.10\""),
        "{kustomization}"
    );
}
