//! The data contract's time format: RFC 3339, UTC, milliseconds
//! (`2026-11-28T00:13:36.123Z`), taken from API Gateway's request context,
//! never from the function's clock (except to judge a connection's age).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A point in time as the data contract writes it. Stored as a string, so it
/// sorts and compares in DynamoDB as it does here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// From milliseconds since the Unix epoch (API Gateway's `connectedAt`
    /// and `requestTimeEpoch`).
    pub fn from_epoch_millis(epoch_millis: i64) -> Result<Self, Error> {
        DateTime::<Utc>::from_timestamp_millis(epoch_millis)
            .map(Self)
            .ok_or(Error::TimeOutOfRange(epoch_millis))
    }

    /// This machine's clock, to the millisecond.
    pub fn now() -> Self {
        let now = Utc::now();
        Self(DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now))
    }

    pub fn epoch_millis(self) -> i64 {
        self.0.timestamp_millis()
    }

    /// Seconds from `earlier` to `self`, to the millisecond; never negative
    /// (clock skew between API Gateway's hosts is not a negative duration).
    pub fn seconds_since(self, earlier: Self) -> f64 {
        let millis = (self.0 - earlier.0).num_milliseconds().max(0);
        // Whole milliseconds as f64 are exact up to ~285,000 years.
        millis as f64 / 1000.0
    }

    /// `self - duration`, saturating at the earliest representable time.
    pub fn minus(self, duration: Duration) -> Self {
        chrono::TimeDelta::from_std(duration)
            .ok()
            .and_then(|delta| self.0.checked_sub_signed(delta))
            .map_or(Self(DateTime::<Utc>::MIN_UTC), Self)
    }

    /// `self + duration`, saturating at the latest representable time.
    pub fn plus(self, duration: Duration) -> Self {
        chrono::TimeDelta::from_std(duration)
            .ok()
            .and_then(|delta| self.0.checked_add_signed(delta))
            .map_or(Self(DateTime::<Utc>::MAX_UTC), Self)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl std::str::FromStr for Timestamp {
    type Err = chrono::ParseError;

    /// Any RFC 3339 time; kept in UTC.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(text).map(|time| Self(time.with_timezone(&Utc)))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(|error| {
            serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time: {error}"))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A contract time, in tests.
    pub(crate) fn at(text: &str) -> Timestamp {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn formats_with_milliseconds_and_z() {
        let time = Timestamp::from_epoch_millis(1_795_824_816_123).ok();
        assert_eq!(
            time.map(|time| time.to_string()).as_deref(),
            Some("2026-11-28T00:13:36.123Z")
        );
        assert_eq!(
            Timestamp::from_epoch_millis(0).map(|t| t.to_string()).ok(),
            Some("1970-01-01T00:00:00.000Z".to_owned())
        );
    }

    #[test]
    fn rejects_times_chrono_cannot_represent() {
        assert!(matches!(
            Timestamp::from_epoch_millis(i64::MAX),
            Err(Error::TimeOutOfRange(i64::MAX))
        ));
    }

    #[test]
    fn measures_durations_to_the_millisecond_and_never_negative() {
        let start = at("2026-11-28T00:13:36.123Z");
        assert_eq!(at("2026-11-28T00:15:01.000Z").seconds_since(start), 84.877);
        assert_eq!(at("2026-11-28T00:13:36.000Z").seconds_since(start), 0.0);
    }

    #[test]
    fn other_offsets_are_read_as_utc_and_written_in_the_contract_format() {
        assert_eq!(
            at("2026-11-28T01:13:36.1+01:00").to_string(),
            "2026-11-28T00:13:36.100Z"
        );
    }

    #[test]
    fn serializes_as_a_string_and_refuses_what_is_not_a_time() {
        let time = at("2026-11-28T00:13:36.123Z");
        let json = serde_json::to_string(&time).ok();
        assert_eq!(json.as_deref(), Some(r#""2026-11-28T00:13:36.123Z""#));
        let back: Result<Timestamp, _> = serde_json::from_str(r#""2026-11-28T00:13:36.123Z""#);
        assert_eq!(back.ok(), Some(time));
        assert!(serde_json::from_str::<Timestamp>(r#""yesterday""#).is_err());
        assert!(serde_json::from_str::<Timestamp>("1795824816123").is_err());
    }

    #[test]
    fn subtracting_a_duration_stays_in_range() {
        let time = at("2026-11-28T00:13:36.123Z");
        assert_eq!(
            time.minus(Duration::from_secs(10)).to_string(),
            "2026-11-28T00:13:26.123Z"
        );
        assert!(time.minus(Duration::MAX) < time);
    }
}
