//! Gates: checks a candidate tag passes after the policy ranks the tags and before it reaches
//! Git. They run in a fixed order (minimum age, platforms, signature); the best candidate that
//! passes every configured gate is the selection, and each better one a gate stopped is
//! reported with the gate and the reason.
//!
//! Pure: the engine fetches what a gate needs (`engine::gates`), these functions decide.

pub mod age;
pub mod cosign;
pub mod platform;

use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use platform::Platform;

/// The gates one image has; all empty means none run and no request is made for them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gates {
    pub min_age: Option<Duration>,
    pub platforms: Vec<Platform>,
    /// cosign public keys; a signature from any one of them is enough.
    pub keys: Vec<cosign::PublicKey>,
}

impl Gates {
    pub fn is_empty(&self) -> bool {
        self.min_age.is_none() && self.platforms.is_empty() && self.keys.is_empty()
    }

    /// The configured gates in the order they run.
    pub fn order(&self) -> Vec<Gate> {
        let mut out = Vec::with_capacity(3);
        if self.min_age.is_some() {
            out.push(Gate::MinAge);
        }
        if !self.platforms.is_empty() {
            out.push(Gate::Platforms);
        }
        if !self.keys.is_empty() {
            out.push(Gate::Signature);
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Gate {
    #[serde(rename = "minAge")]
    MinAge,
    #[serde(rename = "platforms")]
    Platforms,
    #[serde(rename = "signature")]
    Signature,
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MinAge => "minAge",
            Self::Platforms => "platforms",
            Self::Signature => "signature",
        })
    }
}

/// A candidate a gate stopped, better ranked than the selection (if any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stop {
    pub tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub gate: Gate,
    pub reason: String,
    /// For the age gate: when the tag comes of age (Unix ms); it is looked at again then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eligible_at: Option<u64>,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} stopped by {}: {}", self.tag, self.gate, self.reason)
    }
}

/// The age gate's reason text.
pub fn too_young_reason(young: &age::TooYoung, min_age: Duration) -> String {
    use chrono::SecondsFormat;
    format!(
        "younger than {} ({} {}; eligible at {})",
        humanise(min_age),
        young.source.as_str(),
        young.since.to_rfc3339_opts(SecondsFormat::Secs, true),
        young.eligible_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// The platforms gate's reason text.
pub fn missing_reason(missing: &[Platform], provided: &[Platform]) -> String {
    let list = |ps: &[Platform]| {
        if ps.is_empty() {
            "none".to_string()
        } else {
            ps.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    format!("lacks {} (provides {})", list(missing), list(provided))
}

fn humanise(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s > 0 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s > 0 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_run_in_the_documented_order() {
        let gates = Gates {
            min_age: Some(Duration::from_secs(60)),
            platforms: vec!["linux/amd64".parse().unwrap()],
            keys: Vec::new(),
        };
        assert_eq!(gates.order(), vec![Gate::MinAge, Gate::Platforms]);
        assert!(Gates::default().is_empty());
    }

    #[test]
    fn reasons_name_what_is_missing() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert_eq!(
            missing_reason(&[p("linux/arm64")], &[p("linux/amd64")]),
            "lacks linux/arm64 (provides linux/amd64)"
        );
        assert_eq!(humanise(Duration::from_secs(86400)), "24h");
        assert_eq!(humanise(Duration::from_secs(90)), "90s");
    }
}
