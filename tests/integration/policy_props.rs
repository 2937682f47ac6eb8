#![allow(clippy::unwrap_used)]

//! Property tests: whatever the tags and range, the selection is a member of the input,
//! satisfies the policy, no other acceptable tag beats it, and it does not depend on the order
//! the tags come in.

use std::cmp::Ordering;

use proptest::prelude::*;
use tagsmith::policy::{FilterSpec, Order, Policy, PolicySpec, Range, RuleSpec, TagList, Version};

fn tag() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (any::<bool>(), 0u64..4, 0u64..12, 0u64..12, prop::option::of(prop_oneof![
            Just("alpha".to_string()),
            Just("rc.1".to_string()),
            Just("rc.10".to_string()),
            Just("rc9".to_string()),
            Just("0".to_string()),
        ]))
            .prop_map(|(v, a, b, c, pre)| {
                let mut s = format!("{}{a}.{b}.{c}", if v { "v" } else { "" });
                if let Some(pre) = pre {
                    s.push('-');
                    s.push_str(&pre);
                }
                s
            }),
        1 => "[a-z0-9._-]{1,12}",
        1 => "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}(\\.sig)?",
    ]
}

/// Tags that often tie: equal versions spelled differently, equal numbers, shared suffixes.
fn tie_prone_tag() -> impl Strategy<Value = String> {
    let body = prop_oneof![
        Just("1.2.3"),
        Just("v1.2.3"),
        Just("1.2.3+b1"),
        Just("1.2.3+b2"),
        Just("01.2.3"),
        Just("1.2-rc.1"),
        Just("1.2.0-rc.1"),
        Just("1.2.3-rc.1"),
        Just("2.0.0"),
        Just("1"),
        Just("01"),
        Just("1.0"),
        Just("1.00"),
        Just("1e0"),
        Just("0x1p0"),
        Just("1_0"),
        Just("10"),
        Just("x"),
        Just("latest"),
        Just("1.2.3.sig"),
    ];
    (
        prop::option::of(prop_oneof![Just("a-"), Just("b-"), Just("c-")]),
        body,
    )
        .prop_map(|(prefix, body)| format!("{}{body}", prefix.unwrap_or("")))
}

fn range() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        Just(""),
        Just("="),
        Just(">"),
        Just(">="),
        Just("<"),
        Just("<="),
        Just("~"),
        Just("^"),
        Just("!=")
    ];
    let part = prop_oneof![4 => (0u64..4).prop_map(|n| n.to_string()), 1 => Just("x".to_string())];
    let version = (
        part.clone(),
        prop::option::of(part.clone()),
        prop::option::of(part),
        prop::option::of(Just("-0")),
    )
        .prop_map(|(a, b, c, pre)| {
            let mut s = a;
            if let Some(b) = b {
                s = format!("{s}.{b}");
                if let Some(c) = c {
                    s = format!("{s}.{c}");
                }
            }
            s + pre.unwrap_or("")
        });
    let comparator = (op, version).prop_map(|(op, v)| format!("{op}{v}"));
    let group = prop::collection::vec(comparator, 1..3).prop_map(|cs| cs.join(", "));
    prop::collection::vec(group, 1..3).prop_map(|gs| gs.join(" || "))
}

fn policy(rule: RuleSpec) -> Policy {
    Policy::new(&PolicySpec {
        rule,
        filter: None,
        exclude: None,
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn semver_selection_is_a_member_in_range_and_maximal(tags in prop::collection::vec(tag(), 0..40), range in range()) {
        let parsed = Range::parse(&range).unwrap();
        let p = policy(RuleSpec::Semver(range.clone()));
        let selection = p.select(&tags);
        let accepted: Vec<(usize, Version)> = tags
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.ends_with(".sig"))
            .filter_map(|(i, t)| Version::parse_tag(t).ok().map(|v| (i, v)))
            .filter(|(_, v)| parsed.matches(v))
            .collect();
        match selection.index {
            None => prop_assert!(accepted.is_empty(), "nothing selected but {accepted:?} accepted"),
            Some(i) => {
                prop_assert_eq!(selection.tag, Some(tags[i].as_str()));
                let v = Version::parse_tag(&tags[i]).unwrap();
                prop_assert!(parsed.matches(&v));
                for (j, other) in &accepted {
                    let ord = other.precedence(&v);
                    prop_assert!(ord != Ordering::Greater, "{} beats {}", tags[*j], tags[i]);
                    if ord == Ordering::Equal {
                        prop_assert!(
                            tags[*j].as_bytes() <= tags[i].as_bytes(),
                            "the byte-wise greatest of equal versions must win: {} over {}",
                            tags[*j],
                            tags[i]
                        );
                    }
                }
            }
        }
        prop_assert_eq!(p.explain(&tags).selected, selection.index);
    }

    #[test]
    fn alphabetical_and_numerical_pick_the_extreme(tags in prop::collection::vec(tag(), 0..40), asc in any::<bool>()) {
        let order = if asc { Order::Asc } else { Order::Desc };
        let kept: Vec<&String> = tags.iter().filter(|t| !t.ends_with(".sig")).collect();

        let alpha = policy(RuleSpec::Alphabetical(order)).select(&tags).tag.map(str::to_string);
        let expected = if asc { kept.iter().max() } else { kept.iter().min() };
        prop_assert_eq!(alpha.as_ref(), expected.copied());

        // Without `_` Rust's float syntax is Go's for these tags; with it, Go's rules are stricter
        // (`_` only between digits), so those tags only count once selected.
        let numbers: Vec<f64> = kept
            .iter()
            .filter(|t| !t.contains('_'))
            .filter_map(|t| t.parse::<f64>().ok())
            .filter(|n| n.is_finite())
            .collect();
        let num = policy(RuleSpec::Numerical(order)).select(&tags).tag;
        match num {
            None => prop_assert!(numbers.is_empty()),
            Some(t) => {
                let n: f64 = t.replace('_', "").parse().unwrap();
                for other in &numbers {
                    let ok = if asc { *other <= n } else { *other >= n };
                    prop_assert!(ok, "{} beats {}", other, n);
                }
            }
        }
    }

    #[test]
    fn selection_does_not_depend_on_the_order_of_tags(
        (tags, shuffled) in prop::collection::vec(tie_prone_tag(), 0..30)
            .prop_flat_map(|tags| (Just(tags.clone()), Just(tags).prop_shuffle())),
        rule in prop_oneof![
            range().prop_map(RuleSpec::Semver),
            Just(RuleSpec::Semver(">=0.0.0-0".to_string())),
            any::<bool>().prop_map(|asc| RuleSpec::Alphabetical(if asc { Order::Asc } else { Order::Desc })),
            any::<bool>().prop_map(|asc| RuleSpec::Numerical(if asc { Order::Asc } else { Order::Desc })),
        ],
        filter in prop_oneof![
            Just(None),
            Just(Some((r"^(?:[a-c]-)?(.*)$", None))),
            Just(Some((r"^(?:[a-c]-)?(.*)$", Some("$1")))),
            Just(Some((r"^(?:[a-c]-)?(\d+)", Some("${1}")))),
        ],
    ) {
        let p = Policy::new(&PolicySpec {
            rule,
            filter: filter.map(|(pattern, extract)| FilterSpec {
                pattern: pattern.to_string(),
                extract: extract.map(str::to_string),
            }),
            exclude: None,
        })
        .unwrap();
        let a = p.select(&tags).tag;
        let b = p.select(&shuffled).tag;
        prop_assert_eq!(a, b, "{:?} vs {:?}", tags, shuffled);
        let explained = p.explain(&shuffled).selected.map(|i| shuffled[i].as_str());
        prop_assert_eq!(explained, b);
    }

    /// Policies reading one shared tag list (semver readings and exclude verdicts worked out
    /// once for all of them) select exactly what each selects on its own, down to the counts.
    #[test]
    fn a_shared_tag_list_selects_what_each_policy_selects_alone(
        tags in prop::collection::vec(prop_oneof![tag(), tie_prone_tag()], 0..40),
        specs in prop::collection::vec((
            prop_oneof![
                range().prop_map(RuleSpec::Semver),
                Just(RuleSpec::Semver(">=0.0.0-0".to_string())),
                any::<bool>().prop_map(|asc| RuleSpec::Alphabetical(if asc { Order::Asc } else { Order::Desc })),
                any::<bool>().prop_map(|asc| RuleSpec::Numerical(if asc { Order::Asc } else { Order::Desc })),
            ],
            prop_oneof![
                Just(None),
                Just(Some((r"^(?:[a-c]-)?(.*)$", None))),
                Just(Some((r"^(?:[a-c]-)?(.*)$", Some("$1")))),
                Just(Some((r"^v", None))),
            ],
            prop_oneof![
                Just(None),
                Just(Some(vec![])),
                Just(Some(vec![r"^a-".to_string()])),
                Just(Some(vec![r"rc".to_string(), r"\.sig$".to_string()])),
            ],
        ), 1..6),
    ) {
        let policies: Vec<Policy> = specs
            .into_iter()
            .map(|(rule, filter, exclude)| {
                Policy::new(&PolicySpec {
                    rule,
                    filter: filter.map(|(pattern, extract)| FilterSpec {
                        pattern: pattern.to_string(),
                        extract: extract.map(str::to_string),
                    }),
                    exclude,
                })
                .unwrap()
            })
            .collect();
        let list = TagList::new(&tags);
        for p in &policies {
            prop_assert_eq!(p.select_in(&list), p.select(&tags), "{:?} on {:?}", p, tags);
        }
    }

    #[test]
    fn any_range_text_parses_or_errors_without_panicking(text in "[ 0-9xX*.,|<>=!~^v-]{0,24}") {
        if let Err(e) = Range::parse(&text) {
            prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1);
        }
    }
}
