//! Per-image options of Argo CD Image Updater whose meaning needs the registry: the
//! newest-build strategy, `platforms`, and `pull-secret`. compile.rs reads the annotations
//! and reports at their place; these functions say what the values mean.

use crate::config::flux::doc::{Filter, Image, NewestBuild};
use crate::gate::Platform;

/// `<alias>.platforms`: comma-separated, blanks dropped (AIU `pkg/argocd/annotations.go`).
/// An entry AIU cannot parse matches nothing there (registry-scanner `pkg/image/options.go`
/// `GetPlatformOptions`), so no tag would ever be chosen: an error here.
pub fn platforms(value: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_split_at_commas_and_refuse_what_aiu_cannot_parse() {
        assert_eq!(
            platforms(" linux/amd64, ,linux/arm/v7,linux/amd64").unwrap(),
            ["linux/amd64", "linux/arm/v7"]
        );
        assert!(platforms("linux").is_err());
    }
}
