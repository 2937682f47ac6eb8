//! The minimum-age gate: a tag is eligible only once its image is old enough.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where an image's age was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AgeSource {
    /// The image config's `created` time.
    Created,
    /// When tagsmith first saw the tag: the config has no `created`, or one in the future.
    FirstSeen,
}

impl AgeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::FirstSeen => "first seen",
        }
    }
}

/// A tag too young to use, and when it comes of age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooYoung {
    pub since: DateTime<Utc>,
    pub source: AgeSource,
    pub eligible_at: DateTime<Utc>,
}

/// The moment the image's age counts from: its `created` time when that is known and not in
/// the future (a clock skewed or a build tool that writes nonsense), else `first_seen`.
pub fn born(
    created: Option<DateTime<Utc>>,
    first_seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, AgeSource) {
    match created {
        Some(c) if c <= now => (c, AgeSource::Created),
        _ => (first_seen.min(now), AgeSource::FirstSeen),
    }
}

/// `Ok` when the image is at least `min_age` old at `now`.
pub fn check(
    min_age: Duration,
    created: Option<DateTime<Utc>>,
    first_seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), TooYoung> {
    let (since, source) = born(created, first_seen, now);
    let min = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
    let eligible_at = since
        .checked_add_signed(min)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if eligible_at <= now {
        Ok(())
    } else {
        Err(TooYoung {
            since,
            source,
            eligible_at,
        })
    }
}

/// An image config's `created`: RFC 3339, as OCI image-spec `config.md` defines it.
pub fn parse_created(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_created(s).unwrap()
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn old_enough_by_created() {
        let now = t("2026-12-02T12:00:00Z");
        assert!(check(DAY, Some(t("2026-12-01T12:00:00Z")), now, now).is_ok());
        let young = check(DAY, Some(t("2026-12-02T00:00:00Z")), now, now).unwrap_err();
        assert_eq!(young.source, AgeSource::Created);
        assert_eq!(young.eligible_at, t("2026-12-03T00:00:00Z"));
    }

    #[test]
    fn missing_or_future_created_counts_from_first_seen() {
        let now = t("2026-12-02T12:00:00Z");
        let seen = t("2026-12-02T06:00:00Z");
        for created in [None, Some(t("2027-01-01T00:00:00Z"))] {
            let young = check(DAY, created, seen, now).unwrap_err();
            assert_eq!(young.source, AgeSource::FirstSeen);
            assert_eq!(young.eligible_at, t("2026-12-03T06:00:00Z"));
        }
        assert!(check(DAY, None, t("2026-11-30T00:00:00Z"), now).is_ok());
    }

    #[test]
    fn created_with_offsets_and_fractions_parses() {
        assert_eq!(
            parse_created("2026-12-02T13:00:00.123456789+01:00"),
            Some(t("2026-12-02T12:00:00.123456789Z"))
        );
        assert_eq!(parse_created("yesterday"), None);
    }
}
