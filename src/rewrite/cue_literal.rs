//! CUE string literals: reading the value of a simple, raw (`#"..."#`) or multi-line
//! (`"""`) literal, and writing a new value in the same form.
//!
//! A rewrite replaces only the literal's content and keeps its delimiters, so the `#`
//! padding, the line breaks and the indentation of a multi-line literal stay as written.
//! In a literal padded with N `#`, a `"` or `\` followed by N `#` would close the literal
//! or start an escape; such characters are written as escapes with the same padding
//! (`\#"`, `\#\`) rather than by changing the padding, which would touch the delimiters.

use std::ops::Range;

use thiserror::Error;

/// How a CUE string literal is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CueForm {
    /// The number of `#` around the quotes (0 for a simple string).
    pub hashes: usize,
    /// `"""` with the content on lines of its own.
    pub multi_line: bool,
}

/// A decoded literal: its form, the byte range of its content within the literal text
/// (what a rewrite replaces) and the value it reads as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    pub form: CueForm,
    pub content: Range<usize>,
    pub value: String,
}

/// Why a literal is not rewritten; each reads as "a marker on <this>".
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum LiteralError {
    #[error("{}", self.what())]
    Interpolation,
    #[error("{}", self.what())]
    Bytes,
    #[error("{}", self.what())]
    EmptyMultiLine,
    #[error("{}", self.what())]
    BlankFirstLine,
    #[error("{}", self.what())]
    ClosingNotAlone,
    #[error("{}", self.what())]
    Malformed,
}

impl LiteralError {
    /// The description used in [`super::ProblemKind::UnsupportedValue`].
    pub fn what(self) -> &'static str {
        match self {
            Self::Interpolation => "a string with interpolation",
            Self::Bytes => "a byte string",
            Self::EmptyMultiLine => {
                "an empty multi-line string (write the value on a line of its own)"
            }
            Self::BlankFirstLine => "a multi-line string whose first line is blank",
            Self::ClosingNotAlone => {
                "a multi-line string whose closing quotes are not on a line of their own"
            }
            Self::Malformed => "a malformed string",
        }
    }
}

/// Reads a whole literal, delimiters included, as the CUE evaluator would.
pub fn decode(literal: &str) -> Result<Literal, LiteralError> {
    let hashes = literal.bytes().take_while(|&b| b == b'#').count();
    let rest = &literal[hashes..];
    if rest.starts_with('\'') {
        return Err(LiteralError::Bytes);
    }
    if !rest.starts_with('"') {
        return Err(LiteralError::Malformed);
    }
    let multi_line = rest.starts_with("\"\"\"");
    let quotes = if multi_line { "\"\"\"" } else { "\"" };
    let close = format!("{quotes}{}", "#".repeat(hashes));
    let open_len = hashes + quotes.len();
    if literal.len() < open_len + close.len() || !literal.ends_with(&close) {
        return Err(LiteralError::Malformed);
    }
    let body = open_len..literal.len() - close.len();
    let form = CueForm { hashes, multi_line };
    if !multi_line {
        let text = &literal[body.clone()];
        if text.contains(['\n', '\r']) {
            return Err(LiteralError::Malformed);
        }
        let value = unescape(text, hashes)?;
        return Ok(Literal {
            form,
            content: body,
            value,
        });
    }
    decode_multi_line(literal, body, form)
}

fn decode_multi_line(
    literal: &str,
    body: Range<usize>,
    form: CueForm,
) -> Result<Literal, LiteralError> {
    let text = &literal[body.clone()];
    let eol_len = if text.starts_with("\r\n") {
        2
    } else if text.starts_with('\n') {
        1
    } else {
        return Err(LiteralError::Malformed);
    };
    let last_break = text.rfind('\n').ok_or(LiteralError::Malformed)?;
    let indent = &text[last_break + 1..];
    if !indent.bytes().all(|b| b == b' ' || b == b'\t') {
        return Err(LiteralError::ClosingNotAlone);
    }
    if last_break + 1 == eol_len {
        return Err(LiteralError::EmptyMultiLine);
    }
    // The content lines lie between the opening line break and the line break before the
    // closing line; CUE drops the carriage return of a CRLF line end.
    let mut end = last_break;
    if text[..end].ends_with('\r') {
        end -= 1;
    }
    let lines = &text[eol_len..end];
    let mut value = String::with_capacity(lines.len());
    for (i, line) in lines.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.contains('\r') {
            return Err(LiteralError::Malformed);
        }
        if i > 0 {
            value.push('\n');
        }
        if line.is_empty() {
            // The content range starts after the first line's indentation, which a blank
            // line lacks.
            if i == 0 && !indent.is_empty() {
                return Err(LiteralError::BlankFirstLine);
            }
            continue;
        }
        let line = line.strip_prefix(indent).ok_or(LiteralError::Malformed)?;
        value.push_str(&unescape(line, form.hashes)?);
    }
    let start = body.start + eol_len + indent.len();
    Ok(Literal {
        form,
        content: start..body.start + end,
        value,
    })
}

/// Decodes escapes; in a literal padded with `hashes` `#`, an escape is `\` plus that many `#`.
fn unescape(text: &str, hashes: usize) -> Result<String, LiteralError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let padded = after.len() >= hashes && after.as_bytes()[..hashes].iter().all(|&b| b == b'#');
        if !padded {
            out.push('\\');
            rest = after;
            continue;
        }
        let after = &after[hashes..];
        let mut chars = after.chars();
        let c = chars.next().ok_or(LiteralError::Malformed)?;
        let (decoded, used) = match c {
            'a' => ('\u{7}', 1),
            'b' => ('\u{8}', 1),
            'f' => ('\u{c}', 1),
            'n' => ('\n', 1),
            'r' => ('\r', 1),
            't' => ('\t', 1),
            'v' => ('\u{b}', 1),
            '/' => ('/', 1),
            '\\' => ('\\', 1),
            '"' => ('"', 1),
            'u' => (hex(after.get(1..5))?, 5),
            'U' => (hex(after.get(1..9))?, 9),
            '(' => return Err(LiteralError::Interpolation),
            _ => return Err(LiteralError::Malformed),
        };
        out.push(decoded);
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

fn hex(digits: Option<&str>) -> Result<char, LiteralError> {
    let digits = digits.ok_or(LiteralError::Malformed)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LiteralError::Malformed);
    }
    u32::from_str_radix(digits, 16)
        .ok()
        .and_then(char::from_u32)
        .ok_or(LiteralError::Malformed)
}

/// The content to write for `value` between the delimiters of a literal of `form`.
pub fn encode(form: CueForm, value: &str) -> String {
    let pad = "#".repeat(form.hashes);
    let escape = |out: &mut String, code: &str| {
        out.push('\\');
        out.push_str(&pad);
        out.push_str(code);
    };
    let mut out = String::with_capacity(value.len() + 2);
    for (i, c) in value.char_indices() {
        let padded_next = value[i + c.len_utf8()..].starts_with(pad.as_str());
        match c {
            // Quotes and backslashes read as themselves in a raw literal unless the padding
            // follows them; a quote first in a one-line literal would make its opening
            // `#""` read as the `#"""` of a multi-line one.
            '"' if form.hashes > 0 && !padded_next && (i > 0 || form.multi_line) => out.push(c),
            '\\' if form.hashes > 0 && !padded_next => out.push(c),
            '"' => escape(&mut out, "\""),
            '\\' => escape(&mut out, "\\"),
            '\n' => escape(&mut out, "n"),
            '\r' => escape(&mut out, "r"),
            '\t' => out.push('\t'),
            c if c.is_control() || c == '\u{feff}' => {
                escape(&mut out, &format!("u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(literal: &str) -> Result<String, LiteralError> {
        decode(literal).map(|l| l.value)
    }

    /// Writes `value` in `form` with delimiters, as a file would hold it.
    fn literal(form: CueForm, value: &str, indent: &str, eol: &str) -> String {
        let pad = "#".repeat(form.hashes);
        if form.multi_line {
            format!(
                "{pad}\"\"\"{eol}{indent}{}{eol}{indent}\"\"\"{pad}",
                encode(form, value)
            )
        } else {
            format!("{pad}\"{}\"{pad}", encode(form, value))
        }
    }

    #[test]
    fn simple_strings_and_escapes() {
        assert_eq!(
            value(r#""ghcr.io/o/app:1""#).as_deref(),
            Ok("ghcr.io/o/app:1")
        );
        assert_eq!(value(r#""""#).as_deref(), Ok(""));
        assert_eq!(
            value(r#""a\"b\\c\/d\u00e9\U0001F600\n""#).as_deref(),
            Ok("a\"b\\c/dé😀\n")
        );
        assert_eq!(value(r#""x\(y)""#), Err(LiteralError::Interpolation));
        assert_eq!(value(r#""x\q""#), Err(LiteralError::Malformed));
        assert_eq!(value(r#""x\ud800""#), Err(LiteralError::Malformed));
        assert_eq!(value("'bytes'"), Err(LiteralError::Bytes));
        assert_eq!(value("\"unclosed"), Err(LiteralError::Malformed));
    }

    #[test]
    fn raw_strings_escape_only_with_their_padding() {
        assert_eq!(
            value(r##"#"C:\dir "q" \(x)"#"##).as_deref(),
            Ok(r#"C:\dir "q" \(x)"#)
        );
        assert_eq!(value(r##"#"a\#nb"#"##).as_deref(), Ok("a\nb"));
        assert_eq!(value(r##"#"a\#(b)"#"##), Err(LiteralError::Interpolation));
        assert_eq!(value(r###"##"a"#b"##"###).as_deref(), Ok("a\"#b"));
        let l = decode(r###"##"x"##"###).unwrap();
        assert_eq!((l.form.hashes, l.content), (2, 3..4));
    }

    #[test]
    fn multi_line_strings_drop_the_closing_indentation() {
        let l = decode("\"\"\"\n\t\tghcr.io/o/app:1\n\t\"\"\"").unwrap();
        assert_eq!(l.value, "\tghcr.io/o/app:1");
        assert_eq!(l.content, 5..21);
        assert_eq!(
            value("#\"\"\"\r\n  a\r\n\r\n  \\#tb\r\n  \"\"\"#").as_deref(),
            Ok("a\n\n\tb")
        );
        assert_eq!(value("\"\"\"\n\t\"\"\""), Err(LiteralError::EmptyMultiLine));
        assert_eq!(
            value("\"\"\"\n\n\tx\n\t\"\"\""),
            Err(LiteralError::BlankFirstLine)
        );
        assert_eq!(
            value("\"\"\"\n\tx\"\"\""),
            Err(LiteralError::ClosingNotAlone)
        );
        assert_eq!(
            value("\"\"\"\n\tx\n  y\n\t\"\"\""),
            Err(LiteralError::Malformed)
        );
        assert_eq!(value("\"\"\"x\n\t\"\"\""), Err(LiteralError::Malformed));
    }

    #[test]
    fn every_form_round_trips() {
        let values = [
            "ghcr.io/org/app:1.2.3@sha256:00ff",
            "",
            "quote \" backslash \\ hash # both \"# \\# \"## \\##",
            "\\(not an interpolation) \\#(nor this)",
            "ends with \\",
            "ends with \"",
            "\"\"\" three",
            "lines\nand\r\ncontrols\u{0}\u{7f}\u{feff}\ttab",
            "é 😀",
        ];
        for hashes in 0..3 {
            for multi_line in [false, true] {
                let form = CueForm { hashes, multi_line };
                for v in values {
                    for (indent, eol) in [("", "\n"), ("\t", "\r\n"), ("    ", "\n")] {
                        let lit = literal(form, v, indent, eol);
                        let back = decode(&lit).unwrap_or_else(|e| panic!("{lit:?}: {e}"));
                        assert_eq!((back.form, back.value.as_str()), (form, v), "{lit:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn raw_forms_escape_only_what_would_end_them() {
        let raw = CueForm {
            hashes: 1,
            multi_line: false,
        };
        assert_eq!(encode(raw, r#"a"b\c"#), r#"a"b\c"#);
        assert_eq!(encode(raw, r##"a"#b\#c"##), r##"a\#"#b\#\#c"##);
        let simple = CueForm {
            hashes: 0,
            multi_line: false,
        };
        assert_eq!(encode(simple, r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
