//! Incremental reparsing, which restores the external scanner's saved state mid-file, and
//! arbitrary input, which must never crash or hang the parser.

use proptest::prelude::*;
use tree_sitter::{Node, Parser, Tree};

use super::{K8S_DIR, cue_files, nodes_of_kind, parse, root};

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

const PIECES: &[&str] = &[
    "a", "#D", "_h", "if", "for", "in", "let", "package", ":", "?", "!", "=", "{", "}", "[", "]",
    "(", ")", ",", "\n", "\r\n", " ", "\t", "\"s\"", "\"", "'", "#\"", "\"#", "##", "\"\"\"\n",
    "'''\n", "\\(", "\\#(", "\\", "\\n", "|", "&", "*", "-", ">=", "=~", "1", "1.5Ki", "0x1F",
    ".5", "...", "@go(", "// c", "_|_", "\u{feff}", "é",
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
