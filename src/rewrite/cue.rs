//! CUE: locates `// {"$imagepolicy": ...}` comments and the string literal each one sets,
//! with tagsmith's own grammar (`grammars/cue`).
//!
//! A marker sets the value that ends on its line just before it: a field's value, a `let`
//! value or a list element. CUE allows nothing after the opening `"""` of a multi-line
//! string on its line, so a multi-line string takes its marker after its closing quotes, and
//! its site's line is that of the closing quotes. Only string literals are rewritten; a
//! marker on anything else (an interpolation, a reference, a disjunction, a number, ...) is
//! reported, since rewriting it would change an expression or a type rather than a text.
//! Byte strings (`'...'`) are reported too: an image reference is text, and a `bytes` field
//! holding one is a mistake to point out rather than to keep up to date.

use std::borrow::Cow;
use std::cell::RefCell;

use tree_sitter::{Node, Parser, Tree};

use super::{Marker, ProblemKind, ScanResult, Site, Style, cue_literal, frame};

thread_local! {
    // A parser per thread: creating one per file costs more than parsing a small file.
    static PARSER: RefCell<Option<Parser>> = const { RefCell::new(None) };
}

fn parse(source: &[u8]) -> Option<Tree> {
    PARSER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut parser = Parser::new();
            parser.set_language(&crate::grammars::cue()).ok()?;
            *slot = Some(parser);
        }
        slot.as_mut()?.parse(source, None)
    })
}

pub fn scan(source: &[u8]) -> ScanResult {
    frame::analyze::<Cue>(parse(source).as_ref(), source)
}

/// CUE's parts of the scan frame.
pub(super) struct Cue;

#[derive(Default)]
pub(super) struct Extra<'t> {
    /// String literals on the visited rows, to tell a marker written inside a string.
    strings: Vec<Node<'t>>,
}

type Collected<'t> = frame::Collected<'t, Extra<'t>>;

impl frame::Language for Cue {
    type Extra<'t> = Extra<'t>;

    /// Field values, `let` values and list elements are values, by the row they end on: a
    /// marker sets the value right before it (of values ending at the same byte, a label
    /// chain `a: b: "x"`, the innermost).
    fn visit<'t>(
        node: Node<'t>,
        field: Option<&'t str>,
        parent: Option<&'t str>,
        _source: &[u8],
        out: &mut Collected<'t>,
    ) -> bool {
        let is_value = match parent {
            Some("field" | "let_clause") => field == Some("value"),
            Some("list") => node.is_named() && !matches!(node.kind(), "comment" | "ellipsis"),
            _ => false,
        };
        if is_value {
            out.value(node);
        }
        match node.kind() {
            "comment" => {
                out.comment(node);
                false
            }
            "string" => {
                out.extra.strings.push(node);
                true
            }
            _ => true,
        }
    }

    fn comment_body<'s>(comment: Node<'_>, source: &'s [u8]) -> Cow<'s, str> {
        comment_body(comment, source)
    }

    fn site(
        value: Node<'_>,
        source: &[u8],
        marker: Marker,
        line: usize,
    ) -> Result<Site, &'static str> {
        site(value, source, marker, line)
    }

    /// `$imagepolicy` on a line without a comment: inside a string, where it is text, or
    /// elsewhere (`$imagepolicy` is a valid CUE identifier), where it is a likely typo.
    fn stray<'t>(at: usize, _line: usize, collected: &Collected<'t>) -> Option<ProblemKind> {
        let in_string = collected
            .extra
            .strings
            .iter()
            .any(|s| s.start_byte() < at && at < s.end_byte());
        Some(if in_string {
            ProblemKind::MarkerInString
        } else {
            ProblemKind::NearMiss {
                reason: "\"$imagepolicy\" outside a comment (a CUE comment starts with //)"
                    .to_string(),
            }
        })
    }
}

/// Turns a value node into a site, or names why it cannot be one.
fn site(value: Node<'_>, source: &[u8], marker: Marker, line: usize) -> Result<Site, &'static str> {
    let what = match value.kind() {
        "string" => {
            let text = std::str::from_utf8(&source[value.byte_range()])
                .map_err(|_| "a string that is not UTF-8")?;
            let literal = cue_literal::decode(text).map_err(cue_literal::LiteralError::what)?;
            let start = value.start_byte();
            return Ok(Site {
                marker,
                line,
                range: start + literal.content.start..start + literal.content.end,
                style: Style::Cue(literal.form),
                value: literal.value,
                is_string: true,
            });
        }
        "identifier" | "selector_expression" | "index_expression" => {
            "a reference (put the marker on the literal it refers to)"
        }
        "disjunction" => "a disjunction",
        "default" => "a default",
        "unification" => "a unification",
        "integer" | "float" => "a number",
        "boolean" => "a boolean",
        "null" => "null",
        "struct" => "a struct",
        "list" => "a list",
        "call_expression" => "a call",
        _ => "an expression",
    };
    Err(what)
}

/// The comment's text after `//`; invalid UTF-8 is replaced so that a marker in a comment
/// holding a stray byte is still reported rather than ignored.
fn comment_body<'s>(comment: Node<'_>, source: &'s [u8]) -> Cow<'s, str> {
    let text = &source[comment.byte_range()];
    String::from_utf8_lossy(text.strip_prefix(b"//").unwrap_or(text))
}

pub fn encode(style: Style, value: &str) -> (Style, String) {
    let form = match style {
        Style::Cue(form) => form,
        // CUE sites always carry their form; a plain string is the safe reading otherwise.
        Style::Plain | Style::Single | Style::Double => cue_literal::CueForm {
            hashes: 0,
            multi_line: false,
        },
    };
    (Style::Cue(form), cue_literal::encode(form, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::Finding;

    const M: &str = r#"// {"$imagepolicy": "ns:a"}"#;

    fn values(src: &str) -> Vec<(usize, String)> {
        let r = scan(src.as_bytes());
        assert_eq!(r.problems, vec![], "{src}");
        r.sites.iter().map(|s| (s.line, s.value.clone())).collect()
    }

    fn problem_lines(src: &str) -> Vec<(usize, ProblemKind)> {
        let r = scan(src.as_bytes());
        assert!(r.sites.is_empty(), "{r:?}");
        r.problems.into_iter().map(|p| (p.line, p.kind)).collect()
    }

    #[test]
    fn every_string_form_is_a_site() {
        let src = format!(
            "a: \"x:1\" {M}\nb: #\"y:2\"# {M}\nc: d: e: ##\"z:3\"## {M}\nf: \"\"\"\n\tw:4\n\t\"\"\" {M}\nl: [\n\t\"v:5\", {M}\n]\n"
        );
        assert_eq!(
            values(&src),
            vec![
                (1, "x:1".into()),
                (2, "y:2".into()),
                (3, "z:3".into()),
                (6, "w:4".into()),
                (8, "v:5".into())
            ]
        );
        let r = scan(src.as_bytes());
        // The range covers the content, not the delimiters.
        assert_eq!(&src[r.sites[1].range.clone()], "y:2");
        assert_eq!(&src[r.sites[3].range.clone()], "w:4");
    }

    #[test]
    fn other_values_are_reported_with_their_line() {
        let src = format!(
            "r: \"x\"\na: \"\\(r):1\" {M}\nb: r {M}\nc: *\"x\" | string {M}\nd: 3 {M}\ne: {{i: \"x\"}} {M}\nf: 'b' {M}\n{M}\n"
        );
        let got: Vec<_> = problem_lines(&src)
            .into_iter()
            .map(|(line, kind)| match kind {
                ProblemKind::UnsupportedValue { what } => (line, what),
                ProblemKind::NoValue => (line, "none".into()),
                other => panic!("{other:?}"),
            })
            .collect();
        let got: Vec<(usize, &str)> = got.iter().map(|(l, w)| (*l, w.as_ref())).collect();
        assert_eq!(
            got,
            vec![
                (2, "a string with interpolation"),
                (
                    3,
                    "a reference (put the marker on the literal it refers to)"
                ),
                (4, "a disjunction"),
                (5, "a number"),
                (6, "a struct"),
                (7, "a byte string"),
                (8, "none"),
            ]
        );
    }

    #[test]
    fn markers_in_text_and_near_misses() {
        let src = "a: \"\"\"\n\tx // {\"$imagepolicy\": \"ns:a\"}\n\t\"\"\"\nb: \"y\" // {$imagepolicy: ns:a}\n$imagepolicy: \"z\"\n";
        let got: Vec<_> = problem_lines(src)
            .into_iter()
            .map(|(line, kind)| (line, std::mem::discriminant(&kind)))
            .collect();
        let near = std::mem::discriminant(&ProblemKind::NearMiss {
            reason: String::new(),
        });
        assert_eq!(
            got,
            vec![
                (2, std::mem::discriminant(&ProblemKind::MarkerInString)),
                (4, near),
                (5, near)
            ]
        );
    }

    #[test]
    fn a_comment_with_invalid_utf8_is_still_read() {
        let r = scan(b"a: \"x\" // {\"$imagepolicy\": \"ns:a\"} \xff\n");
        assert!(r.sites.is_empty());
        assert!(
            matches!(
                r.problems[..],
                [Finding {
                    line: 1,
                    kind: ProblemKind::NearMiss { .. }
                }]
            ),
            "{r:?}"
        );
    }

    #[test]
    fn syntax_errors_name_the_first_error_line() {
        let src = format!("a: \"x\" {M}\nb: {{\n\tc: [1,\n}}\nd: \"y\" {M}\n");
        let got = problem_lines(&src);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, ProblemKind::Syntax);
        assert!((3..=4).contains(&got[0].0), "{got:?}");
    }

    #[test]
    fn encoding_keeps_the_form() {
        let raw = Style::Cue(cue_literal::CueForm {
            hashes: 1,
            multi_line: false,
        });
        assert_eq!(encode(raw, "a\"#b"), (raw, "a\\#\"#b".to_string()));
    }
}
