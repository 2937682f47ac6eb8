//! Value types shared by every step: image names, tags, digests, references and policy ids.
//!
//! They keep the text the user wrote (a marker rewrite must write back exactly what the
//! user would expect) and offer normalised views where IO needs them.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Docker Hub's registry as users write it, and the host its API actually lives on.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ModelError {
    #[error("invalid image name {input:?}: {reason}")]
    ImageName { input: String, reason: &'static str },
    #[error("invalid tag {input:?}: {reason}")]
    Tag { input: String, reason: &'static str },
    #[error("invalid digest {input:?}: {reason}")]
    Digest { input: String, reason: &'static str },
    #[error("invalid policy id {input:?}: {reason}")]
    PolicyId { input: String, reason: &'static str },
}

/// A repository name as written, e.g. `ghcr.io/org/app`, `nginx`, `localhost:5000/a/b`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName(String);

impl ImageName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registry part when the first path component names a host (has `.` or `:`,
    /// or is `localhost`), as the Docker reference grammar decides it.
    pub fn explicit_registry(&self) -> Option<&str> {
        let (first, _) = self.0.split_once('/')?;
        let looks_like_host = first.contains('.') || first.contains(':') || first == "localhost";
        looks_like_host.then_some(first)
    }

    /// Registry as users name it: `docker.io` when none is written.
    pub fn registry(&self) -> &str {
        self.explicit_registry().unwrap_or(DOCKER_HUB)
    }

    /// Host to send API requests to (Docker Hub's API lives on another host than its name).
    pub fn api_host(&self) -> &str {
        match self.registry() {
            DOCKER_HUB | "index.docker.io" => DOCKER_HUB_API_HOST,
            other => other,
        }
    }

    /// Repository path inside the registry; Docker Hub's official images live under `library/`.
    pub fn repository(&self) -> String {
        let path = match self.explicit_registry() {
            Some(host) => &self.0[host.len() + 1..],
            None => self.0.as_str(),
        };
        let hub = matches!(self.registry(), DOCKER_HUB | "index.docker.io");
        if hub && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        }
    }

    /// `registry/repository` with Docker Hub defaults filled in, for comparing names that
    /// users may spell differently (`nginx` and `docker.io/library/nginx`).
    pub fn canonical(&self) -> String {
        let registry = match self.registry() {
            "index.docker.io" => DOCKER_HUB,
            other => other,
        };
        format!("{registry}/{}", self.repository())
    }
}

impl FromStr for ImageName {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ModelError::ImageName {
            input: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.contains(['@', ' ', '\t', '\n', '\r']) {
            return Err(err("contains whitespace or '@'"));
        }
        let name = Self(s.to_string());
        let last = s.rsplit('/').next().unwrap_or(s);
        if last.contains(':') {
            return Err(err("has a tag; write the repository only"));
        }
        let path_start = name.explicit_registry().map_or(0, |h| h.len() + 1);
        let path = &s[path_start..];
        if path.is_empty() {
            return Err(err("no repository path"));
        }
        for component in path.split('/') {
            if component.is_empty() {
                return Err(err("empty path component"));
            }
            let ok = component.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
            if !ok {
                return Err(err(
                    "path components may hold only lower-case letters, digits, '.', '_' and '-'",
                ));
            }
            let edges_ok = component.starts_with(|c: char| c.is_ascii_alphanumeric())
                && component.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !edges_ok {
                return Err(err("path components start and end with a letter or digit"));
            }
        }
        Ok(name)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_tag(s)?;
        Ok(Self(s.to_string()))
    }
}

impl TryFrom<String> for Tag {
    type Error = ModelError;

    /// As [`str::parse`], keeping the string it is given (a listing's tags are not copied).
    fn try_from(s: String) -> Result<Self, Self::Error> {
        check_tag(&s)?;
        Ok(Self(s))
    }
}

fn check_tag(s: &str) -> Result<(), ModelError> {
    let err = |reason| ModelError::Tag {
        input: s.to_string(),
        reason,
    };
    let mut bytes = s.bytes();
    match bytes.next() {
        None => return Err(err("empty")),
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {}
        Some(_) => return Err(err("must start with a letter, digit or '_'")),
    }
    if s.len() > 128 {
        return Err(err("longer than 128 characters"));
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return Err(err("may hold only letters, digits, '_', '.' and '-'"));
    }
    Ok(())
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A content digest, `algorithm:hex`, e.g. `sha256:` followed by 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Digest {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ModelError::Digest {
            input: s.to_string(),
            reason,
        };
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(err("expected algorithm:hex"));
        };
        let algorithm_ok = !algorithm.is_empty()
            && algorithm.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'+' | b'.' | b'_' | b'-')
            });
        if !algorithm_ok {
            return Err(err("bad algorithm"));
        }
        let expected_len = match algorithm {
            "sha256" => Some(64),
            "sha512" => Some(128),
            _ => None,
        };
        if expected_len.is_some_and(|n| hex.len() != n) {
            return Err(err("wrong length for its algorithm"));
        }
        if hex.len() < 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err("expected lower-case hex"));
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `name[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    pub name: ImageName,
    pub tag: Option<Tag>,
    pub digest: Option<Digest>,
}

impl FromStr for ImageRef {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.parse::<Digest>()?)),
            None => (s, None),
        };
        // A ':' after the last '/' separates the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].parse::<Tag>()?))
            }
            None => (rest, None),
        };
        Ok(Self {
            name: name.parse()?,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name.as_str())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A policy's marker id, `namespace:name`, as in Flux (`team-a:app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId {
    namespace: String,
    name: String,
}

impl PolicyId {
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl FromStr for PolicyId {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ModelError::PolicyId {
            input: s.to_string(),
            reason,
        };
        let Some((namespace, name)) = s.split_once(':') else {
            return Err(err("expected namespace:name"));
        };
        if !is_dns_label(namespace) || !is_dns_label(name) {
            return Err(err(
                "namespace and name are lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
            ));
        }
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace, self.name)
    }
}

/// As its `namespace:name` text, validated again when read back, so a damaged scan cache
/// cannot smuggle in an id that parsing would refuse.
impl serde::Serialize for PolicyId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PolicyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_names_are_normalised_for_io_only() {
        let n: ImageName = "nginx".parse().unwrap();
        assert_eq!(n.as_str(), "nginx");
        assert_eq!(n.registry(), "docker.io");
        assert_eq!(n.api_host(), "registry-1.docker.io");
        assert_eq!(n.repository(), "library/nginx");
        assert_eq!(n.canonical(), "docker.io/library/nginx");
        let n: ImageName = "docker.io/library/nginx".parse().unwrap();
        assert_eq!(n.canonical(), "docker.io/library/nginx");
        let n: ImageName = "bitnami/redis".parse().unwrap();
        assert_eq!(n.repository(), "bitnami/redis");
    }

    #[test]
    fn registry_is_first_component_only_when_it_looks_like_a_host() {
        let n: ImageName = "localhost:5000/a/b".parse().unwrap();
        assert_eq!(n.registry(), "localhost:5000");
        assert_eq!(n.repository(), "a/b");
        let n: ImageName = "localhost/app".parse().unwrap();
        assert_eq!(n.registry(), "localhost");
        let n: ImageName = "org/app".parse().unwrap();
        assert_eq!(n.registry(), "docker.io");
        assert_eq!(n.repository(), "org/app");
    }

    #[test]
    fn a_tag_from_a_string_is_checked_as_a_parsed_one() {
        for input in [
            "1.2.3",
            "_x",
            "v1.0-rc.1",
            "",
            "-x",
            ".x",
            "a b",
            &"a".repeat(129),
        ] {
            let parsed = input.parse::<Tag>().map_err(|e| e.to_string());
            let kept = Tag::try_from(input.to_string()).map_err(|e| e.to_string());
            assert_eq!(parsed, kept, "{input:?}");
        }
        assert_eq!(
            Tag::try_from("1.2.3".to_string()).unwrap().as_str(),
            "1.2.3"
        );
        assert!(Tag::try_from(String::new()).is_err());
    }

    #[test]
    fn references_split_port_tag_and_digest() {
        let r: ImageRef = format!("127.0.0.1:5000/org/app:1.2.3@{SHA}")
            .parse()
            .unwrap();
        assert_eq!(r.name.as_str(), "127.0.0.1:5000/org/app");
        assert_eq!(r.tag.as_ref().unwrap().as_str(), "1.2.3");
        assert_eq!(r.digest.as_ref().unwrap().as_str(), SHA);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/org/app:1.2.3@{SHA}"));

        let r: ImageRef = "127.0.0.1:5000/org/app".parse().unwrap();
        assert_eq!(r.name.as_str(), "127.0.0.1:5000/org/app");
        assert!(r.tag.is_none());
    }

    #[test]
    fn bad_parts_are_named() {
        assert!("Org/App".parse::<ImageName>().is_err());
        assert!("app:".parse::<ImageRef>().is_err());
        assert!("app@sha256:abc".parse::<ImageRef>().is_err());
        assert!(".tag".parse::<Tag>().is_err());
        assert!("a".repeat(129).parse::<Tag>().is_err());
        assert!("team-a".parse::<PolicyId>().is_err());
        assert!("Team:app".parse::<PolicyId>().is_err());
        let p: PolicyId = "team-a:app".parse().unwrap();
        assert_eq!((p.namespace(), p.name()), ("team-a", "app"));
        assert_eq!(p.to_string(), "team-a:app");
        let e = "app@sha256:abc"
            .parse::<ImageRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha256:abc"), "{e}");
    }
}
