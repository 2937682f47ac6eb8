//! `ignore-tags` globs (Go `filepath.Match`, as AIU's `VersionConstraint.IsTagIgnored`
//! uses) as anchored regexes for `exclude`.

/// The regex matching exactly what `filepath.Match(pattern, tag)` matches (tags hold no
/// `/`, so `*` is any run of characters). `None` for a malformed pattern, which AIU never
/// matches.
pub fn to_regex(pattern: &str) -> Option<String> {
    let mut out = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '\\' => out.push_str(&regex::escape(&chars.next()?.to_string())),
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    if c == '\\' || c == '[' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                if !closed {
                    return None;
                }
                out.push(']');
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Go path/filepath Match semantics (AIU registry-scanner pkg/image/version.go IsTagIgnored).
    #[test]
    fn globs_match_as_filepath_match_does() {
        let re = |p: &str| regex::Regex::new(&to_regex(p).unwrap()).unwrap();
        assert!(re("*-rc*").is_match("1.0-rc1"));
        assert!(!re("*-rc*").is_match("1.0"));
        assert!(re("v1.?").is_match("v1.2"));
        assert!(re("[0-9].*").is_match("1.x"));
        assert!(!re("latest").is_match("latest2"));
        assert!(to_regex("[abc").is_none());
    }
}
