//! The offline stack: everything the chat needs on AWS, on one machine.
//!
//! [`start`] brings up the embedded DynamoDB (or connects to an external
//! one), creates the tables, starts the WebSocket gateway with its
//! Management API and web client on one listener, and the stream poller that
//! feeds the stream processor. [`Stack::shutdown`] closes every socket (each
//! gets its `$disconnect`), lets the poller drain, then stops the servers.

pub mod config;
mod dynamo;
pub mod error;
pub mod filter;
mod gateway;
pub mod poller;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use handlers::offline::{dynamodb_client, ensure_tables, local_sdk_config};
use handlers::{Chat, Management, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

pub use config::{Args, Config, Storage};
pub use error::StartError;
pub use gateway::{MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, select_route};

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
    stop_poller: CancellationToken,
    poller: tokio::task::JoinHandle<()>,
    stop_servers: CancellationToken,
    servers: TaskTracker,
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
    /// stream, then stops the servers and the database.
    pub async fn shutdown(self) {
        self.gateway.close_all().await;
        self.stop_poller.cancel();
        if let Err(error) = self.poller.await {
            warn!(%error, "stream poller ended abnormally");
        }
        self.stop_servers.cancel();
        self.servers.close();
        self.servers.wait().await;
    }
}

/// Starts the whole stack.
pub async fn start(config: Config) -> Result<Stack, StartError> {
    let stop_servers = CancellationToken::new();
    let servers = TaskTracker::new();

    let (dynamodb_endpoint, checkpoint_path) = match &config.storage {
        Storage::External(endpoint) => (endpoint.clone(), None),
        Storage::Memory => {
            let embedded =
                dynamo::start(None, config.dynamodb_listen, stop_servers.clone(), &servers).await?;
            (embedded.endpoint, None)
        }
        Storage::Directory(dir) => {
            let embedded = dynamo::start(
                Some(dir),
                config.dynamodb_listen,
                stop_servers.clone(),
                &servers,
            )
            .await?;
            (embedded.endpoint, Some(dir.join(CHECKPOINT_FILE)))
        }
    };

    let sdk = local_sdk_config();
    let dynamodb = dynamodb_client(&sdk, &dynamodb_endpoint);
    ensure_tables(&dynamodb, &config.tables).await?;
    let stream_arn = dynamodb
        .describe_table()
        .table_name(&config.tables.session_history)
        .send()
        .await
        .map_err(|error| {
            StartError::Tables(handlers::error::StoreError::dynamo("DescribeTable", error))
        })?
        .table
        .and_then(|table| table.latest_stream_arn)
        .ok_or(StartError::NoStream)?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "the gateway",
            address: config.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| StartError::Bind {
        what: "the gateway",
        address: config.listen,
        source,
    })?;
    let management_endpoint = format!("http://{address}/{}", config.stage);
    let chat = Chat::new(
        Store::new(dynamodb, config.tables.clone()),
        Management::new(&sdk, Some(management_endpoint)),
        config.limits,
    );

    let gateway = gateway::Gateway::new(
        chat.clone(),
        gateway::GatewayConfig {
            stage: config.stage.clone(),
            idle_timeout: config.idle_timeout,
            max_connection: config.max_connection,
            web_dir: config.web_dir.clone(),
        },
        address,
    );
    let app = gateway
        .router(telemetry::metrics())
        .into_make_service_with_connect_info::<SocketAddr>();
    let stopped = stop_servers.clone();
    servers.spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await });
        if let Err(error) = serve.await {
            warn!(%error, "gateway server stopped with an error");
        }
    });

    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&sdk)
            .endpoint_url(&dynamodb_endpoint)
            .build(),
    );
    let poller = poller::Poller::new(
        streams,
        stream_arn,
        chat,
        config.stream.clone(),
        checkpoint_path,
    )?;
    let stop_poller = CancellationToken::new();
    let poller = tokio::spawn(poller.run(stop_poller.clone()));

    Ok(Stack {
        address,
        dynamodb_endpoint,
        stage: config.stage,
        tables: config.tables,
        gateway,
        stop_poller,
        poller,
        stop_servers,
        servers,
    })
}
