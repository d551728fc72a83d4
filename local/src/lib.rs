//! The offline stack: everything the chat needs on AWS, on one machine, and
//! everything only the offline world needs (placeholder credentials, table
//! creation, the embedded engine).
//!
//! [`start`] brings up the embedded DynamoDB (or connects to an external
//! one), creates the tables, starts the WebSocket gateway with its
//! Management API and web client on one listener, and the stream poller that
//! feeds the stream processor, and the repair of sessions left open (at start,
//! then on a timer). [`Stack::shutdown`] closes every socket (each gets its
//! `$disconnect`), lets the poller drain, then stops the servers.

pub mod aws;
pub mod cli;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod filter;
mod gateway;
pub use gateway::OUTBOUND_FRAGMENT_BYTES;
pub mod in_process;
pub mod lambda_api;
pub mod plain_http;
pub mod poller;
pub mod repair;
mod serve;
pub mod tables;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use aws_smithy_runtime_api::client::http::SharedHttpConnector;
use handlers::{Chat, Management, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

pub use config::{Args, Config, Storage};
pub use dynamo::EmbeddedDynamo;
pub use error::StartError;
pub use gateway::throttle::StageThrottles;

/// File of the stream poller's checkpoint inside the data directory.
const CHECKPOINT_FILE: &str = "stream-checkpoint.json";

/// A running stack.
pub struct Stack {
    /// Where the gateway, Management API, web client and /metrics listen.
    pub address: SocketAddr,
    /// The DynamoDB endpoint (embedded or external).
    pub dynamodb_endpoint: String,
    pub stage: String,
    pub tables: handlers::Tables,
    gateway: Arc<gateway::Gateway>,
    management_transport: in_process::InProcess,
    lambda_api: lambda_api::LambdaApi,
    stop_poller: CancellationToken,
    poller: tokio::task::JoinHandle<()>,
    stop_repair: CancellationToken,
    repair: tokio::task::JoinHandle<()>,
    stop_server: CancellationToken,
    server: TaskTracker,
    engine: Engine,
}

/// The DynamoDB the stack uses.
enum Engine {
    Embedded(EmbeddedDynamo),
    External(String),
}

impl Engine {
    fn endpoint(&self) -> &str {
        match self {
            Self::Embedded(embedded) => &embedded.endpoint,
            Self::External(endpoint) => endpoint,
        }
    }
}

impl Stack {
    /// `ws://127.0.0.1:8080/dev`
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/{}", self.address, self.stage)
    }

    /// `http://127.0.0.1:8080/`
    pub fn page_url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// `http://127.0.0.1:8080/dev`: the Management API endpoint.
    pub fn management_endpoint(&self) -> String {
        format!("http://{}/{}", self.address, self.stage)
    }

    /// Open WebSocket connections (including those still in `$connect`).
    pub fn connection_count(&self) -> usize {
        self.gateway.connection_count()
    }

    /// Closes every connection (each gets its `$disconnect`), drains the
    /// stream, then stops the server and the database; each step within
    /// its share of [`SHUTDOWN_GRACE`]. What it had to abandon is in the
    /// answer (and the log): the next start's repair closes those sessions.
    /// Fan-out workers invoked since the stack started.
    pub fn fanout_workers_invoked(&self) -> usize {
        self.lambda_api.invocations()
    }

    pub async fn shutdown(self) -> Stopped {
        let mut stopped = Stopped::default();
        self.stop_repair.cancel();
        if let Err(error) = self.repair.await {
            warn!(%error, "the repair's schedule ended abnormally");
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, self.gateway.close_all())
            .await
            .is_err()
        {
            stopped.abandoned_connections = self.gateway.connection_count();
            warn!(
                abandoned = stopped.abandoned_connections,
                "connections still closing after {SHUTDOWN_GRACE:?} were abandoned: their sessions are closed by the repair at the next start"
            );
        }
        self.stop_poller.cancel();
        let mut poller = self.poller;
        match tokio::time::timeout(STREAM_DRAIN_GRACE, &mut poller).await {
            Ok(Err(error)) => warn!(%error, "stream poller ended abnormally"),
            Ok(Ok(())) => {}
            Err(_) => {
                poller.abort();
                stopped.stream_undrained = true;
                warn!(
                    "the stream was not drained within {STREAM_DRAIN_GRACE:?}: its last records are handled at the next start"
                );
            }
        }
        self.stop_server.cancel();
        self.server.close();
        // Half-sent requests must not hold the process.
        if tokio::time::timeout(SERVER_STOP_GRACE, self.server.wait())
            .await
            .is_err()
        {
            stopped.abandoned_requests = true;
            warn!("HTTP requests still open after {SERVER_STOP_GRACE:?} were dropped");
        }
        if tokio::time::timeout(SERVER_STOP_GRACE, self.lambda_api.idle())
            .await
            .is_err()
        {
            warn!("fan-out workers still running after {SERVER_STOP_GRACE:?} were dropped");
        }
        self.management_transport.stop();
        if let Engine::Embedded(embedded) = self.engine {
            embedded.shutdown().await;
        }
        stopped
    }
}

/// What a shutdown left undone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Connections whose `$disconnect` had not finished in time.
    pub abandoned_connections: usize,
    /// The stream's last records were not handed to the processor.
    pub stream_undrained: bool,
    /// HTTP requests (half-sent ones among them) were dropped.
    pub abandoned_requests: bool,
}

/// How long a shutdown waits for every connection's `$disconnect`.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
/// How long it waits for the stream poller's last round.
pub const STREAM_DRAIN_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);
/// How long it waits for open HTTP requests; all three stay within the 5 s
/// a service manager gives after SIGTERM.
pub const SERVER_STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// Starts the whole stack.
pub async fn start(config: Config) -> Result<Stack, StartError> {
    check_addresses(&config)?;
    let (engine, checkpoint_path) = match &config.storage {
        Storage::External(endpoint) => (Engine::External(endpoint.clone()), None),
        Storage::Memory => (
            Engine::Embedded(EmbeddedDynamo::start(None, config.dynamodb_listen).await?),
            None,
        ),
        Storage::Directory(dir) => (
            Engine::Embedded(EmbeddedDynamo::start(Some(dir), config.dynamodb_listen).await?),
            Some(dir.join(CHECKPOINT_FILE)),
        ),
    };
    let dynamodb_endpoint = engine.endpoint().to_owned();
    let sdk = aws::local_sdk_config();
    let dynamodb = aws::dynamodb_client(&sdk, &dynamodb_endpoint);
    let stream_arn = prepare_tables(&dynamodb, &config, &dynamodb_endpoint).await?;

    let store = Store::new(dynamodb.clone(), config.tables.clone());
    close_sessions_of_a_previous_run(&store, &config).await?;

    let listener = bind(config.listen).await?;
    let address = listener.local_addr().map_err(|source| StartError::Bind {
        what: "the gateway",
        flag: "--listen",
        address: config.listen,
        source,
    })?;
    let management_transport = in_process::InProcess::default();
    let management_endpoint = format!("http://{address}/{}", config.stage).parse()?;
    let in_process = SharedHttpConnector::new(management_transport.clone());
    let chat = Chat {
        store,
        management: Management::with_connector(&sdk, &management_endpoint, in_process.clone()),
        limits: config.limits,
        retention: config.retention,
        access: config.access.clone(),
        workers: (config.fanout_workers > 0).then(|| {
            handlers::fanout::Workers::new(
                aws::lambda_client(&sdk, &format!("http://{address}"), in_process),
                lambda_api::FANOUT_FUNCTION.to_owned(),
            )
        }),
    };
    let verifier = verifier(&config).await?;
    let gateway = gateway::Gateway::new(chat.clone(), gateway_config(&config), verifier, address);
    let lambda_api = lambda_api::LambdaApi::new(chat.clone(), config.fanout_workers);
    management_transport.serve(gateway.management_router().merge(lambda_api.router()));
    let (stop_server, server) = serve(listener, &gateway, config.handshakes);

    let poller = poller::Poller::new(
        aws::streams_client(&sdk, &dynamodb_endpoint),
        stream_arn,
        chat.clone(),
        config.stream.clone(),
        checkpoint_path,
    )?;
    let stop_poller = CancellationToken::new();
    let poller = tokio::spawn(poller.run(stop_poller.clone()));
    let stop_repair = CancellationToken::new();
    let repair = tokio::spawn(repair::run(
        chat,
        config.max_connection,
        config.repair_interval,
        config.liveness_mark.clone(),
        stop_repair.clone(),
    ));

    Ok(Stack {
        address,
        dynamodb_endpoint,
        stage: config.stage,
        tables: config.tables,
        gateway,
        management_transport,
        lambda_api,
        stop_poller,
        poller,
        stop_repair,
        repair,
        stop_server,
        server,
        engine,
    })
}

/// Refuses addresses that cannot work, and warns of ones that expose data
/// or serve no page.
fn check_addresses(config: &Config) -> Result<(), StartError> {
    let listen = config.dynamodb_listen;
    let embedded = !matches!(config.storage, Storage::External(_));
    if embedded && listen == config.listen && listen.port() != 0 {
        return Err(StartError::SameAddress(listen));
    }
    if embedded && !listen.ip().to_canonical().is_loopback() {
        warn!(
            address = %listen,
            "the embedded DynamoDB listens on {listen}: every table (messages, sessions with their \
             source_ip) is open to every machine that reaches it, without credentials. \
             Use --dynamodb-listen 127.0.0.1:PORT unless that is what you want"
        );
    }
    if !config.web_dir.join("index.html").is_file() {
        warn!(
            web_dir = %config.web_dir.display(),
            "--web-dir has no index.html: the chat page will answer 404 (the WebSocket and the Management API work)"
        );
    }
    Ok(())
}

/// The `$connect` authorizer's verifier, when sign-in is on, with the JWKS
/// URL's keys fetched once.
async fn verifier(config: &Config) -> Result<Option<handlers::auth::Verifier>, StartError> {
    let Some(auth) = &config.auth else {
        if config.access != handlers::access::RoomAccess::default() {
            warn!(
                "--room-access and --members-only-rooms apply to signed-in users only; without sign-in every room is open to anyone who knows its name"
            );
        }
        return Ok(None);
    };
    let settings = auth.settings().map_err(StartError::AuthKeyFile)?;
    let verifier = handlers::auth::Verifier::new(settings)?.with_http(
        plain_http::PlainHttp.connector(
            &aws_smithy_runtime_api::client::http::HttpConnectorSettings::builder()
                .connect_timeout(handlers::limits::JWKS_FETCH_TIMEOUT)
                .build(),
        ),
    );
    // A failed fetch keeps the JWKS file's keys (and says so).
    let _ = verifier.refresh().await;
    Ok(Some(verifier))
}

/// Sessions still open in the tables belong to connections of a previous
/// run that ended without closing them (`kill -9`, a crash): nothing of them
/// survives in this new process, so each is closed as of that run's last
/// liveness mark (or its own last message). A shared `--dynamodb-endpoint`
/// must not have another running stack on the same tables (use
/// `--table-prefix`).
async fn close_sessions_of_a_previous_run(
    store: &Store,
    config: &Config,
) -> Result<(), StartError> {
    let mark = config.liveness_mark.as_deref().and_then(repair::read_mark);
    let report = repair::after_restart(store, config.max_connection, mark)
        .await
        .map_err(|error| {
            let endpoint = match &config.storage {
                Storage::External(endpoint) => endpoint.as_str(),
                _ => "the embedded DynamoDB",
            };
            StartError::dynamo(
                endpoint,
                matches!(config.storage, Storage::External(_)),
                error.into(),
            )
        })?;
    let closed = report.expired + report.gone;
    if closed > 0 {
        warn!(
            closed,
            last_alive = %mark.map_or_else(|| "unknown".to_owned(), |mark| mark.to_string()),
            "closed the sessions a previous run left open"
        );
    }
    Ok(())
}

/// Creates the tables; the SessionHistory stream's ARN.
async fn prepare_tables(
    dynamodb: &aws_sdk_dynamodb::Client,
    config: &Config,
    endpoint: &str,
) -> Result<String, StartError> {
    let external = matches!(config.storage, Storage::External(_));
    let failed = |source| StartError::dynamo(endpoint, external, source);
    tables::ensure(dynamodb, &config.tables)
        .await
        .map_err(failed)?;
    let table = &config.tables.session_history;
    tables::stream_arn(dynamodb, table)
        .await
        .map_err(|error| failed(error.into()))?
        .ok_or_else(|| StartError::NoStream {
            table: table.clone(),
        })
}

/// Connections the kernel may hold for the gateway before it accepts them.
/// std's and tokio's 128 drop the SYNs of a crowd connecting at once, and
/// each dropped one waits a second or more to try again; the kernel caps
/// this at `net.core.somaxconn` (4096 on current Linux).
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    let failed = |source| StartError::Bind {
        what: "the gateway",
        flag: "--listen",
        address,
        source,
    };
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(failed)?;
    // As std and tokio do: a restart may bind while old connections linger.
    socket.set_reuseaddr(true).map_err(failed)?;
    socket.bind(address).map_err(failed)?;
    socket.listen(LISTEN_BACKLOG).map_err(failed)
}

fn gateway_config(config: &Config) -> gateway::GatewayConfig {
    gateway::GatewayConfig {
        stage: config.stage.clone(),
        idle_timeout: config.idle_timeout,
        slow_client_timeout: config.slow_client_timeout,
        max_connection: config.max_connection,
        web_dir: config.web_dir.clone(),
        management_api_key: config.management_api_key.clone(),
        management_api_delay: config.management_api_delay,
        max_connections_per_ip: config.max_connections_per_ip,
        invocation_concurrency: config.invocation_concurrency,
        integration_timeout: config.integration_timeout,
        throttles: config.throttles,
        address_budget: config.address_budget,
        cross_site: gateway::cross_site::CrossSite {
            listen: None,
            allowed_hosts: config.allowed_hosts.clone(),
            allowed_origins: config.allowed_origins.clone(),
        },
    }
}

/// Serves the gateway until the returned token is cancelled.
fn serve(
    listener: tokio::net::TcpListener,
    gateway: &Arc<gateway::Gateway>,
    handshakes: config::Handshakes,
) -> (CancellationToken, TaskTracker) {
    let limits = serve::Limits {
        head_timeout: handshakes.timeout,
        pending_total: handshakes.max_pending,
        pending_per_address: handshakes.max_pending_per_ip,
        sockets_total: serve::sockets_within(open_file_limit()),
    };
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    serve::serve(
        listener,
        gateway.router(telemetry::metrics()),
        limits,
        stop.clone(),
        &tasks,
    );
    (stop, tasks)
}

/// The process's open-file limit, raised to its hard limit first: sockets
/// are what a chat server holds most of.
fn open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
            warn!(%error, limit, "cannot raise the open-file limit");
            limit
        }
    }
}
