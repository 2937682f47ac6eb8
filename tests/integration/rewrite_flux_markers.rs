//! Which YAML scalar a marker sets, case by case against Flux.
//!
//! The expected answers are Flux's, read from its code: image-automation-controller
//! `internal/update/filter.go` (`accept` visits mapping values and sequence items, and only
//! scalars are set), which reads a node's comments as kyaml `fieldmeta.FieldMeta.Read`
//! (kubernetes-sigs/kustomize `kyaml/fieldmeta/fieldmeta.go`): the line comment, else the
//! head comment, each with all leading `#` trimmed and decoded by `processShortHand` as a
//! JSON `map[string]string`. Which comment go-yaml v3 attaches to which node was checked
//! against go-yaml's `scannerc.go` (`yaml_parser_scan_comments`) for every row.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use tagsmith::model::{ImageRef, PolicyId};
use tagsmith::rewrite::{Lang, ProblemKind, apply, plan, scan};

const M: &str = r#"{"$imagepolicy": "ns:app"}"#;

fn src(case: &str) -> String {
    case.replace('M', M)
}

/// The values the markers of `case` set, in order.
fn set_values(case: &str) -> Vec<String> {
    let text = src(case);
    scan(text.as_bytes(), Lang::Yaml)
        .sites
        .into_iter()
        .map(|s| s.value)
        .collect()
}

/// `(line, problem)` of every finding.
fn problems(case: &str) -> Vec<(usize, ProblemKind)> {
    let text = src(case);
    scan(text.as_bytes(), Lang::Yaml)
        .problems
        .into_iter()
        .map(|p| (p.line, p.kind))
        .collect()
}

/// Flux sets these values (`M` stands for the marker `{"$imagepolicy": "ns:app"}`).
#[test]
fn markers_set_what_flux_sets() {
    let cases: &[(&str, &[&str])] = &[
        // A line comment on a scalar: a mapping value, an item, a document root.
        ("image: x:1 # M\n", &["x:1"]),
        ("- x:1 # M\n", &["x:1"]),
        ("- image: x:1 # M\n", &["x:1"]),
        ("- - x:1 # M\n", &["x:1"]),
        ("x:1 # M\n", &["x:1"]),
        ("a:\n  b: x:1 # M\n  c: y:1 # M\n", &["x:1", "y:1"]),
        ("image: &a x:1 # M\n", &["x:1"]),
        ("image: !!str x:1 # M\n", &["x:1"]),
        ("k: &a\n  x:1 # M\n", &["x:1"]),
        ("args:\n  - \"x:1\" # M\n", &["x:1"]),
        // kyaml trims every leading `#`, and the YAML comment needs no space after it.
        ("image: x:1 ## M\n", &["x:1"]),
        ("image: x:1 ### M\n", &["x:1"]),
        ("image: x:1 #M\n", &["x:1"]),
        // map[string]string: `null` decodes to nothing; the last duplicate key wins.
        (
            "image: x:1 # {\"$imagepolicy\": \"ns:app\", \"o\": null}\n",
            &["x:1"],
        ),
        (
            "image: x:1 # {\"$imagepolicy\": \"ns:b\", \"$imagepolicy\": \"ns:app\"}\n",
            &["x:1"],
        ),
        // Inside a flow collection written over several lines, a comment follows a scalar.
        ("c: {\n  image: x:1, # M\n  name: c}\n", &["x:1"]),
        ("args: [\n  x:1, # M\n  y]\n", &["x:1"]),
        ("args: [\n  x:1 # M\n  ]\n", &["x:1"]),
        // A head comment on a sequence item: alone on the line directly above, at the
        // item's column, whatever came before (a scalar, a nested mapping, a block scalar,
        // a blank line, the document start).
        ("args:\n  # M\n  - x:1\n", &["x:1"]),
        ("args:\n  - a\n  # M\n  - x:1\n", &["x:1"]),
        ("args:\n# M\n- x:1\n", &["x:1"]),
        ("# M\n- x:1\n", &["x:1"]),
        ("---\n# M\n- x:1\n", &["x:1"]),
        ("args:\n  - a\n\n  # M\n  - x:1\n", &["x:1"]),
        ("args:\n  - a # c\n  # M\n  - x:1\n", &["x:1"]),
        ("args:\n  - a:\n      b: c\n  # M\n  - x:1\n", &["x:1"]),
        ("args:\n  - |\n    text\n  # M\n  - x:1\n", &["x:1"]),
        ("- - a\n  # M\n  - x:1\n", &["x:1"]),
        ("spec:\n  args:\n    # M\n    - x:1\n  other: 1\n", &["x:1"]),
        ("args:\n  # M\n  - 'x:1'\n", &["x:1"]),
        ("args:\n  # M\n  - &a x:1\n", &["x:1"]),
        ("args:\n  # M\n  - !!str x:1\n", &["x:1"]),
        ("args:\n  ### M\n  - x:1\n", &["x:1"]),
        ("args:\n  #  M  \n  - x:1\n", &["x:1"]),
        ("args:\n  # M\n  - x:1\n  # M\n  - y:1\n", &["x:1", "y:1"]),
        (
            "a: 1\nargs:\n  # M\n  - x:1\n  - y:2 # M\n",
            &["x:1", "y:2"],
        ),
        // A line comment right after the item's `-`, the value on the next line.
        ("args:\n- # M\n  x:1\n", &["x:1"]),
        ("args:\n  -   # M\n    x:1\n", &["x:1"]),
        ("args:\n  # M\n  -\n    x:1\n", &["x:1"]),
        // A line comment on the item wins over its head comment.
        (
            "args:\n  # M\n  - x:1 # {\"$imagepolicy\": \"ns:b\"}\n",
            &["x:1"],
        ),
    ];
    for (case, want) in cases {
        assert_eq!(set_values(case), *want, "{case:?}");
    }
}

/// Flux sets nothing here, so neither does tagsmith; each marker is reported at its line.
#[test]
fn markers_flux_ignores_set_nothing_and_are_reported() {
    let cases: &[(&str, usize)] = &[
        // After a flow collection the comment is the collection's, not its last scalar's.
        ("c: {image: x:1, name: c} # M\n", 1),
        ("c: [x:1, y:1] # M\n", 1),
        ("args: [x:1] # M\n", 1),
        ("- [x:1] # M\n", 1),
        ("- {image: x:1} # M\n", 1),
        ("args:\n  - [a, x:1] # M\n", 2),
        ("c: {a: b,\n  image: x:1} # M\n", 2),
        ("args: [a,\n  x:1] # M\n", 2),
        ("args: [\n  {a: x:1}, # M\n  y]\n", 2),
        // A head comment on a mapping key, or on an item that is a collection.
        ("# M\nimage: x:1\n", 1),
        ("m:\n  # M\n  k: x:1\n", 2),
        ("args:\n  # M\n  - image: x:1\n", 3),
        ("args:\n  # M\n  - - x:1\n", 3),
        ("a:\n  - b\n# M\nc:\n  - x:1\n", 3),
        // A comment after a key whose value is on the next line is the key's.
        ("key: # M\n  x:1\n", 1),
        // Comments joined into one head comment of several lines are not one JSON object.
        ("args:\n  # other\n  # M\n  - x:1\n", 3),
        ("args:\n  # other\n\n  # M\n  - x:1\n", 4),
        ("args:\n  - a\n  # M\n  # other\n  - x:1\n", 3),
        ("- a\n  # other\n# M\n- x:1\n", 3),
        // A comment directly after an item, then a blank line, is that item's foot.
        ("args:\n  - a\n  # M\n\n\n  - x:1\n", 3),
        ("args:\n  - x:1\n  # M\n", 3),
        // Deeper than the next item, right after a nested mapping: the mapping's foot.
        ("- a:\n    b: c\n    # M\n- x:1\n", 3),
        ("args:\n  - a:\n      b: c\n# M\n  - x:1\n", 4),
        // The item's own line comment is read first, even when it is no marker.
        ("args:\n  # M\n  - x:1 # plain\n", 2),
        // Not a `map[string]string`, an empty name, text after the object.
        ("image: x:1 # {\"$imagepolicy\": \"ns:app\", \"n\": 1}\n", 1),
        ("image: x:1 # {\"$imagepolicy\": null}\n", 1),
        ("image: x:1 # {\"$imagepolicy\": \"\"}\n", 1),
        ("image: x:1 # M # more\n", 1),
        ("args:\n  # ## M\n  - x:1\n", 2),
    ];
    for (case, line) in cases {
        assert_eq!(set_values(case), Vec::<String>::new(), "{case:?}");
        let found = problems(case);
        assert!(
            found.iter().any(|(l, k)| l == line && !k.is_error()),
            "{case:?}: {found:?}"
        );
    }
}

/// The values named in `docs/policies.md` ("Deliberate deviations"): go-yaml
/// also makes these comments head comments, by rules that depend on blank lines, on
/// indentation and on whether the item is the first; tagsmith asks for the unambiguous
/// form (alone, directly above the item, at its column) and reports these instead of
/// guessing. None of them edits another value.
#[test]
fn head_comments_flux_also_reads_are_reported_not_guessed() {
    let cases: &[(&str, usize)] = &[
        ("args:\n  # M\n\n  - x:1\n", 2),
        ("args:\n  - a\n\n  # M\n\n  - x:1\n", 4),
        ("args:\n  - a\n    # M\n  - x:1\n", 3),
        ("args:\n  - a\n# M\n  - x:1\n", 3),
        ("- x:1\n  # M\n- y:1\n", 2),
        ("args:\n  - a\n  # other\n\n  # M\n  - x:1\n", 5),
        ("args: [\n  # M\n  x:1]\n", 2),
    ];
    for (case, line) in cases {
        assert_eq!(set_values(case), Vec::<String>::new(), "{case:?}");
        let found = problems(case);
        assert!(
            found.iter().any(|(l, k)| l == line && !k.is_error()),
            "{case:?}: {found:?}"
        );
    }
    // The report says what to change.
    let found = problems("args:\n  # M\n\n  - x:1\n");
    assert!(
        matches!(&found[..], [(2, ProblemKind::NearMiss { reason })] if reason.contains("directly above")),
        "{found:?}"
    );
}

/// A marker after a flow collection must never edit the collection's last scalar (the
/// wrong field); the file stays as it was and the marker is reported with its line.
#[test]
fn a_marker_after_a_flow_collection_edits_nothing() {
    let text = "c: {image: x:1, name: c} # {\"$imagepolicy\": \"ns:app\"}\n";
    let selections: BTreeMap<PolicyId, ImageRef> =
        BTreeMap::from([("ns:app".parse().unwrap(), "y:2".parse().unwrap())]);
    let planned = plan(
        Path::new("f.yaml"),
        Lang::Yaml,
        scan(text.as_bytes(), Lang::Yaml),
        &selections,
    );
    assert!(planned.edits.is_empty(), "{:?}", planned.edits);
    assert_eq!(apply(text.as_bytes(), &planned).unwrap(), text.as_bytes());
    let shown: Vec<String> = planned.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec!["f.yaml:1: marker on a mapping, which is not rewritten".to_string()]
    );
}

/// A typed old value (`1.0`, `5`, `true`, `null`) takes the new value as a plain string
/// when it reads as one, else double-quoted. Flux keeps the node's resolved tag, so its
/// encoder writes `tag: !!float 1.2.3`, which YAML readers reject (kyaml
/// `yaml.FormatNonStringStyle` in `kyaml/yaml/compatibility.go` only retags values that
/// read as non-strings); tagsmith never writes a tag.
#[test]
fn typed_old_values_get_a_plain_or_quoted_string() {
    let cases = [
        ("tag: 1.0", "1.2.3", "tag: 1.2.3"),
        ("tag: 5", "1.2.3", "tag: 1.2.3"),
        ("tag: true", "1.2.3", "tag: 1.2.3"),
        ("tag: null", "1.2.3", "tag: 1.2.3"),
        ("tag: ~", "1.2.3", "tag: 1.2.3"),
        ("tag: 1.0", "1.3", "tag: \"1.3\""),
        ("tag: 5", "6", "tag: \"6\""),
        ("tag: null", "1.3", "tag: \"1.3\""),
        ("tag: true", "yes", "tag: \"yes\""),
        ("tag: '1.0'", "1.3", "tag: '1.3'"),
    ];
    for (old, new, want) in cases {
        let text = format!("{old} # {{\"$imagepolicy\": \"ns:app:tag\"}}\n");
        let selections: BTreeMap<PolicyId, ImageRef> = BTreeMap::from([(
            "ns:app".parse().unwrap(),
            format!("x:{new}").parse().unwrap(),
        )]);
        let scanned = scan(text.as_bytes(), Lang::Yaml);
        let planned = plan(Path::new("f.yaml"), Lang::Yaml, scanned, &selections);
        let out = String::from_utf8(apply(text.as_bytes(), &planned).unwrap()).unwrap();
        assert_eq!(
            out,
            format!("{want} # {{\"$imagepolicy\": \"ns:app:tag\"}}\n"),
            "{old} -> {new}"
        );
        let site = &scan(out.as_bytes(), Lang::Yaml).sites[0];
        assert!(site.is_string, "{out}");
        assert_eq!(site.value, new);
    }
}
