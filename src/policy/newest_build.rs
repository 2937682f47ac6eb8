//! newest-build: the tag whose image was built last wins, as Argo CD Image Updater's
//! `newest-build` strategy (old name `latest`) decides. The build times are the image
//! configs' `created`, which only the registry knows: the engine reads them
//! (`engine::gates`), this module says which manifests count and orders the result.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::gate::Platform;

/// What a newest-build policy reads from the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BuildSpec {
    /// Only an image (or an index's manifest) for one of these counts; any one is enough,
    /// as AIU's `platforms` means. Empty: every platform counts.
    pub platforms: Vec<Platform>,
}

impl BuildSpec {
    /// Whether an image built for `platform` counts (registry-scanner
    /// `pkg/options/options.go`, `WantsPlatform`).
    pub fn wants(&self, platform: &Platform) -> bool {
        self.platforms.is_empty() || self.platforms.iter().any(|w| platform.serves(w))
    }

    /// The platforms as one string, for cache keys and messages.
    pub fn platforms_key(&self) -> String {
        self.platforms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One candidate with its build time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dated<'t> {
    /// Index into the scanned tag list.
    pub index: usize,
    pub tag: &'t str,
    pub created: DateTime<Utc>,
}

/// Orders dated candidates best first. AIU sorts by `created` ascending, equal times by tag
/// name ascending (byte-wise, Go's `<` on strings), and takes the last
/// (registry-scanner `pkg/tag/tag.go` `SortByDate`, `pkg/image/version.go`
/// `GetNewestVersionFromTags`): the newest build wins, and of equal times the greatest name.
pub fn rank(dated: &mut [Dated<'_>]) {
    dated.sort_by(|a, b| better(b, a));
}

fn better(a: &Dated<'_>, b: &Dated<'_>) -> Ordering {
    a.created
        .cmp(&b.created)
        .then_with(|| a.tag.as_bytes().cmp(b.tag.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// registry-scanner `pkg/tag/tag_test.go` `Test_SortableImageTagList`/`SortByDate`:
    /// ascending by date, so the last (here: first) is the newest; equal dates by name.
    #[test]
    fn newest_first_and_equal_times_by_the_greatest_name() {
        let mut d = vec![
            Dated {
                index: 0,
                tag: "b",
                created: t("2026-01-02T00:00:00Z"),
            },
            Dated {
                index: 1,
                tag: "z-old",
                created: t("2026-01-01T00:00:00Z"),
            },
            Dated {
                index: 2,
                tag: "a",
                created: t("2026-01-02T00:00:00Z"),
            },
            Dated {
                index: 3,
                tag: "c",
                created: t("2026-01-02T00:00:00+01:00"),
            },
        ];
        rank(&mut d);
        let order: Vec<&str> = d.iter().map(|d| d.tag).collect();
        assert_eq!(order, ["b", "a", "c", "z-old"]);
    }

    #[test]
    fn platforms_any_one_is_enough_and_none_means_all() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        let spec = BuildSpec {
            platforms: vec![p("linux/arm64"), p("linux/amd64")],
        };
        assert!(spec.wants(&p("linux/amd64")));
        assert!(spec.wants(&p("linux/arm64/v8")));
        assert!(!spec.wants(&p("linux/s390x")));
        assert!(BuildSpec::default().wants(&p("windows/amd64")));
        assert_eq!(spec.platforms_key(), "linux/arm64,linux/amd64");
    }
}
