//! A `spec.schedules[]` window's pattern, read: a five-field cron in an IANA time
//! zone (croner on jiff zones), and the window it gives at a time. Here, with the
//! type, so that validation (lint, the webhook) and the engine read it the same
//! way; the engine combines the active windows into bounds (`engine::schedule`).
//!
//! A window is active at `now` when the pattern's latest start at or before `now`
//! (in the schedule's time zone) is less than `duration` ago. Starts follow croner's
//! DST rules (the Open Cron Pattern Spec): a start a spring-forward gap skips
//! happens at the first minute after the gap, a start in a repeated hour happens
//! once, at its first occurrence.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::policy::Schedule;

/// Why a schedule cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "cron {cron:?}: {reason} (five fields: minute hour day-of-month month day-of-week, e.g. \"0 8 * * 1-5\")"
    )]
    Cron { cron: String, reason: String },
    #[error(
        "timezone {zone:?} is not an IANA time zone (e.g. \"Europe/Berlin\", \"America/New_York\", \"UTC\")"
    )]
    TimeZone { zone: String },
    #[error("duration must be greater than 0")]
    Duration,
}

impl ScheduleError {
    /// The field of `spec.schedules[i]` the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::Cron { .. } => "cron",
            ScheduleError::TimeZone { .. } => "timezone",
            ScheduleError::Duration => "duration",
        }
    }
}

/// A schedule's pattern and zone, parsed.
#[derive(Debug, Clone)]
pub struct Parsed {
    cron: Cron,
    zone: TimeZone,
    duration_ms: i64,
}

/// Parse a schedule's cron (exactly five fields), time zone and duration.
pub fn parse(schedule: &Schedule) -> Result<Parsed, ScheduleError> {
    let fields = schedule.cron.split_whitespace().count();
    if fields != 5 {
        return Err(ScheduleError::Cron {
            cron: schedule.cron.clone(),
            reason: format!("has {fields} fields, not 5"),
        });
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(&schedule.cron)
        .map_err(|e| ScheduleError::Cron {
            cron: schedule.cron.clone(),
            reason: e.to_string(),
        })?;
    let zone = match schedule.timezone.as_deref() {
        None | Some("UTC") => TimeZone::UTC,
        Some(name) => TimeZone::get(name).map_err(|_| ScheduleError::TimeZone {
            zone: name.to_string(),
        })?,
    };
    let duration_ms = i64::try_from(schedule.duration.as_millis()).unwrap_or(i64::MAX);
    if duration_ms <= 0 {
        return Err(ScheduleError::Duration);
    }
    Ok(Parsed {
        cron,
        zone,
        duration_ms,
    })
}

impl Parsed {
    /// The window that contains `now` (Unix ms): its start and end, or `None`.
    pub fn window_at(&self, now: i64) -> Option<(i64, i64)> {
        let at = Timestamp::from_millisecond(now)
            .ok()?
            .to_zoned(self.zone.clone());
        let start = self.cron.find_previous_occurrence(&at, true).ok()?;
        let start = start.timestamp().as_millisecond();
        let end = start.saturating_add(self.duration_ms);
        (start <= now && now < end).then_some((start, end))
    }

    /// The next start strictly after `now` (Unix ms).
    pub fn next_start(&self, now: i64) -> Option<i64> {
        let at = Timestamp::from_millisecond(now)
            .ok()?
            .to_zoned(self.zone.clone());
        let next = self.cron.find_next_occurrence(&at, false).ok()?;
        Some(next.timestamp().as_millisecond())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Duration;

    fn schedule(cron: &str, zone: Option<&str>, minutes: u64) -> Schedule {
        Schedule {
            name: "s".into(),
            cron: cron.into(),
            timezone: zone.map(str::to_string),
            duration: Duration::from_secs(minutes * 60),
            min_replicas: Some(10),
            max_replicas: None,
            node_pool: None,
        }
    }

    fn ms(rfc3339: &str) -> i64 {
        rfc3339
            .parse::<Timestamp>()
            .expect("a time")
            .as_millisecond()
    }

    #[test]
    fn a_window_is_active_from_its_start_for_its_duration() {
        let p = parse(&schedule("0 8 * * 1-5", Some("Europe/Berlin"), 120)).expect("parses");
        // Monday 2026-11-30, 08:00 in Berlin is 07:00 UTC (CET, +01:00).
        assert_eq!(p.window_at(ms("2026-11-30T06:59:59Z")), None);
        assert_eq!(
            p.window_at(ms("2026-11-30T07:00:00Z")),
            Some((ms("2026-11-30T07:00:00Z"), ms("2026-11-30T09:00:00Z")))
        );
        assert!(p.window_at(ms("2026-11-30T08:59:59Z")).is_some());
        assert_eq!(p.window_at(ms("2026-11-30T09:00:00Z")), None);
        // Saturday: no window.
        assert_eq!(p.window_at(ms("2026-12-05T07:30:00Z")), None);
        assert_eq!(
            p.next_start(ms("2026-12-05T07:30:00Z")),
            Some(ms("2026-12-07T07:00:00Z"))
        );
    }

    #[test]
    fn dst_gaps_and_repeats_behave_as_documented() {
        // Spring forward in Berlin: 2026-03-29 02:00 CET jumps to 03:00 CEST. A
        // 02:30 start happens at 03:00 CEST (01:00 UTC), the first minute after it.
        let p = parse(&schedule("30 2 * * *", Some("Europe/Berlin"), 60)).expect("parses");
        assert_eq!(
            p.window_at(ms("2026-03-29T01:10:00Z")).map(|w| w.0),
            Some(ms("2026-03-29T01:00:00Z"))
        );
        // The day before and after: 02:30 local, CET then CEST.
        assert_eq!(
            p.window_at(ms("2026-03-28T01:40:00Z")).map(|w| w.0),
            Some(ms("2026-03-28T01:30:00Z"))
        );
        assert_eq!(
            p.window_at(ms("2026-03-30T00:40:00Z")).map(|w| w.0),
            Some(ms("2026-03-30T00:30:00Z"))
        );
        // Fall back: 2026-10-25 03:00 CEST goes back to 02:00 CET; 02:30 happens
        // twice on the clock, the window starts once, at the first (00:30 UTC).
        assert_eq!(
            p.window_at(ms("2026-10-25T00:45:00Z")).map(|w| w.0),
            Some(ms("2026-10-25T00:30:00Z"))
        );
        // An hour later the clock reads 02:30 again: still the first window (it
        // lasts 60 min, so it has just ended), not a second one.
        assert_eq!(p.window_at(ms("2026-10-25T01:30:00Z")), None);
        assert_eq!(p.window_at(ms("2026-10-25T01:45:00Z")), None);
    }

    #[test]
    fn bad_patterns_zones_and_durations_name_their_field() {
        let err = parse(&schedule("0 8 * *", None, 60)).unwrap_err();
        assert_eq!(err.field(), "cron");
        assert!(err.to_string().contains("has 4 fields, not 5"), "{err}");
        let err = parse(&schedule("0 0 8 * * 1-5", None, 60)).unwrap_err();
        assert!(err.to_string().contains("has 6 fields"), "{err}");
        let err = parse(&schedule("61 8 * * *", None, 60)).unwrap_err();
        assert_eq!(err.field(), "cron");
        let err = parse(&schedule("0 8 * * *", Some("Mars/Olympus"), 60)).unwrap_err();
        assert_eq!(err.field(), "timezone");
        assert!(err.to_string().contains("\"Mars/Olympus\""), "{err}");
        let err = parse(&schedule("0 8 * * *", None, 0)).unwrap_err();
        assert_eq!(err, ScheduleError::Duration);
    }
}
