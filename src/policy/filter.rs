//! `filterTags`: an unanchored regex that keeps tags, and an optional `extract` template whose
//! expansion becomes the value the policy orders by (the original tag is still what is selected).
//!
//! Templates mean what Go's `Regexp.Expand` makes of them (Flux's `internal/policy/filter.go`
//! calls `ExpandString`): `$$` is a dollar, `$name` and `${name}` name a group, where a name is
//! the longest run of letters, digits and `_`, and a name of digits without a leading zero is a
//! group number (`$01` is the group named `01`, `$1x` the group named `1x`). A `$` not followed
//! by a name, or `${` without a name and a closing brace right after it (`${}`, `${ n}`), is
//! literal text. A group that did not take part in the match expands to nothing.

use std::sync::LazyLock;

use regex::{CaptureLocations, Regex};

use super::PolicyError;

#[derive(Debug, Clone)]
pub struct TagFilter {
    pattern: Regex,
    /// The parsed `extract` template, when there is a non-empty one.
    extract: Option<Vec<Piece>>,
    /// The template as written, when non-empty: two filters with the same pattern and
    /// template key every tag the same.
    template: Option<String>,
}

/// Reusable per-thread scratch space, so filtering a million tags allocates almost nothing.
#[derive(Debug)]
pub struct Scratch {
    locations: CaptureLocations,
    key: String,
}

impl TagFilter {
    pub fn new(pattern: &str, extract: Option<&str>) -> Result<Self, PolicyError> {
        let regex =
            super::regex::compile(pattern).map_err(|reason| PolicyError::FilterPattern {
                pattern: pattern.to_string(),
                reason,
            })?;
        // Flux expands only a non-empty template; an empty one keys by the tag.
        let template = extract.filter(|t| !t.is_empty());
        let extract = template.map(|t| parse_template(&regex, t)).transpose()?;
        Ok(Self {
            pattern: regex,
            extract,
            template: template.map(str::to_string),
        })
    }

    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// The `extract` template, when a non-empty one was given.
    pub fn template(&self) -> Option<&str> {
        self.template.as_deref()
    }

    /// Whether the ordering key of a kept tag is the tag itself (no template).
    pub fn keys_by_tag(&self) -> bool {
        self.extract.is_none()
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            locations: self.pattern.capture_locations(),
            key: String::new(),
        }
    }

    /// The ordering key for `tag`, or `None` when the pattern does not match. Without an
    /// `extract` template the key is the tag itself.
    pub fn apply<'s>(&self, tag: &'s str, scratch: &'s mut Scratch) -> Option<&'s str>
    where
        Self: 's,
    {
        let Some(template) = &self.extract else {
            return self.pattern.is_match(tag).then_some(tag);
        };
        self.pattern.captures_read(&mut scratch.locations, tag)?;
        scratch.key.clear();
        for piece in template {
            match piece {
                Piece::Literal(s) => scratch.key.push_str(s),
                Piece::Group(i) => {
                    if let Some((start, end)) = scratch.locations.get(*i) {
                        scratch.key.push_str(&tag[start..end]);
                    }
                }
            }
        }
        Some(scratch.key.as_str())
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    /// A group by index; checked to exist when the template is parsed.
    Group(usize),
}

/// A reference as Go's `regexp.extract` reads it after a `$`: the name, whether it was a
/// group number, and the length of the reference text.
struct Reference<'t> {
    name: &'t str,
    number: Option<usize>,
    len: usize,
}

/// Go's name characters: `unicode.IsLetter`, `unicode.IsDigit` or `_`.
static NAME: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[\p{L}\p{Nd}_]+").ok());

fn reference(after_dollar: &str) -> Option<Reference<'_>> {
    let (braced, body) = match after_dollar.strip_prefix('{') {
        Some(rest) => (true, rest),
        None => (false, after_dollar),
    };
    let name_len = match NAME.as_ref() {
        Some(re) => re.find(body).map_or(0, |m| m.end()),
        None => body
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count(),
    };
    if name_len == 0 {
        return None;
    }
    let name = &body[..name_len];
    let mut len = name_len;
    if braced {
        if !body[name_len..].starts_with('}') {
            return None;
        }
        len += 2;
    }
    // Go: digits only, below 1e8 before each digit, and no leading zero.
    let mut number: Option<usize> = Some(0);
    for b in name.bytes() {
        number = match number {
            Some(n) if b.is_ascii_digit() && n < 100_000_000 => {
                Some(n * 10 + usize::from(b - b'0'))
            }
            _ => None,
        };
    }
    if name.len() > 1 && name.starts_with('0') {
        number = None;
    }
    Some(Reference { name, number, len })
}

fn parse_template(regex: &Regex, template: &str) -> Result<Vec<Piece>, PolicyError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        literal.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            literal.push('$');
            rest = tail;
            continue;
        }
        let Some(r) = reference(after) else {
            // Malformed: Go keeps the `$` as text and reads on after it.
            literal.push('$');
            rest = after;
            continue;
        };
        let index = match r.number {
            Some(n) => (n < regex.captures_len()).then_some(n),
            None => regex.capture_names().position(|n| n == Some(r.name)),
        };
        // Go's Regexp.Expand: "a reference to an out of range or unmatched index or a name
        // that is not present in the regular expression is replaced with an empty slice".
        let Some(index) = index else {
            rest = &after[r.len..];
            continue;
        };
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Group(index));
        rest = &after[r.len..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(filter: &TagFilter, tag: &str) -> Option<String> {
        let mut scratch = filter.scratch();
        filter.apply(tag, &mut scratch).map(str::to_string)
    }

    #[test]
    fn extract_expands_numbered_and_named_groups() {
        let f = TagFilter::new(
            r"^main-(?P<sha>[0-9a-f]+)-(?P<ts>\d+)$",
            Some("${ts}.$1-$$"),
        )
        .unwrap();
        assert_eq!(key(&f, "main-abc1-1700").as_deref(), Some("1700.abc1-$"));
        assert_eq!(key(&f, "dev-abc1-1700"), None);
        let f = TagFilter::new(r"(?P<ts>\d+)", Some("$ts")).unwrap();
        assert_eq!(key(&f, "build-42-x").as_deref(), Some("42"), "unanchored");
    }

    #[test]
    fn templates_expand_as_go_regexp_expand() {
        // Go regexp.go `expand`/`extract`: malformed references are literal text, a name is the
        // longest run of letters, digits and `_`, unmatched groups expand to nothing.
        let f = |template: &str, tag: &str| {
            let filter = TagFilter::new(r"^(?P<a>x)?-(\d+)$", Some(template)).unwrap();
            key(&filter, tag).unwrap()
        };
        assert_eq!(f("${2}x", "-42"), "42x");
        assert_eq!(
            f("[$1|$a]", "-42"),
            "[|]",
            "the optional group did not take part"
        );
        assert_eq!(f("$a$1", "x-42"), "xx");
        assert_eq!(f("$0", "x-42"), "x-42");
        assert_eq!(f("${}", "-1"), "${}");
        assert_eq!(f("${ 2}", "-1"), "${ 2}");
        assert_eq!(f("${2", "-1"), "${2");
        assert_eq!(f("v$-$", "-1"), "v$-$");
        assert_eq!(f("$$2", "-1"), "$2");
        assert_eq!(f("${2}.$$", "-7"), "7.$");
    }

    /// Go's `regexp` package, `Regexp.Expand`: a name that is not a group of the pattern (and
    /// a number past its groups) expands to nothing, so `$01` and `$1x` with a pattern that has
    /// only group 1 give an empty key (image-reflector-controller passes the template to
    /// `ReplaceAllString`/`ExpandString` unchecked, internal/policy/filter.go).
    #[test]
    fn references_to_groups_the_pattern_lacks_expand_to_nothing_as_in_go() {
        assert_eq!(
            key(&TagFilter::new(r"(\d+)", Some("$01")).unwrap(), "7").as_deref(),
            Some("")
        );
        assert_eq!(
            key(&TagFilter::new(r"(\d+)", Some("v$1x-")).unwrap(), "7").as_deref(),
            Some("v-")
        );
        assert_eq!(
            key(&TagFilter::new(r"(\d+)", Some("$2.$1")).unwrap(), "7").as_deref(),
            Some(".7")
        );
        assert_eq!(
            key(&TagFilter::new(r"(\d+)", Some("${éa}")).unwrap(), "7").as_deref(),
            Some("")
        );
    }

    #[test]
    fn without_extract_the_key_is_the_tag() {
        let f = TagFilter::new("^ver", None).unwrap();
        assert_eq!(key(&f, "ver3").as_deref(), Some("ver3"));
        let f = TagFilter::new("^ver", Some("")).unwrap();
        assert_eq!(key(&f, "ver3").as_deref(), Some("ver3"));
    }

    #[test]
    fn bad_patterns_are_named_and_names_past_the_groups_expand_to_nothing() {
        let e = TagFilter::new("^test-(.*", None).unwrap_err().to_string();
        assert!(
            e.contains("^test-(.*") && e.contains("unclosed group"),
            "{e}"
        );
        // `$tss` is the name "tss" (the longest run of name characters), not `$ts` and "s".
        let f = TagFilter::new(r"(?P<ts>\d+)", Some("$tss")).unwrap();
        assert_eq!(key(&f, "42").as_deref(), Some(""));
        let f = TagFilter::new(r"(?P<ts>\d+)", Some("${ts}s")).unwrap();
        assert_eq!(key(&f, "42").as_deref(), Some("42s"));
    }
}
