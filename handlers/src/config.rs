//! Typed configuration of a Lambda function, read from its environment once
//! at cold start. infra/serverless.yml sets these variables.

use std::env;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::access::{ClaimNames, DEFAULT_ROLES_CLAIM, DEFAULT_ROOMS_CLAIM, RoomAccess};
use crate::auth::{AuthSettings, DEFAULT_NAME_CLAIM, KeySource};
use crate::error::ConfigError;
use crate::limits::{
    CHAT_MESSAGE_BYTES_RANGE, ChatLimits, DEFAULT_CHAT_MESSAGE_BYTES, DEFAULT_FANOUT_CONCURRENCY,
    DEFAULT_MESSAGE_BURST, DEFAULT_MESSAGES_PER_SECOND, DEFAULT_PRESENCE_WINDOW_MS,
    FANOUT_CONCURRENCY_RANGE, MESSAGE_BURST_RANGE, MESSAGES_PER_SECOND_RANGE,
    PRESENCE_WINDOW_MS_RANGE, RETENTION_DAYS_RANGE,
};
use crate::management::ManagementEndpoint;
use crate::rate::Rate;
use crate::records::Retention;

/// The functions' environment variables, by name: the one home of the
/// names this module reads, that infra/serverless.yml sets (infra/tests and
/// handlers/tests/infra.rs compare), and that the tests and the bench pass.
pub mod var {
    /// The ActiveConnections table's name.
    pub const ACTIVE_CONNECTIONS_TABLE: &str = "ACTIVE_CONNECTIONS_TABLE";
    /// The SessionHistory table's name.
    pub const SESSION_HISTORY_TABLE: &str = "SESSION_HISTORY_TABLE";
    /// The MessageHistory table's name.
    pub const MESSAGE_HISTORY_TABLE: &str = "MESSAGE_HISTORY_TABLE";
    /// The Moderation table's name.
    pub const MODERATION_TABLE: &str = "MODERATION_TABLE";
    /// Where frames are posted: the Management API.
    pub const MANAGEMENT_API_ENDPOINT: &str = "MANAGEMENT_API_ENDPOINT";
    /// `open` or `closed`: who of the signed-in users may join which room.
    pub const ROOM_ACCESS: &str = "ROOM_ACCESS";
    /// With `open` access, the members-only rooms.
    pub const MEMBERS_ONLY_ROOMS: &str = "MEMBERS_ONLY_ROOMS";
    /// Days a chat message is kept; unset, for ever.
    pub const MESSAGE_RETENTION_DAYS: &str = "MESSAGE_RETENTION_DAYS";
    /// Days a session is kept; unset, for ever.
    pub const SESSION_RETENTION_DAYS: &str = "SESSION_RETENTION_DAYS";
    /// The `fanout` function, which a large room's fan-out hands its rest to.
    pub const FANOUT_FUNCTION: &str = "FANOUT_FUNCTION";
    /// The longest chat message.
    pub const MAX_MESSAGE_BYTES: &str = "MAX_MESSAGE_BYTES";
    /// Posts in flight during one fan-out.
    pub const FANOUT_CONCURRENCY: &str = "FANOUT_CONCURRENCY";
    /// The least time between two presence frames of a room, in ms.
    pub const PRESENCE_WINDOW_MS: &str = "PRESENCE_WINDOW_MS";
    /// Each connection's sustained messages per second; 0: off.
    pub const MESSAGE_RATE_PER_SECOND: &str = "MESSAGE_RATE_PER_SECOND";
    /// Each connection's burst of messages.
    pub const MESSAGE_RATE_BURST: &str = "MESSAGE_RATE_BURST";
    /// Sign-in: the HS256 secret.
    pub const AUTH_JWT_SECRET: &str = "AUTH_JWT_SECRET";
    /// Sign-in: the RS256 or ES256 public key (PEM).
    pub const AUTH_JWT_PUBLIC_KEY: &str = "AUTH_JWT_PUBLIC_KEY";
    /// Sign-in: a JWKS document.
    pub const AUTH_JWKS: &str = "AUTH_JWKS";
    /// Sign-in: where the JWKS's newer keys are published.
    pub const AUTH_JWKS_URL: &str = "AUTH_JWKS_URL";
    /// Sign-in: the `iss` tokens must carry.
    pub const AUTH_JWT_ISSUER: &str = "AUTH_JWT_ISSUER";
    /// Sign-in: an `aud` tokens must carry.
    pub const AUTH_JWT_AUDIENCE: &str = "AUTH_JWT_AUDIENCE";
    /// Sign-in: the claim of the display name.
    pub const AUTH_NAME_CLAIM: &str = "AUTH_NAME_CLAIM";
    /// Sign-in: the claim of the rooms one may join.
    pub const AUTH_ROOMS_CLAIM: &str = "AUTH_ROOMS_CLAIM";
    /// Sign-in: the claim of the roles.
    pub const AUTH_ROLES_CLAIM: &str = "AUTH_ROLES_CLAIM";
    /// Sign-in: the longest a token may be valid.
    pub const AUTH_MAX_TOKEN_LIFETIME_SECS: &str = "AUTH_MAX_TOKEN_LIFETIME_SECS";
    /// The CloudWatch namespace of the metrics.
    pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
    /// The stage: the metrics' one dimension.
    pub const STAGE: &str = "STAGE";
    /// Set by Lambda from the function's logging configuration.
    pub const AWS_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
    /// Set by Lambda: `JSON` or `Text`.
    pub const AWS_LAMBDA_LOG_FORMAT: &str = "AWS_LAMBDA_LOG_FORMAT";
}

/// The tables, named by environment variables (infra/tables.json says
/// which) with the tutorial's names (and `Moderation`) as defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    pub active_connections: String,
    pub session_history: String,
    pub message_history: String,
    /// Bans and the moderators' audit log (docs/security.md).
    pub moderation: String,
}

impl Default for Tables {
    fn default() -> Self {
        Self::with_prefix("")
    }
}

impl Tables {
    /// The tutorial's names behind `prefix`, e.g. `test-ActiveConnections`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            active_connections: format!("{prefix}ActiveConnections"),
            session_history: format!("{prefix}SessionHistory"),
            message_history: format!("{prefix}MessageHistory"),
            moderation: format!("{prefix}Moderation"),
        }
    }

    /// Each table's variable and name (its tutorial name, by default): what
    /// a function is given to find them.
    pub fn variables(&self) -> [(&'static str, &str); 4] {
        [
            (var::ACTIVE_CONNECTIONS_TABLE, &self.active_connections),
            (var::SESSION_HISTORY_TABLE, &self.session_history),
            (var::MESSAGE_HISTORY_TABLE, &self.message_history),
            (var::MODERATION_TABLE, &self.moderation),
        ]
    }

    fn from_vars(vars: &impl Fn(&str) -> Option<String>) -> Self {
        let defaults = Self::default();
        Self {
            active_connections: vars(var::ACTIVE_CONNECTIONS_TABLE)
                .unwrap_or(defaults.active_connections),
            session_history: vars(var::SESSION_HISTORY_TABLE).unwrap_or(defaults.session_history),
            message_history: vars(var::MESSAGE_HISTORY_TABLE).unwrap_or(defaults.message_history),
            moderation: vars(var::MODERATION_TABLE).unwrap_or(defaults.moderation),
        }
    }
}

impl ChatLimits {
    /// `MAX_MESSAGE_BYTES`, `FANOUT_CONCURRENCY`, `MESSAGE_RATE_PER_SECOND`
    /// (0: off), `MESSAGE_RATE_BURST` and `PRESENCE_WINDOW_MS`, each within
    /// its range.
    fn from_vars(vars: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let in_range = |name: &'static str, default: usize, range: RangeInclusive<usize>| {
            vars(name).map_or(Ok(default), |value| parse_in_range(name, &value, range))
        };
        Ok(Self {
            max_chat_message_bytes: in_range(
                "MAX_MESSAGE_BYTES",
                DEFAULT_CHAT_MESSAGE_BYTES,
                CHAT_MESSAGE_BYTES_RANGE,
            )?,
            fanout_concurrency: in_range(
                "FANOUT_CONCURRENCY",
                DEFAULT_FANOUT_CONCURRENCY,
                FANOUT_CONCURRENCY_RANGE,
            )?,
            message_rate: Rate::from_setting(
                in_range(
                    "MESSAGE_RATE_PER_SECOND",
                    DEFAULT_MESSAGES_PER_SECOND as usize,
                    MESSAGES_PER_SECOND_RANGE,
                )?,
                in_range(
                    "MESSAGE_RATE_BURST",
                    DEFAULT_MESSAGE_BURST as usize,
                    MESSAGE_BURST_RANGE,
                )?,
            ),
            presence_window: Duration::from_millis(in_range(
                var::PRESENCE_WINDOW_MS,
                DEFAULT_PRESENCE_WINDOW_MS,
                PRESENCE_WINDOW_MS_RANGE,
            )? as u64),
        })
    }
}

/// Everything a function that posts to connections reads from its
/// environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub tables: Tables,
    pub limits: ChatLimits,
    /// `MESSAGE_RETENTION_DAYS` and `SESSION_RETENTION_DAYS`; unset keeps
    /// everything.
    pub retention: Retention,
    /// `MANAGEMENT_API_ENDPOINT`: `https://{api}.execute-api.{region}.{suffix}/{stage}`
    /// on AWS (infra builds it with the partition's URL suffix), the local
    /// stack's URL offline.
    pub management_endpoint: ManagementEndpoint,
    /// `ROOM_ACCESS` and `MEMBERS_ONLY_ROOMS`: who of the signed-in users
    /// may join which room (without sign-in, anyone any room).
    pub access: RoomAccess,
    /// `FANOUT_FUNCTION`: the fan-out workers' function; unset, every
    /// fan-out posts to the whole room itself.
    pub fanout_function: Option<String>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&env_value)
    }

    /// From variables looked up by `vars` (unset or blank: `None`).
    pub fn from_vars(vars: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            tables: Tables::from_vars(vars),
            limits: ChatLimits::from_vars(vars)?,
            retention: Retention {
                message_days: days(vars, var::MESSAGE_RETENTION_DAYS)?,
                session_days: days(vars, var::SESSION_RETENTION_DAYS)?,
            },
            management_endpoint: vars(var::MANAGEMENT_API_ENDPOINT)
                .ok_or(ConfigError::Missing {
                    name: var::MANAGEMENT_API_ENDPOINT,
                    why: "the Management API endpoint to post frames to (infra/serverless.yml sets it)",
                })?
                .parse()?,
            access: RoomAccess::from_settings(
                vars(var::ROOM_ACCESS).as_deref(),
                vars(var::MEMBERS_ONLY_ROOMS).as_deref(),
            )
            .map_err(|expected| ConfigError::Invalid {
                name: var::ROOM_ACCESS,
                value: format!(
                    "{} / {}",
                    vars(var::ROOM_ACCESS).unwrap_or_default(),
                    vars(var::MEMBERS_ONLY_ROOMS).unwrap_or_default()
                ),
                expected,
            })?,
            fanout_function: vars(var::FANOUT_FUNCTION),
        })
    }
}

impl AuthSettings {
    /// The authorizer's settings: exactly one of `AUTH_JWT_SECRET` (HS256),
    /// `AUTH_JWT_PUBLIC_KEY` (PEM, RS256 or ES256) and `AUTH_JWKS` (a JWKS
    /// document, with `AUTH_JWKS_URL` optionally where its newer keys are
    /// published); `AUTH_JWT_ISSUER`, `AUTH_JWT_AUDIENCE`,
    /// `AUTH_NAME_CLAIM` (default `name`) and `AUTH_MAX_TOKEN_LIFETIME_SECS`
    /// optional.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&env_value)
    }

    pub fn from_vars(vars: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let sources = [
            vars(var::AUTH_JWT_SECRET).map(|secret| KeySource::Secret(secret.into_bytes())),
            vars(var::AUTH_JWT_PUBLIC_KEY).map(KeySource::PublicKeyPem),
            vars(var::AUTH_JWKS).map(KeySource::Jwks),
        ];
        let mut given = sources.into_iter().flatten();
        let keys = given.next().ok_or(ConfigError::Missing {
            name: var::AUTH_JWT_SECRET,
            why: "the authorizer needs one of AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY or AUTH_JWKS",
        })?;
        if given.next().is_some() {
            return Err(ConfigError::Invalid {
                name: var::AUTH_JWT_SECRET,
                value: "(not shown)".to_owned(),
                expected: "only one of AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY and AUTH_JWKS"
                    .to_owned(),
            });
        }
        Ok(Self {
            keys,
            jwks_url: vars(var::AUTH_JWKS_URL),
            issuer: vars(var::AUTH_JWT_ISSUER),
            audience: vars(var::AUTH_JWT_AUDIENCE),
            name_claim: vars(var::AUTH_NAME_CLAIM).unwrap_or_else(|| DEFAULT_NAME_CLAIM.to_owned()),
            claims: ClaimNames {
                rooms: vars(var::AUTH_ROOMS_CLAIM)
                    .unwrap_or_else(|| DEFAULT_ROOMS_CLAIM.to_owned()),
                roles: vars(var::AUTH_ROLES_CLAIM)
                    .unwrap_or_else(|| DEFAULT_ROLES_CLAIM.to_owned()),
            },
            max_lifetime: vars(var::AUTH_MAX_TOKEN_LIFETIME_SECS)
                .map(|value| {
                    parse_in_range(
                        var::AUTH_MAX_TOKEN_LIFETIME_SECS,
                        &value,
                        crate::limits::TOKEN_LIFETIME_SECS_RANGE,
                    )
                })
                .transpose()?
                .map(|secs| std::time::Duration::from_secs(secs as u64)),
        })
    }
}

/// The variable's value, unless it is unset or blank.
pub(crate) fn env_value(name: &str) -> Option<String> {
    env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// A retention in days, within [`RETENTION_DAYS_RANGE`]; unset: `None`.
fn days(
    vars: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<u32>, ConfigError> {
    vars(name)
        .map(|value| parse_in_range(name, &value, RETENTION_DAYS_RANGE))
        .transpose()
        .map(|days| days.and_then(|days| u32::try_from(days).ok()))
}

fn parse_in_range(
    name: &'static str,
    value: &str,
    range: RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|number| range.contains(number))
        .ok_or_else(|| ConfigError::Invalid {
            name,
            value: value.to_owned(),
            expected: format!("an integer in {}..={}", range.start(), range.end()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_their_range_are_refused_with_the_range() {
        for bad in ["0", "32769", "-1", "lots", "8 KiB"] {
            let error = parse_in_range("MAX_MESSAGE_BYTES", bad, CHAT_MESSAGE_BYTES_RANGE);
            assert_eq!(
                error,
                Err(ConfigError::Invalid {
                    name: "MAX_MESSAGE_BYTES",
                    value: bad.to_owned(),
                    expected: "an integer in 1..=32768".to_owned(),
                }),
                "{bad}"
            );
        }
        assert_eq!(
            parse_in_range("MAX_MESSAGE_BYTES", " 32768 ", CHAT_MESSAGE_BYTES_RANGE),
            Ok(32768)
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        }
    }

    #[test]
    fn the_management_endpoint_is_required_and_nothing_is_derived() {
        let error = Settings::from_vars(&vars(&[]));
        assert!(matches!(
            error,
            Err(ConfigError::Missing {
                name: "MANAGEMENT_API_ENDPOINT",
                ..
            })
        ));
        let settings = Settings::from_vars(&vars(&[
            (
                "MANAGEMENT_API_ENDPOINT",
                "https://abc.execute-api.cn-north-1.amazonaws.com.cn/dev",
            ),
            ("SESSION_HISTORY_TABLE", "chat-dev-SessionHistory"),
            ("FANOUT_CONCURRENCY", "8"),
            ("MESSAGE_RETENTION_DAYS", "30"),
        ]));
        let settings = settings.expect("valid");
        assert_eq!(
            settings.management_endpoint.as_str(),
            "https://abc.execute-api.cn-north-1.amazonaws.com.cn/dev"
        );
        assert_eq!(settings.tables.session_history, "chat-dev-SessionHistory");
        assert_eq!(settings.tables.active_connections, "ActiveConnections");
        assert_eq!(settings.limits.fanout_concurrency, 8);
        assert_eq!(
            settings.limits.max_chat_message_bytes,
            DEFAULT_CHAT_MESSAGE_BYTES
        );
        assert_eq!(settings.retention.message_days, Some(30));
        assert_eq!(
            settings.retention.session_days, None,
            "kept for ever by default"
        );
        let zero = Settings::from_vars(&vars(&[
            ("MANAGEMENT_API_ENDPOINT", "http://127.0.0.1:8080/dev"),
            ("SESSION_RETENTION_DAYS", "0"),
        ]));
        assert!(matches!(
            zero,
            Err(ConfigError::Invalid {
                name: "SESSION_RETENTION_DAYS",
                ..
            })
        ));
    }

    #[test]
    fn the_authorizer_takes_exactly_one_key_source() {
        assert!(matches!(
            AuthSettings::from_vars(&vars(&[])),
            Err(ConfigError::Missing { .. })
        ));
        let both =
            AuthSettings::from_vars(&vars(&[("AUTH_JWT_SECRET", "s3cret"), ("AUTH_JWKS", "{}")]));
        let Err(ConfigError::Invalid { value, .. }) = both else {
            panic!("two key sources are refused");
        };
        assert!(!value.contains("s3cret"), "secrets are never shown");
        let settings = AuthSettings::from_vars(&vars(&[
            ("AUTH_JWT_SECRET", "s3cret"),
            ("AUTH_JWT_AUDIENCE", "chat"),
        ]))
        .expect("valid");
        assert_eq!(settings.keys, KeySource::Secret(b"s3cret".to_vec()));
        assert_eq!(settings.audience.as_deref(), Some("chat"));
        assert_eq!(settings.name_claim, "name");
    }

    #[test]
    fn default_tables_are_the_tutorials() {
        let tables = Tables::default();
        assert_eq!(tables.active_connections, "ActiveConnections");
        assert_eq!(tables.session_history, "SessionHistory");
        assert_eq!(tables.message_history, "MessageHistory");
        assert_eq!(
            Tables::with_prefix("t-").message_history,
            "t-MessageHistory"
        );
    }
}
