//! Test support (feature `testing`): a real DynamoDB engine with throwaway
//! tables. By default an embedded `dynoxide` server on 127.0.0.1 port 0;
//! with `CHAT_TEST_DYNAMODB_ENDPOINT` set, that endpoint (e.g. DynamoDB Local)
//! instead. Either way the real `aws-sdk-dynamodb` client talks HTTP to it.

#![allow(clippy::expect_used)] // test setup that cannot proceed should stop the test loudly

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;

use crate::config::Tables;
use crate::offline::{dynamodb_client, ensure_tables, local_sdk_config};

/// Environment variable naming an external DynamoDB endpoint for tests.
pub const TEST_ENDPOINT_VAR: &str = "CHAT_TEST_DYNAMODB_ENDPOINT";

/// A DynamoDB engine reachable over HTTP, with the chat's tables created
/// under names unique to this engine handle.
pub struct TestDynamo {
    pub sdk: SdkConfig,
    pub endpoint: String,
    pub client: Client,
    pub tables: Tables,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestDynamo {
    /// Starts (or connects to) the engine and creates fresh tables.
    pub async fn start() -> Self {
        let (endpoint, server) = match std::env::var(TEST_ENDPOINT_VAR) {
            Ok(endpoint) if !endpoint.is_empty() => (endpoint, None),
            _ => {
                let (endpoint, server) = serve_embedded().await;
                (endpoint, Some(server))
            }
        };
        let sdk = local_sdk_config();
        let client = dynamodb_client(&sdk, &endpoint);
        let tables = unique_tables();
        ensure_tables(&client, &tables)
            .await
            .expect("creating the test tables");
        Self {
            sdk,
            endpoint,
            client,
            tables,
            server,
        }
    }

    /// Whether this is the embedded engine (not an external one).
    pub fn is_embedded(&self) -> bool {
        self.server.is_some()
    }
}

impl Drop for TestDynamo {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Table names no other test uses, so tests can share one external engine.
pub fn unique_tables() -> Tables {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let suffix = &suffix[..12];
    Tables {
        active_connections: format!("ActiveConnections-{suffix}"),
        session_history: format!("SessionHistory-{suffix}"),
        message_history: format!("MessageHistory-{suffix}"),
    }
}

async fn serve_embedded() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the embedded DynamoDB");
    let address = listener.local_addr().expect("its address");
    let database = dynoxide::Database::memory().expect("an in-memory database");
    let server = tokio::spawn(dynoxide::server::serve_on(listener, database));
    (format!("http://{address}"), server)
}

/// A real HTTP endpoint standing in for the API Gateway Management API, so
/// handlers use the real `aws-sdk-apigatewaymanagement` client in tests. It
/// records every post, answers 410 GoneException for ids marked gone and
/// 403 ForbiddenException for ids marked failing.
pub struct FakeManagementApi {
    /// The endpoint to configure, stage path included.
    pub endpoint: String,
    state: std::sync::Arc<std::sync::Mutex<FakeState>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct FakeState {
    posts: Vec<(String, String)>,
    attempts: std::collections::HashMap<String, usize>,
    gone: std::collections::HashSet<String>,
    failing: std::collections::HashSet<String>,
}

impl FakeManagementApi {
    pub async fn start() -> Self {
        use axum::extract::{Path, State};
        use axum::http::StatusCode;
        use axum::response::IntoResponse;

        type Shared = std::sync::Arc<std::sync::Mutex<FakeState>>;
        async fn post(
            State(state): State<Shared>,
            Path((_stage, id)): Path<(String, String)>,
            body: String,
        ) -> axum::response::Response {
            let mut state = state.lock().expect("fake state");
            *state.attempts.entry(id.clone()).or_default() += 1;
            if state.gone.contains(&id) {
                return (
                    StatusCode::GONE,
                    [("x-amzn-ErrorType", "GoneException")],
                    r#"{"message":null}"#,
                )
                    .into_response();
            }
            if state.failing.contains(&id) {
                return (
                    StatusCode::FORBIDDEN,
                    [("x-amzn-ErrorType", "ForbiddenException")],
                    r#"{"message":"Forbidden"}"#,
                )
                    .into_response();
            }
            state.posts.push((id, body));
            StatusCode::OK.into_response()
        }

        let state = Shared::default();
        let app = axum::Router::new()
            .route("/{stage}/@connections/{id}", axum::routing::post(post))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Management API");
        let address = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            endpoint: format!("http://{address}/dev"),
            state,
            server,
        }
    }

    pub fn mark_gone(&self, connection_id: &str) {
        self.lock().gone.insert(connection_id.to_owned());
    }

    pub fn mark_failing(&self, connection_id: &str) {
        self.lock().failing.insert(connection_id.to_owned());
    }

    /// Every successful post so far, as (connection id, frame).
    pub fn posts(&self) -> Vec<(String, serde_json::Value)> {
        self.lock()
            .posts
            .iter()
            .map(|(id, body)| {
                (
                    id.clone(),
                    serde_json::from_str(body).expect("frames are JSON"),
                )
            })
            .collect()
    }

    /// How many posts were made to one connection, answered or not.
    pub fn attempts(&self, connection_id: &str) -> usize {
        self.lock()
            .attempts
            .get(connection_id)
            .copied()
            .unwrap_or(0)
    }

    /// The frames one connection received, in order.
    pub fn frames_for(&self, connection_id: &str) -> Vec<serde_json::Value> {
        self.posts()
            .into_iter()
            .filter(|(id, _)| id == connection_id)
            .map(|(_, frame)| frame)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake state")
    }
}

impl Drop for FakeManagementApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}
