//! Command-line flags, each with an environment variable; clap checks every
//! range, so a [`Config`] is valid by construction.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use clap::builder::RangedU64ValueParser;
use handlers::auth::{AuthSettings, KeySource};
use handlers::limits::{
    CHAT_MESSAGE_BYTES_RANGE, CONNECT_ROUTE_THROTTLE, DEFAULT_CHAT_MESSAGE_BYTES,
    DEFAULT_FANOUT_CONCURRENCY, DEFAULT_MESSAGE_BURST, DEFAULT_MESSAGES_PER_SECOND,
    DEFAULT_PRESENCE_WINDOW_MS, DEFAULT_ROUTE_THROTTLE, FANOUT_CONCURRENCY_RANGE,
    GATEWAY_IDLE_TIMEOUT, GATEWAY_INTEGRATION_TIMEOUT, GATEWAY_MAX_CONNECTION_DURATION,
    HISTORY_ROUTE_THROTTLE, MESSAGE_BURST_RANGE, MESSAGES_PER_SECOND_RANGE,
    PRESENCE_WINDOW_MS_RANGE, RETENTION_DAYS_RANGE, RouteThrottle,
};
use handlers::rate::Rate;
use handlers::{ChatLimits, Retention, Tables};

/// Runs the whole chat on this machine: an API Gateway WebSocket and
/// Management API emulator, the route handlers and the stream processor
/// in-process, an embedded DynamoDB, and the web client.
#[derive(Clone, Debug, Parser)]
#[command(name = "chat-local", version, about, long_about = None)]
pub struct Args {
    /// Address of the WebSocket gateway, Management API, web client and /metrics.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Stage name: WebSocket URL path and Management API prefix.
    #[arg(long, env = "CHAT_STAGE", default_value = "dev", value_parser = stage_name)]
    pub stage: String,

    /// Where the embedded DynamoDB keeps its data.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = ".chat-local")]
    pub data_dir: PathBuf,

    /// Keep nothing: an in-memory DynamoDB, gone when the stack stops.
    #[arg(long, env = "CHAT_IN_MEMORY")]
    pub in_memory: bool,

    /// Address of the embedded DynamoDB endpoint.
    #[arg(long, env = "CHAT_DYNAMODB_LISTEN", default_value = "127.0.0.1:8000")]
    pub dynamodb_listen: SocketAddr,

    /// Use this DynamoDB-compatible endpoint (e.g. DynamoDB Local) instead of the embedded one.
    #[arg(long, env = "CHAT_DYNAMODB_ENDPOINT", conflicts_with_all = ["in_memory"],
          value_parser = plain_http_endpoint)]
    pub dynamodb_endpoint: Option<String>,

    /// Table name prefix, e.g. `test-` for `test-ActiveConnections`.
    #[arg(long, env = "CHAT_TABLE_PREFIX", default_value = "")]
    pub table_prefix: String,

    /// Close connections idle this many seconds (API Gateway: 600).
    #[arg(long, env = "CHAT_IDLE_TIMEOUT_SECS",
          default_value_t = GATEWAY_IDLE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,

    /// Drop a client that has not read a waiting frame for this many seconds.
    #[arg(long, env = "CHAT_SLOW_CLIENT_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub slow_client_timeout_secs: u64,

    /// Close every connection after this many seconds (API Gateway: 7200).
    #[arg(long, env = "CHAT_MAX_CONNECTION_SECS",
          default_value_t = GATEWAY_MAX_CONNECTION_DURATION.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connection_secs: u64,

    /// Longest chat message, in bytes of UTF-8.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = DEFAULT_CHAT_MESSAGE_BYTES,
          value_parser = usize_in(CHAT_MESSAGE_BYTES_RANGE))]
    pub max_message_bytes: usize,

    /// Management API posts in flight per fan-out.
    #[arg(long, env = "FANOUT_CONCURRENCY", default_value_t = DEFAULT_FANOUT_CONCURRENCY,
          value_parser = usize_in(FANOUT_CONCURRENCY_RANGE))]
    pub fanout_concurrency: usize,

    /// The least time between two presence frames of a room, in ms (0:
    /// every stream batch announces at once).
    #[arg(long, env = "PRESENCE_WINDOW_MS", default_value_t = DEFAULT_PRESENCE_WINDOW_MS,
          value_parser = usize_in(PRESENCE_WINDOW_MS_RANGE))]
    pub presence_window_ms: usize,

    /// A connection's sustained chat messages per second (0: no limit).
    #[arg(long, env = "MESSAGE_RATE_PER_SECOND", default_value_t = DEFAULT_MESSAGES_PER_SECOND as usize,
          value_parser = usize_in(MESSAGES_PER_SECOND_RANGE))]
    pub message_rate_per_second: usize,

    /// Messages a quiet connection may send at once before the rate applies.
    #[arg(long, env = "MESSAGE_RATE_BURST", default_value_t = DEFAULT_MESSAGE_BURST as usize,
          value_parser = usize_in(MESSAGE_BURST_RANGE))]
    pub message_rate_burst: usize,

    /// Days MessageHistory keeps a message (DynamoDB TTL); unset keeps them all.
    #[arg(long, env = "MESSAGE_RETENTION_DAYS", value_parser = usize_in(RETENTION_DAYS_RANGE))]
    pub message_retention_days: Option<usize>,

    /// Days SessionHistory keeps a session and its `source_ip`; unset keeps them all.
    #[arg(long, env = "SESSION_RETENTION_DAYS", value_parser = usize_in(RETENTION_DAYS_RANGE))]
    pub session_retention_days: Option<usize>,

    /// Connections one client address may hold at once; more are refused with 429.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_IP", default_value_t = 4096,
          value_parser = usize_in(1..=1_000_000))]
    pub max_connections_per_ip: usize,

    /// Seconds a socket may take to send a request head (its upgrade, or
    /// any HTTP request); a silent or trickling socket is then closed.
    #[arg(long, env = "CHAT_HANDSHAKE_TIMEOUT_SECS", default_value_t = DEFAULT_HANDSHAKES.timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub handshake_timeout_secs: u64,

    /// Sockets that have not sent their first request head yet, in all;
    /// past it the longest-waiting one is closed to make room.
    #[arg(long, env = "CHAT_MAX_PENDING_HANDSHAKES", default_value_t = DEFAULT_HANDSHAKES.max_pending,
          value_parser = usize_in(1..=1_000_000))]
    pub max_pending_handshakes: usize,

    /// The same, per client address; past it a new socket is answered 429.
    #[arg(long, env = "CHAT_MAX_PENDING_HANDSHAKES_PER_IP", default_value_t = DEFAULT_HANDSHAKES.max_pending_per_ip,
          value_parser = usize_in(1..=1_000_000))]
    pub max_pending_handshakes_per_ip: usize,

    /// Frames a second one client address may send, all its connections
    /// and routes together (more are answered `rate_limited` and not
    /// handled): many connections each within its own allowance cannot
    /// starve everyone else.
    #[arg(long, env = "CHAT_ADDRESS_RATE_LIMIT", default_value_t = DEFAULT_ADDRESS_BUDGET.rate_per_second,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub address_rate_limit: u32,

    /// The burst above it.
    #[arg(long, env = "CHAT_ADDRESS_BURST_LIMIT", default_value_t = DEFAULT_ADDRESS_BUDGET.burst,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub address_burst_limit: u32,

    /// Page origins (besides the stack's own) that may open WebSockets, e.g.
    /// http://127.0.0.1:5173 for a page served elsewhere, `null` for a
    /// file:// page, `*` for any; repeatable or comma-separated.
    #[arg(
        long = "allowed-origin",
        env = "CHAT_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Host names (besides loopback names and the --listen address) that
    /// requests may name; repeatable or comma-separated.
    #[arg(
        long = "allowed-host",
        env = "CHAT_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// Route handler invocations running at once (Lambda's concurrency, for
    /// the local stack); more wait their turn.
    #[arg(long, env = "CHAT_INVOCATION_CONCURRENCY", default_value_t = DEFAULT_INVOCATION_CONCURRENCY,
          value_parser = usize_in(1..=10_000))]
    pub invocation_concurrency: usize,

    /// How long a handshake waits for `$connect` to answer, its turn for an
    /// invocation included, before it is refused with 504 (API Gateway's
    /// integration timeout: 50 ms to 29 s, 29 s by default).
    #[arg(long, env = "CHAT_INTEGRATION_TIMEOUT_MS",
          default_value_t = GATEWAY_INTEGRATION_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(50..=GATEWAY_INTEGRATION_TIMEOUT.as_millis() as u64))]
    pub integration_timeout_ms: u64,

    /// Fan-out workers running at once (the `fanout` function's
    /// concurrency); 0: every fan-out posts to the whole room itself.
    #[arg(long, env = "CHAT_FANOUT_WORKERS", default_value_t = DEFAULT_FANOUT_WORKERS,
          value_parser = usize_in(0..=1024))]
    pub fanout_workers: usize,

    /// Requests a second each route accepts across every connection, as the
    /// deployed stage's throttling (`routeRateLimit`).
    #[arg(long, env = "CHAT_ROUTE_RATE_LIMIT", default_value_t = DEFAULT_ROUTE_THROTTLE.rate_per_second,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub route_rate_limit: u32,

    /// The burst above it (`routeBurstLimit`).
    #[arg(long, env = "CHAT_ROUTE_BURST_LIMIT", default_value_t = DEFAULT_ROUTE_THROTTLE.burst,
          value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub route_burst_limit: u32,

    /// `history`'s own requests a second (`historyRateLimit`).
    #[arg(long, env = "CHAT_HISTORY_RATE_LIMIT", default_value_t = HISTORY_ROUTE_THROTTLE.rate_per_second,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub history_rate_limit: u32,

    /// `history`'s own burst (`historyBurstLimit`).
    #[arg(long, env = "CHAT_HISTORY_BURST_LIMIT", default_value_t = HISTORY_ROUTE_THROTTLE.burst,
          value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub history_burst_limit: u32,

    /// Let other machines use the Management API, with this key in `x-api-key`
    /// (without it only this machine may; the chat's own calls always can).
    #[arg(long, env = "CHAT_MANAGEMENT_API_KEY", hide_env_values = true)]
    pub management_api_key: Option<String>,

    /// Delay every Management API call by this many milliseconds, to see the
    /// chat as it behaves with AWS's PostToConnection round trip (benchmarks).
    #[arg(long, env = "CHAT_MANAGEMENT_API_DELAY_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub management_api_delay_ms: u64,

    /// Sign-in with HS256 tokens signed with this secret (off when no key is given).
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true,
          conflicts_with_all = ["auth_jwt_public_key", "auth_jwks"])]
    pub auth_jwt_secret: Option<String>,

    /// Sign-in with RS256/ES256 tokens verified with the PEM public key in this file.
    #[arg(
        long,
        env = "CHAT_AUTH_JWT_PUBLIC_KEY_FILE",
        conflicts_with = "auth_jwks"
    )]
    pub auth_jwt_public_key: Option<PathBuf>,

    /// Sign-in with RS256/ES256 tokens verified with the keys of this JWKS file.
    #[arg(long, env = "CHAT_AUTH_JWKS_FILE")]
    pub auth_jwks: Option<PathBuf>,

    /// With --auth-jwks: where the identity provider publishes its current
    /// keys (http:// only locally); fetched at start and when a token names
    /// a key the stack does not have (at most once a minute), the file as
    /// the fallback.
    #[arg(long, env = "AUTH_JWKS_URL", requires = "auth_jwks")]
    pub auth_jwks_url: Option<String>,

    /// With sign-in: the `iss` tokens must carry.
    #[arg(long, env = "AUTH_JWT_ISSUER")]
    pub auth_jwt_issuer: Option<String>,

    /// With sign-in: an `aud` tokens must carry.
    #[arg(long, env = "AUTH_JWT_AUDIENCE")]
    pub auth_jwt_audience: Option<String>,

    /// With sign-in: refuse tokens valid for longer than this many seconds
    /// (`exp` after `iat`).
    #[arg(long, env = "AUTH_MAX_TOKEN_LIFETIME_SECS",
          value_parser = usize_in(handlers::limits::TOKEN_LIFETIME_SECS_RANGE))]
    pub auth_max_token_lifetime_secs: Option<usize>,

    /// With sign-in: the claim holding the display name.
    #[arg(long, env = "AUTH_NAME_CLAIM", default_value = handlers::auth::DEFAULT_NAME_CLAIM)]
    pub auth_name_claim: String,

    /// With sign-in: the claim listing the rooms a token's holder may join
    /// (room names, or prefixes such as `team-*`).
    #[arg(long, env = "AUTH_ROOMS_CLAIM", default_value = handlers::access::DEFAULT_ROOMS_CLAIM)]
    pub auth_rooms_claim: String,

    /// With sign-in: the claim listing a token's roles; `moderator` may
    /// remove, ban and delete in the rooms its holder may join.
    #[arg(long, env = "AUTH_ROLES_CLAIM", default_value = handlers::access::DEFAULT_ROLES_CLAIM)]
    pub auth_roles_claim: String,

    /// With sign-in: `open` (every signed-in user may join any room but the
    /// --members-only-rooms) or `closed` (only the rooms a token's rooms
    /// claim names).
    #[arg(long, env = "ROOM_ACCESS", default_value = "open", value_parser = ["open", "closed"])]
    pub room_access: String,

    /// With sign-in and `--room-access open`: the rooms only tokens naming
    /// them may join (names or prefixes, comma-separated: `team-*,staff`).
    #[arg(long, env = "MEMBERS_ONLY_ROOMS", value_parser = room_patterns)]
    pub members_only_rooms: Option<handlers::access::RoomPatterns>,

    /// Stream records per stream-processor invocation (Lambda's BatchSize);
    /// unset, the deployed mapping's (infra/stream-mapping.json).
    #[arg(long, env = "CHAT_STREAM_BATCH_SIZE",
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub stream_batch_size: Option<i32>,

    /// Milliseconds to gather stream records before invoking the processor
    /// (Lambda's MaximumBatchingWindowInSeconds); unset, the deployed
    /// mapping's (infra/stream-mapping.json).
    #[arg(long, env = "CHAT_STREAM_BATCH_WINDOW_MS",
          value_parser = clap::value_parser!(u64).range(0..=300_000))]
    pub stream_batch_window_ms: Option<u64>,

    /// Milliseconds between stream polls when the stream is idle.
    #[arg(long, env = "CHAT_STREAM_POLL_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_poll_ms: u64,

    /// Seconds between repairs of sessions left open (a lost `$disconnect`,
    /// a failed close), as the deployed schedule runs them; also once at start.
    #[arg(long, env = "CHAT_REPAIR_INTERVAL_SECS",
          default_value_t = handlers::limits::REPAIR_INTERVAL.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub repair_interval_secs: u64,

    /// Retries of a failing stream batch before its failed records are skipped.
    #[arg(long, env = "CHAT_STREAM_MAX_RETRIES", default_value_t = 3)]
    pub stream_max_retries: u32,

    /// Directory of the web client served at `/`.
    #[arg(long, env = "CHAT_WEB_DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../web"))]
    pub web_dir: PathBuf,
}

/// Route handler invocations the local stack runs at once. Its embedded
/// engine applies writes one at a time; past a few dozen callers, more in
/// flight only lengthens each call's wait, until the calls at the back of
/// a crowd run out of their 5 s (docs/performance.md, "Connecting and
/// leaving at once").
pub const DEFAULT_INVOCATION_CONCURRENCY: usize = 64;

/// Fan-out workers the local stack runs at once: a room of 10,000 has
/// about 10 shard rests to hand on.
pub const DEFAULT_FANOUT_WORKERS: usize = 16;

/// Sockets on their way to a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshakes {
    /// How long a request head may take.
    pub timeout: Duration,
    /// Sockets without their first request head, in all.
    pub max_pending: usize,
    /// The same, per client address.
    pub max_pending_per_ip: usize,
}

/// A browser opens a handful of sockets and sends each head at once; an
/// address holding 128 silent ones is not a browser. A real request head
/// takes one round trip; 10 s covers a slow mobile link many times over.
pub const DEFAULT_HANDSHAKES: Handshakes = Handshakes {
    timeout: Duration::from_secs(10),
    max_pending: 1024,
    max_pending_per_ip: 128,
};

/// What one client address may send, every route and connection together
/// (local only: API Gateway has no per-address limit, AWS WAF does not
/// attach to WebSocket APIs). Far above what a person types, or a page's
/// history and heartbeats; 200 connections of one address each within its
/// message allowance are 1,000 a second.
pub const DEFAULT_ADDRESS_BUDGET: RouteThrottle = RouteThrottle {
    rate_per_second: 50,
    burst: 100,
};

/// A `usize` flag limited to `range`.
fn usize_in(range: std::ops::RangeInclusive<usize>) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(*range.start() as u64..=*range.end() as u64)
}

/// Stage names go into URLs: letters, digits, `-` and `_`.
/// Room names or prefixes, separated by commas or spaces.
fn room_patterns(value: &str) -> Result<handlers::access::RoomPatterns, String> {
    handlers::access::RoomPatterns::parse_list(value)
}

fn stage_name(value: &str) -> Result<String, String> {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(value.to_owned())
    } else {
        Err("use letters, digits, '-' and '_'".to_owned())
    }
}

/// An `http://HOST[:PORT]` endpoint: the local stack's SDK clients speak
/// plain HTTP (crate::plain_http).
fn plain_http_endpoint(value: &str) -> Result<String, String> {
    let expected = "expected http://HOST:PORT, e.g. http://127.0.0.1:8000 (plain HTTP only)";
    match value.parse::<hyper::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => Ok(value.to_owned()),
        _ => Err(expected.to_owned()),
    }
}

/// Where the embedded or external DynamoDB lives.
#[derive(Clone, Debug)]
pub enum Storage {
    /// Embedded, persistent in this directory.
    Directory(PathBuf),
    /// Embedded, in memory.
    Memory,
    /// An external endpoint; the stack creates its tables there.
    External(String),
}

/// The stack's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub stage: String,
    pub storage: Storage,
    pub dynamodb_listen: SocketAddr,
    pub tables: Tables,
    pub limits: ChatLimits,
    pub retention: Retention,
    pub idle_timeout: Duration,
    pub slow_client_timeout: Duration,
    pub max_connection: Duration,
    /// How often the repair of sessions left open runs.
    pub repair_interval: Duration,
    /// Where the liveness mark is written (`None` in memory: nothing
    /// survives a restart there).
    pub liveness_mark: Option<PathBuf>,
    pub stream: StreamConfig,
    pub web_dir: PathBuf,
    /// Sign-in, when a key is given.
    pub auth: Option<AuthConfig>,
    /// Who of the signed-in users may join which room.
    pub access: handlers::access::RoomAccess,
    pub management_api_key: Option<String>,
    pub management_api_delay: Duration,
    pub max_connections_per_ip: usize,
    pub invocation_concurrency: usize,
    pub integration_timeout: Duration,
    /// Fan-out workers at once; 0: none.
    pub fanout_workers: usize,
    pub throttles: crate::gateway::throttle::StageThrottles,
    pub address_budget: RouteThrottle,
    pub handshakes: Handshakes,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
}

/// Where sign-in's keys are; read when the stack starts.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub keys: AuthKeys,
    pub jwks_url: Option<String>,
    pub max_lifetime: Option<Duration>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub name_claim: String,
    pub claims: handlers::access::ClaimNames,
}

#[derive(Clone)]
pub enum AuthKeys {
    Secret(String),
    PublicKeyFile(PathBuf),
    JwksFile(PathBuf),
}

impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(…)"),
            Self::PublicKeyFile(path) => write!(f, "PublicKeyFile({})", path.display()),
            Self::JwksFile(path) => write!(f, "JwksFile({})", path.display()),
        }
    }
}

impl AuthConfig {
    /// The verifier's settings, reading the key file if there is one.
    pub fn settings(&self) -> Result<AuthSettings, std::io::Error> {
        let read = |path: &PathBuf| std::fs::read_to_string(path);
        Ok(AuthSettings {
            keys: match &self.keys {
                AuthKeys::Secret(secret) => KeySource::Secret(secret.clone().into_bytes()),
                AuthKeys::PublicKeyFile(path) => KeySource::PublicKeyPem(read(path)?),
                AuthKeys::JwksFile(path) => KeySource::Jwks(read(path)?),
            },
            jwks_url: self.jwks_url.clone(),
            max_lifetime: self.max_lifetime,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            name_claim: self.name_claim.clone(),
            claims: self.claims.clone(),
        })
    }
}

/// How the stream poller feeds the stream processor, like Lambda's
/// event-source mapping.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// Unset: the deployed mapping's ([`crate::poller::StreamMapping`]).
    pub batch_size: Option<i32>,
    pub batch_window: Option<Duration>,
    pub poll_interval: Duration,
    pub max_retries: u32,
}

impl AuthConfig {
    /// Sign-in's settings from the flags; `None` without a key.
    fn from_args(args: &mut Args) -> Option<Self> {
        let keys = match (
            args.auth_jwt_secret.take(),
            args.auth_jwt_public_key.take(),
            args.auth_jwks.take(),
        ) {
            (Some(secret), _, _) => AuthKeys::Secret(secret),
            (None, Some(path), _) => AuthKeys::PublicKeyFile(path),
            (None, None, Some(path)) => AuthKeys::JwksFile(path),
            (None, None, None) => return None,
        };
        Some(Self {
            keys,
            jwks_url: args.auth_jwks_url.take(),
            max_lifetime: args
                .auth_max_token_lifetime_secs
                .map(|secs| Duration::from_secs(secs as u64)),
            issuer: args.auth_jwt_issuer.take(),
            audience: args.auth_jwt_audience.take(),
            name_claim: std::mem::take(&mut args.auth_name_claim),
            claims: handlers::access::ClaimNames {
                rooms: std::mem::take(&mut args.auth_rooms_claim),
                roles: std::mem::take(&mut args.auth_roles_claim),
            },
        })
    }
}

/// The stage's route throttles, as the deployed route settings give them.
fn stage_throttles(args: &Args) -> crate::gateway::throttle::StageThrottles {
    crate::gateway::throttle::StageThrottles {
        default: RouteThrottle {
            rate_per_second: args.route_rate_limit,
            burst: args.route_burst_limit,
        },
        history: RouteThrottle {
            rate_per_second: args.history_rate_limit,
            burst: args.history_burst_limit,
        },
        connect: CONNECT_ROUTE_THROTTLE,
    }
}

impl From<Args> for Config {
    fn from(mut args: Args) -> Self {
        let auth = AuthConfig::from_args(&mut args);
        let throttles = stage_throttles(&args);
        let access = match args.room_access.as_str() {
            "closed" => handlers::access::RoomAccess::Closed,
            _ => handlers::access::RoomAccess::Open {
                members_only: args.members_only_rooms.take().unwrap_or_default(),
            },
        };
        let storage = match (args.dynamodb_endpoint, args.in_memory) {
            (Some(endpoint), _) => Storage::External(endpoint),
            (None, true) => Storage::Memory,
            (None, false) => Storage::Directory(args.data_dir.clone()),
        };
        let liveness_mark = match storage {
            Storage::Memory => None,
            Storage::Directory(_) | Storage::External(_) => {
                Some(crate::repair::mark_path(&args.data_dir, &args.table_prefix))
            }
        };
        Self {
            listen: args.listen,
            stage: args.stage,
            storage,
            dynamodb_listen: args.dynamodb_listen,
            tables: Tables::with_prefix(&args.table_prefix),
            limits: ChatLimits {
                max_chat_message_bytes: args.max_message_bytes,
                fanout_concurrency: args.fanout_concurrency,
                message_rate: Rate::from_setting(
                    args.message_rate_per_second,
                    args.message_rate_burst,
                ),
                presence_window: Duration::from_millis(args.presence_window_ms as u64),
            },
            retention: Retention {
                message_days: args
                    .message_retention_days
                    .and_then(|d| u32::try_from(d).ok()),
                session_days: args
                    .session_retention_days
                    .and_then(|d| u32::try_from(d).ok()),
            },
            idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            slow_client_timeout: Duration::from_secs(args.slow_client_timeout_secs),
            max_connection: Duration::from_secs(args.max_connection_secs),
            repair_interval: Duration::from_secs(args.repair_interval_secs),
            liveness_mark,
            stream: StreamConfig {
                batch_size: args.stream_batch_size,
                batch_window: args.stream_batch_window_ms.map(Duration::from_millis),
                poll_interval: Duration::from_millis(args.stream_poll_ms),
                max_retries: args.stream_max_retries,
            },
            web_dir: args.web_dir,
            auth,
            access,
            management_api_key: args.management_api_key.filter(|key| !key.is_empty()),
            management_api_delay: Duration::from_millis(args.management_api_delay_ms),
            max_connections_per_ip: args.max_connections_per_ip,
            invocation_concurrency: args.invocation_concurrency,
            integration_timeout: Duration::from_millis(args.integration_timeout_ms),
            fanout_workers: args.fanout_workers,
            throttles,
            address_budget: RouteThrottle {
                rate_per_second: args.address_rate_limit,
                burst: args.address_burst_limit,
            },
            handshakes: Handshakes {
                timeout: Duration::from_secs(args.handshake_timeout_secs),
                max_pending: args.max_pending_handshakes,
                max_pending_per_ip: args.max_pending_handshakes_per_ip,
            },
            allowed_origins: args.allowed_origins,
            allowed_hosts: args.allowed_hosts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("chat-local").chain(flags.iter().copied()))
    }

    #[test]
    fn every_range_is_enforced_with_a_message_naming_the_flag() {
        let cases = [
            ["--max-message-bytes", "0"],
            ["--max-message-bytes", "32769"],
            ["--fanout-concurrency", "0"],
            ["--fanout-concurrency", "1025"],
            ["--idle-timeout-secs", "0"],
            ["--max-connection-secs", "0"],
            ["--integration-timeout-ms", "49"],
            ["--integration-timeout-ms", "29001"],
            ["--stream-batch-size", "10001"],
            ["--stream-poll-ms", "0"],
            ["--repair-interval-secs", "0"],
            ["--message-retention-days", "0"],
            ["--stage", "a/b"],
            ["--stage", ""],
            [
                "--dynamodb-endpoint",
                "https://dynamodb.us-east-1.amazonaws.com",
            ],
            ["--dynamodb-endpoint", "localhost:8000"],
        ];
        for flags in cases {
            let error = parse(&flags).expect_err(&flags.join(" "));
            let text = error.to_string();
            assert!(text.contains(flags[0]), "{text}");
        }
    }

    #[test]
    fn limits_at_their_bounds_are_accepted() {
        let args =
            parse(&["--max-message-bytes", "32768", "--fanout-concurrency", "1"]).expect("valid");
        let config = Config::from(args);
        assert_eq!(config.limits.max_chat_message_bytes, 32768);
        assert_eq!(config.limits.fanout_concurrency, 1);
        assert_eq!(config.tables, Tables::default());
        assert_eq!(config.idle_timeout, GATEWAY_IDLE_TIMEOUT);
        assert_eq!(config.integration_timeout, GATEWAY_INTEGRATION_TIMEOUT);
        let external = parse(&["--dynamodb-endpoint", "http://127.0.0.1:8001"]).expect("valid");
        assert!(matches!(
            Config::from(external).storage,
            Storage::External(endpoint) if endpoint == "http://127.0.0.1:8001"
        ));
    }
}
