//! YAML scalar literals: decoding the three flow styles and writing a value back so that it
//! keeps its style and still reads as a string.

use std::sync::LazyLock;

use regex::Regex;

use super::Style;

/// Plain scalars that YAML 1.1 or 1.2 resolvers read as numbers, booleans, null or timestamps.
/// Kubernetes tooling still follows YAML 1.1, so both are covered (`yes`, `0777`, `1:20`).
static NON_STRING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:",
        r"~|null|Null|NULL",
        r"|y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
        r"|[-+]?0x[0-9a-fA-F_]+|[-+]?0o[0-7_]+|[-+]?0b[01_]+",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?",
        r"|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?",
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt \t].*)?",
        r")$"
    ))
    .expect("the pattern is a valid regex")
});

/// Would `value`, written plain, be read as something other than this string?
pub fn reads_as_non_string(value: &str) -> bool {
    value.is_empty() || NON_STRING.is_match(value)
}

/// Can `value` be written as a plain scalar, in block or flow context, and read back as itself?
pub fn plain_ok(value: &str) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || first.is_whitespace() {
        return false;
    }
    if value.ends_with(|c: char| c.is_whitespace() || c == ':') {
        return false;
    }
    if value.contains(": ")
        || value.contains(" #")
        || value.contains(['\t', ',', '[', ']', '{', '}'])
    {
        return false;
    }
    if value.chars().any(|c| c.is_control() || c == '\u{feff}') {
        return false;
    }
    !reads_as_non_string(value)
}

/// The literal to write for `value` when the old literal had `style`, and the style it gets.
/// Plain falls back to double quotes when plain would change the meaning (as Flux does).
pub fn encode(style: Style, value: &str) -> (Style, String) {
    match style {
        Style::Plain if plain_ok(value) => (Style::Plain, value.to_string()),
        Style::Single if !value.chars().any(char::is_control) => {
            (Style::Single, format!("'{}'", value.replace('\'', "''")))
        }
        _ => (Style::Double, double_quote(value)),
    }
}

fn double_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' => {
                let n = u32::from(c);
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a single-line single-quoted literal (quotes included), if well formed.
pub fn decode_single(literal: &str) -> Option<String> {
    let inner = literal.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

/// The value of a single-line double-quoted literal (quotes included), if well formed.
pub fn decode_double(literal: &str) -> Option<String> {
    let inner = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = match chars.next()? {
            '0' => '\0',
            'a' => '\u{7}',
            'b' => '\u{8}',
            't' | '\t' => '\t',
            'n' => '\n',
            'v' => '\u{b}',
            'f' => '\u{c}',
            'r' => '\r',
            'e' => '\u{1b}',
            ' ' => ' ',
            '"' => '"',
            '/' => '/',
            '\\' => '\\',
            'N' => '\u{85}',
            '_' => '\u{a0}',
            'L' => '\u{2028}',
            'P' => '\u{2029}',
            'x' => hex(&mut chars, 2)?,
            'u' => hex(&mut chars, 4)?,
            'U' => hex(&mut chars, 8)?,
            _ => return None,
        };
        out.push(escaped);
    }
    Some(out)
}

fn hex(chars: &mut std::str::Chars<'_>, digits: usize) -> Option<char> {
    let mut n: u32 = 0;
    for _ in 0..digits {
        n = n * 16 + chars.next()?.to_digit(16)?;
    }
    char::from_u32(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_booleans_and_nulls_are_not_strings() {
        for v in [
            "1.20",
            "1",
            "012",
            "0x1F",
            "0o17",
            "1e3",
            "-.5",
            ".inf",
            "1_000",
            "1:20",
            "yes",
            "No",
            "on",
            "true",
            "null",
            "~",
            "",
            "2024-01-01",
            "+1",
        ] {
            assert!(reads_as_non_string(v), "{v}");
            assert_eq!(encode(Style::Plain, v).0, Style::Double, "{v}");
        }
        for v in [
            "1.2.3",
            "v1.20",
            "nginx:1.20",
            "1.2.3-rc.1",
            "main-abc123",
            "sha256:ab",
            "latest",
        ] {
            assert!(!reads_as_non_string(v), "{v}");
            assert_eq!(encode(Style::Plain, v), (Style::Plain, v.to_string()));
        }
    }

    #[test]
    fn quoting_round_trips() {
        for v in ["it's", "a\"b\\c", "tab\there", "plain", "é ü", "\u{1}"] {
            let (style, lit) = encode(Style::Single, v);
            let back = match style {
                Style::Single => decode_single(&lit),
                _ => decode_double(&lit),
            };
            assert_eq!(back.as_deref(), Some(v), "{lit}");
            let (_, lit) = encode(Style::Double, v);
            assert_eq!(decode_double(&lit).as_deref(), Some(v), "{lit}");
        }
        assert_eq!(encode(Style::Single, "it's").1, "'it''s'");
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(
            decode_double(r#""a\x41\u00e9\/\"""#).as_deref(),
            Some("aAé/\"")
        );
        assert_eq!(decode_double(r#""bad\q""#), None);
        assert_eq!(decode_double(r#""cut\"#), None);
    }
}
