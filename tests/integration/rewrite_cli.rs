//! `tagsmith apply` as users run it: the built binary on a temp tree.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
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

/// Scan caches of these tests live under the build's own temp folder, never in $HOME.
fn cache_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("rewrite-cli-cache")
}

fn apply(dir: &Path, extra: &[&str]) -> Output {
    apply_with_cache(dir, &cache_home(), extra)
}

fn apply_with_cache(dir: &Path, cache_home: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .env("XDG_CACHE_HOME", cache_home)
        .env_remove("RUST_LOG")
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
    // A partial --set is not a problem: only a count of the markers left alone...
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("unknown policy apps:other"), "{stderr}");
    assert!(
        stderr.contains("1 marker(s) name policies no --set gives"),
        "{stderr}"
    );
    // ...unless asked for each of them.
    let out = apply(dir.path(), &["--check", "--strict"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
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
            .env("XDG_CACHE_HOME", cache_home())
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

/// Runs `apply --check` with info logs as JSON and returns (exit code, stdout, cache hits,
/// cache misses) from the walk's summary line.
fn check_counting(dir: &Path, cache_home: &Path, extra: &[&str]) -> (i32, String, u64, u64) {
    let mut args = vec!["--check", "--log", "info", "--log-format", "json"];
    args.extend_from_slice(extra);
    let out = apply_with_cache(dir, cache_home, &args);
    let stderr = text(&out.stderr);
    let summary = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "rewrite done")
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let count = |k: &str| summary["fields"][k].as_u64().unwrap();
    (
        out.status.code().unwrap(),
        text(&out.stdout),
        count("cache_hits"),
        count("cache_misses"),
    )
}

fn cache_files(cache_home: &Path) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(cache_home.join("tagsmith")) else {
        return Vec::new();
    };
    dir.map(|e| e.unwrap().path()).collect()
}

#[test]
fn a_second_check_parses_nothing_and_says_the_same() {
    let dir = tree();
    let home = tempfile::tempdir().unwrap();
    let (code, first, hits, misses) = check_counting(dir.path(), home.path(), &[]);
    assert_eq!((code, hits), (1, 0));
    // Two files as found, and the two as they would be after the edits.
    assert_eq!(misses, 4);
    assert_eq!(cache_files(home.path()).len(), 1, "one cache file per tree");
    let (code, second, hits, misses) = check_counting(dir.path(), home.path(), &[]);
    assert_eq!((code, hits, misses), (1, 4, 0));
    assert_eq!(second, first);
}

#[test]
fn a_rewritten_file_is_a_hit_next_time_and_a_changed_one_is_parsed_again() {
    let dir = tree();
    let home = tempfile::tempdir().unwrap();
    let out = apply_with_cache(dir.path(), home.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (code, stdout, hits, misses) = check_counting(dir.path(), home.path(), &[]);
    assert_eq!((code, stdout.as_str(), hits, misses), (0, "", 2, 0));

    // Someone edits a file by hand: its new bytes are parsed, never an old scan reused.
    let deploy = dir.path().join("deploy.yaml");
    let edited = fs::read_to_string(&deploy)
        .unwrap()
        .replace("app:1.10", "app:0.9");
    fs::write(&deploy, edited).unwrap();
    let (code, stdout, hits, misses) = check_counting(dir.path(), home.path(), &[]);
    // Parsed: the edited file. Hits: the other file, and the edited file's would-be rewrite,
    // which is byte for byte the file the first run wrote.
    assert_eq!((code, hits, misses), (1, 2, 1));
    assert!(
        stdout.contains("deploy.yaml:4: apps:app: ghcr.io/org/app:0.9 -> ghcr.io/org/app:1.10"),
        "{stdout}"
    );
}

#[test]
fn no_cache_reads_and_writes_no_cache() {
    let dir = tree();
    let home = tempfile::tempdir().unwrap();
    let (code, cached, ..) = check_counting(dir.path(), home.path(), &[]);
    assert_eq!(code, 1);
    let file = cache_files(home.path()).pop().unwrap();
    let saved = fs::read(&file).unwrap();
    let (code, uncached, hits, misses) = check_counting(dir.path(), home.path(), &["--no-cache"]);
    assert_eq!((code, hits, misses), (1, 0, 0));
    assert_eq!(uncached, cached);
    assert_eq!(
        fs::read(&file).unwrap(),
        saved,
        "--no-cache touched the cache"
    );

    let fresh = tempfile::tempdir().unwrap();
    let out = apply_with_cache(dir.path(), fresh.path(), &["--no-cache"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(cache_files(fresh.path()).is_empty());
}

#[test]
fn a_damaged_or_foreign_cache_file_is_ignored_and_rebuilt() {
    let dir = tree();
    let home = tempfile::tempdir().unwrap();
    let (_, expected, ..) = check_counting(dir.path(), home.path(), &[]);
    let file = cache_files(home.path()).pop().unwrap();
    let good = fs::read(&file).unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 5;
    flipped[last] ^= 0x20;
    let mut foreign = good.clone();
    // The build id follows the magic and a few header bytes; any other build must not count.
    let at = foreign.windows(6).position(|w| w == b"0.1.0+").unwrap();
    foreign[at] = b'9';
    for damaged in [
        Vec::new(),
        b"not a cache".to_vec(),
        good[..good.len() / 2].to_vec(),
        flipped,
        foreign,
    ] {
        fs::write(&file, &damaged).unwrap();
        let out = apply_with_cache(dir.path(), home.path(), &["--check"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), expected);
        assert!(
            text(&out.stderr).contains("ignoring the scan cache"),
            "{}",
            text(&out.stderr)
        );
        let (_, again, hits, misses) = check_counting(dir.path(), home.path(), &[]);
        assert_eq!(
            (again, hits, misses),
            (expected.clone(), 4, 0),
            "not rebuilt"
        );
    }
}

#[test]
fn the_cache_file_keeps_only_what_the_last_run_used() {
    let dir = tree();
    for i in 0..20 {
        fs::write(
            dir.path().join(format!("extra-{i}.yaml")),
            format!("image: ghcr.io/org/app:0.{i} # {{\"$imagepolicy\": \"apps:app\"}}\n"),
        )
        .unwrap();
    }
    let home = tempfile::tempdir().unwrap();
    check_counting(dir.path(), home.path(), &[]);
    let file = cache_files(home.path()).pop().unwrap();
    let big = fs::metadata(&file).unwrap().len();
    for i in 0..20 {
        fs::remove_file(dir.path().join(format!("extra-{i}.yaml"))).unwrap();
    }
    let (_, _, hits, misses) = check_counting(dir.path(), home.path(), &[]);
    assert_eq!((hits, misses), (4, 0));
    let small = fs::metadata(&file).unwrap().len();
    assert!(small * 4 < big, "{small} bytes after, {big} before");
}

#[test]
fn syntax_errors_are_still_reported_from_the_cache() {
    let dir = tree();
    fs::write(
        dir.path().join("broken.yaml"),
        "a: [b\nc: d # {\"$imagepolicy\": \"apps:app\"}\n",
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    for run in 0..2 {
        let out = apply_with_cache(dir.path(), home.path(), &["--check"]);
        assert_eq!(out.status.code(), Some(2), "run {run}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("error: broken.yaml:1: syntax error"),
            "run {run}: {stderr}"
        );
    }
}

#[test]
fn cache_dir_is_honoured_and_an_unusable_one_only_warns() {
    let dir = tree();
    let home = tempfile::tempdir().unwrap();
    let chosen = home.path().join("chosen");
    let out = apply_with_cache(
        dir.path(),
        home.path(),
        &["--check", "--cache-dir", chosen.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(fs::read_dir(&chosen).unwrap().count(), 1);
    assert!(cache_files(home.path()).is_empty());

    let file = home.path().join("a-file");
    fs::write(&file, "").unwrap();
    let unusable = file.join("cache");
    let out = apply_with_cache(
        dir.path(),
        home.path(),
        &["--check", "--cache-dir", unusable.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("running without a scan cache"),
        "{}",
        text(&out.stderr)
    );
}

/// Issue 13 item 17: a UTF-16 file's marker bytes are interleaved with NULs, so the byte
/// search for `$imagepolicy` misses it; such a file is named, left as it is, and the run
/// fails, instead of passing over it without a word.
#[test]
fn a_utf16_file_with_a_marker_is_reported_by_name() {
    let dir = tree();
    let mut utf16le = vec![0xff, 0xfe];
    for unit in DEPLOY.encode_utf16() {
        utf16le.extend_from_slice(&unit.to_le_bytes());
    }
    let utf16be: Vec<u8> = DEPLOY
        .encode_utf16()
        .flat_map(|unit| unit.to_be_bytes())
        .collect();
    fs::write(dir.path().join("wide.yaml"), &utf16le).unwrap();
    fs::write(dir.path().join("base/wide-be.yml"), &utf16be).unwrap();
    let plain: Vec<u8> = "a: b\n"
        .encode_utf16()
        .flat_map(|unit| unit.to_le_bytes())
        .collect();
    fs::write(dir.path().join("no-marker.yaml"), &plain).unwrap();

    let out = apply(dir.path(), &["--no-cache"]);

    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for (file, encoding) in [("wide.yaml", "UTF-16LE"), ("base/wide-be.yml", "UTF-16BE")] {
        assert!(
            stderr.contains(&format!(
                "error: {file}: holds a marker but is encoded as {encoding}; tagsmith rewrites only UTF-8 files"
            )),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("no-marker.yaml"), "{stderr}");
    assert_eq!(fs::read(dir.path().join("wide.yaml")).unwrap(), utf16le);
    assert_eq!(
        fs::read(dir.path().join("base/wide-be.yml")).unwrap(),
        utf16be
    );
    let deploy = fs::read_to_string(dir.path().join("deploy.yaml")).unwrap();
    assert!(deploy.contains("ghcr.io/org/app:1.10"), "{deploy}");
}

#[test]
fn a_marker_near_a_set_policy_is_named_with_the_suggestion() {
    let dir = tree();
    fs::write(
        dir.path().join("typo.yaml"),
        "image: ghcr.io/org/app:1.0.0 # {\"$imagepolicy\": \"apps:ap\"}\n",
    )
    .unwrap();
    let out = apply(dir.path(), &["--check"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "warning: typo.yaml:1: unknown policy apps:ap: no selection; did you mean `apps:app`?"
        ),
        "{stderr}"
    );
    // The far one (apps:other) is still only counted.
    assert!(
        stderr.contains("1 marker(s) name policies no --set gives"),
        "{stderr}"
    );
}
