//! The platforms gate: a tag is eligible only if its manifest (or index) provides every
//! platform the image lists.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// `os/arch[/variant]`, as Docker and Argo CD Image Updater write platforms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid platform {given:?}: expected os/arch or os/arch/variant (linux/amd64, linux/arm/v7)"
)]
pub struct PlatformError {
    pub given: String,
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PlatformError {
            given: s.to_string(),
        };
        let mut parts = s.trim().split('/');
        let os = parts.next().filter(|p| !p.is_empty()).ok_or_else(err)?;
        let arch = parts.next().filter(|p| !p.is_empty()).ok_or_else(err)?;
        let variant = match parts.next() {
            None => None,
            Some("") => return Err(err()),
            Some(v) => Some(v.to_string()),
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Self {
            os: os.to_string(),
            arch: arch.to_string(),
            variant,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl From<Platform> for String {
    fn from(p: Platform) -> Self {
        p.to_string()
    }
}

impl Platform {
    /// Whether an image built for `self` serves a wanted platform: the same os/arch/variant,
    /// or a wanted platform without a variant and an image with one (a more specific build
    /// of it), as Argo CD Image Updater's `ManifestOptions.WantsPlatform` decides.
    pub fn serves(&self, wanted: &Self) -> bool {
        self.os == wanted.os
            && self.arch == wanted.arch
            && (wanted.variant.is_none() || self.variant == wanted.variant)
    }
}

/// The wanted platforms no provided platform serves; empty when the tag is eligible.
pub fn missing(wanted: &[Platform], provided: &[Platform]) -> Vec<Platform> {
    wanted
        .iter()
        .filter(|w| !provided.iter().any(|p| p.serves(w)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_two_and_three_parts_and_refuses_others() {
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("linux/arm/v7").variant.as_deref(), Some("v7"));
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/",
            "linux/arm/v7/x",
            "",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    /// Expected answers from Argo CD Image Updater, registry-scanner/pkg/options/options.go
    /// (`WantsPlatform`) and registry-scanner/pkg/image/options_test.go
    /// (`Test_GetPlatformOptions`): "Single platform without variant requested" and
    /// "Single platform with variant requested".
    #[test]
    fn variant_matching_as_argo_cd_image_updater() {
        // Wanted linux/arm64/v8: only that exact variant serves.
        assert!(p("linux/arm64/v8").serves(&p("linux/arm64/v8")));
        assert!(!p("linux/arm64/invalid").serves(&p("linux/arm64/v8")));
        // Wanted linux/arm/v6: an image without a variant does not serve it.
        assert!(p("linux/arm/v6").serves(&p("linux/arm/v6")));
        assert!(!p("linux/arm").serves(&p("linux/arm/v6")));
        assert!(!p("linux/amd64/v6").serves(&p("linux/arm/v6")));
        // Wanted linux/amd64 (no variant): any variant of linux/amd64 serves it.
        assert!(p("linux/amd64").serves(&p("linux/amd64")));
        assert!(p("linux/amd64/invalid").serves(&p("linux/amd64")));
        assert!(!p("windows/amd64").serves(&p("linux/amd64")));
    }

    #[test]
    fn every_wanted_platform_must_be_provided() {
        let wanted = [p("linux/amd64"), p("linux/arm64")];
        assert!(missing(&wanted, &[p("linux/amd64"), p("linux/arm64/v8")]).is_empty());
        assert_eq!(
            missing(&wanted, &[p("linux/amd64")]),
            vec![p("linux/arm64")]
        );
        assert_eq!(missing(&wanted, &[]), wanted.to_vec());
    }
}
