//! Quota periods: calendar months in UTC.

use chrono::{DateTime, Datelike, TimeZone, Utc};

/// One quota period: a calendar month in UTC, named `YYYY-MM`.
///
/// It starts on the 1st at 00:00:00 UTC and resets at the 1st of the next month, 00:00:00 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Period {
    key: String,
    starts_at: DateTime<Utc>,
    resets_at: DateTime<Utc>,
}

impl Period {
    /// The period that contains `t`.
    pub fn containing(t: DateTime<Utc>) -> Period {
        let (y, m) = (t.year(), t.month());
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let starts_at = first_of_month(y, m);
        let resets_at = first_of_month(ny, nm);
        Period {
            key: format!("{y:04}-{m:02}"),
            starts_at,
            resets_at,
        }
    }

    /// `YYYY-MM`, the form stored in `platform.quota_counters.period` and in Redis keys.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// First instant of the period.
    pub fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }

    /// First instant after the period: when the monthly quota resets.
    pub fn resets_at(&self) -> DateTime<Utc> {
        self.resets_at
    }

    /// Length of the period in whole seconds (28–31 days).
    pub fn length_secs(&self) -> u64 {
        (self.resets_at - self.starts_at).num_seconds().max(0) as u64
    }

    /// Whole seconds from `now` until the reset, rounded up (0 once the period is over).
    pub fn secs_until_reset(&self, now: DateTime<Utc>) -> u64 {
        let ms = (self.resets_at - now).num_milliseconds();
        if ms <= 0 {
            0
        } else {
            (ms as u64).div_ceil(1000)
        }
    }
}

fn first_of_month(y: i32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("the first of a month at midnight UTC always exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn december_rolls_into_next_year() {
        let p = Period::containing(Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap());
        assert_eq!(p.key(), "2026-12");
        assert_eq!(
            p.resets_at(),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(p.length_secs(), 31 * 86_400);
        assert_eq!(
            p.secs_until_reset(Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap()),
            1
        );
    }

    #[test]
    fn february_leap_year() {
        let p = Period::containing(Utc.with_ymd_and_hms(2028, 2, 1, 0, 0, 0).unwrap());
        assert_eq!(p.key(), "2028-02");
        assert_eq!(p.length_secs(), 29 * 86_400);
    }
}
