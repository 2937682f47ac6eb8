//! Marker comments: exactly one JSON object with an `$imagepolicy` key. Language-agnostic;
//! callers pass the comment's text after its leader (`#`, `//`).

use serde_json::{Map, Value};

use super::{Finding, Marker, Part, ProblemKind};
use crate::model::PolicyId;

const KEY: &str = "$imagepolicy";

/// What a comment's text turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerParse {
    /// Not about image policies at all.
    NotMarker,
    Marker(Marker),
    /// Mentions `imagepolicy` but is not a JSON object with the key: a likely typo.
    NearMiss(String),
    /// A JSON marker whose value is not a valid `ns:name[:part]`.
    Bad(String),
}

impl MarkerParse {
    /// The marker, `None` for an ordinary comment, or the problem to report at `line`.
    pub fn at_line(self, line: usize) -> Result<Option<Marker>, Finding> {
        match self {
            Self::NotMarker => Ok(None),
            Self::Marker(marker) => Ok(Some(marker)),
            Self::NearMiss(reason) => Err(Finding {
                line,
                kind: ProblemKind::NearMiss { reason },
            }),
            Self::Bad(reason) => Err(Finding {
                line,
                kind: ProblemKind::BadMarker { reason },
            }),
        }
    }
}

/// Parses the text of a comment (after `#` or `//`).
pub fn parse_marker(body: &str) -> MarkerParse {
    if !contains_ignore_ascii_case(body.as_bytes(), b"imagepolicy") {
        return MarkerParse::NotMarker;
    }
    let text = body.trim();
    let object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(object) => object,
        Err(err) => {
            return MarkerParse::NearMiss(format!("{text:?} is not one JSON object ({err})"));
        }
    };
    let Some(value) = object.get(KEY) else {
        return MarkerParse::NearMiss(format!("{text:?} has no \"{KEY}\" key"));
    };
    let Some(value) = value.as_str() else {
        return MarkerParse::Bad(format!("\"{KEY}\" must be a string, found {value}"));
    };
    parse_policy_value(value).map_or_else(MarkerParse::Bad, MarkerParse::Marker)
}

fn parse_policy_value(value: &str) -> Result<Marker, String> {
    let mut parts = value.splitn(3, ':');
    let (namespace, name) = match (parts.next(), parts.next()) {
        (Some(ns), Some(name)) => (ns, name),
        _ => return Err(format!("{value:?} is not namespace:name")),
    };
    let part = match parts.next() {
        None => Part::Full,
        Some("name") => Part::Name,
        Some("tag") => Part::Tag,
        Some("digest") => Part::Digest,
        Some(other) => {
            return Err(format!(
                "unknown suffix {other:?} in {value:?} (expected tag, name or digest)"
            ));
        }
    };
    let policy: PolicyId = format!("{namespace}:{name}")
        .parse()
        .map_err(|e: crate::model::ModelError| e.to_string())?;
    Ok(Marker { policy, part })
}

fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(s: &str) -> Marker {
        match parse_marker(s) {
            MarkerParse::Marker(m) => m,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn whole_reference_and_parts() {
        let m = marker(r#" {"$imagepolicy": "team-a:app"}"#);
        assert_eq!(
            (m.policy.to_string(), m.part),
            ("team-a:app".into(), Part::Full)
        );
        assert_eq!(marker(r#"{"$imagepolicy":"a:b:tag"}"#).part, Part::Tag);
        assert_eq!(
            marker(r#"{ "$imagepolicy" : "a:b:name" }"#).part,
            Part::Name
        );
        assert_eq!(
            marker("{\"$imagepolicy\":\t\"a:b:digest\"}  ").part,
            Part::Digest
        );
    }

    #[test]
    fn extra_keys_are_ignored() {
        let m = marker(r#"{"other": 1, "$imagepolicy": "a:b"}"#);
        assert_eq!(m.policy.to_string(), "a:b");
    }

    #[test]
    fn other_comments_are_not_markers() {
        assert_eq!(parse_marker(" just a comment"), MarkerParse::NotMarker);
        assert_eq!(
            parse_marker(r#"{"$policy": "a:b"}"#),
            MarkerParse::NotMarker
        );
    }

    #[test]
    fn near_misses_are_named() {
        for s in [
            r#"{"$imagepolicy": "a:b"} trailing"#,
            r#"{$imagepolicy: "a:b"}"#,
            r#"{"$imagepolicy": "a:b""#,
            r#"{'$imagepolicy': 'a:b'}"#,
            r#"{"imagepolicy": "a:b"}"#,
            r#"["$imagepolicy", "a:b"]"#,
            r#"$imagepolicy: a:b"#,
        ] {
            assert!(matches!(parse_marker(s), MarkerParse::NearMiss(_)), "{s}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        for s in [
            r#"{"$imagepolicy": "app"}"#,
            r#"{"$imagepolicy": "a:b:version"}"#,
            r#"{"$imagepolicy": "A:b"}"#,
            r#"{"$imagepolicy": 3}"#,
            r#"{"$imagepolicy": "a:b:tag:x"}"#,
        ] {
            assert!(matches!(parse_marker(s), MarkerParse::Bad(_)), "{s}");
        }
    }
}
