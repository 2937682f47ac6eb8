//! A target's delivery schedule: a cron expression read exactly as crontab(5) reads it, in a
//! time zone (default UTC). Changes found outside it wait for the next time it names.
//!
//! crontab(5): fields minute (0-59), hour (0-23), day of month (1-31), month (1-12 or `jan`..
//! `dec`), day of week (0-7, 0 and 7 both Sunday, or `sun`..`sat`); `*`, ranges `a-b`, lists,
//! steps `a-b/n` and `*/n`; `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly`. When day of month and day of week are both restricted, a day
//! matching either runs; a field starting with `*` (`*/2` too) is unrestricted, as cron's own
//! parser decides it. tagsmith also reads six fields with seconds first, ranges and lists of
//! names (`Mon-Fri`) and full day and month names.
//!
//! Local times a daylight-saving change skips are delivered at the first instant after the
//! gap; times it repeats count once, at their first occurrence: what cron(8) does for clock
//! changes of less than three hours.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike as _, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// How far ahead a time is looked for: long enough for `0 0 29 2 *` across a century's
/// skipped leap year (eight years), short enough to say "never" at once.
const HORIZON_DAYS: u64 = 8 * 366 + 1;

/// An IANA time zone (`Europe/Berlin`); UTC by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Zone(Option<chrono_tz::Tz>);

impl FromStr for Zone {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "UTC" {
            return Ok(Self(None));
        }
        s.parse::<chrono_tz::Tz>()
            .map(|tz| Self(Some(tz)))
            .map_err(|_| {
                format!("unknown time zone {s:?}; give an IANA name such as Europe/Berlin or UTC")
            })
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("UTC"),
            Some(tz) => f.write_str(tz.name()),
        }
    }
}

/// Allowed values of one field, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    bits: u64,
    /// Started with `*`: what crontab calls unrestricted, for the day-of-month/day-of-week rule.
    star: bool,
}

impl Field {
    fn has(self, value: u32) -> bool {
        self.bits & (1 << value) != 0
    }
}

#[derive(Clone)]
pub struct Schedule {
    text: String,
    zone: Zone,
    seconds: Field,
    minutes: Field,
    hours: Field,
    days: Field,
    months: Field,
    /// 0-6, Sunday 0 (a 7 is folded onto it).
    weekdays: Field,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const MONTHS_LONG: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const WEEKDAYS_LONG: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

struct Spec {
    name: &'static str,
    low: u32,
    high: u32,
    /// Names for `low`, `low + 1`, ...
    names: &'static [&'static str],
    long_names: &'static [&'static str],
}

const SECOND: Spec = Spec {
    name: "second",
    low: 0,
    high: 59,
    names: &[],
    long_names: &[],
};
const MINUTE: Spec = Spec {
    name: "minute",
    low: 0,
    high: 59,
    names: &[],
    long_names: &[],
};
const HOUR: Spec = Spec {
    name: "hour",
    low: 0,
    high: 23,
    names: &[],
    long_names: &[],
};
const DAY: Spec = Spec {
    name: "day of month",
    low: 1,
    high: 31,
    names: &[],
    long_names: &[],
};
const MONTH: Spec = Spec {
    name: "month",
    low: 1,
    high: 12,
    names: &MONTHS,
    long_names: &MONTHS_LONG,
};
const WEEKDAY: Spec = Spec {
    name: "day of week",
    low: 0,
    high: 7,
    names: &WEEKDAYS,
    long_names: &WEEKDAYS_LONG,
};

impl Spec {
    fn value(&self, text: &str) -> Result<u32, String> {
        let lower = text.to_ascii_lowercase();
        let named = self
            .names
            .iter()
            .position(|n| *n == lower)
            .or_else(|| self.long_names.iter().position(|n| *n == lower));
        let value = match named {
            Some(i) => self.low + u32::try_from(i).unwrap_or(u32::MAX),
            None => text
                .parse::<u32>()
                .map_err(|_| format!("{}: {text:?} is not a number or a name", self.name))?,
        };
        if value < self.low || value > self.high {
            return Err(format!(
                "{}: {value} is outside {}-{}",
                self.name, self.low, self.high
            ));
        }
        Ok(value)
    }

    fn parse(&self, text: &str) -> Result<Field, String> {
        let mut bits = 0u64;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => {
                    let step: u32 = step
                        .parse()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| format!("{}: bad step in {item:?}", self.name))?;
                    (range, Some(step))
                }
                None => (item, None),
            };
            let (first, last) = if range == "*" {
                (self.low, self.high)
            } else if let Some((a, b)) = range.split_once('-') {
                (self.value(a)?, self.value(b)?)
            } else {
                let a = self.value(range)?;
                // `a/n` counts from `a` to the end, as cronie reads it.
                (a, if step.is_some() { self.high } else { a })
            };
            if first > last {
                return Err(format!("{}: range {range:?} runs backwards", self.name));
            }
            let step = step.unwrap_or(1);
            let mut v = first;
            while v <= last {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok(Field {
            bits,
            star: text.starts_with('*'),
        })
    }
}

impl Schedule {
    /// [`Self::parse_in`] UTC.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_in(text, Zone::default())
    }

    /// Five fields (minute hour day month weekday, as crontab), six with seconds first, or
    /// one of crontab's `@` names; read in `zone`.
    pub fn parse_in(text: &str, zone: Zone) -> Result<Self, String> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            "@reboot" => return Err(format!("{text:?} names no time of day")),
            other if other.starts_with('@') => {
                return Err(format!(
                    "{text:?} is not one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"
                ));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "{text:?} has {n} fields; give 5 (minute hour day month weekday) or 6 with seconds first"
                ));
            }
        };
        let at = |e: String| format!("{text:?}: {e}");
        let mut weekdays = WEEKDAY.parse(rest[4]).map_err(at)?;
        // 7 is Sunday as 0 is.
        if weekdays.has(7) {
            weekdays.bits = (weekdays.bits & !(1 << 7)) | 1;
        }
        let schedule = Self {
            text: text.to_string(),
            zone,
            seconds: SECOND.parse(seconds).map_err(at)?,
            minutes: MINUTE.parse(rest[0]).map_err(at)?,
            hours: HOUR.parse(rest[1]).map_err(at)?,
            days: DAY.parse(rest[2]).map_err(at)?,
            months: MONTH.parse(rest[3]).map_err(at)?,
            weekdays,
        };
        if schedule.next_from(Utc::now()).is_none() {
            return Err(format!("{text:?} never fires"));
        }
        Ok(schedule)
    }

    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// The first time at or after `now` (to the second) that the schedule names.
    pub fn next_from(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let now = DateTime::from_timestamp(now.timestamp(), 0)?;
        match self.zone.0 {
            None => self.next_in(&Utc, now),
            Some(tz) => self.next_in(&tz, now),
        }
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if !self.months.has(date.month()) {
            return false;
        }
        let dom = self.days.has(date.day());
        let dow = self.weekdays.has(date.weekday().num_days_from_sunday());
        // crontab(5): both restricted, either may match; otherwise both must.
        if self.days.star || self.weekdays.star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn next_in<Z: TimeZone>(&self, zone: &Z, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Start a day early: a local time a gap pushed forward may land after `now`.
        let start = now.with_timezone(zone).date_naive().pred_opt()?;
        for offset in 0..HORIZON_DAYS {
            let date = start.checked_add_days(Days::new(offset))?;
            if !self.day_matches(date) {
                continue;
            }
            for hour in (0..24).filter(|h| self.hours.has(*h)) {
                for minute in (0..60).filter(|m| self.minutes.has(*m)) {
                    for second in (0..60).filter(|s| self.seconds.has(*s)) {
                        let time = NaiveTime::from_hms_opt(hour, minute, second)?;
                        if let Some(at) = to_utc(zone, date.and_time(time))
                            && at >= now
                        {
                            return Some(at);
                        }
                    }
                }
            }
        }
        None
    }
}

/// A local time as UTC: a repeated time at its first occurrence, a skipped one at the end of
/// the gap (the first whole minute that exists again; gaps are whole minutes, hours at most).
fn to_utc<Z: TimeZone>(zone: &Z, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::{LocalResult, Timelike as _};
    let exact = |t: NaiveDateTime| match zone.from_local_datetime(&t) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.to_utc()),
        LocalResult::None => None,
    };
    exact(local).or_else(|| {
        let minute = local.with_second(0)?;
        (1..=24 * 60).find_map(|m| exact(minute.checked_add_signed(chrono::TimeDelta::minutes(m))?))
    })
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?} in {})", self.text, self.zone)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn utc(text: &str) -> Schedule {
        Schedule::parse(text).unwrap()
    }

    fn zoned(text: &str, zone: &str) -> Schedule {
        Schedule::parse_in(text, zone.parse().unwrap()).unwrap()
    }

    /// (expression, now, next). Expressions and their meaning from crontab(5) (Debian cron
    /// 3.0pl1: the field table "day of week 0-7 (0 or 7 is Sun, or use names)", the ranges,
    /// lists and steps paragraphs, the day-of-month/day-of-week note with its example, the
    /// `@` strings, and EXAMPLE CRON FILE). 2026-11-23 is a Monday.
    const CRONTAB_5: &[(&str, &str, &str)] = &[
        // "run five minutes after midnight, every day"
        ("5 0 * * *", "2026-11-23T10:00:00Z", "2026-11-24T00:05:00Z"),
        // "run at 2:15pm on the first of every month"
        (
            "15 14 1 * *",
            "2026-11-23T10:00:00Z",
            "2026-12-01T14:15:00Z",
        ),
        // "run at 10 pm on weekdays": Friday after ten waits for Monday
        (
            "0 22 * * 1-5",
            "2026-11-27T22:30:00Z",
            "2026-11-30T22:00:00Z",
        ),
        (
            "0 22 * * 1-5",
            "2026-11-28T08:00:00Z",
            "2026-11-30T22:00:00Z",
        ),
        // "run 23 minutes after midn, 2am, 4am ..., everyday"
        (
            "23 0-23/2 * * *",
            "2026-11-23T00:00:00Z",
            "2026-11-23T00:23:00Z",
        ),
        (
            "23 0-23/2 * * *",
            "2026-11-23T00:24:00Z",
            "2026-11-23T02:23:00Z",
        ),
        (
            "23 */2 * * *",
            "2026-11-23T01:00:00Z",
            "2026-11-23T02:23:00Z",
        ),
        // "run at 5 after 4 every sunday"
        (
            "5 4 * * sun",
            "2026-11-23T10:00:00Z",
            "2026-11-29T04:05:00Z",
        ),
        // "hours 8, 9, 10 and 11"
        (
            "0 8-11 * * *",
            "2026-11-23T11:30:00Z",
            "2026-11-24T08:00:00Z",
        ),
        // Lists: "1,2,5,9" and "0-4,8-12"
        (
            "1,2,5,9 0-4,8-12 * * *",
            "2026-11-23T04:10:00Z",
            "2026-11-23T08:01:00Z",
        ),
        // 0 or 7 is Sunday; 1 is Monday.
        ("0 9 * * 0", "2026-11-23T10:00:00Z", "2026-11-29T09:00:00Z"),
        ("0 9 * * 7", "2026-11-23T10:00:00Z", "2026-11-29T09:00:00Z"),
        ("0 9 * * 1", "2026-11-28T10:00:00Z", "2026-11-30T09:00:00Z"),
        (
            "0 9 * * 6-7",
            "2026-11-23T10:00:00Z",
            "2026-11-28T09:00:00Z",
        ),
        // Names, case doesn't matter.
        (
            "0 9 * * SUN",
            "2026-11-23T10:00:00Z",
            "2026-11-29T09:00:00Z",
        ),
        (
            "0 12 * Jan mon",
            "2026-11-23T10:00:00Z",
            "2027-01-04T12:00:00Z",
        ),
        // "30 4 1,15 * 5": the 1st and 15th of each month, plus every Friday.
        (
            "30 4 1,15 * 5",
            "2026-11-23T10:00:00Z",
            "2026-11-27T04:30:00Z",
        ),
        (
            "30 4 1,15 * 5",
            "2026-11-28T10:00:00Z",
            "2026-12-01T04:30:00Z",
        ),
        (
            "30 4 1,15 * 5",
            "2026-12-05T10:00:00Z",
            "2026-12-11T04:30:00Z",
        ),
        (
            "30 4 1,15 * 5",
            "2026-12-12T10:00:00Z",
            "2026-12-15T04:30:00Z",
        ),
        // A day of month alone (the "2nd Sunday" example's 8-14) ignores the weekday.
        (
            "0 4 8-14 * *",
            "2026-11-23T10:00:00Z",
            "2026-12-08T04:00:00Z",
        ),
        // The @ strings.
        ("@yearly", "2026-11-23T10:00:00Z", "2027-01-01T00:00:00Z"),
        ("@annually", "2026-11-23T10:00:00Z", "2027-01-01T00:00:00Z"),
        ("@monthly", "2026-11-23T10:00:00Z", "2026-12-01T00:00:00Z"),
        ("@weekly", "2026-11-23T10:00:00Z", "2026-11-29T00:00:00Z"),
        ("@daily", "2026-11-23T10:00:00Z", "2026-11-24T00:00:00Z"),
        ("@midnight", "2026-11-23T10:00:00Z", "2026-11-24T00:00:00Z"),
        ("@hourly", "2026-11-23T10:00:01Z", "2026-11-23T11:00:00Z"),
    ];

    #[test]
    fn next_times_follow_crontab_5() {
        for (expr, now, next) in CRONTAB_5 {
            assert_eq!(
                utc(expr).next_from(at(now)),
                Some(at(next)),
                "{expr} from {now}"
            );
        }
    }

    #[test]
    fn a_day_field_starting_with_a_star_is_unrestricted_as_cron_parses_it() {
        // cron's entry.c sets DOW_STAR/DOM_STAR when the field's first character is '*', and
        // cron.c then needs both days to match: "*/2" is not "restricted".
        let s = utc("0 0 1 * */2");
        // 2026-12-01 is a Tuesday (2), one of 0,2,4,6.
        assert_eq!(
            s.next_from(at("2026-11-23T10:00:00Z")),
            Some(at("2026-12-01T00:00:00Z"))
        );
        // 2027-01-01 is a Friday (5): skipped; 2027-02-01 a Monday (1): skipped; 2027-03-01
        // a Monday too; 2027-04-01 a Thursday (4): the next.
        assert_eq!(
            s.next_from(at("2026-12-01T00:00:01Z")),
            Some(at("2027-04-01T00:00:00Z"))
        );
        // Restricted both: either. Feb 30 never exists, but Mondays in February do.
        assert_eq!(
            utc("0 0 30 2 mon").next_from(at("2026-11-23T10:00:00Z")),
            Some(at("2027-02-01T00:00:00Z"))
        );
    }

    #[test]
    fn inside_a_window_on_a_named_second_is_now() {
        let s = utc("*/10 8-18 * * Mon-Fri");
        assert_eq!(
            s.next_from(at("2026-11-23T07:59:30Z")),
            Some(at("2026-11-23T08:00:00Z"))
        );
        assert_eq!(
            s.next_from(at("2026-11-23T09:10:00.400Z")),
            Some(at("2026-11-23T09:10:00Z"))
        );
        assert_eq!(
            s.next_from(at("2026-11-27T19:00:00Z")),
            Some(at("2026-11-30T08:00:00Z"))
        );
    }

    #[test]
    fn six_fields_take_seconds_first() {
        let s = utc("* * 8-18 * * Mon-Fri");
        assert_eq!(
            s.next_from(at("2026-11-23T12:34:56Z")),
            Some(at("2026-11-23T12:34:56Z"))
        );
        let s = utc("30 0 9 * * 1");
        assert_eq!(
            s.next_from(at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-30T09:00:30Z"))
        );
    }

    #[test]
    fn a_time_zone_moves_the_times_and_follows_daylight_saving() {
        // Europe/Berlin is UTC+1 in November, UTC+2 in June.
        let s = zoned("0 9 * * 1-5", "Europe/Berlin");
        assert_eq!(
            s.next_from(at("2026-11-23T07:00:00Z")),
            Some(at("2026-11-23T08:00:00Z"))
        );
        assert_eq!(
            s.next_from(at("2026-06-01T00:00:00Z")),
            Some(at("2026-06-01T07:00:00Z"))
        );
        // The weekday is the zone's: Monday 00:30 in Tokyo is Sunday in UTC.
        let s = zoned("30 0 * * 1", "Asia/Tokyo");
        assert_eq!(
            s.next_from(at("2026-11-28T00:00:00Z")),
            Some(at("2026-11-29T15:30:00Z"))
        );
        let s = zoned("0 0 * * *", "America/New_York");
        assert_eq!(
            s.next_from(at("2026-11-23T12:00:00Z")),
            Some(at("2026-11-24T05:00:00Z"))
        );
    }

    #[test]
    fn skipped_local_times_run_after_the_gap_and_repeated_ones_once() {
        // 2026-03-29 in Berlin: 02:00 jumps to 03:00 (01:00 UTC); 02:30 never happens.
        let s = zoned("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            s.next_from(at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            s.next_from(at("2026-03-29T01:00:01Z")),
            Some(at("2026-03-30T00:30:00Z"))
        );
        // 2026-10-25: 03:00 falls back to 02:00; 02:30 happens at 00:30 and at 01:30 UTC.
        assert_eq!(
            s.next_from(at("2026-10-25T00:00:00Z")),
            Some(at("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            s.next_from(at("2026-10-25T00:31:00Z")),
            Some(at("2026-10-26T01:30:00Z"))
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_why() {
        let err = |t: &str| Schedule::parse(t).unwrap_err();
        assert!(err("* * *").contains("3 fields"));
        assert!(err("0 0 9 * * 1 2027").contains("7 fields"));
        assert!(err("99 * * * *").contains("minute: 99 is outside 0-59"));
        assert!(err("0 9 * * 8").contains("day of week: 8 is outside 0-7"));
        assert!(err("0 9 * * funday").contains("not a number or a name"));
        assert!(err("0 9 * * 5-1").contains("backwards"));
        assert!(err("*/0 * * * *").contains("bad step"));
        assert!(err("@reboot").contains("names no time"));
        assert!(err("@often").contains("not one of"));
        assert!(err("0 0 31 2 *").contains("never fires"));
        let zone = "Mars/Olympus".parse::<Zone>().unwrap_err();
        assert!(zone.contains("unknown time zone"), "{zone}");
        assert_eq!("UTC".parse::<Zone>().unwrap(), Zone::default());
    }

    #[test]
    fn a_targets_timezone_is_read_with_its_schedule_and_checked_where_it_is_written() {
        let config = |extra: &str| {
            crate::config::Config::parse(
                &format!(
                    "targets:\n  - name: prod\n    git: {{ url: 'file:///r.git' }}\n    schedule: '0 9 * * 1'\n{extra}"
                ),
                std::path::Path::new("/t.yaml"),
            )
        };
        let ok = config("    timezone: Europe/Berlin\n").unwrap();
        let schedule = ok.targets[0].schedule.as_ref().unwrap();
        assert_eq!(schedule.zone().to_string(), "Europe/Berlin");
        // Saturday: the next Monday 09:00 in Berlin is 08:00 UTC.
        assert_eq!(
            schedule.next_from(at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-30T08:00:00Z"))
        );
        let utc = config("").unwrap();
        assert_eq!(
            utc.targets[0].schedule.as_ref().unwrap().zone(),
            Zone::default()
        );
        let bad = config("    timezone: Mars/Olympus\n")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("/t.yaml:5:15: target prod: timezone: unknown time zone \"Mars/Olympus\""),
            "{bad}"
        );
        let alone = crate::config::Config::parse(
            "targets:\n  - name: prod\n    git: { url: 'file:///r.git' }\n    timezone: UTC\n",
            std::path::Path::new("/t.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            alone.contains("4:15: target prod: timezone is only read with a schedule"),
            "{alone}"
        );
    }
}
