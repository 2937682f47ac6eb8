//! YAML: locates marker comments and the scalar each one sets, with tree-sitter-yaml.
//!
//! tree-sitter-yaml puts a trailing comment after its key/value pair as a sibling, so a
//! marker is matched to a value by line: the last value starting on the marker's line,
//! before the comment.

use std::cell::RefCell;
use std::collections::BTreeMap;

use std::ops::Range;

use tree_sitter::{InputEdit, Node, Parser, Point, Tree};

use super::marker::parse_marker;
use super::{
    Finding, MARKER_NEEDLE, Marker, ProblemKind, ScanResult, Site, Style, yaml_large, yaml_literal,
};

thread_local! {
    // A parser per thread: creating one per file costs more than parsing a small manifest.
    static PARSER: RefCell<Option<Parser>> = const { RefCell::new(None) };
    // The last file this thread scanned and its tree, so verifying an edit of that file
    // re-parses incrementally: only the edited lines are lexed again.
    static LAST: RefCell<Option<(Vec<u8>, Tree)>> = const { RefCell::new(None) };
}

fn parse(source: &[u8], old: Option<&Tree>) -> Option<Tree> {
    PARSER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut parser = Parser::new();
            parser
                .set_language(&tree_sitter_yaml::LANGUAGE.into())
                .ok()?;
            *slot = Some(parser);
        }
        slot.as_mut()?.parse(source, old)
    })
}

pub fn scan(source: &[u8]) -> ScanResult {
    if let Some(result) = large(source) {
        return result;
    }
    let tree = parse(source, None);
    if let Some(tree) = &tree {
        LAST.with(|last| *last.borrow_mut() = Some((source.to_vec(), tree.clone())));
    }
    analyze(tree, source)
}

/// Scans `new`, made from `old` by replacing each range with a text of the given length.
/// When `old` is the file this thread scanned last, its tree is edited and re-parsed
/// incrementally; tree-sitter guarantees the same tree as a full parse.
pub fn rescan(old: &[u8], new: &[u8], edits: &[(Range<usize>, &str)]) -> ScanResult {
    if let Some(result) = large(new) {
        return result;
    }
    let cached = LAST.with(|last| {
        let last = last.borrow();
        let (source, tree) = last.as_ref()?;
        (source.as_slice() == old).then(|| tree.clone())
    });
    let Some(mut tree) = cached else {
        return analyze(parse(new, None), new);
    };
    // Back to front, so each edit's old offsets are still those of `old`.
    for (range, text) in edits.iter().rev() {
        let start_position = point_of(old, range.start);
        let new_end_position = match memchr::memrchr(b'\n', text.as_bytes()) {
            Some(i) => Point::new(
                start_position.row + memchr::memchr_iter(b'\n', text.as_bytes()).count(),
                text.len() - i - 1,
            ),
            None => Point::new(start_position.row, start_position.column + text.len()),
        };
        tree.edit(&InputEdit {
            start_byte: range.start,
            old_end_byte: range.end,
            new_end_byte: range.start + text.len(),
            start_position,
            old_end_position: point_of(old, range.end),
            new_end_position,
        });
    }
    analyze(parse(new, Some(&tree)), new)
}

/// Files over tree-sitter-yaml's line counter or with large flow collections are parsed
/// through an adjusted copy (see `yaml_large`), never incrementally.
fn large(source: &[u8]) -> Option<ScanResult> {
    yaml_large::scan(source, marker_rows, |text| analyze(parse(text, None), text))
}

fn point_of(source: &[u8], offset: usize) -> Point {
    let before = &source[..offset.min(source.len())];
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    Point::new(
        memchr::memchr_iter(b'\n', before).count(),
        before.len() - line_start,
    )
}

fn analyze(tree: Option<Tree>, source: &[u8]) -> ScanResult {
    let mut result = ScanResult::default();
    let root = match parsed_root(tree.as_ref()) {
        Ok(root) => root,
        Err(finding) => {
            result.problems.push(finding);
            return result;
        }
    };

    let mut collected = Collected::default();
    collect(root, source, &mut collected);
    result.problems.extend(stray_markers(source, &collected));

    for (&row, &comment) in &collected.markers {
        let line = row + 1;
        let marker = match parse_marker(comment_body(comment, source)).at_line(line) {
            Ok(Some(marker)) => marker,
            Ok(None) => continue,
            Err(finding) => {
                result.problems.push(finding);
                continue;
            }
        };
        let value = collected.values.get(&row).and_then(|values| {
            values
                .iter()
                .filter(|v| v.start_byte() < comment.start_byte())
                .max_by_key(|v| v.start_byte())
        });
        match value.map(|v| site(*v, source, marker, line)) {
            None => result.problems.push(Finding {
                line,
                kind: ProblemKind::NoValue,
            }),
            Some(Ok(site)) => result.sites.push(site),
            Some(Err(what)) => result.problems.push(Finding {
                line,
                kind: ProblemKind::UnsupportedValue { what: what.into() },
            }),
        }
    }
    result.problems.extend(collected.block_scalar_markers);
    result.sites.sort_by_key(|s| s.range.start);
    result.problems.sort_by_key(|p| p.line);
    result
}

#[derive(Default)]
struct Collected<'t> {
    /// Comments that may be markers, by 0-based row.
    markers: BTreeMap<usize, Node<'t>>,
    /// Value nodes (mapping values, sequence items, document roots) by start row.
    values: BTreeMap<usize, Vec<Node<'t>>>,
    /// `$imagepolicy` inside block scalars.
    block_scalar_markers: Vec<Finding>,
}

/// Collects what a marker needs (its comment, the values on its line) from the nodes on
/// lines that mention `imagepolicy`.
fn collect<'t>(root: Node<'t>, source: &[u8], out: &mut Collected<'t>) {
    visit_marker_rows(root, source, |node, field, parent| match node.kind() {
        "comment" => {
            out.markers.insert(node.start_position().row, node);
            false
        }
        "flow_node" | "block_node" if is_value(parent, field) => {
            let (start, end) = (node.start_position().row, node.end_position().row);
            out.values.entry(start).or_default().push(node);
            // A multi-line flow value ending on a marker's line is that marker's value (and
            // gets reported as unsupported); block values end where their last child does,
            // which may be an unrelated comment line.
            if end != start && node.kind() == "flow_node" {
                out.values.entry(end).or_default().push(node);
            }
            true
        }
        "block_scalar" => {
            block_scalar_markers(node, source, &mut out.block_scalar_markers);
            false
        }
        kind => !kind.ends_with("_scalar"),
    });
}

/// Visits, depth first, only the nodes that touch a line mentioning `imagepolicy`: a marker's
/// comment, the value it sets and their ancestors lie on such lines, and the rest of a file
/// is most of its nodes. `visit(node, field name, parent kind)` says whether to descend.
pub(super) fn visit_marker_rows<'t>(
    root: Node<'t>,
    source: &[u8],
    mut visit: impl FnMut(Node<'t>, Option<&'t str>, Option<&'t str>) -> bool,
) {
    let rows = marker_rows(source);
    if rows.is_empty() {
        return;
    }
    let on_marker_row = |node: Node<'_>| {
        let (start, end) = (node.start_position().row, node.end_position().row);
        rows.range(start..=end).next().is_some()
    };
    let mut cursor = root.walk();
    // Kinds of the ancestors of the cursor's node: `Node::parent` costs a walk from the root.
    let mut parents: Vec<&'t str> = Vec::new();
    loop {
        let node = cursor.node();
        let descend =
            on_marker_row(node) && visit(node, cursor.field_name(), parents.last().copied());
        if descend && cursor.goto_first_child() {
            parents.push(node.kind());
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return;
            }
            parents.pop();
        }
    }
}

/// 0-based rows holding `imagepolicy` in any case (markers and near-misses).
pub(super) fn marker_rows(source: &[u8]) -> std::collections::BTreeSet<usize> {
    static NEEDLE: std::sync::LazyLock<Option<regex::bytes::Regex>> =
        std::sync::LazyLock::new(|| regex::bytes::Regex::new("(?i)imagepolicy").ok());
    let mut rows = std::collections::BTreeSet::new();
    let Some(needle) = NEEDLE.as_ref() else {
        return rows;
    };
    let (mut row, mut counted) = (0, 0);
    for found in needle.find_iter(source) {
        row += memchr::memchr_iter(b'\n', &source[counted..found.start()]).count();
        counted = found.start();
        rows.insert(row);
    }
    rows
}

/// `$imagepolicy` on a line with no comment and no block scalar holding it, e.g.
/// `image: app:1#{"$imagepolicy": …}`, where the missing space makes `#` part of the value.
fn stray_markers(source: &[u8], collected: &Collected<'_>) -> Vec<Finding> {
    let mut rows: Vec<usize> = Vec::new();
    let (mut row, mut counted) = (0, 0);
    for at in memchr::memmem::find_iter(source, MARKER_NEEDLE) {
        row += memchr::memchr_iter(b'\n', &source[counted..at]).count();
        counted = at;
        if rows.last() != Some(&row) {
            rows.push(row);
        }
    }
    rows.into_iter()
        .filter(|row| !collected.markers.contains_key(row))
        .filter(|row| {
            !collected
                .block_scalar_markers
                .iter()
                .any(|f| f.line == row + 1)
        })
        .map(|row| Finding {
            line: row + 1,
            kind: ProblemKind::NearMiss {
                reason: "\"$imagepolicy\" outside a comment (a comment needs a space before '#')"
                    .to_string(),
            },
        })
        .collect()
}

fn block_scalar_markers(node: Node<'_>, source: &[u8], out: &mut Vec<Finding>) {
    let text = &source[node.byte_range()];
    let header = node.start_position().row + 1;
    for at in memchr::memmem::find_iter(text, MARKER_NEEDLE) {
        let line = super::line_of(source, node.start_byte() + at);
        // tree-sitter-yaml keeps a header comment (`key: | # marker`) inside the block
        // scalar: that one is a marker on a block scalar value.
        let kind = if line == header {
            ProblemKind::UnsupportedValue {
                what: "a block scalar".into(),
            }
        } else {
            ProblemKind::MarkerInBlockScalar
        };
        out.push(Finding { line, kind });
    }
}

fn is_value(parent: Option<&str>, field: Option<&str>) -> bool {
    match parent {
        Some("block_mapping_pair" | "flow_pair") => field == Some("value"),
        Some("block_sequence_item" | "flow_sequence" | "document") => true,
        _ => false,
    }
}

/// Turns a value node into a site, or names why it cannot be one.
fn site(value: Node<'_>, source: &[u8], marker: Marker, line: usize) -> Result<Site, &'static str> {
    let mut cursor = value.walk();
    let mut scalar = None;
    for child in value.children(&mut cursor) {
        match child.kind() {
            "anchor" | "tag" | "comment" => {}
            "alias" => return Err("an alias (put the marker on the anchored value)"),
            "block_scalar" => return Err("a block scalar"),
            "flow_mapping" | "block_mapping" => return Err("a mapping"),
            "flow_sequence" | "block_sequence" => return Err("a sequence"),
            _ => scalar = Some(child),
        }
    }
    let scalar = scalar.ok_or("an empty value")?;
    if scalar.start_position().row != scalar.end_position().row {
        return Err("a value spanning several lines");
    }
    let literal = std::str::from_utf8(&source[scalar.byte_range()])
        .map_err(|_| "a value that is not UTF-8")?;
    let (style, decoded, is_string) = match scalar.kind() {
        "plain_scalar" => {
            let typed = scalar.named_child(0).map(|c| c.kind());
            (
                Style::Plain,
                Some(literal.to_string()),
                matches!(typed, Some("string_scalar") | None),
            )
        }
        "single_quote_scalar" => (Style::Single, yaml_literal::decode_single(literal), true),
        "double_quote_scalar" => (Style::Double, yaml_literal::decode_double(literal), true),
        _ => return Err("a value of an unknown kind"),
    };
    let value = decoded.ok_or("a malformed quoted value")?;
    Ok(Site {
        marker,
        line,
        range: scalar.byte_range(),
        style,
        value,
        is_string,
    })
}

/// The comment's text after `#`, without the line end.
fn comment_body<'s>(comment: Node<'_>, source: &'s [u8]) -> &'s str {
    let text = &source[comment.byte_range()];
    let text = text.strip_prefix(b"#").unwrap_or(text);
    std::str::from_utf8(text).unwrap_or("")
}

/// The root of a tree that parsed cleanly, or the syntax problem to report instead: a file
/// that does not parse is never edited.
pub(super) fn parsed_root(tree: Option<&Tree>) -> Result<Node<'_>, Finding> {
    let Some(tree) = tree else {
        return Err(Finding {
            line: 1,
            kind: ProblemKind::Syntax,
        });
    };
    let root = tree.root_node();
    if root.has_error() {
        return Err(Finding {
            line: first_error_line(root),
            kind: ProblemKind::Syntax,
        });
    }
    Ok(root)
}

/// The line of the innermost first ERROR or MISSING node. tree-sitter may wrap the whole
/// file in one ERROR; its nested error, or else its last child, is nearer the actual mistake.
pub(super) fn first_error_line(root: Node<'_>) -> usize {
    let mut node = first_error(root).unwrap_or(root);
    while let Some(inner) = first_error_below(node) {
        node = inner;
    }
    if node.is_error()
        && node.start_byte() == root.start_byte()
        && node.child_count() > 0
        && let Some(last) = node.child(node.child_count() - 1)
    {
        return last.start_position().row + 1;
    }
    node.start_position().row + 1
}

fn first_error(node: Node<'_>) -> Option<Node<'_>> {
    if node.is_error() || node.is_missing() {
        return Some(node);
    }
    first_error_below(node)
}

fn first_error_below(node: Node<'_>) -> Option<Node<'_>> {
    if !node.has_error() {
        return None;
    }
    let mut cursor = node.walk();
    let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
    children.into_iter().find_map(first_error)
}

pub fn encode(style: Style, value: &str) -> (Style, String) {
    yaml_literal::encode(style, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(src: &str) -> ScanResult {
        scan(src.as_bytes())
    }

    #[test]
    fn trailing_comment_marks_the_value_on_its_line() {
        let r = sites("spec:\n  image: nginx:1.0 # {\"$imagepolicy\": \"ns:app\"}\n");
        assert_eq!(r.problems, vec![]);
        assert_eq!(r.sites.len(), 1);
        let s = &r.sites[0];
        assert_eq!(
            (s.line, s.value.as_str(), s.style),
            (2, "nginx:1.0", Style::Plain)
        );
        assert_eq!(s.marker.policy.to_string(), "ns:app");
    }

    #[test]
    fn typed_plain_scalars_are_sites_too() {
        let r = sites("tag: 1.20 # {\"$imagepolicy\": \"ns:app:tag\"}\n");
        assert_eq!(r.sites[0].value, "1.20");
        assert!(!r.sites[0].is_string);
    }

    #[test]
    fn quoted_values_decode() {
        let r = sites(
            "a: 'x''y' # {\"$imagepolicy\": \"ns:a\"}\nb: \"p\\\"q\" # {\"$imagepolicy\": \"ns:b\"}\n",
        );
        let got: Vec<_> = r
            .sites
            .iter()
            .map(|s| (s.value.as_str(), s.style))
            .collect();
        assert_eq!(got, vec![("x'y", Style::Single), ("p\"q", Style::Double)]);
    }

    #[test]
    fn problems_carry_lines() {
        let src = "a:\n  # {\"$imagepolicy\": \"ns:a\"}\n  b: c\nd: *x # {\"$imagepolicy\": \"ns:a\"}\ne: f # {$imagepolicy: ns:a}\ng: |\n  x # {\"$imagepolicy\": \"ns:a\"}\n";
        let r = sites(src);
        let kinds: Vec<_> = r
            .problems
            .iter()
            .map(|p| (p.line, std::mem::discriminant(&p.kind)))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (2, std::mem::discriminant(&ProblemKind::NoValue)),
                (
                    4,
                    std::mem::discriminant(&ProblemKind::UnsupportedValue { what: "".into() })
                ),
                (
                    5,
                    std::mem::discriminant(&ProblemKind::NearMiss {
                        reason: String::new()
                    })
                ),
                (7, std::mem::discriminant(&ProblemKind::MarkerInBlockScalar)),
            ]
        );
    }

    #[test]
    fn syntax_errors_name_the_first_error_line() {
        let r = sites("a: b\nc: [d\ne: f # {\"$imagepolicy\": \"ns:a\"}\n");
        assert!(r.sites.is_empty());
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].kind, ProblemKind::Syntax);
        assert!(r.problems[0].line >= 2, "{:?}", r.problems);
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn markers_glued_to_values_are_near_misses() {
        let r = scan(b"a: app:1#{\"$imagepolicy\":\"ns:a\"}\nb: c\n");
        assert!(r.sites.is_empty());
        assert_eq!(r.problems.len(), 1, "{r:?}");
        assert_eq!(r.problems[0].line, 1);
        assert!(matches!(r.problems[0].kind, ProblemKind::NearMiss { .. }));
    }

    #[test]
    fn multi_line_values_are_unsupported() {
        let r = scan(b"j: \"multi\n  line\" # {\"$imagepolicy\": \"ns:a\"}\n");
        assert_eq!(r.problems.len(), 1, "{r:?}");
        assert!(
            matches!(r.problems[0].kind, ProblemKind::UnsupportedValue { .. }),
            "{r:?}"
        );
    }
}
