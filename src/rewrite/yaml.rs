//! YAML: locates marker comments and the scalar each one sets, with tree-sitter-yaml.
//!
//! A marker sets the scalar Flux would set (image-automation-controller's
//! `internal/update/filter.go` sets only scalars, reading each one's comments as kyaml's
//! `fieldmeta.FieldMeta.Read` does: its line comment, else its head comment). tree-sitter-yaml
//! puts a trailing comment after its key/value pair as a sibling, so a marker is matched by
//! position instead:
//! - a trailing marker belongs to the value it directly follows: of the values ending on its
//!   line before it, the one ending last, and of those ending at the same byte the innermost.
//!   After a flow collection (`c: {a: x, b: y} # marker`) that is the collection, which is
//!   reported and never edited, as Flux edits nothing there;
//! - a marker alone on its line sets the sequence item on the next line, as the item's head
//!   comment does in Flux, under the conditions of [`head_marker_target`];
//! - a marker right after an item's `-` sets that item's value on the next line.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use tree_sitter::{InputEdit, Node, Parser, Point, Tree};

use super::{
    Finding, MARKER_NEEDLE, Marker, ProblemKind, ScanResult, Site, Style, frame, yaml_large,
    yaml_literal,
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
    yaml_large::scan(source, frame::marker_rows, |text| {
        analyze(parse(text, None), text)
    })
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
    frame::analyze::<Yaml>(tree.as_ref(), source)
}

/// YAML's parts of the scan frame.
pub(super) struct Yaml;

#[derive(Default)]
pub(super) struct Extra<'t> {
    /// Block sequence items by start row, for markers above an item or after its `-`.
    items: BTreeMap<usize, Node<'t>>,
    /// `$imagepolicy` inside block scalars.
    block_scalar_markers: Vec<Finding>,
}

type Collected<'t> = frame::Collected<'t, Extra<'t>>;

impl frame::Language for Yaml {
    type Extra<'t> = Extra<'t>;

    fn rows(source: &[u8]) -> BTreeSet<usize> {
        let mut rows = frame::marker_rows(source);
        // A marker alone on its line may set the sequence item on the next one.
        rows.extend(rows.iter().map(|row| row + 1).collect::<Vec<_>>());
        rows
    }

    fn visit<'t>(
        node: Node<'t>,
        field: Option<&'t str>,
        parent: Option<&'t str>,
        source: &[u8],
        out: &mut Collected<'t>,
    ) -> bool {
        visit(node, field, parent, source, out)
    }

    fn comment_body<'s>(comment: Node<'_>, source: &'s [u8]) -> Cow<'s, str> {
        comment_body(comment, source)
    }

    fn value_below<'t>(
        collected: &Collected<'t>,
        source: &[u8],
        row: usize,
        comment: Node<'t>,
    ) -> Result<Node<'t>, ProblemKind> {
        head_marker_target(collected, source, row, comment)
    }

    fn site(
        value: Node<'_>,
        source: &[u8],
        marker: Marker,
        line: usize,
    ) -> Result<Site, &'static str> {
        site(value, source, marker, line)
    }

    /// `$imagepolicy` on a line with no comment and no block scalar holding it, e.g.
    /// `image: app:1#{"$imagepolicy": …}`, where the missing space makes `#` part of the value.
    fn stray<'t>(_at: usize, line: usize, collected: &Collected<'t>) -> Option<ProblemKind> {
        let in_block_scalar = collected
            .extra
            .block_scalar_markers
            .iter()
            .any(|f| f.line == line);
        (!in_block_scalar).then(|| ProblemKind::NearMiss {
            reason: "\"$imagepolicy\" outside a comment (a comment needs a space before '#')"
                .to_string(),
        })
    }

    fn finish<'t>(collected: Collected<'t>, problems: &mut Vec<Finding>) {
        problems.extend(collected.extra.block_scalar_markers);
    }
}

/// Records what a marker needs (its comment, the values and items on its line) from a node
/// on a line that mentions `imagepolicy`.
fn visit<'t>(
    node: Node<'t>,
    field: Option<&'t str>,
    parent: Option<&'t str>,
    source: &[u8],
    out: &mut Collected<'t>,
) -> bool {
    match node.kind() {
        "comment" => {
            out.comment(node);
            false
        }
        "flow_node" | "block_node" if is_value(parent, field) => {
            out.value(node);
            true
        }
        "block_sequence_item" => {
            // The outermost item of a row (`- - x`): a head comment belongs to it.
            out.extra
                .items
                .entry(node.start_position().row)
                .or_insert(node);
            true
        }
        "block_scalar" => {
            block_scalar_markers(node, source, &mut out.extra.block_scalar_markers);
            false
        }
        kind => !kind.ends_with("_scalar"),
    }
}

/// The value of a sequence item that a marker with nothing before it on its line sets, or
/// the problem to report. Flux (go-yaml v3 comments, read by kyaml
/// `fieldmeta.FieldMeta.Read`) honours such a marker as the item's head comment; go-yaml's
/// rules for which comment lines become a head are intricate, so tagsmith honours the
/// unambiguous form Flux always honours and reports the rest:
/// - right after the item's `-`, with the value on a later line (`- # marker`);
/// - on the line directly above the item (no blank line between), at the item's column;
/// - with no comment line above the marker (go-yaml would join them into one head comment
///   of several lines, which is no longer one JSON object);
/// - with no comment on the item's own line (kyaml reads the line comment first).
fn head_marker_target<'t>(
    collected: &Collected<'t>,
    source: &[u8],
    row: usize,
    comment: Node<'t>,
) -> Result<Node<'t>, ProblemKind> {
    let item_value = |item: Node<'t>| {
        let mut cursor = item.walk();
        let value = item
            .children(&mut cursor)
            .find(|c| matches!(c.kind(), "flow_node" | "block_node"));
        value.ok_or(ProblemKind::UnsupportedValue {
            what: "an empty sequence item".into(),
        })
    };
    let near_miss = |reason: &str| ProblemKind::NearMiss {
        reason: reason.to_string(),
    };
    if let Some(&item) = collected.extra.items.get(&row)
        && item.start_byte() < comment.start_byte()
    {
        let value = item_value(item)?;
        if value.start_byte() > comment.start_byte() {
            return Ok(value);
        }
        return Err(ProblemKind::NoValue);
    }
    let line_start = memchr::memrchr(b'\n', &source[..comment.start_byte()]).map_or(0, |i| i + 1);
    if !is_blank(&source[line_start..comment.start_byte()]) {
        return Err(ProblemKind::NoValue);
    }
    let Some(&item) = collected.extra.items.get(&(row + 1)) else {
        if item_after_blank_lines(source, comment.end_byte()) {
            return Err(near_miss(
                "a marker above a sequence item must be on the line directly above it",
            ));
        }
        return Err(ProblemKind::NoValue);
    };
    if item.start_position().column != comment.start_position().column {
        return Err(near_miss(
            "a marker above a sequence item must start in the column of the item's '-'",
        ));
    }
    if comment_line_above(source, line_start) {
        return Err(near_miss(
            "a marker above a sequence item must be the only comment line above it",
        ));
    }
    if collected.comments.contains_key(&(row + 1)) {
        return Err(near_miss(
            "the sequence item below has a comment on its own line, which is read instead",
        ));
    }
    item_value(item)
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// Whether the line after the one holding `offset` is blank and the next non-blank line
/// starts a block sequence item (`-` then a space or the line end).
fn item_after_blank_lines(source: &[u8], offset: usize) -> bool {
    let Some(eol) = memchr::memchr(b'\n', &source[offset..]) else {
        return false;
    };
    let mut skipped = 0;
    for line in source[offset + eol + 1..].split(|&b| b == b'\n') {
        if is_blank(line) {
            skipped += 1;
            continue;
        }
        let text = line.trim_ascii_start();
        let is_item = text.first() == Some(&b'-')
            && text
                .get(1)
                .is_none_or(|b| matches!(b, b' ' | b'\t' | b'\r'));
        return skipped > 0 && is_item;
    }
    false
}

/// Whether the nearest non-blank line above the line starting at `line_start` is a comment
/// line. A `#` line inside a block scalar counts too, which errs on the side of reporting.
fn comment_line_above(source: &[u8], line_start: usize) -> bool {
    let mut end = line_start;
    while end > 0 {
        let start = memchr::memrchr(b'\n', &source[..end - 1]).map_or(0, |i| i + 1);
        let line = &source[start..end - 1];
        if !is_blank(line) {
            return line.iter().find(|b| !matches!(b, b' ' | b'\t')) == Some(&b'#');
        }
        end = start;
    }
    false
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

/// The comment's text after all its leading `#` (kyaml `fieldmeta.FieldMeta.Read` trims them
/// all, so `## {...}` is a marker); invalid UTF-8 is replaced, as Go's JSON decoder does.
fn comment_body<'s>(comment: Node<'_>, source: &'s [u8]) -> Cow<'s, str> {
    let text = &source[comment.byte_range()];
    let hashes = text.iter().take_while(|&&b| b == b'#').count();
    String::from_utf8_lossy(&text[hashes..])
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
