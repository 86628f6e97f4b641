//! When a feed is due (R-FEED-2): daily, weekly (on a weekday) or monthly (on a day, at most
//! the 28th so every month has it) at a local time in a time zone, daylight saving included.
//! Pure: a feed is due when its latest scheduled instant has passed and it has not run since.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::model::{Every, Schedule};

/// Why a schedule is invalid, naming the field.
pub fn check(s: &Schedule) -> Result<(), (&'static str, String)> {
    NaiveTime::parse_from_str(&s.at, "%H:%M")
        .map_err(|_| ("schedule.at", format!("{:?} is not HH:MM", s.at)))?;
    s.timezone.parse::<Tz>().map_err(|_| {
        (
            "schedule.timezone",
            format!("{:?} is not an IANA time zone", s.timezone),
        )
    })?;
    match s.every {
        Every::Week if !matches!(s.weekday, Some(1..=7)) => Err((
            "schedule.weekday",
            "a weekly feed needs weekday 1 (Monday) to 7".into(),
        )),
        Every::Month if !matches!(s.day, Some(1..=28)) => {
            Err(("schedule.day", "a monthly feed needs day 1 to 28".into()))
        }
        _ => Ok(()),
    }
}

/// The latest scheduled instant at or before `now` (None for an invalid schedule).
pub fn latest(s: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz: Tz = s.timezone.parse().ok()?;
    let at = NaiveTime::parse_from_str(&s.at, "%H:%M").ok()?;
    let today = now.with_timezone(&tz).date_naive();
    let instant = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_time(at))
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(d.and_time(at) + Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
    };
    // Walk back day by day (at most a month and a bit) to the latest matching day.
    (0..40)
        .map(|back| today - Duration::days(back))
        .filter(|d| match s.every {
            Every::Day => true,
            Every::Week => s.weekday == Some(d.weekday().number_from_monday() as u8),
            Every::Month => s.day == Some(d.day() as u8),
        })
        .filter_map(instant)
        .find(|t| *t <= now)
}

/// Due: the latest scheduled instant passed after the last run (or after the feed's creation
/// when it never ran).
pub fn due(
    s: &Schedule,
    last_run: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    latest(s, now).is_some_and(|t| t > last_run.unwrap_or(created))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn daily() -> Schedule {
        Schedule {
            every: Every::Day,
            at: "06:00".into(),
            timezone: "Europe/Tallinn".into(),
            weekday: None,
            day: None,
        }
    }

    #[test]
    fn r_feed_2_a_daily_feed_is_due_after_its_local_time_once_a_day() {
        let created = at("2026-11-01T00:00:00Z");
        // 06:00 in Tallinn in November is 04:00 UTC.
        assert_eq!(
            latest(&daily(), at("2026-11-02T03:59:00Z")),
            Some(at("2026-11-01T04:00:00Z"))
        );
        assert!(
            due(&daily(), None, created, at("2026-11-02T03:59:00Z")),
            "never ran: yesterday's run is due"
        );
        assert_eq!(
            latest(&daily(), at("2026-11-02T04:30:00Z")),
            Some(at("2026-11-02T04:00:00Z"))
        );
        assert!(due(
            &daily(),
            Some(at("2026-11-01T04:01:00Z")),
            created,
            at("2026-11-02T04:30:00Z")
        ));
        assert!(
            !due(
                &daily(),
                Some(at("2026-11-02T04:01:00Z")),
                created,
                at("2026-11-02T23:00:00Z")
            ),
            "ran today already"
        );
        // Summer time: 06:00 in Tallinn in July is 03:00 UTC.
        assert_eq!(
            latest(&daily(), at("2026-07-10T12:00:00Z")),
            Some(at("2026-07-10T03:00:00Z"))
        );
    }

    #[test]
    fn r_feed_2_weekly_and_monthly_feeds_fall_on_their_day() {
        let weekly = Schedule {
            every: Every::Week,
            weekday: Some(1),
            ..daily()
        };
        // 2026-11-22 is a Sunday; the latest Monday 06:00 is the 16th.
        assert_eq!(
            latest(&weekly, at("2026-11-22T12:00:00Z")),
            Some(at("2026-11-16T04:00:00Z"))
        );
        let monthly = Schedule {
            every: Every::Month,
            day: Some(1),
            ..daily()
        };
        assert_eq!(
            latest(&monthly, at("2026-11-22T12:00:00Z")),
            Some(at("2026-11-01T04:00:00Z"))
        );
    }

    #[test]
    fn r_feed_2_schedules_are_checked_naming_the_field() {
        let mut s = daily();
        s.timezone = "Mars/Olympus".into();
        assert_eq!(check(&s).unwrap_err().0, "schedule.timezone");
        let mut s = daily();
        s.at = "25:00".into();
        assert_eq!(check(&s).unwrap_err().0, "schedule.at");
        let s = Schedule {
            every: Every::Month,
            day: Some(31),
            ..daily()
        };
        assert_eq!(check(&s).unwrap_err().0, "schedule.day");
    }
}
