//! Scalars as AIU's YAML encoder writes them, and image identifiers as its registry-scanner
//! reads them (`pkg/image/image.go` `NewFromIdentifier`, without the cluster's defaults).

use crate::rewrite::Style;
use crate::rewrite::yaml_literal;

/// A string scalar for a generated file: plain when plain reads back as the same string,
/// else double-quoted (go-yaml v3 quotes `1.0` or `true` so they stay strings).
pub fn encode(value: &str) -> String {
    yaml_literal::encode(Style::Plain, value).1
}

/// An image identifier split as registry-scanner does: `alias=registry/name:tag@digest`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identifier {
    pub alias: Option<String>,
    /// Registry host when the first path part looks like one (has `.` or `:`, or is
    /// `localhost`); `docker.io` is dropped as registry-scanner does for comparisons.
    pub registry: Option<String>,
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Identifier {
    pub fn parse(s: &str) -> Self {
        let (alias, rest) = match s.split_once('=') {
            Some((a, r)) => (Some(a.to_string()), r),
            None => (None, s),
        };
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (rest, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match rest[slash..].find(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        let (registry, name) = match path.split_once('/') {
            Some((first, tail))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_string()), tail.to_string())
            }
            _ => (None, path.to_string()),
        };
        let registry = registry.filter(|r| r != "docker.io");
        let name = match (&registry, name.strip_prefix("library/")) {
            (None, Some(short)) if !path.starts_with("library/") => short.to_string(),
            _ => name,
        };
        Self {
            alias,
            registry,
            name,
            tag,
            digest,
        }
    }

    /// `sameImageNameAndRegistry` in AIU's `pkg/argocd/update.go`.
    pub fn same_image(&self, other: &Self) -> bool {
        self.name == other.name && self.registry == other.registry
    }

    pub fn full_name(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Argo CD's `KustomizeImage.Match`: images are the same entry when the part before the
/// first `=` (or else `@`, or else `:`) agrees.
pub fn kustomize_image_key(image: &str) -> &str {
    let delim = if image.contains('=') {
        '='
    } else if image.contains('@') {
        '@'
    } else {
        ':'
    };
    image.split(delim).next().unwrap_or(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_as_registry_scanner_does() {
        let i = Identifier::parse("nginx=quay.io/org/nginx:1.2@sha256:abc");
        assert_eq!(i.alias.as_deref(), Some("nginx"));
        assert_eq!(i.registry.as_deref(), Some("quay.io"));
        assert_eq!(i.name, "org/nginx");
        assert_eq!(i.tag.as_deref(), Some("1.2"));
        assert_eq!(i.digest.as_deref(), Some("sha256:abc"));
        let local = Identifier::parse("127.0.0.1:5000/app:~1.2");
        assert_eq!(local.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(local.tag.as_deref(), Some("~1.2"));
        assert!(Identifier::parse("docker.io/nginx").same_image(&Identifier::parse("nginx:1")));
    }

    #[test]
    fn kustomize_keys_follow_argo_cd() {
        assert_eq!(kustomize_image_key("a=b:1"), "a");
        assert_eq!(kustomize_image_key("b@sha256:x"), "b");
        assert_eq!(kustomize_image_key("b:1"), "b");
    }

    #[test]
    fn generated_scalars_stay_strings() {
        assert_eq!(encode("nginx:1.2.3"), "nginx:1.2.3");
        assert_eq!(encode("1.0"), "\"1.0\"");
        assert_eq!(encode("true"), "\"true\"");
    }
}
