//! `filterTags`: an unanchored regex that keeps tags, and an optional `extract` template whose
//! expansion becomes the value the policy orders by (the original tag is still what is selected).

use regex::{CaptureLocations, Regex};

use super::PolicyError;

#[derive(Debug, Clone)]
pub struct TagFilter {
    pattern: Regex,
    extract: Option<String>,
}

/// Reusable per-thread scratch space, so filtering a million tags allocates almost nothing.
#[derive(Debug)]
pub struct Scratch {
    locations: CaptureLocations,
    key: String,
}

impl TagFilter {
    pub fn new(pattern: &str, extract: Option<&str>) -> Result<Self, PolicyError> {
        let regex = Regex::new(pattern).map_err(|e| PolicyError::FilterPattern {
            pattern: pattern.to_string(),
            reason: first_line(&e.to_string()),
        })?;
        let extract = extract.filter(|t| !t.is_empty());
        if let Some(template) = extract {
            check_template(&regex, template)?;
        }
        Ok(Self {
            pattern: regex,
            extract: extract.map(str::to_string),
        })
    }

    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
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
        expand(
            template,
            tag,
            &self.pattern,
            &scratch.locations,
            &mut scratch.key,
        );
        Some(scratch.key.as_str())
    }
}

fn first_line(s: &str) -> String {
    // The regex crate's messages span several lines with a caret diagram; the last line says what is wrong.
    s.lines()
        .rev()
        .find(|l| l.trim_start().starts_with("error:"))
        .map_or_else(
            || s.lines().next().unwrap_or(s).to_string(),
            |l| l.trim_start().trim_start_matches("error: ").to_string(),
        )
}

/// One reference in a template: `$$`, `$1`, `$name` or `${name}` (the `regex` crate's syntax,
/// which is also Go's, so Flux templates carry over).
enum Piece<'t> {
    Literal(&'t str),
    Group(&'t str),
}

fn pieces(template: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = template;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(dollar) = rest.find('$') else {
            let all = rest;
            rest = "";
            return Some(Piece::Literal(all));
        };
        if dollar > 0 {
            let (lit, tail) = rest.split_at(dollar);
            rest = tail;
            return Some(Piece::Literal(lit));
        }
        let after = &rest[1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
            return Some(Piece::Literal("$"));
        }
        if let Some(braced) = after.strip_prefix('{')
            && let Some(close) = braced.find('}')
        {
            rest = &braced[close + 1..];
            return Some(Piece::Group(&braced[..close]));
        }
        let len = after
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
            .unwrap_or(after.len());
        if len == 0 {
            rest = after;
            return Some(Piece::Literal("$"));
        }
        rest = &after[len..];
        Some(Piece::Group(&after[..len]))
    })
}

fn group_index(regex: &Regex, name: &str) -> Option<usize> {
    match name.parse::<usize>() {
        Ok(i) => (i < regex.captures_len()).then_some(i),
        Err(_) => regex.capture_names().position(|n| n == Some(name)),
    }
}

fn check_template(regex: &Regex, template: &str) -> Result<(), PolicyError> {
    for piece in pieces(template) {
        if let Piece::Group(name) = piece
            && group_index(regex, name).is_none()
        {
            return Err(PolicyError::FilterExtract {
                template: template.to_string(),
                group: name.to_string(),
                pattern: regex.as_str().to_string(),
            });
        }
    }
    Ok(())
}

fn expand(
    template: &str,
    tag: &str,
    regex: &Regex,
    locations: &CaptureLocations,
    out: &mut String,
) {
    for piece in pieces(template) {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Group(name) => {
                // Checked at construction, so the group exists; a group that did not take part
                // in the match expands to nothing, as in Flux.
                if let Some((start, end)) = group_index(regex, name).and_then(|i| locations.get(i))
                {
                    out.push_str(&tag[start..end]);
                }
            }
        }
    }
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
    fn without_extract_the_key_is_the_tag() {
        let f = TagFilter::new("^ver", None).unwrap();
        assert_eq!(key(&f, "ver3").as_deref(), Some("ver3"));
        let f = TagFilter::new("^ver", Some("")).unwrap();
        assert_eq!(key(&f, "ver3").as_deref(), Some("ver3"));
    }

    #[test]
    fn bad_patterns_and_templates_are_named() {
        let e = TagFilter::new("^test-(.*", None).unwrap_err().to_string();
        assert!(
            e.contains("^test-(.*") && e.contains("unclosed group"),
            "{e}"
        );
        let e = TagFilter::new(r"(?P<ts>\d+)", Some("$tss"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"tss\""), "{e}");
        let e = TagFilter::new(r"(\d+)", Some("$2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"2\""), "{e}");
    }
}
