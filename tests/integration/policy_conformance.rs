#![allow(clippy::unwrap_used)]

//! Flux ImagePolicy conformance: every case of the shared conformance data (copied into
//! `tests/conformance/`), plus edge cases of our own.

use std::collections::BTreeMap;

use serde::Deserialize;
use tagsmith::policy::{FilterSpec, Order, Policy, PolicySpec, Range, RuleSpec, Version};

#[derive(Debug, Deserialize)]
struct Case {
    id: String,
    policy: BTreeMap<String, String>,
    #[serde(default)]
    filter: Option<FilterCase>,
    #[serde(default)]
    exclude: Option<Vec<String>>,
    tags: Vec<String>,
    #[serde(default)]
    expect: Option<String>,
    #[serde(default)]
    error: bool,
}

#[derive(Debug, Deserialize)]
struct FilterCase {
    pattern: String,
    #[serde(default)]
    extract: Option<String>,
}

fn spec_of(case: &Case) -> PolicySpec {
    let (kind, value) = case.policy.iter().next().expect("policy has one key");
    let rule = match kind.as_str() {
        "semver" => RuleSpec::Semver(value.clone()),
        "alphabetical" => RuleSpec::Alphabetical(value.parse::<Order>().unwrap()),
        "numerical" => RuleSpec::Numerical(value.parse::<Order>().unwrap()),
        other => panic!("{}: unknown policy kind {other}", case.id),
    };
    PolicySpec {
        rule,
        filter: case.filter.as_ref().map(|f| FilterSpec {
            pattern: f.pattern.clone(),
            extract: f.extract.clone(),
        }),
        exclude: case.exclude.clone(),
    }
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = format!("{}/tests/conformance/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn policy_cases() {
    let cases: Vec<Case> = load("policy.yaml");
    assert!(
        cases.len() >= 30,
        "conformance data looks truncated: {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let result = Policy::new(&spec_of(case));
        match (result, case.error) {
            (Err(_), true) => {}
            (Ok(_), true) => failures.push(format!("{}: expected an invalid policy", case.id)),
            (Err(e), false) => failures.push(format!("{}: unexpected error {e}", case.id)),
            (Ok(policy), false) => {
                let got = policy.select(&case.tags).tag;
                if got != case.expect.as_deref() {
                    failures.push(format!(
                        "{}: expected {:?}, got {got:?}",
                        case.id, case.expect
                    ));
                }
                // Flux sorts the tags before any policy sees them: the input order never matters.
                let mut reversed = case.tags.clone();
                reversed.reverse();
                let again = policy.select(&reversed).tag;
                if again != got {
                    failures.push(format!(
                        "{}: reversed input gave {again:?}, not {got:?}",
                        case.id
                    ));
                }
                let explained = policy
                    .explain(&case.tags)
                    .selected
                    .map(|i| case.tags[i].as_str());
                if explained != got {
                    failures.push(format!(
                        "{}: explain picked {explained:?}, select {got:?}",
                        case.id
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[derive(Debug, Deserialize)]
struct RangeCase {
    range: String,
    version: String,
    #[serde(rename = "match")]
    matches: bool,
}

#[test]
fn range_cases() {
    let cases: Vec<RangeCase> = load("ranges.yaml");
    assert!(cases.len() >= 25);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let range = Range::parse(&c.range).map_err(|e| e.to_string());
            let version = Version::parse_tag(&c.version).map_err(|e| e.to_string());
            match (range, version) {
                (Ok(r), Ok(v)) if r.matches(&v) == c.matches => None,
                (Ok(_), Ok(_)) => Some(format!(
                    "{:?} vs {:?}: expected match={}",
                    c.range, c.version, c.matches
                )),
                (r, v) => Some(format!("{:?} vs {:?}: {r:?} {v:?}", c.range, c.version)),
            }
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[derive(Debug, Deserialize)]
struct TagCase {
    tag: String,
    semver: bool,
}

#[test]
fn tag_cases() {
    let cases: Vec<TagCase> = load("tags.yaml");
    assert!(cases.len() >= 8);
    for c in &cases {
        assert_eq!(Version::parse_tag(&c.tag).is_ok(), c.semver, "{}", c.tag);
    }
}

fn semver(range: &str) -> Policy {
    Policy::new(&PolicySpec {
        rule: RuleSpec::Semver(range.to_string()),
        filter: None,
        exclude: None,
    })
    .unwrap()
}

fn select<'a>(policy: &Policy, tags: &'a [&'a str]) -> Option<&'a str> {
    policy.select(tags).tag
}

#[test]
fn prerelease_numbering_edge_cases() {
    let p = semver(">=1.0.0-0");
    assert_eq!(
        select(&p, &["1.0.0-rc9", "1.0.0-rc10"]),
        Some("1.0.0-rc9"),
        "ASCII order"
    );
    assert_eq!(
        select(&p, &["1.0.0-rc.9", "1.0.0-rc.10"]),
        Some("1.0.0-rc.10"),
        "numeric identifiers"
    );
    assert_eq!(
        select(&p, &["1.0.0-rc.10", "1.0.0-rc10"]),
        Some("1.0.0-rc10")
    );
    assert_eq!(select(&p, &["1.0.0-rc.10", "1.0.0"]), Some("1.0.0"));
}

#[test]
fn equal_versions_go_to_the_byte_wise_greatest_tag() {
    // image-reflector-controller imagerepository_controller.go sorts tags descending and
    // internal/policy/semver.go keeps the first of equal versions.
    let p = semver("*");
    assert_eq!(select(&p, &["v1.2.3", "1.2.3"]), Some("v1.2.3"));
    assert_eq!(select(&p, &["1.2.3", "v1.2.3"]), Some("v1.2.3"));
}

#[test]
fn huge_numbers_and_four_parts() {
    let p = semver(">=0.0.0");
    let max = "18446744073709551615.0.0";
    assert_eq!(
        select(&p, &["1.0.0", max, "18446744073709551616.0.0"]),
        Some(max)
    );
    assert_eq!(select(&p, &["1.2.3.4", "1.2.3"]), Some("1.2.3"));
    let e = Range::parse(">=18446744073709551616")
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than 64 bits"), "{e}");
}

#[test]
fn empty_input_selects_nothing() {
    let p = semver("*");
    let none: [&str; 0] = [];
    let s = p.select(&none);
    assert_eq!((s.tag, s.stats.tags), (None, 0));
}

#[test]
fn numerical_skips_and_reports_non_numeric_tags() {
    let p = Policy::new(&PolicySpec {
        rule: RuleSpec::Numerical(Order::Asc),
        filter: None,
        exclude: None,
    })
    .unwrap();
    let s = p.select(&["3", "latest", "10", "main", "nan", "2"]);
    assert_eq!(s.tag, Some("10"));
    assert_eq!(s.stats.non_numeric, 3);
    assert_eq!(s.stats.non_numeric_examples, ["latest", "main", "nan"]);
}

#[test]
fn identical_extracted_keys_go_to_the_byte_wise_smallest_tag() {
    // internal/policy/filter.go: the map keyed by the extracted text keeps the last tag stored,
    // and the tags arrive sorted descending.
    let p = Policy::new(&PolicySpec {
        rule: RuleSpec::Numerical(Order::Asc),
        filter: Some(FilterSpec {
            pattern: r"^main-[0-9a-f]+-(?P<ts>\d+)$".into(),
            extract: Some("$ts".into()),
        }),
        exclude: None,
    })
    .unwrap();
    let a = ["main-aaa-100", "main-bbb-100", "main-ccc-99"];
    let b = ["main-bbb-100", "main-ccc-99", "main-aaa-100"];
    assert_eq!(p.select(&a).tag, Some("main-aaa-100"));
    assert_eq!(p.select(&b).tag, Some("main-aaa-100"));
}

#[test]
fn a_given_exclude_list_replaces_the_default() {
    let p = Policy::new(&PolicySpec {
        rule: RuleSpec::Alphabetical(Order::Asc),
        filter: None,
        exclude: Some(vec!["^b".into()]),
    })
    .unwrap();
    assert_eq!(p.select(&["a", "b", "z.sig"]).tag, Some("z.sig"));
    let none = Policy::new(&PolicySpec {
        rule: RuleSpec::Alphabetical(Order::Asc),
        filter: None,
        exclude: Some(vec![]),
    })
    .unwrap();
    // Flux api/v1/imagerepository_types.go GetExclusionList: an empty list means the default.
    assert_eq!(none.select(&["a", "z.sig"]).tag, Some("a"));
}

#[test]
fn different_keys_of_equal_rank_follow_tagsmith_s_rule() {
    // Flux iterates a Go map here (internal/policy/filter.go `Items`), so its answer changes from
    // run to run; tagsmith decides as if the keys were the tags: semver the byte-wise greatest
    // key, numerical the smallest (docs/policies.md, deliberate deviations).
    let filtered = |rule: RuleSpec| {
        Policy::new(&PolicySpec {
            rule,
            filter: Some(FilterSpec {
                pattern: r"^[a-z]+-(.*)$".into(),
                extract: Some("$1".into()),
            }),
            exclude: None,
        })
        .unwrap()
    };
    let p = filtered(RuleSpec::Semver("*".into()));
    assert_eq!(
        p.select(&["a-v1.0.0", "b-1.0.0", "c-1.0.0+x"]).tag,
        Some("a-v1.0.0")
    );
    let p = filtered(RuleSpec::Numerical(Order::Asc));
    assert_eq!(p.select(&["a-1.0", "b-01", "c-1"]).tag, Some("b-01"));
    // Without an extract template the keys are the tags, and the answer is Flux's unfiltered one.
    let p = Policy::new(&PolicySpec {
        rule: RuleSpec::Numerical(Order::Asc),
        filter: Some(FilterSpec {
            pattern: "^[0-9.]+$".into(),
            extract: None,
        }),
        exclude: None,
    })
    .unwrap();
    assert_eq!(p.select(&["1.0", "01", "1"]).tag, Some("01"));
}

#[test]
fn numerical_reports_what_parse_float_rejects_and_skips_non_finite() {
    let p = Policy::new(&PolicySpec {
        rule: RuleSpec::Numerical(Order::Asc),
        filter: None,
        exclude: None,
    })
    .unwrap();
    // Go's ParseFloat: "Inf" and "NaN" parse (skipped here, by choice), "1_" and "_1" do not.
    let s = p.select(&["Inf", "NaN", "1_", "_1", "0x1p3", "7"]);
    assert_eq!(s.tag, Some("0x1p3"));
    assert_eq!(s.stats.non_numeric, 4);
    assert_eq!(s.stats.non_numeric_examples, ["Inf", "NaN", "1_"]);
}

#[derive(Debug, Deserialize)]
struct Masterminds {
    versions: Vec<VersionRow>,
    compare: Vec<CompareRow>,
    constraints: Vec<RangeCase>,
}

#[derive(Debug, Deserialize)]
struct VersionRow {
    version: String,
    ok: bool,
}

#[derive(Debug, Deserialize)]
struct CompareRow {
    a: String,
    b: String,
    #[serde(default)]
    order: Option<i8>,
    #[serde(default)]
    greater: Option<bool>,
}

#[test]
fn masterminds_test_tables_for_tags_flux_accepts() {
    let t: Masterminds = load("masterminds.yaml");
    assert!(t.versions.len() >= 30 && t.compare.len() >= 10 && t.constraints.len() >= 150);
    let mut failures = Vec::new();
    for row in &t.versions {
        if Version::parse_tag(&row.version).is_ok() != row.ok {
            failures.push(format!(
                "NewVersion({:?}): expected ok={}",
                row.version, row.ok
            ));
        }
    }
    for row in &t.compare {
        let (a, b) = (Version::parse_tag(&row.a), Version::parse_tag(&row.b));
        let (Ok(a), Ok(b)) = (a, b) else {
            failures.push(format!("{:?} or {:?} did not parse", row.a, row.b));
            continue;
        };
        let ord = a.precedence(&b);
        let want_ok = match (row.order, row.greater) {
            (Some(o), _) => ord as i8 == o,
            (None, Some(g)) => (ord == std::cmp::Ordering::Greater) == g,
            (None, None) => false,
        };
        if !want_ok {
            failures.push(format!(
                "Compare({:?}, {:?}) gave {ord:?}: {row:?}",
                row.a, row.b
            ));
        }
    }
    for c in &t.constraints {
        let range = Range::parse(&c.range).map_err(|e| e.to_string());
        let version = Version::parse_tag(&c.version).map_err(|e| e.to_string());
        match (range, version) {
            (Ok(r), Ok(v)) if r.matches(&v) == c.matches => {}
            (r, v) => failures.push(format!(
                "{:?} vs {:?}: expected match={} ({:?} {:?})",
                c.range,
                c.version,
                c.matches,
                r.map(|_| ()),
                v.map(|v| v.to_string())
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn large_lists_select_the_same_as_small_ones() {
    // Above the parallel threshold the list is split across threads; the winner must not move.
    let tags: Vec<String> = (0..200_000u32)
        .map(|i| match i % 4 {
            0 => format!("{}.{}.{}", i % 7, i % 13, i % 101),
            1 => format!("v{}.{}.{}-rc.{}", i % 7, i % 13, i % 101, i % 5),
            2 => format!("junk-{i}"),
            _ => format!("{}.{}.{}", i % 7, 12, 100),
        })
        .collect();
    let p = semver(">=1.0.0 <6.0.0");
    let whole = p.select(&tags);
    let sequential = p.explain(&tags);
    assert_eq!(whole.index, sequential.selected);
    assert_eq!(whole.tag, Some("5.12.100"));
    // The same tag listed many times: the first of them is the one reported.
    let first = tags.iter().position(|t| t == "5.12.100");
    assert_eq!(whole.index, first);
    assert_eq!(whole.stats.tags, tags.len());
}
