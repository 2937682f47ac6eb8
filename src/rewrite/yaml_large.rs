//! YAML files past what tree-sitter-yaml can parse as they are: more than 32,767 lines, or
//! large flow collections.
//!
//! tree-sitter-yaml's external scanner keeps its line counter in an `int16_t`. The counter
//! wraps from 32,767 to -32,768 (and again every 65,536 lines), and the scanner decides
//! whether a token starts a new line with `current_row > row_of_last_token`; across the wrap
//! that reads "same line", so the first token on the line after the wrap is misread and a
//! valid file parses as a syntax error. A comment token at the start of a line is read as a
//! comment whatever the counter says, so this module hands the parser a copy of the file with
//! `#` lines inserted where the counter wraps, and maps what it finds back to the file's own
//! lines and bytes. The counter counts `\r` and `\n` alike, so a CRLF file wraps after
//! 16,384 lines.
//!
//! tree-sitter keeps the whole syntax tree in memory, about 700 bytes per item of a flow
//! collection (`[a, b, ...]`). Flow collections on lines without a marker are not looked at,
//! so their contents are left out of the parser's copy (`[…]` becomes `[]`), and the items of
//! flow collections that touch a marker's line are capped at [`FLOW_ITEM_LIMIT`].
//!
//! Leaving text out and inserting comments must not change what the rest of the file means:
//! the file is first read in full by granit-parser (a streaming YAML parser that builds no
//! tree), which must accept it, and which also says where multi-line scalars are, since a
//! comment cannot go inside one.

use std::collections::BTreeSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_saphyr::granit_parser::{Event, Options, Parser, ScalarStyle, StructureStyle};

use super::{Finding, ProblemKind, ScanResult};

/// Where tree-sitter-yaml's scanner row counter wraps: first at row 32,768, then every 65,536.
const WRAPS: Wraps = Wraps {
    first: 32_768,
    period: 65_536,
};
const ROW_WRAP: usize = WRAPS.first;

/// Scanner rows where a `#` line must fall (the tests use more frequent ones).
#[derive(Debug, Clone, Copy)]
struct Wraps {
    first: usize,
    period: usize,
}
/// Files with fewer flow indicator bytes (`[]{},`) than this are parsed as they are: their
/// flow collections cost at most a few tens of MB of syntax tree.
const FLOW_BYTES_THRESHOLD: usize = 50_000;
/// The most items of flow collections that touch a marker's line (all such collections
/// together) that are parsed; about 70 MB of syntax tree.
pub const FLOW_ITEM_LIMIT: usize = 100_000;

/// Why a valid YAML file cannot be parsed into a syntax tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TooLarge {
    #[error(
        "a multi-line scalar runs through line {line} across a wrap of the YAML parser's 16-bit \
         line counter (every 65,536 lines from line 32,768), with no line before it where the \
         wrap can be carried over; the file is too large for the syntax tree"
    )]
    RowCounter { line: usize },
    #[error(
        "flow collections on lines with markers hold {items} items, more than the {limit} \
         tagsmith parses (the syntax tree takes about 700 bytes per item)"
    )]
    FlowItems { items: usize, limit: usize },
}

/// Scans a file too large for a direct parse, with `analyze` (parse and analyze bytes, as
/// for any file) run on the parser's copy; `None` when the file needs no special handling.
pub(super) fn scan(
    source: &[u8],
    marker_rows: impl FnOnce(&[u8]) -> BTreeSet<usize>,
    analyze: impl FnOnce(&[u8]) -> ScanResult,
) -> Option<ScanResult> {
    let scanner_rows = memchr::memchr2_iter(b'\n', b'\r', source).count();
    let flow_bytes = memchr::memchr3_iter(b'[', b']', b',', source).count()
        + memchr::memchr2_iter(b'{', b'}', source).count();
    if scanner_rows < ROW_WRAP && flow_bytes < FLOW_BYTES_THRESHOLD {
        return None;
    }
    // Not UTF-8 is not YAML for granit-parser; such files keep the direct parse.
    let text = std::str::from_utf8(source).ok()?;
    let _span = tracing::debug_span!("large_yaml", bytes = source.len(), scanner_rows).entered();
    Some(adjusted(text, &marker_rows(source), WRAPS, analyze))
}

/// Checks `text` in full with granit-parser, then runs `analyze` on a copy with unmarked flow
/// collections emptied and `#` lines at the `wraps`, and maps its findings back.
fn adjusted(
    text: &str,
    marker_rows: &BTreeSet<usize>,
    wraps: Wraps,
    analyze: impl FnOnce(&[u8]) -> ScanResult,
) -> ScanResult {
    let source = text.as_bytes();
    let outline = match Outline::read(text, marker_rows) {
        Ok(outline) => outline,
        Err(finding) => return only(finding),
    };
    if outline.marked_flow_items > FLOW_ITEM_LIMIT {
        return only(Finding {
            line: outline.largest_marked_flow_line,
            kind: ProblemKind::TooLarge(TooLarge::FlowItems {
                items: outline.marked_flow_items,
                limit: FLOW_ITEM_LIMIT,
            }),
        });
    }
    let elisions: Vec<_> = outline.elisions.iter().map(|r| (r.clone(), 0)).collect();
    let elided = Splice::new(source, &elisions);
    let multi_line: Vec<Range<usize>> = outline
        .multi_line
        .iter()
        .filter_map(|r| Some(elided.forward(r.start)?..elided.forward(r.end)?))
        .collect();
    let insertions = match comment_insertions(&elided.text, &multi_line, wraps) {
        Ok(insertions) => insertions,
        Err(row) => {
            let line = elided.back_row(row) + 1;
            return only(Finding {
                line,
                kind: ProblemKind::TooLarge(TooLarge::RowCounter { line }),
            });
        }
    };
    let commented = Splice::new(&elided.text, &insertions);
    tracing::debug!(
        elided = outline.elisions.len(),
        comment_lines = insertions.iter().map(|(_, n)| n).sum::<usize>(),
        "parsing an adjusted copy"
    );
    let mut result = analyze(&commented.text);
    let back_row = |line: usize| elided.back_row(commented.back_row(line.saturating_sub(1))) + 1;
    for site in &mut result.sites {
        let start = elided.back_offset(commented.back_offset(site.range.start));
        site.range = start..start + site.range.len();
        site.line = back_row(site.line);
    }
    for problem in &mut result.problems {
        problem.line = back_row(problem.line);
    }
    result
}

fn only(finding: Finding) -> ScanResult {
    ScanResult {
        sites: Vec::new(),
        problems: vec![finding],
    }
}

/// What granit-parser learnt from reading the whole file.
#[derive(Debug, Default)]
struct Outline {
    /// Line starts inside these byte ranges (in order, disjoint) lie in a multi-line scalar.
    multi_line: Vec<Range<usize>>,
    /// Contents of flow collections that touch no marker line, outermost only, in order.
    elisions: Vec<Range<usize>>,
    /// Items kept in flow collections that touch a marker line, nested ones included.
    marked_flow_items: usize,
    largest_marked_flow_line: usize,
}

struct Frame {
    flow: bool,
    start: usize,
    /// Nodes inside that stay in the parser's copy.
    kept: usize,
}

impl Outline {
    fn read(text: &str, marker_rows: &BTreeSet<usize>) -> Result<Self, Finding> {
        let mut options = Options::default();
        // Neither is needed here, and each can fail on YAML that tree-sitter reads: comments
        // are buffered up to a limit, and an alias to an undefined anchor is an error.
        options.emit_comments = false;
        options.emit_unresolved_aliases = true;
        let mut outline = Outline::default();
        let mut rows = RowCounter::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut largest = 0;
        for event in Parser::new_from_str_with_options(text, options) {
            let (event, span) = event.map_err(|e| Finding {
                line: e.marker().line().max(1),
                kind: ProblemKind::Syntax,
            })?;
            let Some(range) = span.byte_range() else {
                continue;
            };
            let opens = match &event {
                Event::Scalar(_, style, _, _) => {
                    let text_range = &text.as_bytes()[range.clone()];
                    if memchr::memchr2(b'\n', b'\r', text_range).is_some() {
                        let lo = match style {
                            // A block scalar's span starts at its first content; the line
                            // holding it is already inside.
                            ScalarStyle::Literal | ScalarStyle::Folded => {
                                memchr::memrchr(b'\n', &text.as_bytes()[..range.start])
                                    .map_or(0, |i| i + 1)
                            }
                            _ => range.start + 1,
                        };
                        outline.multi_line.push(lo..range.end);
                    }
                    None
                }
                Event::SequenceStart(style, ..) | Event::MappingStart(style, ..) => Some(Frame {
                    flow: *style == StructureStyle::Flow,
                    start: range.start,
                    kept: 0,
                }),
                Event::SequenceEnd | Event::MappingEnd => {
                    let Some(frame) = stack.pop() else {
                        continue;
                    };
                    let kept = if frame.flow {
                        outline.close_flow(&frame, range.start, text, &mut rows, marker_rows)
                    } else {
                        frame.kept
                    };
                    if let Some(parent) = stack.last_mut() {
                        parent.kept += kept;
                    }
                    let outermost_flow = frame.flow && !stack.iter().any(|f| f.flow);
                    if outermost_flow && kept > 0 {
                        outline.marked_flow_items += kept;
                        if kept > largest {
                            largest = kept;
                            outline.largest_marked_flow_line =
                                rows.row_of(text.as_bytes(), frame.start) + 1;
                        }
                    }
                    continue;
                }
                _ => None,
            };
            let is_node = matches!(
                event,
                Event::Scalar(..)
                    | Event::Alias(_)
                    | Event::UnresolvedAlias(_)
                    | Event::SequenceStart(..)
                    | Event::MappingStart(..)
            );
            if is_node && let Some(parent) = stack.last_mut() {
                parent.kept += 1;
            }
            if let Some(frame) = opens {
                stack.push(frame);
            }
        }
        Ok(outline)
    }

    /// Closes a flow collection ending at `end` (its `]` or `}`): left out of the parser's
    /// copy when no marker line touches it. Returns the nodes inside it that stay.
    fn close_flow(
        &mut self,
        frame: &Frame,
        end: usize,
        text: &str,
        rows: &mut RowCounter,
        marker_rows: &BTreeSet<usize>,
    ) -> usize {
        let first = rows.row_of(text.as_bytes(), frame.start);
        let last = rows.row_of(text.as_bytes(), end);
        if marker_rows.range(first..=last).next().is_some() || frame.kept == 0 {
            return frame.kept;
        }
        let interior = frame.start + 1..end;
        while self
            .elisions
            .last()
            .is_some_and(|inner| inner.start >= interior.start)
        {
            self.elisions.pop();
        }
        self.elisions.push(interior);
        0
    }
}

/// Rows (`\n` counted) of increasing byte offsets, without counting from the start each time.
#[derive(Default)]
struct RowCounter {
    at: usize,
    row: usize,
}

impl RowCounter {
    fn row_of(&mut self, text: &[u8], offset: usize) -> usize {
        if offset < self.at {
            *self = Self::default();
        }
        self.row += memchr::memchr_iter(b'\n', &text[self.at..offset]).count();
        self.at = offset;
        self.row
    }
}

/// Where to insert how many `#` lines so that each wrap of the scanner's row counter falls on
/// one of them. `Err(row)` when a multi-line scalar leaves no line start to put them at.
fn comment_insertions(
    text: &[u8],
    multi_line: &[Range<usize>],
    wraps: Wraps,
) -> Result<Vec<(Range<usize>, usize)>, usize> {
    let mut insertions = Vec::new();
    let mut wrap = wraps.first;
    // The scanner's row at the current line start, counting inserted lines.
    let mut scanner_row = 0;
    let mut row: usize = 0;
    let mut last_safe: Option<(usize, usize)> = None;
    let mut inside = multi_line.iter().peekable();
    let starts = std::iter::once(0).chain(memchr::memchr_iter(b'\n', text).map(|i| i + 1));
    let mut prev = 0;
    let mut prev_comment = false;
    for start in starts {
        if start > 0 {
            scanner_row += 1 + memchr::memchr_iter(b'\r', &text[prev..start]).count();
            row += 1;
        }
        prev = start;
        while inside.peek().is_some_and(|r| r.end <= start) {
            inside.next();
        }
        let in_scalar = inside.peek().is_some_and(|r| r.start <= start);
        let line_end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |i| start + i);
        let blank = text[start..line_end]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r'));
        // A `#` line next to a comment line (blank lines between included) would join it: a
        // marker written above its value (a head comment) must stay directly above it, alone.
        let comment = text[start..line_end]
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t'))
            .is_some_and(|&b| b == b'#');
        let safe = !in_scalar && !blank && !comment && !prev_comment;
        if !blank {
            prev_comment = comment;
        }
        while scanner_row >= wrap {
            if safe && scanner_row == wrap {
                insertions.push((start..start, 1));
                scanner_row += 1;
            } else {
                let (at, at_row) = last_safe.take().ok_or(row)?;
                let lines = wrap - at_row + 1;
                insertions.push((at..at, lines));
                scanner_row += lines;
            }
            wrap += wraps.period;
        }
        if safe {
            last_safe = Some((start, scanner_row));
        }
    }
    insertions.sort_by_key(|(r, _)| r.start);
    Ok(insertions)
}

/// A copy of a text with byte ranges replaced by `n` `#` lines each (0 to delete them), and
/// the way back from the copy's bytes and rows to the original's.
struct Splice {
    text: Vec<u8>,
    /// Runs copied unchanged, in order.
    runs: Vec<Run>,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    new_at: usize,
    old_at: usize,
    len: usize,
    new_row: usize,
    old_row: usize,
    rows: usize,
}

impl Splice {
    fn new(source: &[u8], edits: &[(Range<usize>, usize)]) -> Self {
        let mut text = Vec::with_capacity(source.len() + 2 * edits.len());
        let mut runs = Vec::with_capacity(edits.len() + 1);
        let (mut pos, mut old_row, mut new_row) = (0, 0, 0);
        let mut copy =
            |text: &mut Vec<u8>, range: Range<usize>, old_row: &mut usize, new_row: &mut usize| {
                let rows = memchr::memchr_iter(b'\n', &source[range.clone()]).count();
                runs.push(Run {
                    new_at: text.len(),
                    old_at: range.start,
                    len: range.len(),
                    new_row: *new_row,
                    old_row: *old_row,
                    rows,
                });
                text.extend_from_slice(&source[range]);
                *old_row += rows;
                *new_row += rows;
            };
        for (range, lines) in edits {
            copy(&mut text, pos..range.start, &mut old_row, &mut new_row);
            old_row += memchr::memchr_iter(b'\n', &source[range.clone()]).count();
            for _ in 0..*lines {
                text.extend_from_slice(b"#\n");
            }
            new_row += lines;
            pos = range.end;
        }
        copy(&mut text, pos..source.len(), &mut old_row, &mut new_row);
        Self { text, runs }
    }

    /// The original offset of a copy's offset; inserted text maps to where it was inserted.
    fn back_offset(&self, at: usize) -> usize {
        let i = self.runs.partition_point(|r| r.new_at + r.len < at);
        match self.runs.get(i) {
            Some(r) if at >= r.new_at => r.old_at + (at - r.new_at),
            Some(r) => r.old_at,
            None => self.runs.last().map_or(at, |r| r.old_at + r.len),
        }
    }

    /// The original row of a copy's row; inserted lines map to the line they precede.
    fn back_row(&self, row: usize) -> usize {
        let i = self.runs.partition_point(|r| r.new_row + r.rows < row);
        match self.runs.get(i) {
            Some(r) if row >= r.new_row => r.old_row + (row - r.new_row),
            Some(r) => r.old_row,
            None => self.runs.last().map_or(row, |r| r.old_row + r.rows),
        }
    }

    /// The copy's offset of an original offset, `None` when that byte was left out.
    fn forward(&self, at: usize) -> Option<usize> {
        let i = self.runs.partition_point(|r| r.old_at + r.len < at);
        let r = self.runs.get(i)?;
        (at >= r.old_at).then(|| r.new_at + (at - r.old_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_maps_offsets_and_rows_back() {
        let src = b"a: [1,\n 2]\nb: c\nd: e\n";
        let s = Splice::new(src, &[(4..9, 0), (16..16, 2)]);
        assert_eq!(s.text, b"a: []\nb: c\n#\n#\nd: e\n");
        assert_eq!(s.back_offset(6), 11);
        assert_eq!(s.back_offset(15), 16);
        assert_eq!(s.back_row(1), 2);
        assert_eq!(s.back_row(2), 3);
        assert_eq!(s.back_row(3), 3);
        assert_eq!(s.back_row(4), 3);
        assert_eq!(s.back_row(0), 0);
        assert_eq!(s.forward(11), Some(6));
        assert_eq!(s.forward(5), None);
    }

    #[test]
    fn comments_go_where_the_counter_wraps_or_before_the_scalar_that_spans_it() {
        let text = "k: v\n".repeat(ROW_WRAP + 10);
        let got = comment_insertions(text.as_bytes(), &[], WRAPS).unwrap();
        assert_eq!(got, vec![(ROW_WRAP * 5..ROW_WRAP * 5, 1)]);
        // A quoted string over the wrap: the comment lines go before it and push it past.
        let at = (ROW_WRAP - 3) * 5;
        let quoted = at + 1..at + 40;
        let spans = std::slice::from_ref(&quoted);
        let got = comment_insertions(text.as_bytes(), spans, WRAPS).unwrap();
        assert_eq!(got, vec![(at..at, 4)]);
    }

    /// Every YAML input of the golden fixtures, with flow collections emptied and `#` lines
    /// at wraps every few lines, reads exactly as it does parsed directly.
    #[test]
    fn adjusted_copies_of_the_fixtures_read_like_the_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rewrite");
        let mut files = Vec::new();
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if super::super::Lang::from_path(&path) == Some(super::super::Lang::Yaml) {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 10, "{files:?}");
        let (mut compared, mut too_long) = (0, 0);
        for path in &files {
            let bytes = std::fs::read(path).unwrap();
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            let direct = super::super::yaml::scan(&bytes);
            if direct
                .problems
                .iter()
                .any(|p| p.kind == ProblemKind::Syntax)
            {
                continue;
            }
            let markers = super::super::frame::marker_rows(&bytes);
            for first in 1..4 {
                for period in 3..12 {
                    let wraps = Wraps { first, period };
                    let via_copy = adjusted(text, &markers, wraps, super::super::yaml::scan);
                    // A scalar longer than the period leaves no line for the next wrap.
                    if matches!(
                        via_copy.problems.as_slice(),
                        [Finding {
                            kind: ProblemKind::TooLarge(TooLarge::RowCounter { .. }),
                            ..
                        }]
                    ) {
                        too_long += 1;
                        continue;
                    }
                    assert_eq!(via_copy, direct, "{} with {wraps:?}", path.display());
                    compared += 1;
                }
            }
        }
        // Wraps every 3 to 11 lines leave few places in the comment-heavy fixtures (comment
        // lines and the lines below them take no insertion); real wraps are 65,536 lines apart.
        assert!(
            compared >= 200 && too_long < compared / 3,
            "{compared} {too_long}"
        );
    }
}
