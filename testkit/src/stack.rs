//! The whole local stack in-process on port 0, and WebSocket clients that
//! talk to it as a user's would. With `CHAT_TEST_DYNAMODB_ENDPOINT` set, the
//! stack uses that DynamoDB (e.g. DynamoDB Local) instead of the embedded
//! one.

use std::path::Path;
use std::time::Duration;

use chat_local::{Args, Config, Stack};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::dynamo::external_endpoint;
use crate::item::{Item, connection_row};
use crate::{PATIENCE, eventually};

pub use crate::dynamo::unique_prefix;

pub struct TestStack {
    pub stack: Stack,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The data directory [`TestStack::start`] made; removed with it.
    _data_dir: Option<tempfile::TempDir>,
}

impl TestStack {
    /// A stack of its own: a fresh data directory (removed when the test
    /// ends) and table prefix, and `flags`.
    pub async fn start(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary data directory");
        let stack = start_stack(dir.path(), &unique_prefix(), flags).await;
        Self {
            _data_dir: Some(dir),
            ..stack
        }
    }

    /// The real Management API client, pointed at this stack's endpoint.
    pub fn management_client(&self) -> aws_sdk_apigatewaymanagement::Client {
        let sdk = chat_local::aws::local_sdk_config();
        aws_sdk_apigatewaymanagement::Client::from_conf(
            aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
                .endpoint_url(self.stack.management_endpoint())
                .build(),
        )
    }

    /// Every row of MessageHistory.
    pub async fn stored_messages(&self) -> Vec<Item> {
        crate::item::scan(&self.dynamodb, &self.stack.tables.message_history).await
    }

    /// Waits until `$disconnect` has closed the session of `connection_id`.
    pub async fn closed_session(&self, connection_id: &str) -> Item {
        let table = &self.stack.tables.session_history;
        eventually("the session is closed", || async {
            connection_row(&self.dynamodb, table, connection_id)
                .await
                .filter(|item| item.contains_key("disconnected_at"))
        })
        .await
    }
}

/// Starts a stack on port 0 with its data in `data_dir`, a table prefix of
/// its own, a fast stream poll, and `extra` flags.
pub async fn start_stack(data_dir: &Path, table_prefix: &str, extra: &[&str]) -> TestStack {
    start_stack_on(external_endpoint(), data_dir, table_prefix, extra).await
}

/// [`start_stack`] with its DynamoDB at `dynamodb_endpoint` (e.g. a
/// [`crate::proxy::FaultProxy`]), or the embedded one when `None`.
pub async fn start_stack_on(
    dynamodb_endpoint: Option<String>,
    data_dir: &Path,
    table_prefix: &str,
    extra: &[&str],
) -> TestStack {
    let mut argv: Vec<String> = [
        "chat-local",
        "--listen",
        "127.0.0.1:0",
        "--dynamodb-listen",
        "127.0.0.1:0",
        "--stream-poll-ms",
        "50",
        "--table-prefix",
        table_prefix,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    argv.push("--data-dir".into());
    argv.push(data_dir.display().to_string());
    if let Some(endpoint) = dynamodb_endpoint {
        argv.push("--dynamodb-endpoint".into());
        argv.push(endpoint);
    }
    argv.extend(extra.iter().map(|s| (*s).to_owned()));
    let config = Config::from(Args::try_parse_from(argv).expect("valid flags"));
    let stack = chat_local::start(config).await.expect("the stack starts");
    let dynamodb = chat_local::aws::dynamodb_client(
        &chat_local::aws::local_sdk_config(),
        &stack.dynamodb_endpoint,
    );
    TestStack {
        stack,
        dynamodb,
        _data_dir: None,
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client, as a user's would be.
pub struct Client {
    pub socket: Socket,
    /// This connection's id, learned from its `welcome` frame.
    pub id: String,
    /// The `welcome` frame.
    pub welcome: Value,
    /// Frames received but not yet asked for.
    backlog: Vec<Value>,
}

impl Client {
    /// Connects and waits for the `welcome` frame.
    pub async fn connect(url: &str) -> Self {
        let mut client = Self::open(url).await;
        client.await_welcome().await;
        client
    }

    /// Connects without waiting for the `welcome` (the stream processor
    /// sends it): `id` stays empty until [`Self::await_welcome`].
    pub async fn open(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connects");
        Self {
            socket,
            id: String::new(),
            welcome: Value::Null,
            backlog: Vec::new(),
        }
    }

    /// [`Self::connect`] from another loopback address (127.0.0.2, say):
    /// another client machine, as far as the stack can tell. `server` is
    /// the address `url` names.
    pub async fn connect_from(
        url: &str,
        server: std::net::SocketAddr,
        local: std::net::IpAddr,
    ) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(std::net::SocketAddr::new(local, 0))
            .expect("binds the local address");
        let tcp = socket.connect(server).await.expect("connects");
        let (socket, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("upgrades");
        let mut client = Self {
            socket,
            id: String::new(),
            welcome: Value::Null,
            backlog: Vec::new(),
        };
        client.await_welcome().await;
        client
    }

    /// Waits for the `welcome` frame; learns the connection's id from it.
    pub async fn await_welcome(&mut self) {
        let welcome = self.next_of_type("welcome").await;
        self.id = welcome["connection_id"]
            .as_str()
            .expect("welcome names the connection")
            .to_owned();
        self.welcome = welcome;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("sends");
    }

    pub async fn say(&mut self, text: &str) {
        let frame = serde_json::json!({"action": "sendmessage", "message": text}).to_string();
        self.send_text(&frame).await;
    }

    /// The next JSON frame, whatever its type.
    pub async fn next_frame(&mut self) -> Value {
        if !self.backlog.is_empty() {
            return self.backlog.remove(0);
        }
        self.read_frame(PATIENCE)
            .await
            .expect("a frame arrives in time")
    }

    /// Reads `presence` frames until each of `ids` has been announced as
    /// joined: their arrival has gone out to the room.
    pub async fn until_joined(&mut self, ids: &[String]) {
        let mut waiting: Vec<&String> = ids.iter().collect();
        while !waiting.is_empty() {
            let presence = self.next_of_type("presence").await;
            let joined = presence["joined"].as_array().cloned().unwrap_or_default();
            waiting.retain(|id| !joined.iter().any(|m| m["connection_id"] == id.as_str()));
        }
    }

    /// The next frame of `frame_type`; others are kept for later.
    pub async fn next_of_type(&mut self, frame_type: &str) -> Value {
        if let Some(index) = self.backlog.iter().position(|f| f["type"] == frame_type) {
            return self.backlog.remove(index);
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.read_frame(left).await.unwrap_or_else(|| {
                panic!(
                    "no {frame_type} frame within {PATIENCE:?}; saw {:?}",
                    self.backlog
                )
            });
            if frame["type"] == frame_type {
                return frame;
            }
            self.backlog.push(frame);
        }
    }

    /// The next frame of `frame_type`; panics on an `error` frame first.
    pub async fn next_of_type_or_error(&mut self, frame_type: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(index) = self
                .backlog
                .iter()
                .position(|f| f["type"] == frame_type || f["type"] == "error")
            {
                let frame = self.backlog.remove(index);
                assert_eq!(frame["type"], frame_type, "{frame}");
                return frame;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .read_frame(left)
                .await
                .unwrap_or_else(|| panic!("no {frame_type} frame within {PATIENCE:?}"));
            self.backlog.push(frame);
        }
    }

    /// Every frame of `frame_type` arriving within `quiet`.
    pub async fn drain_of_type(&mut self, frame_type: &str, quiet: Duration) -> Vec<Value> {
        while let Some(frame) = self.read_frame(quiet).await {
            self.backlog.push(frame);
        }
        let (matching, rest): (Vec<Value>, Vec<Value>) = self
            .backlog
            .drain(..)
            .partition(|f| f["type"] == frame_type);
        self.backlog = rest;
        matching
    }

    async fn read_frame(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let next = tokio::time::timeout(wait, self.socket.next())
                .await
                .ok()??;
            match next {
                Ok(Message::Text(text)) => {
                    return Some(
                        serde_json::from_str(text.as_str()).expect("server frames are JSON"),
                    );
                }
                Ok(Message::Close(frame)) => panic!("closed unexpectedly: {frame:?}"),
                Ok(_) => continue,
                Err(error) => panic!("socket error: {error}"),
            }
        }
    }

    /// Waits for the server to close the connection; its close frame.
    pub async fn closed_by_server(&mut self) -> Option<CloseFrame> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => panic!("the server did not close the connection within {PATIENCE:?}"),
                Ok(None) => return None,
                Ok(Some(Ok(Message::Close(frame)))) => return frame,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) => return None,
            }
        }
    }
}

/// The WebSocket URL a `chat-local` process prints in its banner; its
/// stdout keeps being drained, so the process never blocks on it.
pub fn banner_websocket_url(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("chat-local's stdout is piped");
    let (urls, url) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.trim().strip_prefix("WebSocket URL") {
                let _ = urls.send(url.trim().to_owned());
            }
        }
    });
    url.recv_timeout(PATIENCE * 3)
        .expect("the banner names the WebSocket URL")
}
