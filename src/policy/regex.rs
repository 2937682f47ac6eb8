//! Filter and exclude patterns in Go's regular expression dialect (RE2 as Go's `regexp` reads
//! it), compiled with Rust's `regex`.
//!
//! Flux compiles these patterns with Go's `regexp.Compile`. Where the two dialects read the same
//! text differently, the pattern is translated so it means what it means in Go; where Go refuses
//! a construct that Rust accepts, it is refused here too, naming the construct:
//! - `\Q...\E` (Go: literal text; Rust has none) becomes escaped literal text.
//! - A `{` that does not start a valid repeat (`a{`, `a{,5}`, `a{01}`) is a literal in Go and an
//!   error or a repeat in Rust; it becomes `\{`.
//! - `\d`, `\s`, `\w`, `\b` and their negations are ASCII-only in Go and Unicode-aware in Rust;
//!   they are rewritten to Go's ASCII classes.
//! - The flags `x`, `R` and `u`, the word-boundary forms `\<` and `\>`,
//!   repeat counts above 1000, a repetition of a repetition (`a**`) and group names with `.`,
//!   `[` or `]` are refused, as Go refuses them.
//!
//! Constructs Go accepts and Rust refuses (octal escapes such as `\101`, group names starting
//! with a digit, `[[]` read as a class holding `[`) stay refused, with Rust's message.

use regex::Regex;
use regex_syntax::ast::{
    self, AssertionKind, Ast, ClassPerl, ClassPerlKind, ClassSetItem, Flag, FlagsItemKind,
    GroupKind, RepetitionKind, RepetitionRange,
};
use thiserror::Error;

/// Go's parser refuses `{n,m}` counts above 1000 (`regexp/syntax/parse.go`, "invalid repeat count").
const GO_MAX_REPEAT: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    /// Rust's `regex` refuses the pattern; the text is its message.
    #[error("{0}")]
    Syntax(String),
    /// Go's `regexp` refuses this construct, so Flux would refuse the pattern too.
    #[error("{construct} is not in Go's regular expression syntax (Flux refuses it too)")]
    NotInGo { construct: String },
}

/// Compiles `pattern` with Go's meaning.
pub fn compile(pattern: &str) -> Result<Regex, PatternError> {
    let unquoted = go_literals(pattern);
    let parsed = ast::parse::Parser::new()
        .parse(&unquoted)
        .map_err(|e| PatternError::Syntax(e.kind().to_string()))?;
    let mut check = Translate {
        edits: Vec::new(),
        refusal: None,
    };
    ast::visit(&parsed, &mut check).map_err(|()| {
        check
            .refusal
            .clone()
            .unwrap_or_else(|| PatternError::NotInGo {
                construct: "this construct".to_string(),
            })
    })?;
    let translated = apply(&unquoted, &mut check.edits);
    Regex::new(&translated).map_err(|e| PatternError::Syntax(last_line(&e.to_string())))
}

fn last_line(s: &str) -> String {
    // The regex crate's messages span several lines with a caret diagram; the last says what is wrong.
    s.lines()
        .rev()
        .find(|l| l.trim_start().starts_with("error:"))
        .map_or_else(
            || s.lines().next().unwrap_or(s).to_string(),
            |l| l.trim_start().trim_start_matches("error: ").to_string(),
        )
}

/// Go's literal text outside a character class, written so Rust reads it the same
/// (`regexp/syntax/parse.go`): `\Q...\E` is literal (a missing `\E` runs to the end), and so is
/// a `{` that `parseRepeat` does not accept.
fn go_literals(pattern: &str) -> String {
    if !pattern.contains(r"\Q") && !pattern.contains('{') {
        return pattern.to_string();
    }
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    let mut in_class = false;
    // Right after `[` or `[^`, where `]` is a literal in Go.
    let mut class_start = false;
    while let Some(c) = rest.chars().next() {
        if c == '\\' {
            let mut it = rest.chars();
            it.next();
            match it.next() {
                Some('Q') if !in_class => {
                    let body = &rest[2..];
                    let (literal, after) = body.split_once(r"\E").unwrap_or((body, ""));
                    out.push_str(&regex_syntax::escape(literal));
                    rest = after;
                }
                // `\x{41}`, `\p{Greek}`: the braces belong to the escape.
                Some('x' | 'p' | 'P') if rest[2..].starts_with('{') => {
                    let len = rest[2..].find('}').map_or(rest.len(), |end| 2 + end + 1);
                    out.push_str(&rest[..len]);
                    rest = &rest[len..];
                }
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                    rest = &rest[1 + next.len_utf8()..];
                }
                None => {
                    out.push('\\');
                    rest = "";
                }
            }
            class_start = false;
            continue;
        }
        if in_class {
            if rest.starts_with("[:")
                && let Some(end) = rest.find(":]")
            {
                out.push_str(&rest[..end + 2]);
                rest = &rest[end + 2..];
                class_start = false;
                continue;
            }
            if c == ']' && !class_start {
                in_class = false;
            }
            class_start = false;
        } else if c == '{' {
            match go_repeat_len(rest) {
                Some(len) => out.push_str(&rest[..len]),
                None => out.push_str(r"\{"),
            }
            rest = &rest[go_repeat_len(rest).unwrap_or(1)..];
            continue;
        } else if c == '[' {
            in_class = true;
            class_start = true;
            out.push('[');
            rest = &rest[1..];
            if let Some(after) = rest.strip_prefix('^') {
                out.push('^');
                rest = after;
            }
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The length of a repeat `{n}`, `{n,}` or `{n,m}` at the start of `s` as Go's `parseRepeat`
/// accepts it (decimal numbers without a leading zero), or `None` when the `{` is a literal.
fn go_repeat_len(s: &str) -> Option<usize> {
    fn number(s: &[u8], at: usize) -> Option<usize> {
        let digits = s[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let leading_zero = digits >= 2 && s[at] == b'0';
        (digits > 0 && !leading_zero).then_some(at + digits)
    }
    let b = s.as_bytes();
    let mut at = number(b, 1)?;
    if b.get(at) == Some(&b',') {
        at += 1;
        if b.get(at) != Some(&b'}') {
            at = number(b, at)?;
        }
    }
    (b.get(at) == Some(&b'}')).then_some(at + 1)
}

/// Replacements at byte ranges of the pattern, and the first construct Go refuses.
struct Translate {
    edits: Vec<(usize, usize, String)>,
    refusal: Option<PatternError>,
}

impl Translate {
    fn refuse(&mut self, construct: impl Into<String>) -> Result<(), ()> {
        self.refusal = Some(PatternError::NotInGo {
            construct: construct.into(),
        });
        Err(())
    }

    fn edit(&mut self, span: &ast::Span, with: impl Into<String>) {
        self.edits
            .push((span.start.offset, span.end.offset, with.into()));
    }
}

/// Go's ASCII Perl classes (`regexp/syntax/perl_groups.go`).
fn go_perl_class(class: &ClassPerl, inside_brackets: bool) -> String {
    let set = match class.kind {
        ClassPerlKind::Digit => "0-9",
        ClassPerlKind::Space => r"\t\n\x0C\r ",
        ClassPerlKind::Word => "0-9A-Za-z_",
    };
    match (class.negated, inside_brackets) {
        (false, true) => set.to_string(),
        (false, false) => format!("[{set}]"),
        // A nested class inside brackets is Rust syntax for the union.
        (true, _) => format!("[^{set}]"),
    }
}

impl ast::Visitor for &mut Translate {
    type Output = ();
    type Err = ();

    fn finish(self) -> Result<(), ()> {
        Ok(())
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), ()> {
        match ast {
            Ast::ClassPerl(class) => {
                let with = go_perl_class(class, false);
                self.edit(&class.span, with);
            }
            Ast::Assertion(a) => match a.kind {
                AssertionKind::WordBoundary => self.edit(&a.span, r"(?-u:\b)"),
                AssertionKind::NotWordBoundary => self.edit(&a.span, r"(?-u:\B)"),
                AssertionKind::WordBoundaryStart
                | AssertionKind::WordBoundaryEnd
                | AssertionKind::WordBoundaryStartAngle
                | AssertionKind::WordBoundaryEndAngle
                | AssertionKind::WordBoundaryStartHalf
                | AssertionKind::WordBoundaryEndHalf => {
                    return self.refuse("the word boundary `\\<` or `\\>`");
                }
                _ => {}
            },
            Ast::Flags(set) => self.flags(&set.flags)?,
            Ast::Group(group) => match &group.kind {
                GroupKind::NonCapturing(flags) => self.flags(flags)?,
                GroupKind::CaptureName { name, .. } => {
                    if name.name.contains(['.', '[', ']']) {
                        return self.refuse(format!(
                            "the group name {:?} (Go allows letters, digits and `_`)",
                            name.name
                        ));
                    }
                }
                GroupKind::CaptureIndex(_) => {}
            },
            Ast::Repetition(rep) => {
                if matches!(*rep.ast, Ast::Repetition(_)) {
                    return self.refuse("a repetition of a repetition such as `a**`");
                }
                if let RepetitionKind::Range(range) = &rep.op.kind {
                    let (RepetitionRange::Exactly(n)
                    | RepetitionRange::AtLeast(n)
                    | RepetitionRange::Bounded(_, n)) = *range;
                    if n > GO_MAX_REPEAT {
                        return self.refuse(format!("a repeat count above {GO_MAX_REPEAT}"));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), ()> {
        if let ClassSetItem::Perl(class) = item {
            let with = go_perl_class(class, true);
            self.edit(&class.span, with);
        }
        Ok(())
    }
}

impl Translate {
    fn flags(&mut self, flags: &ast::Flags) -> Result<(), ()> {
        for item in &flags.items {
            let name = match item.kind {
                FlagsItemKind::Flag(Flag::IgnoreWhitespace) => "x",
                FlagsItemKind::Flag(Flag::CRLF) => "R",
                FlagsItemKind::Flag(Flag::Unicode) => "u",
                _ => continue,
            };
            return self.refuse(format!("the flag `{name}`"));
        }
        Ok(())
    }
}

/// `pattern` with the edits applied; edits never overlap (they replace leaves of the syntax tree).
fn apply(pattern: &str, edits: &mut [(usize, usize, String)]) -> String {
    edits.sort_by_key(|(start, _, _)| *start);
    let mut out = String::with_capacity(pattern.len() + 8 * edits.len());
    let mut at = 0;
    for (start, end, with) in edits.iter() {
        out.push_str(&pattern[at..*start]);
        out.push_str(with);
        at = *end;
    }
    out.push_str(&pattern[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_match(pattern: &str, text: &str) -> bool {
        compile(pattern).unwrap().is_match(text)
    }

    #[test]
    fn perl_classes_and_boundaries_are_ascii_as_in_go() {
        // Go: regexp/syntax/doc.go, "\d digits (== [0-9])", "\b at ASCII word boundary".
        assert!(
            !is_match(r"^\d+$", "١٢٣"),
            "Arabic-Indic digits are not \\d in Go"
        );
        assert!(is_match(r"^\D+$", "١٢٣"));
        assert!(is_match(r"^[\d.]+$", "1.2"));
        assert!(!is_match(r"^[\d.]+$", "١.٢"));
        assert!(is_match(r"^[^\d]+$", "abc"));
        assert!(is_match(r"^[\D]+$", "é"));
        assert!(!is_match(r"^\w+$", "é"));
        assert!(!is_match(r"^\s$", "\u{a0}"));
        assert!(is_match(r"^\s$", "\x0c"));
        assert!(!is_match(r"é\b", "é"), "é is no word character in Go");
        assert!(is_match(r"a\b", "a-"));
    }

    #[test]
    fn quoted_text_is_literal() {
        assert!(is_match(r"^\Q1.2+\E-x$", "1.2+-x"));
        assert!(!is_match(r"^\Q1.2\E$", "1x2"));
        assert!(is_match(r"^a\Q.*", "a.*"), "a missing \\E runs to the end");
        // Inside a class Go reads `\Q` as an unknown escape and refuses it, as Rust does.
        assert!(compile(r"^[\Q]$").is_err());
    }

    #[test]
    fn braces_that_are_no_repeat_are_literal_as_in_go() {
        // Go regexp/syntax/parse.go: "If the repeat cannot be parsed, { is a literal."
        assert!(is_match(r"^a{$", "a{"));
        assert!(is_match(r"^a{,5}$", "a{,5}"));
        assert!(is_match(r"^a{01}$", "a{01}"));
        assert!(is_match(r"^a{x}$", "a{x}"));
        assert!(is_match(r"^a}$", "a}"));
        assert!(is_match(r"^a{2}$", "aa"));
        assert!(is_match(r"^a{1,}$", "aaa"));
        assert!(is_match(r"^a{0,2}b$", "ab"));
        assert!(is_match(r"^[{]$", "{"));
        // Go reads `\b{start}` as a boundary and the text `{start}`.
        assert!(is_match(r"x\b{start}", "x{start}"));
        assert!(is_match(r"^\x{41}\p{Greek}\PL$", "Aα1"));
    }

    #[test]
    fn constructs_go_refuses_are_refused() {
        for pattern in [
            r"(?x) a",
            r"(?R)a",
            r"(?-u:a)",
            r"\<word",
            r"word\>",
            r"a{1001}",
            r"a**",
            r"(?P<a.b>x)",
        ] {
            let e = compile(pattern).unwrap_err();
            assert!(matches!(e, PatternError::NotInGo { .. }), "{pattern}: {e}");
            assert!(e.to_string().contains("Flux refuses it too"), "{e}");
        }
        assert!(compile(r"a{1000}").is_ok());
        // Go accepts these; Rust's engine does not (docs/policies.md lists them).
        for pattern in [r"\101", r"(?P<1a>x)", r"[[]"] {
            assert!(
                matches!(compile(pattern), Err(PatternError::Syntax(_))),
                "{pattern}"
            );
        }
        assert!(matches!(compile(r"(a"), Err(PatternError::Syntax(_))));
    }
}
