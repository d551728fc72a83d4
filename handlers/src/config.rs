//! Typed configuration, read from the environment once at start-up.

use std::env;

use crate::error::ConfigError;

/// Largest chat message accepted, in bytes of UTF-8, unless configured.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 * 1024;
/// How many Management API posts a fan-out keeps in flight, unless configured.
pub const DEFAULT_FANOUT_CONCURRENCY: usize = 64;
/// A single API Gateway WebSocket frame is at most 32 KB and a message at
/// most 128 KB; a chat message must leave room for its JSON envelope.
pub const MAX_CONFIGURABLE_MESSAGE_BYTES: usize = 32 * 1024;

/// The three tables, named by environment variables with the tutorial's names
/// as defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    pub active_connections: String,
    pub session_history: String,
    pub message_history: String,
}

impl Default for Tables {
    fn default() -> Self {
        Self {
            active_connections: "ActiveConnections".to_owned(),
            session_history: "SessionHistory".to_owned(),
            message_history: "MessageHistory".to_owned(),
        }
    }
}

impl Tables {
    pub fn from_env() -> Self {
        let defaults = Self::default();
        Self {
            active_connections: env_or("ACTIVE_CONNECTIONS_TABLE", defaults.active_connections),
            session_history: env_or("SESSION_HISTORY_TABLE", defaults.session_history),
            message_history: env_or("MESSAGE_HISTORY_TABLE", defaults.message_history),
        }
    }
}

/// Named limits a client can run into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted chat message, in bytes of UTF-8.
    pub max_message_bytes: usize,
    /// Management API posts in flight during one fan-out.
    pub fanout_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            fanout_concurrency: DEFAULT_FANOUT_CONCURRENCY,
        }
    }
}

impl Limits {
    /// Checks that the limits make sense: both positive, and a message small
    /// enough to fit in one API Gateway frame with its envelope.
    pub fn validated(self) -> Result<Self, ConfigError> {
        if self.max_message_bytes == 0 || self.max_message_bytes > MAX_CONFIGURABLE_MESSAGE_BYTES {
            return Err(ConfigError::OutOfRange {
                name: "MAX_MESSAGE_BYTES",
                value: self.max_message_bytes.to_string(),
                range: "1..=32768",
            });
        }
        if self.fanout_concurrency == 0 || self.fanout_concurrency > 1024 {
            return Err(ConfigError::OutOfRange {
                name: "FANOUT_CONCURRENCY",
                value: self.fanout_concurrency.to_string(),
                range: "1..=1024",
            });
        }
        Ok(self)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self {
            max_message_bytes: parse_env("MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)?,
            fanout_concurrency: parse_env("FANOUT_CONCURRENCY", DEFAULT_FANOUT_CONCURRENCY)?,
        }
        .validated()
    }
}

/// Everything a handler process reads from its environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub tables: Tables,
    pub limits: Limits,
    /// The Management API endpoint (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`
    /// or the local stack's URL). When unset, handlers derive it from each
    /// event; the stream processor, whose events carry no API, requires it.
    pub management_endpoint: Option<String>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            tables: Tables::from_env(),
            limits: Limits::from_env()?,
            management_endpoint: env_value("MANAGEMENT_API_ENDPOINT"),
        })
    }
}

/// The variable's value, unless it is unset or blank.
pub(crate) fn env_value(name: &str) -> Option<String> {
    env::var(name).ok().filter(|value| !value.trim().is_empty())
}

pub(crate) fn env_or(name: &str, default: String) -> String {
    env_value(name).unwrap_or(default)
}

fn parse_env(name: &'static str, default: usize) -> Result<usize, ConfigError> {
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|_| ConfigError::OutOfRange {
                name,
                value,
                range: "a positive integer",
            })
        }
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_reject_zero_and_oversized_values() {
        let zero = Limits {
            max_message_bytes: 0,
            ..Limits::default()
        };
        assert!(zero.validated().is_err());
        let too_big = Limits {
            max_message_bytes: MAX_CONFIGURABLE_MESSAGE_BYTES + 1,
            ..Limits::default()
        };
        assert!(too_big.validated().is_err());
        let no_fanout = Limits {
            fanout_concurrency: 0,
            ..Limits::default()
        };
        assert!(no_fanout.validated().is_err());
        assert_eq!(Limits::default().validated().ok(), Some(Limits::default()));
    }

    #[test]
    fn default_tables_are_the_tutorials() {
        let tables = Tables::default();
        assert_eq!(tables.active_connections, "ActiveConnections");
        assert_eq!(tables.session_history, "SessionHistory");
        assert_eq!(tables.message_history, "MessageHistory");
    }
}
