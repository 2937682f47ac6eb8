//! Tenancy: which policy namespaces may write which paths of a target's repository.

use globset::{Glob, GlobMatcher};

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    matcher: GlobMatcher,
    namespaces: Vec<String>,
}

/// Empty means no restriction. Otherwise a path may be written by a namespace only when a rule
/// whose glob matches the path names that namespace (or `*`); a path no rule matches is closed.
#[derive(Debug, Clone, Default)]
pub struct Tenancy {
    rules: Vec<Rule>,
}

impl Tenancy {
    pub fn new<'a>(
        rules: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Result<Self, String> {
        let rules = rules
            .into_iter()
            .map(|(pattern, namespaces)| {
                let glob = Glob::new(pattern)
                    .map_err(|e| format!("invalid tenancy glob {pattern:?}: {}", e.kind()))?;
                Ok(Rule {
                    pattern: pattern.to_string(),
                    matcher: glob.compile_matcher(),
                    namespaces: namespaces.to_vec(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { rules })
    }

    pub fn is_open(&self) -> bool {
        self.rules.is_empty()
    }

    /// `path` is relative to the repository root, with `/` separators.
    pub fn allows(&self, path: &str, namespace: &str) -> bool {
        self.is_open()
            || self
                .rules
                .iter()
                .filter(|r| r.matcher.is_match(path))
                .any(|r| r.namespaces.iter().any(|n| n == "*" || n == namespace))
    }

    /// The patterns that match `path`, for messages that explain a refusal.
    pub fn patterns_for(&self, path: &str) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r.matcher.is_match(path))
            .map(|r| r.pattern.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_write_only_where_allowed() {
        let a = vec!["team-a".to_string()];
        let any = vec!["*".to_string()];
        let t = Tenancy::new([
            ("apps/team-a/**", a.as_slice()),
            ("apps/shared/**", any.as_slice()),
        ])
        .unwrap();
        assert!(t.allows("apps/team-a/deploy.yaml", "team-a"));
        assert!(!t.allows("apps/team-a/deploy.yaml", "team-b"));
        assert!(t.allows("apps/shared/x/values.yaml", "team-b"));
        assert!(
            !t.allows("clusters/prod.yaml", "team-a"),
            "unmatched paths are closed"
        );
        assert_eq!(t.patterns_for("apps/team-a/x.yaml"), ["apps/team-a/**"]);
        assert!(Tenancy::default().allows("anything", "anyone"));
        assert!(Tenancy::new([("a/[", a.as_slice())]).is_err());
    }
}
