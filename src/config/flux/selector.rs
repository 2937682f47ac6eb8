//! Kubernetes label selectors (`matchLabels`, `matchExpressions`), as an ImageUpdateAutomation's
//! `policySelector` applies them to ImagePolicies.

use std::collections::BTreeMap;

use super::raw::LabelSelector;

/// Whether `labels` satisfy `selector`; every requirement must hold (apimachinery's
/// `LabelSelectorAsSelector`). Unknown operators were rejected when the selector was checked.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expression = selector.match_expressions.iter().all(|r| {
        let r = &r.value;
        let value = labels.get(&r.key);
        match r.operator.value.as_str() {
            "In" => value.is_some_and(|v| r.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_label && by_expression
}

/// A problem with one requirement, as apimachinery's validation words it.
pub fn check(selector: &LabelSelector) -> Vec<(usize, String)> {
    selector
        .match_expressions
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let r = &r.value;
            let message = match r.operator.value.as_str() {
                "In" | "NotIn" if r.values.is_empty() => {
                    format!("operator {} needs values", r.operator.value)
                }
                "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                    format!("operator {} takes no values", r.operator.value)
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => return None,
                other => format!(
                    "unknown operator {other:?}: expected In, NotIn, Exists or DoesNotExist"
                ),
            };
            Some((i, message))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(yaml: &str) -> LabelSelector {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_and_expressions_all_hold() {
        let s = selector(
            "matchLabels: { team: a }\nmatchExpressions:\n  - { key: tier, operator: In, values: [web, api] }\n  - { key: legacy, operator: DoesNotExist }\n",
        );
        assert!(matches(&s, &labels(&[("team", "a"), ("tier", "web")])));
        assert!(!matches(&s, &labels(&[("team", "b"), ("tier", "web")])));
        assert!(!matches(&s, &labels(&[("team", "a"), ("tier", "db")])));
        assert!(!matches(
            &s,
            &labels(&[("team", "a"), ("tier", "web"), ("legacy", "")])
        ));
        let not_in = selector("matchExpressions: [{ key: env, operator: NotIn, values: [prod] }]");
        assert!(
            matches(&not_in, &labels(&[])),
            "NotIn holds for a missing label"
        );
        assert!(!matches(&not_in, &labels(&[("env", "prod")])));
        assert!(matches(&LabelSelector::default(), &labels(&[("any", "x")])));
    }

    #[test]
    fn bad_requirements_are_named() {
        let s = selector(
            "matchExpressions:\n  - { key: a, operator: Equals, values: [x] }\n  - { key: b, operator: In }\n  - { key: c, operator: Exists }\n",
        );
        let problems = check(&s);
        assert_eq!(problems.len(), 2);
        assert!(problems[0].1.contains("unknown operator \"Equals\""));
        assert_eq!(problems[1], (1, "operator In needs values".to_string()));
    }
}
