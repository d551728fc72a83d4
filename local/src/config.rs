//! Command-line flags, each with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use handlers::{Limits, Tables};

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
    #[arg(long, env = "CHAT_STAGE", default_value = "dev")]
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
    #[arg(long, env = "CHAT_DYNAMODB_ENDPOINT", conflicts_with_all = ["in_memory"])]
    pub dynamodb_endpoint: Option<String>,

    /// Table name prefix, e.g. `test-` for `test-ActiveConnections`.
    #[arg(long, env = "CHAT_TABLE_PREFIX", default_value = "")]
    pub table_prefix: String,

    /// Close connections idle this many seconds (API Gateway: 600).
    #[arg(long, env = "CHAT_IDLE_TIMEOUT_SECS", default_value_t = 600)]
    pub idle_timeout_secs: u64,

    /// Close every connection after this many seconds (API Gateway: 7200).
    #[arg(long, env = "CHAT_MAX_CONNECTION_SECS", default_value_t = 7200)]
    pub max_connection_secs: u64,

    /// Longest chat message, in bytes of UTF-8.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = handlers::config::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Management API posts in flight per fan-out.
    #[arg(long, env = "FANOUT_CONCURRENCY", default_value_t = handlers::config::DEFAULT_FANOUT_CONCURRENCY)]
    pub fanout_concurrency: usize,

    /// Stream records per stream-processor invocation (Lambda's BatchSize).
    #[arg(long, env = "CHAT_STREAM_BATCH_SIZE", default_value_t = 100)]
    pub stream_batch_size: i32,

    /// Milliseconds between stream polls when the stream is idle.
    #[arg(long, env = "CHAT_STREAM_POLL_MS", default_value_t = 250)]
    pub stream_poll_ms: u64,

    /// Retries of a failing stream batch before its failed records are skipped.
    #[arg(long, env = "CHAT_STREAM_MAX_RETRIES", default_value_t = 3)]
    pub stream_max_retries: u32,

    /// Directory of the web client served at `/`.
    #[arg(long, env = "CHAT_WEB_DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../web"))]
    pub web_dir: PathBuf,
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

/// The stack's configuration, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub stage: String,
    pub storage: Storage,
    pub dynamodb_listen: SocketAddr,
    pub tables: Tables,
    pub limits: Limits,
    pub idle_timeout: Duration,
    pub max_connection: Duration,
    pub stream: StreamConfig,
    pub web_dir: PathBuf,
}

/// How the stream poller feeds the stream processor, like Lambda's
/// event-source mapping.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    pub batch_size: i32,
    pub poll_interval: Duration,
    pub max_retries: u32,
}

impl TryFrom<Args> for Config {
    type Error = String;

    fn try_from(args: Args) -> Result<Self, String> {
        if args.stage.is_empty()
            || !args
                .stage
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "--stage {:?}: use letters, digits, '-' and '_'",
                args.stage
            ));
        }
        if args.idle_timeout_secs == 0 || args.max_connection_secs == 0 {
            return Err("--idle-timeout-secs and --max-connection-secs must be positive".into());
        }
        if !(1..=10_000).contains(&args.stream_batch_size) {
            return Err("--stream-batch-size must be 1..=10000".into());
        }
        let limits = Limits {
            max_message_bytes: args.max_message_bytes,
            fanout_concurrency: args.fanout_concurrency,
        }
        .validated()
        .map_err(|error| error.to_string())?;
        let defaults = Tables::default();
        let prefix = &args.table_prefix;
        let storage = match (args.dynamodb_endpoint, args.in_memory) {
            (Some(endpoint), _) => Storage::External(endpoint),
            (None, true) => Storage::Memory,
            (None, false) => Storage::Directory(args.data_dir),
        };
        Ok(Self {
            listen: args.listen,
            stage: args.stage,
            storage,
            dynamodb_listen: args.dynamodb_listen,
            tables: Tables {
                active_connections: format!("{prefix}{}", defaults.active_connections),
                session_history: format!("{prefix}{}", defaults.session_history),
                message_history: format!("{prefix}{}", defaults.message_history),
            },
            limits,
            idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            max_connection: Duration::from_secs(args.max_connection_secs),
            stream: StreamConfig {
                batch_size: args.stream_batch_size,
                poll_interval: Duration::from_millis(args.stream_poll_ms.max(1)),
                max_retries: args.stream_max_retries,
            },
            web_dir: args.web_dir,
        })
    }
}
