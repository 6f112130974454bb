//! When a static role's password is rotated: a fixed period, or a 5-field cron schedule (UTC).
//!
//! Cron patterns are parsed by `croner` with seconds and years disallowed, so a pattern means
//! what it means to crontab(5) (`minute hour day-of-month month day-of-week`).

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Rotating more often than this is a mistake (each rotation is a login and a write).
pub const MIN_PERIOD: Duration = Duration::from_secs(5);

/// A rotation schedule.
#[derive(Clone, Debug)]
pub enum Schedule {
    Period(Duration),
    Cron(Box<Cron>),
}

impl Schedule {
    /// `rotation_period` such as `24h`.
    pub fn period(text: &str) -> Result<Self, String> {
        let period = crate::controller_config::parse_duration(text)?;
        if period < MIN_PERIOD {
            return Err(format!(
                "rotation_period {text:?} is shorter than the minimum of 5s"
            ));
        }
        Ok(Self::Period(period))
    }

    /// `schedule` such as `0 3 * * SUN` (UTC).
    pub fn cron(text: &str) -> Result<Self, String> {
        let fields = text.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "schedule {text:?} has {fields} fields; write the 5 of crontab: minute hour day-of-month month day-of-week (e.g. \"0 3 * * SUN\")"
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        parser
            .parse(text)
            .map(|cron| Self::Cron(Box::new(cron)))
            .map_err(|e| format!("schedule {text:?} is not a cron pattern: {e}"))
    }

    /// The first rotation time strictly after `after` (for a period: `after` + period).
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        match self {
            Self::Period(period) => after.checked_add(*period),
            Self::Cron(cron) => {
                let since = after.duration_since(UNIX_EPOCH).ok()?;
                let start = chrono::DateTime::<chrono::Utc>::from_timestamp(
                    i64::try_from(since.as_secs()).ok()?,
                    since.subsec_nanos(),
                )?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                let secs = u64::try_from(next.timestamp()).ok()?;
                Some(UNIX_EPOCH + Duration::from_secs(secs))
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::cron(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules_are_five_fields_in_utc() {
        let schedule = Schedule::cron("30 3 * * *").unwrap();
        // 2024-01-01T00:00:00Z → 03:30 the same day.
        let start = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        assert_eq!(
            schedule.next_after(start),
            Some(start + Duration::from_secs(3 * 3600 + 1800))
        );
        assert!(
            Schedule::cron("* * * * * *")
                .unwrap_err()
                .contains("6 fields")
        );
        assert!(
            Schedule::cron("61 * * * *")
                .unwrap_err()
                .contains("not a cron")
        );
    }

    #[test]
    fn periods_have_a_minimum() {
        assert!(
            matches!(Schedule::period("24h"), Ok(Schedule::Period(p)) if p == Duration::from_secs(86400))
        );
        assert!(Schedule::period("1s").unwrap_err().contains("minimum"));
        assert!(Schedule::period("soon").is_err());
    }
}
