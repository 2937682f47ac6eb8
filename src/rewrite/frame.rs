//! The frame of a scan, shared by every language: a parsed tree is checked for syntax
//! errors, the nodes on the lines that mention `imagepolicy` are collected in one walk, a
//! `$imagepolicy` outside any comment is reported, and each comment is read as a marker and
//! matched with the value it sets. A language supplies only what differs, in [`Language`]:
//! which nodes are values, how a comment's text starts, how a value becomes a [`Site`] and
//! what a stray `$imagepolicy` means in it. A new language is one file implementing it, plus
//! its arm in [`super::Lang`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use tree_sitter::{Node, Tree};

use super::marker::parse_marker;
use super::{Finding, MARKER_NEEDLE, Marker, ProblemKind, ScanResult, Site};

/// What a scan's walk gathers: comments and values in every language, plus a language's own.
pub(super) struct Collected<'t, X> {
    /// Comments on the visited rows, by 0-based start row.
    pub comments: BTreeMap<usize, Node<'t>>,
    /// Value nodes by 0-based end row.
    pub values: BTreeMap<usize, Vec<Node<'t>>>,
    pub extra: X,
}

impl<X: Default> Default for Collected<'_, X> {
    fn default() -> Self {
        Self {
            comments: BTreeMap::new(),
            values: BTreeMap::new(),
            extra: X::default(),
        }
    }
}

impl<'t, X> Collected<'t, X> {
    pub fn comment(&mut self, node: Node<'t>) {
        self.comments.insert(node.start_position().row, node);
    }

    pub fn value(&mut self, node: Node<'t>) {
        self.values
            .entry(node.end_position().row)
            .or_default()
            .push(node);
    }

    /// The value a comment directly follows on its line: of the values ending before it, the
    /// one ending last (a collection rather than its last scalar), and of those ending at the
    /// same byte (a YAML block mapping and its last value, a CUE label chain) the innermost.
    pub fn trailing_value(&self, row: usize, comment: Node<'t>) -> Option<Node<'t>> {
        self.values
            .get(&row)?
            .iter()
            .filter(|v| v.end_byte() <= comment.start_byte())
            .max_by_key(|v| (v.end_byte(), v.start_byte()))
            .copied()
    }
}

/// The parts of a scan that differ between languages.
pub(super) trait Language {
    /// What the language collects besides comments and values.
    type Extra<'t>: Default;

    /// The 0-based rows whose nodes are visited: those mentioning `imagepolicy`.
    fn rows(source: &[u8]) -> BTreeSet<usize> {
        marker_rows(source)
    }

    /// Records `node` (with its field name and its parent's kind) in `out`, and says whether
    /// to descend into it.
    fn visit<'t>(
        node: Node<'t>,
        field: Option<&'t str>,
        parent: Option<&'t str>,
        source: &[u8],
        out: &mut Collected<'t, Self::Extra<'t>>,
    ) -> bool;

    /// The text of a comment after its leader (`#`, `//`).
    fn comment_body<'s>(comment: Node<'_>, source: &'s [u8]) -> Cow<'s, str>;

    /// The value a marker sets when it follows no value on its line, or the problem to
    /// report at the marker's line.
    fn value_below<'t>(
        _collected: &Collected<'t, Self::Extra<'t>>,
        _source: &[u8],
        _row: usize,
        _comment: Node<'t>,
    ) -> Result<Node<'t>, ProblemKind> {
        Err(ProblemKind::NoValue)
    }

    /// Turns a value into a site, or names what it is (for [`ProblemKind::UnsupportedValue`]).
    fn site(
        value: Node<'_>,
        source: &[u8],
        marker: Marker,
        line: usize,
    ) -> Result<Site, &'static str>;

    /// What the first `$imagepolicy` (at byte `at`) on a line without a comment is, or `None`
    /// when it is reported otherwise.
    fn stray<'t>(
        at: usize,
        line: usize,
        collected: &Collected<'t, Self::Extra<'t>>,
    ) -> Option<ProblemKind>;

    /// Problems the language found while collecting.
    fn finish<'t>(_collected: Collected<'t, Self::Extra<'t>>, _problems: &mut Vec<Finding>) {}
}

/// Scans a parsed file with the parts of language `L`.
pub(super) fn analyze<L: Language>(tree: Option<&Tree>, source: &[u8]) -> ScanResult {
    let mut result = ScanResult::default();
    let root = match parsed_root(tree) {
        Ok(root) => root,
        Err(finding) => {
            result.problems.push(finding);
            return result;
        }
    };

    let mut collected = Collected::<L::Extra<'_>>::default();
    visit_marker_rows(root, &L::rows(source), |node, field, parent| {
        L::visit(node, field, parent, source, &mut collected)
    });
    result
        .problems
        .extend(stray_markers::<L>(source, &collected));

    for (&row, &comment) in &collected.comments {
        let parsed = parse_marker(&L::comment_body(comment, source)).at_line(row + 1);
        let marker = match parsed {
            Ok(Some(marker)) => marker,
            Ok(None) => continue,
            Err(finding) => {
                result.problems.push(finding);
                continue;
            }
        };
        let target = match collected.trailing_value(row, comment) {
            Some(value) => Ok(value),
            None => L::value_below(&collected, source, row, comment),
        };
        let value = match target {
            Ok(value) => value,
            Err(kind) => {
                result.problems.push(Finding {
                    line: row + 1,
                    kind,
                });
                continue;
            }
        };
        // A marker above its value reports at the value's line, where the change is.
        let line = value.start_position().row.max(row) + 1;
        match L::site(value, source, marker, line) {
            Ok(site) => result.sites.push(site),
            Err(what) => result.problems.push(Finding {
                line,
                kind: ProblemKind::UnsupportedValue { what: what.into() },
            }),
        }
    }
    L::finish(collected, &mut result.problems);
    result.sites.sort_by_key(|s| s.range.start);
    result.problems.sort_by_key(|p| p.line);
    result
}

/// `$imagepolicy` on a line without a comment, once per line, as the language classifies it.
fn stray_markers<'t, L: Language>(
    source: &[u8],
    collected: &Collected<'t, L::Extra<'t>>,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let (mut row, mut counted) = (0, 0);
    let mut last_row = None;
    for at in memchr::memmem::find_iter(source, MARKER_NEEDLE) {
        row += memchr::memchr_iter(b'\n', &source[counted..at]).count();
        counted = at;
        if last_row == Some(row) {
            continue;
        }
        last_row = Some(row);
        if collected.comments.contains_key(&row) {
            continue;
        }
        if let Some(kind) = L::stray(at, row + 1, collected) {
            out.push(Finding {
                line: row + 1,
                kind,
            });
        }
    }
    out
}

/// Visits, depth first, only the nodes that touch one of `rows`: a marker's comment, the
/// value it sets and their ancestors lie on lines mentioning `imagepolicy`, and the rest of
/// a file is most of its nodes. `visit(node, field name, parent kind)` says whether to
/// descend.
fn visit_marker_rows<'t>(
    root: Node<'t>,
    rows: &BTreeSet<usize>,
    mut visit: impl FnMut(Node<'t>, Option<&'t str>, Option<&'t str>) -> bool,
) {
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
pub(super) fn marker_rows(source: &[u8]) -> BTreeSet<usize> {
    static NEEDLE: std::sync::LazyLock<Option<regex::bytes::Regex>> =
        std::sync::LazyLock::new(|| regex::bytes::Regex::new("(?i)imagepolicy").ok());
    let mut rows = BTreeSet::new();
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

/// The root of a tree that parsed cleanly, or the syntax problem to report instead: a file
/// that does not parse is never edited.
fn parsed_root(tree: Option<&Tree>) -> Result<Node<'_>, Finding> {
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
fn first_error_line(root: Node<'_>) -> usize {
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
