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
///
/// This is the reading Flux gives a comment (kyaml `fieldmeta.FieldMeta.processShortHand`
/// in kubernetes-sigs/kustomize): Go's `json.Unmarshal` into a `map[string]string`, so the
/// text must be one JSON object, with only JSON whitespace around it, whose values are all
/// strings or `null`, and whose `$imagepolicy` is a non-empty string. Any other comment is
/// not a marker for Flux; one that mentions `imagepolicy` is reported as a near miss here.
pub fn parse_marker(body: &str) -> MarkerParse {
    if !contains_ignore_ascii_case(body.as_bytes(), b"imagepolicy") {
        return MarkerParse::NotMarker;
    }
    // Go's JSON decoder skips exactly these around a value, as serde_json does.
    let text = body.trim_matches([' ', '\t', '\n', '\r']);
    let object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(object) => object,
        Err(err) => {
            return MarkerParse::NearMiss(format!("{text:?} is not one JSON object ({err})"));
        }
    };
    // Go decodes `null` into a string as a no-op; anything else fails the whole comment.
    if let Some((key, value)) = object
        .iter()
        .find(|(_, v)| !matches!(v, Value::String(_) | Value::Null))
    {
        return MarkerParse::NearMiss(format!(
            "{text:?} has the non-string value {value} for {key:?} (every value of a marker must be a string)"
        ));
    }
    match object.get(KEY) {
        None => MarkerParse::NearMiss(format!("{text:?} has no \"{KEY}\" key")),
        Some(Value::String(value)) if !value.is_empty() => {
            parse_policy_value(value).map_or_else(MarkerParse::Bad, MarkerParse::Marker)
        }
        Some(_) => MarkerParse::NearMiss(format!("{text:?} has an empty \"{KEY}\"")),
    }
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
        let m = marker(r#"{"other": "x", "$imagepolicy": "a:b", "n": null}"#);
        assert_eq!(m.policy.to_string(), "a:b");
        // Go's json.Unmarshal: for a duplicated key the last one wins.
        let m = marker(r#"{"$imagepolicy": "a:b", "$imagepolicy": "c:d"}"#);
        assert_eq!(m.policy.to_string(), "c:d");
    }

    /// kyaml `fieldmeta.FieldMeta.processShortHand` (kubernetes-sigs/kustomize) unmarshals
    /// the comment into a `map[string]string`: a number, boolean, list or object anywhere in
    /// it fails the whole comment, which Flux then ignores; `null` decodes to nothing, and an
    /// empty name is no marker. Only JSON whitespace may surround the object.
    #[test]
    fn flux_ignores_non_string_values_and_empty_names() {
        for s in [
            r#"{"$imagepolicy": "ns:app", "n": 1}"#,
            r#"{"$imagepolicy": "ns:app", "b": true}"#,
            r#"{"$imagepolicy": "ns:app", "o": {"k": "v"}}"#,
            r#"{"$imagepolicy": "ns:app", "l": []}"#,
            r#"{"$imagepolicy": 3}"#,
            r#"{"$imagepolicy": null}"#,
            r#"{"$imagepolicy": ""}"#,
            "{\"$imagepolicy\": \"ns:app\"}\u{a0}",
        ] {
            assert!(matches!(parse_marker(s), MarkerParse::NearMiss(_)), "{s}");
        }
        assert_eq!(
            marker(" \t{\"$imagepolicy\": \"ns:app\"}\r\n")
                .policy
                .to_string(),
            "ns:app"
        );
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
            r#"{"$imagepolicy": "a:b:tag:x"}"#,
        ] {
            assert!(matches!(parse_marker(s), MarkerParse::Bad(_)), "{s}");
        }
    }
}
