//! A target's delivery schedule: a cron expression in UTC. Changes found outside it wait
//! for the next time it names.

use std::fmt;
use std::str::FromStr as _;

use chrono::{DateTime, Utc};

/// Five fields (minute hour day month weekday, as crontab) or six/seven with seconds first
/// (and a year last), as the `cron` crate reads them.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: cron::Schedule,
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields = text.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {text}"),
            6 | 7 => text.to_string(),
            n => {
                return Err(format!(
                    "{text:?} has {n} fields; give 5 (minute hour day month weekday) or 6 with seconds first"
                ));
            }
        };
        let cron = cron::Schedule::from_str(&full).map_err(|e| format!("{text:?}: {e}"))?;
        if cron.upcoming(Utc).next().is_none() {
            return Err(format!("{text:?} never fires"));
        }
        Ok(Self {
            text: text.to_string(),
            cron,
        })
    }

    /// The first time at or after `now` (to the second) that the schedule names.
    pub fn next_from(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let second = now.timestamp();
        let floor = DateTime::from_timestamp(second, 0)?;
        if self.cron.includes(floor) {
            return Some(floor);
        }
        self.cron.after(&floor).next()
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
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

    #[test]
    fn five_fields_read_as_crontab() {
        let s = Schedule::parse("*/10 8-18 * * Mon-Fri").unwrap();
        // Monday 2026-11-23 07:59:30 UTC: the window opens at 08:00.
        assert_eq!(
            s.next_from(at("2026-11-23T07:59:30Z")),
            Some(at("2026-11-23T08:00:00Z"))
        );
        // Inside the window, on a named second: now.
        assert_eq!(
            s.next_from(at("2026-11-23T09:10:00.400Z")),
            Some(at("2026-11-23T09:10:00Z"))
        );
        // Friday evening waits for Monday morning.
        assert_eq!(
            s.next_from(at("2026-11-27T19:00:00Z")),
            Some(at("2026-11-30T08:00:00Z"))
        );
    }

    #[test]
    fn six_fields_take_seconds_first() {
        let s = Schedule::parse("* * 8-18 * * Mon-Fri").unwrap();
        assert_eq!(
            s.next_from(at("2026-11-23T12:34:56Z")),
            Some(at("2026-11-23T12:34:56Z"))
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(Schedule::parse("* * *").unwrap_err().contains("3 fields"));
        assert!(Schedule::parse("99 * * * *").is_err());
    }
}
