//! Per-image options of Argo CD Image Updater whose meaning needs the registry: the
//! newest-build strategy, `platforms`, and `pull-secret`. compile.rs reads the annotations
//! and reports at their place; these functions say what the values mean.

use super::doc::RegistryAuth;
use crate::config::flux::doc::{Filter, Image, NewestBuild};
use crate::gate::Platform;

/// `platforms` (the annotation split at commas, or the ImageUpdater's list), duplicates
/// dropped. An entry AIU cannot parse matches nothing there (registry-scanner `pkg/image/options.go`
/// `GetPlatformOptions`), so no tag would ever be chosen: an error here.
pub fn platforms(values: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for p in values.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let platform = p.parse::<Platform>().map_err(|e| e.to_string())?;
        let text = platform.to_string();
        if !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(out)
}

/// The newest-build strategy: the tag whose image was built last. AIU ignores a version
/// constraint in the image-list with it (`GetNewestVersionFromTags` checks one only for
/// semver and digest); the returned warning says so.
pub fn newest_build(
    img: &mut Image,
    constraint: Option<&str>,
    platforms: Vec<String>,
) -> Option<String> {
    img.newest_build = Some(NewestBuild { platforms });
    constraint.map(|c| {
        format!("the constraint {c:?} in the image-list is ignored with newest-build, as Argo CD Image Updater ignores it")
    })
}

/// The digest strategy with `platforms`: AIU skips the tag unless it has an image for one of
/// them (`TagMetadata`/`TagInfoFromReferences` return no metadata). The single tag becomes a
/// newest-build candidate of those platforms, which applies exactly that filter.
pub fn digest_platforms(img: &mut Image, tag: &str, platforms: Vec<String>) {
    img.alphabetical = None;
    img.newest_build = Some(NewestBuild { platforms });
    img.filter_tags = Some(Filter {
        pattern: format!("^{}$", regex::escape(tag)),
        extract: None,
    });
}

/// Where an image's registry credentials come from, from a `pull-secret` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullSecret {
    /// `env:NAME`: the variable holds `user:password`.
    Env(String),
    /// `ext:/path`: the program prints `user:password`.
    Ext(String),
    /// `secret:` or `pullsecret:`: a cluster object, not readable here.
    Cluster,
}

/// A `pull-secret` annotation as registry-scanner `pkg/image/credentials.go`
/// (`ParseCredentialSource`) reads it: `<kind>:<definition>`, kind case-insensitive, exactly
/// one `:` and both parts non-empty; `ext:` needs an absolute path (`FetchCredentials`).
pub fn pull_secret(value: &str) -> Result<PullSecret, String> {
    let value = value.trim();
    // An optional `<registry>=` before it; the image's own registry is what counts.
    let value = match value.split_once('=') {
        Some((registry, rest)) if !registry.is_empty() && !rest.is_empty() => rest,
        _ => value,
    };
    let parts: Vec<&str> = value.split(':').collect();
    let [kind, definition] = parts.as_slice() else {
        return Err(format!(
            "invalid credential spec {value:?}: use env:<VARIABLE> or ext:<absolute path>"
        ));
    };
    if kind.is_empty() || definition.is_empty() {
        return Err(format!(
            "invalid credential spec {value:?}: use env:<VARIABLE> or ext:<absolute path>"
        ));
    }
    match kind.to_ascii_lowercase().as_str() {
        "env" => Ok(PullSecret::Env((*definition).to_string())),
        "ext" if definition.starts_with('/') => Ok(PullSecret::Ext((*definition).to_string())),
        "ext" => Err(format!(
            "the path to the script must be absolute, but is {definition:?}"
        )),
        "secret" | "pullsecret" => Ok(PullSecret::Cluster),
        other => Err(format!("unknown credential source {other:?}")),
    }
}

/// The registry credentials a pull secret amounts to, for the image's registry host only.
pub fn registry_auth(secret: &PullSecret) -> Option<RegistryAuth> {
    match secret {
        PullSecret::Env(var) => Some(RegistryAuth::Basic {
            credentials_env: var.clone(),
        }),
        // AIU runs the script without arguments and reads one line `user:password`.
        PullSecret::Ext(path) => Some(RegistryAuth::Exec {
            command: vec![path.clone()],
            output: "userPassword",
        }),
        PullSecret::Cluster => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// registry-scanner `pkg/image/credentials_test.go` (`Test_ParseCredentialAnnotation`:
    /// `env:DUMMY_SECRET`, `ext:/tmp/a.sh`, a `<registry>=` prefix, bad forms).
    #[test]
    fn pull_secret_forms_as_argo_cd_image_updater_parses_them() {
        assert_eq!(
            pull_secret("env:DUMMY_SECRET"),
            Ok(PullSecret::Env("DUMMY_SECRET".into()))
        );
        assert_eq!(pull_secret("ENV:X"), Ok(PullSecret::Env("X".into())));
        assert_eq!(
            pull_secret("ext:/tmp/a.sh"),
            Ok(PullSecret::Ext("/tmp/a.sh".into()))
        );
        assert_eq!(pull_secret("secret:ns/name#field"), Ok(PullSecret::Cluster));
        assert_eq!(pull_secret("pullsecret:ns/name"), Ok(PullSecret::Cluster));
        assert_eq!(pull_secret("gcr.io=env:X"), Ok(PullSecret::Env("X".into())));
        for bad in ["env", "env:", ":x", "env:a:b", "ext:relative.sh", "vault:x"] {
            assert!(pull_secret(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn platforms_drop_blanks_and_doubles_and_refuse_what_aiu_cannot_parse() {
        assert_eq!(
            platforms(&[
                " linux/amd64".into(),
                "".into(),
                "linux/arm/v7".into(),
                "linux/amd64".into()
            ])
            .unwrap(),
            ["linux/amd64", "linux/arm/v7"]
        );
        assert!(platforms(&["linux".into()]).is_err());
    }
}
