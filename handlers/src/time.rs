//! The data contract's time format: RFC 3339, UTC, milliseconds
//! (`2026-11-28T00:13:36.123Z`), always taken from API Gateway's request
//! context, never from the function's clock.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::Error;

/// Formats milliseconds since the Unix epoch (API Gateway's `connectedAt` and
/// `requestTimeEpoch`) as the contract's timestamp.
pub fn rfc3339_millis(epoch_millis: i64) -> Result<String, Error> {
    DateTime::<Utc>::from_timestamp_millis(epoch_millis)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
        .ok_or(Error::TimeOutOfRange(epoch_millis))
}

/// Seconds from `start` to `end` (both contract timestamps), to the
/// millisecond; `None` when either does not parse. Never negative.
pub fn seconds_between(start: &str, end: &str) -> Option<f64> {
    let start = DateTime::parse_from_rfc3339(start).ok()?;
    let end = DateTime::parse_from_rfc3339(end).ok()?;
    let millis = (end - start).num_milliseconds().max(0);
    // Whole milliseconds as f64 are exact up to ~285,000 years.
    Some(millis as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(
            rfc3339_millis(1_795_824_816_123).ok().as_deref(),
            Some("2026-11-28T00:13:36.123Z")
        );
        assert_eq!(
            rfc3339_millis(0).ok().as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
    }

    #[test]
    fn rejects_times_chrono_cannot_represent() {
        assert!(matches!(
            rfc3339_millis(i64::MAX),
            Err(Error::TimeOutOfRange(i64::MAX))
        ));
    }

    #[test]
    fn measures_durations_to_the_millisecond() {
        assert_eq!(
            seconds_between("2026-11-28T00:13:36.123Z", "2026-11-28T00:15:01.000Z"),
            Some(84.877)
        );
        assert_eq!(
            seconds_between("2026-11-28T00:13:36.123Z", "2026-11-28T00:13:36.000Z"),
            Some(0.0),
            "clock skew never yields a negative duration"
        );
        assert_eq!(
            seconds_between("yesterday", "2026-11-28T00:13:36.000Z"),
            None
        );
    }
}
