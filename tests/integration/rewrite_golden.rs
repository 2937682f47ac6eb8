//! Golden rewrite fixtures: each `tests/fixtures/rewrite/<case>/` holds an input tree `in/`,
//! the `selections` (one `ns:name=image` a line), the files that change as they must read
//! afterwards in `out/` (byte for byte; files not in `out/` must not change) and the expected
//! `report` (changes, then problems). `TAGSMITH_BLESS=1` rewrites `out/` and `report` from
//! the current behaviour, for review in the diff.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tagsmith::model::{ImageRef, PolicyId};
use tagsmith::rewrite::ScanCache;
use tagsmith::rewrite::walk::{Mode, TreeReport, rewrite_tree};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rewrite")
}

fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        if !dir.exists() {
            return;
        }
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                go(root, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}

fn selections(case: &Path) -> BTreeMap<PolicyId, ImageRef> {
    fs::read_to_string(case.join("selections"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (p, i) = l.split_once('=').unwrap();
            (p.parse().unwrap(), i.parse().unwrap())
        })
        .collect()
}

fn report_text(report: &TreeReport) -> String {
    let mut out = String::new();
    for c in &report.changes {
        out.push_str(&format!("{c}\n"));
    }
    for p in &report.problems {
        let level = if p.kind.is_error() {
            "error"
        } else {
            "warning"
        };
        out.push_str(&format!("{level}: {p}\n"));
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in files_under(from) {
        let dest = to.join(rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(dest, bytes).unwrap();
    }
}

fn run_case(name: &str) {
    let case = fixtures().join(name);
    let input = files_under(&case.join("in"));
    assert!(!input.is_empty(), "{name}: empty input tree");
    let selections = selections(&case);

    // A dry run computes the same outcome and writes nothing.
    let dry = tempfile::tempdir().unwrap();
    copy_tree(&case.join("in"), dry.path());
    let dry_report = rewrite_tree(dry.path(), &[], &selections, Mode::DryRun, None).unwrap();
    assert_eq!(
        files_under(dry.path()),
        input,
        "{name}: a dry run wrote files"
    );

    // The scan cache changes nothing, cold or reloaded from its bytes; warm, it parses nothing.
    let cache = ScanCache::new();
    let cold = rewrite_tree(dry.path(), &[], &selections, Mode::DryRun, Some(&cache)).unwrap();
    assert_eq!(cold, dry_report, "{name}: a cold cache changes the report");
    let cache = ScanCache::from_bytes(&cache.to_bytes().unwrap()).unwrap();
    let warm = rewrite_tree(dry.path(), &[], &selections, Mode::DryRun, Some(&cache)).unwrap();
    assert_eq!(warm, dry_report, "{name}: a warm cache changes the report");
    assert_eq!(cache.stats().misses, 0, "{name}: a warm cache parsed");

    let work = tempfile::tempdir().unwrap();
    copy_tree(&case.join("in"), work.path());
    let report = rewrite_tree(work.path(), &[], &selections, Mode::Write, Some(&cache)).unwrap();
    assert_eq!(report, dry_report, "{name}: dry run and write disagree");
    let output = files_under(work.path());
    let text = report_text(&report);

    if std::env::var_os("TAGSMITH_BLESS").is_some() {
        let out_dir = case.join("out");
        let _ = fs::remove_dir_all(&out_dir);
        for (rel, bytes) in &output {
            if input.get(rel) != Some(bytes) {
                let dest = out_dir.join(rel);
                fs::create_dir_all(dest.parent().unwrap()).unwrap();
                fs::write(dest, bytes).unwrap();
            }
        }
        fs::write(case.join("report"), &text).unwrap();
        return;
    }

    let expected_changed = files_under(&case.join("out"));
    assert_eq!(
        output.keys().collect::<Vec<_>>(),
        input.keys().collect::<Vec<_>>(),
        "{name}: files appeared or vanished (temp files left behind?)"
    );
    for (rel, bytes) in &output {
        let expected = expected_changed.get(rel).unwrap_or(&input[rel]);
        assert!(
            bytes == expected,
            "{name}/{}: output differs from the golden file\n--- got\n{}\n--- expected\n{}",
            rel.display(),
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(expected)
        );
    }
    let changed: Vec<_> = report.changed.iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        changed,
        expected_changed.keys().cloned().collect::<Vec<_>>(),
        "{name}: changed files"
    );
    let expected_report = fs::read_to_string(case.join("report")).unwrap();
    assert_eq!(text, expected_report, "{name}: report");

    // Same inputs again: nothing left to do, and the files as written were scanned (when
    // their edits were verified), so nothing is parsed either.
    let again = rewrite_tree(work.path(), &[], &selections, Mode::Write, Some(&cache)).unwrap();
    assert_eq!(cache.stats().misses, 0, "{name}: the second run parsed");
    let uncached = rewrite_tree(work.path(), &[], &selections, Mode::Write, None).unwrap();
    assert_eq!(again, uncached, "{name}: second run, cached and not");
    assert!(
        again.changes.is_empty(),
        "{name}: second run still changes {:?}",
        again.changes
    );
    assert_eq!(files_under(work.path()), output, "{name}: second run wrote");
}

macro_rules! golden {
    ($($test:ident => $case:literal,)*) => {
        $(#[test] fn $test() { run_case($case); })*

        #[test]
        fn every_fixture_has_a_test() {
            let mut known = vec![$($case),*];
            known.sort_unstable();
            let mut found: Vec<String> = fs::read_dir(fixtures())
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_dir())
                .map(|e| e.file_name().into_string().unwrap())
                .collect();
            found.sort();
            assert_eq!(found, known);
        }
    };
}

golden! {
    deployment_containers => "deployment-containers",
    multi_document => "multi-document",
    kustomize_images => "kustomize-images",
    kustomize_patch => "kustomize-patch",
    helm_values => "helm-values",
    flow_collections => "flow-collections",
    head_markers => "head-markers",
    typed_values => "typed-values",
    anchors_aliases => "anchors-aliases",
    quote_styles => "quote-styles",
    byte_exact => "byte-exact",
    problems => "problems",
    discovery => "discovery",
    already_current => "already-current",
    cue_strings => "cue-strings",
    cue_definitions => "cue-definitions",
    cue_crlf => "cue-crlf",
    cue_problems => "cue-problems",
    cue_syntax_error => "cue-syntax-error",
}
