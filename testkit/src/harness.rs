//! A [`Chat`] wired to a real DynamoDB engine and a real HTTP Management API
//! endpoint, with the route handlers as calls.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use handlers::records::{ActiveConnection, Session, SessionClose};
use handlers::time::Timestamp;
use handlers::{Chat, ChatLimits, Retention, Room, Store};
use serde_json::{Value, json};

use crate::item::{self, Item};
use crate::management::plain_http_management;
use crate::{FakeManagementApi, TestDynamo, fixtures};

/// Offsets from `connectedAt` of the WebSocket fixtures' `requestTimeEpoch`.
pub const MESSAGE_AT: i64 = 26_333;
pub const DISCONNECT_AT: i64 = 84_877;

/// The stream fixtures' session: opened and closed at these times.
pub const FIXTURE_CONNECTED_AT: &str = "2026-11-28T00:13:36.123Z";
pub const FIXTURE_DISCONNECTED_AT: &str = "2026-11-28T00:15:01.000Z";

pub struct Harness {
    pub db: TestDynamo,
    pub api: FakeManagementApi,
    pub chat: Chat,
    /// The local stack's Lambda API, running the fan-out workers
    /// ([`Harness::with_workers`]); `None`: every fan-out posts to the
    /// whole room itself.
    pub workers: Option<chat_local::lambda_api::LambdaApi>,
    /// `connectedAt` of the connections the handlers open: an hour before
    /// the test runs, so their `ttl` stays in the future (DynamoDB Local
    /// really expires items) and they are old enough to be pruned as stale.
    pub base: i64,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with_limits(ChatLimits::default()).await
    }

    pub async fn with_limits(limits: ChatLimits) -> Self {
        let db = TestDynamo::start().await;
        let api = FakeManagementApi::start().await;
        // Two items per Scan page, so any fan-out past two connections has
        // to follow LastEvaluatedKey.
        let store = Store::new(db.client.clone(), db.tables.clone()).with_page_size(2);
        let chat = Chat {
            store,
            management: plain_http_management(&db.sdk, &api.endpoint),
            limits,
            retention: Retention::default(),
            access: Default::default(),
            workers: None,
        };
        let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
        Self {
            db,
            api,
            chat,
            workers: None,
            base,
        }
    }

    /// A harness whose fan-outs hand a large room's rest to fan-out
    /// workers `function` names, through the real Lambda client and the
    /// local stack's Lambda API on a loopback port (which runs only
    /// `fanout`: another name fails every hand-off).
    pub async fn with_workers(function: &str) -> Self {
        let mut h = Self::start().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        let client = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&h.db.sdk)
                .endpoint_url(endpoint)
                .build(),
        );
        h.chat.workers = Some(handlers::fanout::Workers::new(client, function.to_owned()));
        let lambda = chat_local::lambda_api::LambdaApi::new(h.chat.clone(), 4);
        let router = lambda.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        h.workers = Some(lambda);
        h
    }

    /// Waits until every fan-out worker handed a task has finished.
    pub async fn workers_idle(&self) {
        if let Some(workers) = &self.workers {
            workers.idle().await;
        }
    }

    /// The contract timestamp `offset_ms` after the connections opened.
    pub fn at(&self, offset_ms: i64) -> String {
        Timestamp::from_epoch_millis(self.base + offset_ms)
            .expect("in range")
            .to_string()
    }

    /// A WebSocket fixture event for connection `id`, moved to
    /// [`Self::base`], with its request context adjusted.
    pub fn event(
        &self,
        fixture: &str,
        id: &str,
        adjust: impl FnOnce(&mut Value),
    ) -> ApiGatewayWebsocketProxyRequest {
        let base = self.base;
        fixtures::websocket_event(fixture, id, |context| {
            let since_connect = context["requestTimeEpoch"].as_i64().expect("a time")
                - context["connectedAt"].as_i64().expect("a time");
            context["connectedAt"] = json!(base);
            context["requestTimeEpoch"] = json!(base + since_connect);
            adjust(context);
        })
    }

    pub async fn connect(&self, id: &str) -> ApiGatewayProxyResponse {
        handlers::connect(&self.chat, self.event("connect.json", id, |_| {}))
            .await
            .expect("connect handled")
    }

    /// A `history` frame from `id`; the response body as JSON.
    pub async fn history(&self, id: &str, body: &str) -> (i64, Value) {
        let mut event = self.event("message.json", id, |context| {
            context["routeKey"] = json!("history");
        });
        event.body = Some(body.to_owned());
        let response = handlers::history(&self.chat, event)
            .await
            .expect("history handled");
        (response.status_code, body_json(&response))
    }

    /// `$disconnect`, `offset_ms` after the connection opened.
    pub async fn disconnect_at(&self, id: &str, offset_ms: i64) -> ApiGatewayProxyResponse {
        let at = self.base + offset_ms;
        let event = self.event("disconnect.json", id, |context| {
            context["requestTimeEpoch"] = json!(at);
        });
        handlers::disconnect(&self.chat, event)
            .await
            .expect("disconnect handled")
    }

    pub async fn send(&self, id: &str, body: &str) -> ApiGatewayProxyResponse {
        self.send_at(id, body, 0).await
    }

    /// A `sendmessage` frame received `offset_ms` after the fixture's time.
    pub async fn send_at(&self, id: &str, body: &str, offset_ms: i64) -> ApiGatewayProxyResponse {
        let mut event = self.event("message.json", id, |context| {
            let at = context["requestTimeEpoch"].as_i64().expect("a time") + offset_ms;
            context["requestTimeEpoch"] = json!(at);
        });
        event.body = Some(body.to_owned());
        handlers::sendmessage(&self.chat, event)
            .await
            .expect("sendmessage handled")
    }

    pub async fn default_route(&self, id: &str, body: &str) -> ApiGatewayProxyResponse {
        let mut event = self.event("message.json", id, |context| {
            context["routeKey"] = json!("$default");
        });
        event.body = Some(body.to_owned());
        handlers::default(event).await.expect("default handled")
    }

    /// Rows as `$connect` writes them, in the lobby (where the stream
    /// fixtures' sessions are), at the stream fixtures' time.
    pub async fn connected(&self, id: &str) {
        self.connected_in(id, &Room::lobby()).await;
    }

    /// Rows as `$connect` writes them, at the stream fixtures' time (with a
    /// `ttl` counted from now, so DynamoDB Local keeps the row).
    async fn connected_in(&self, id: &str, room: &Room) {
        let connected_at: Timestamp = FIXTURE_CONNECTED_AT.parse().expect("a time");
        let session = Session::opened(
            id.to_owned(),
            Some("203.0.113.7".to_owned()),
            connected_at,
            room.clone(),
        );
        let mut connection = ActiveConnection::new(id.to_owned(), connected_at, room.clone());
        connection.ttl = ActiveConnection::new(id.to_owned(), Timestamp::now(), room.clone()).ttl;
        self.chat
            .store
            .open_session(&connection, &session)
            .await
            .expect("connected");
    }

    /// What `$disconnect` does, at the stream fixtures' time.
    pub async fn disconnected(&self, id: &str) {
        self.chat
            .store
            .delete_connection(id)
            .await
            .expect("deleted");
        let close = SessionClose {
            disconnected_at: FIXTURE_DISCONNECTED_AT.parse().expect("a time"),
            disconnect_status_code: Some(1001),
            disconnect_reason: Some("Going away".to_owned()),
            removal: None,
        };
        self.chat
            .store
            .close_session(id, &close)
            .await
            .expect("closed");
    }

    pub async fn connection_item(&self, id: &str) -> Option<Item> {
        item::connection_row(&self.db.client, &self.db.tables.active_connections, id).await
    }

    pub async fn session_item(&self, id: &str) -> Option<Item> {
        item::connection_row(&self.db.client, &self.db.tables.session_history, id).await
    }

    async fn all_items(&self, table: &str) -> Vec<Item> {
        item::scan(&self.db.client, table).await
    }

    pub async fn messages(&self) -> Vec<Item> {
        self.all_items(&self.db.tables.message_history).await
    }

    /// Ids of the ActiveConnections rows, sorted.
    pub async fn active_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .all_items(&self.db.tables.active_connections)
            .await
            .iter()
            .map(|row| item::string(row, "connection_id"))
            .collect();
        ids.sort();
        ids
    }
}

/// A response's body, as JSON.
pub fn body_json(response: &ApiGatewayProxyResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).expect("body is JSON"),
        other => panic!("expected a text body, got {other:?}"),
    }
}
