//! The API Gateway WebSocket emulator: upgrades, route selection, the
//! Management API, and the web client, on one listener.

mod connections;
pub mod cross_site;
mod events;
mod ids;
mod management;
mod socket;
pub mod throttle;
mod upgrade;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::query_map::QueryMap;
use axum::Router;
use axum::extract::ws::close_code;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use handlers::Chat;
use handlers::auth::{Denial, Identity, Verifier, token_of};
use handlers::limits::{GATEWAY_MAX_FRAME_BYTES, GATEWAY_MAX_MESSAGE_BYTES};
use handlers::protocol::{Route, ServerFrame};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::services::ServeDir;
use tracing::{debug, error, info, warn};

use connections::{Connection, Registry};
pub use socket::OUTBOUND_FRAGMENT_BYTES;

/// Bytes read from a socket at a time. Frames larger than this are read in
/// several steps; tungstenite's default (128 KiB, zero-filled up front) would
/// make every idle connection hold 128 KiB.
const SOCKET_READ_BUFFER_BYTES: usize = 4 * 1024;

/// The gateway's settings.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub stage: String,
    pub idle_timeout: Duration,
    /// How long a frame may wait for a client to read it before the client
    /// is dropped.
    pub slow_client_timeout: Duration,
    pub max_connection: Duration,
    pub web_dir: PathBuf,
    /// Connections one client address may hold at once.
    pub max_connections_per_ip: usize,
    /// Route handler invocations running at once, as Lambda's concurrency
    /// bounds them; more wait their turn instead of piling onto DynamoDB.
    pub invocation_concurrency: usize,
    /// How long a handshake waits for `$connect`'s answer, from its arrival
    /// (API Gateway's integration timeout).
    pub integration_timeout: Duration,
    /// The stage's route throttling.
    pub throttles: throttle::StageThrottles,
    /// What one client address may send, every route and connection
    /// together.
    pub address_budget: handlers::limits::RouteThrottle,
    /// Lets peers other than this machine use the Management API.
    pub management_api_key: Option<String>,
    /// Added to every Management API call (a benchmark's simulated AWS).
    pub management_api_delay: Duration,
    /// Who may reach the stack from a browser (its `listen` is filled in
    /// by [`Gateway::new`]).
    pub cross_site: cross_site::CrossSite,
}

/// Shared state of the gateway.
pub struct Gateway {
    chat: Chat,
    config: GatewayConfig,
    domain_name: String,
    connections: Registry,
    accepting: AtomicBool,
    /// Cancelled to close every connection (shutdown).
    closing: CancellationToken,
    /// Every connection's task, so shutdown can wait for their `$disconnect`.
    tasks: TaskTracker,
    /// The `$connect` authorizer, when sign-in is on.
    verifier: Option<Verifier>,
    /// Permits for route handler invocations
    /// ([`GatewayConfig::invocation_concurrency`]).
    invocations: tokio::sync::Semaphore,
    /// The stage's route throttling.
    throttles: throttle::Throttles,
    /// Each client address's budget.
    addresses: throttle::AddressBudgets,
}

impl Gateway {
    pub fn new(
        chat: Chat,
        mut config: GatewayConfig,
        verifier: Option<Verifier>,
        address: SocketAddr,
    ) -> Arc<Self> {
        config.cross_site.listen = Some(address);
        Arc::new(Self {
            invocations: tokio::sync::Semaphore::new(config.invocation_concurrency.max(1)),
            throttles: throttle::Throttles::new(config.throttles),
            addresses: throttle::AddressBudgets::new(config.address_budget),
            chat,
            config,
            verifier,
            domain_name: address.to_string(),
            connections: Registry::default(),
            accepting: AtomicBool::new(true),
            closing: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    /// The HTTP routes: WebSocket upgrades at `/` and `/{stage}`, the
    /// Management API, `/metrics`, `/config.json`, the metrics dashboard at
    /// `/dashboard`, and the web client.
    pub fn router(self: &Arc<Self>, metrics: Option<crate::telemetry::Metrics>) -> Router {
        let stage = &self.config.stage;
        let connections_api = management::routes(self);
        let metrics_route = get(move || async move {
            match metrics {
                Some(metrics) => (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    metrics.render(),
                )
                    .into_response(),
                None => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "metrics recorder not installed",
                )
                    .into_response(),
            }
        });
        Router::new()
            .route("/", get(root))
            .route(&format!("/{stage}"), get(upgrade_only))
            .route(&format!("/{stage}/"), get(upgrade_only))
            .route("/config.json", get(client_config))
            .route("/dashboard", get(dashboard))
            .route("/metrics", metrics_route)
            .nest(&format!("/{stage}/@connections"), connections_api.clone())
            .nest("/@connections", connections_api)
            .fallback_service(ServeDir::new(&self.config.web_dir))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(self),
                guard_cross_site,
            ))
            .with_state(Arc::clone(self))
    }

    /// The Management API alone, at the path the chat's own client uses
    /// (`/{stage}/@connections`), for the in-process transport.
    pub fn management_router(self: &Arc<Self>) -> Router {
        Router::new()
            .nest(
                &format!("/{}/@connections", self.config.stage),
                management::routes(self),
            )
            .with_state(Arc::clone(self))
    }

    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Stops accepting, closes every socket with 1001 and waits until each
    /// one's `$disconnect` has run.
    pub async fn close_all(&self) {
        self.accepting.store(false, Ordering::Release);
        self.closing.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Runs one route handler invocation once a permit is free: a crowd
    /// connecting or leaving at once queues here, as it would for Lambda's
    /// concurrency, instead of inside DynamoDB calls that would time out.
    async fn invoke<T>(&self, invocation: impl std::future::Future<Output = T>) -> T {
        // The semaphore is never closed, so a permit always comes.
        let _permit = self.invocations.acquire().await.ok();
        invocation.await
    }

    fn api(&self) -> events::Api<'_> {
        events::Api {
            api_id: "local",
            stage: &self.config.stage,
            domain_name: &self.domain_name,
        }
    }

    /// Runs `$connect`; on 2xx completes the upgrade, otherwise answers with
    /// the handler's status.
    async fn accept(
        self: Arc<Self>,
        ws: upgrade::Upgrade,
        peer: SocketAddr,
        headers: HeaderMap,
        query: Vec<(String, String)>,
    ) -> Response {
        if !self.accepting.load(Ordering::Acquire) {
            return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
        }
        if let Err(why) = self.config.cross_site.check_origin(&headers) {
            info!(peer = %peer.ip(), "refused an upgrade from another site's page");
            return (StatusCode::FORBIDDEN, why).into_response();
        }
        // Counts as a running connection task from `$connect` on, so a
        // shutdown that starts now still waits for this one's `$disconnect`.
        let in_flight = self.tasks.token();
        let arrived = tokio::time::Instant::now();
        let now = now_ms();
        let identity = match self.authorize(&headers, &query).await {
            Ok(identity) => identity,
            Err(status) => return status.into_response(),
        };
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        // `::ffff:a.b.c.d` (a dual-stack listener) is a.b.c.d, as API
        // Gateway would report it.
        let address = peer.ip().to_canonical();
        let (connection, outbox) = Connection::new(
            ids::new_id(),
            now,
            address.to_string(),
            user_agent,
            identity,
            self.addresses.of(address),
        );
        if !self.throttles.admit(Route::Connect) {
            info!(peer = %peer.ip(), "throttled a handshake: over the stage's $connect rate");
            return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
        }
        let cap = self.config.max_connections_per_ip;
        if !self.connections.insert_within(Arc::clone(&connection), cap) {
            info!(peer = %peer.ip(), cap, "refused a connection over the per-address cap");
            return (
                StatusCode::TOO_MANY_REQUESTS,
                format!("at most {cap} connections from one address"),
            )
                .into_response();
        }
        let event = events::connect(&self.api(), &connection, &headers, &query);
        let deadline = arrived + self.config.integration_timeout;
        let invocation = self.invoke(handlers::connect(&self.chat, event));
        let Ok(answer) = tokio::time::timeout_at(deadline, invocation).await else {
            // As API Gateway gives up. The handler stops where it is (on
            // AWS it runs on, unheard); whatever it had written stays, a
            // session without a connection, for the first post's 410 after
            // `CONNECT_GRACE`, or the repair, to close.
            self.connections.remove(&connection.id);
            info!(connection_id = %connection.id, "$connect did not answer within the integration timeout");
            return (StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out").into_response();
        };
        let status = status_of(&answer, &connection.id, Route::Connect);
        if !(200..300).contains(&status) {
            self.connections.remove(&connection.id);
            info!(connection_id = %connection.id, status, "$connect rejected the handshake");
            let status = u16::try_from(status)
                .ok()
                .and_then(|status| StatusCode::from_u16(status).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            // The reason, for clients that read a refused handshake's body.
            let reason = answer.map(route_response).unwrap_or_default();
            return (status, reason).into_response();
        }
        // Connected, as API Gateway has it once `$connect` said yes: posts
        // are accepted from now on and wait in the outbox for the socket,
        // however long the upgrade takes to complete under load.
        connection.set_open(true);
        self.upgrade(ws, connection, outbox, in_flight)
    }

    /// Completes the upgrade `$connect` allowed: API Gateway's frame limits,
    /// then the connection's life ([`socket::run`]); `$disconnect` if the
    /// upgrade itself fails.
    fn upgrade(
        self: Arc<Self>,
        ws: upgrade::Upgrade,
        connection: Arc<Connection>,
        outbox: tokio::sync::mpsc::Receiver<connections::Outbound>,
        in_flight: impl Send + 'static,
    ) -> Response {
        let failed_gateway = Arc::clone(&self);
        let failed_connection = Arc::clone(&connection);
        let gateway = self;
        let config = WebSocketConfig::default()
            .max_frame_size(Some(GATEWAY_MAX_FRAME_BYTES))
            .max_message_size(Some(GATEWAY_MAX_MESSAGE_BYTES))
            .read_buffer_size(SOCKET_READ_BUFFER_BYTES)
            // Each frame goes to the socket as it is sent, not batched.
            .write_buffer_size(0);
        let failed = move |error: hyper::Error| {
            warn!(connection_id = %failed_connection.id, %error, "upgrade failed after $connect");
            failed_connection.set_open(false);
            let gateway = failed_gateway;
            gateway.tasks.clone().spawn(async move {
                gateway.connections.remove(&failed_connection.id);
                gateway
                    .disconnect(&failed_connection, close_code::ABNORMAL, "Upgrade failed")
                    .await;
            });
        };
        ws.accept(config, failed, move |socket| async move {
            socket::run(gateway, connection, outbox, socket).await;
            drop(in_flight);
        })
    }

    /// What API Gateway's `$connect` authorizer decides, when sign-in is on:
    /// no token is 401, a token that does not verify 403 (the reason is
    /// logged; the token never is), a good one the identity to pass on.
    async fn authorize(
        &self,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> Result<Option<Identity>, StatusCode> {
        let Some(verifier) = &self.verifier else {
            return Ok(None);
        };
        let query = QueryMap::from(
            query
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect::<std::collections::HashMap<_, _>>(),
        );
        // The deployment's identity source is `route.request.querystring.token`:
        // API Gateway answers 401 without calling the authorizer when it is
        // missing, even if an Authorization header came along.
        let query_token = query.first("token").filter(|token| !token.is_empty());
        let (Some(_), Some(token)) = (query_token, token_of(headers, &query)) else {
            Denial::Missing.record();
            return Err(StatusCode::UNAUTHORIZED);
        };
        match verifier.verify_fresh(token).await {
            Ok(identity) => Ok(Some(identity)),
            Err(reason) => {
                reason.record();
                Err(StatusCode::FORBIDDEN)
            }
        }
    }

    /// Runs `$disconnect`. Always runs once per connection that passed
    /// `$connect`; its response goes nowhere, as on AWS.
    async fn disconnect(&self, connection: &Connection, code: u16, reason: &str) {
        let event = events::disconnect(&self.api(), connection, code, reason, now_ms());
        status_of(
            &self.invoke(handlers::disconnect(&self.chat, event)).await,
            &connection.id,
            Route::Disconnect,
        );
    }

    /// Whether a frame just read may be handled: within its route's stage
    /// throttle and its address's budget. Checked as it is read, before it
    /// is queued, so a flood is answered at once and leaves nothing behind;
    /// `Err` holds the answer.
    fn admit_frame(&self, connection: &Connection, route: Route) -> Result<(), String> {
        if !self.throttles.admit(route) {
            debug!(connection_id = %connection.id, route = route.key(), "throttled a frame: over the stage's route rate");
            return Err(throttled(&connection.id));
        }
        connection.budget.take_or_wait().map_err(|wait| {
            debug!(connection_id = %connection.id, peer = %connection.source_ip, "refused a frame over its address's budget");
            let budget = self.addresses.throttle();
            ServerFrame::address_rate_limited(
                budget.rate_per_second,
                budget.burst,
                u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            )
            .to_json()
        })
    }

    /// Runs the route `$request.body.action` selects and returns the frame
    /// to send back, if the route is two-way.
    async fn route(
        &self,
        connection: &Connection,
        route: Route,
        body: &str,
        received_at_ms: i64,
    ) -> Option<String> {
        let event = events::message(&self.api(), connection, route, body, received_at_ms);
        let result = match route {
            Route::SendMessage => self.invoke(handlers::sendmessage(&self.chat, event)).await,
            Route::History => self.invoke(handlers::history(&self.chat, event)).await,
            Route::Remove | Route::Ban | Route::Delete => {
                self.invoke(handlers::moderate(&self.chat, event)).await
            }
            Route::Default | Route::Connect | Route::Disconnect => {
                self.invoke(handlers::default(event)).await
            }
        };
        if !route.is_two_way() {
            return None;
        }
        match result {
            Ok(response) => Some(route_response(response)),
            Err(failure) => {
                error!(connection_id = %connection.id, route = route.key(), error = %failure, "handler failed");
                // What API Gateway sends when the integration fails.
                Some(
                    serde_json::json!({
                        "message": "Internal server error",
                        "connectionId": connection.id,
                        "requestId": ids::new_id(),
                    })
                    .to_string(),
                )
            }
        }
    }
}

/// What API Gateway answers a frame its route's throttle refused, in place
/// of the route's (assumed: modelled on its answer when an integration
/// fails, with its 429's "Too Many Requests"; no account was reachable to
/// record one).
fn throttled(connection_id: &str) -> String {
    serde_json::json!({
        "message": "Too Many Requests",
        "connectionId": connection_id,
        "requestId": ids::new_id(),
    })
    .to_string()
}

/// What a two-way route's response sends the caller: its body, and an empty
/// frame when it has none, as API Gateway does (serverless/serverless#6816),
/// so a handler that forgets its body shows up locally too.
fn route_response(response: ApiGatewayProxyResponse) -> String {
    use aws_lambda_events::encodings::Body;
    match response.body {
        Some(Body::Text(text)) => text,
        Some(Body::Binary(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Some(Body::Empty) | None => String::new(),
        Some(_) => String::new(),
    }
}

fn status_of(
    result: &Result<ApiGatewayProxyResponse, handlers::Error>,
    connection_id: &str,
    route: Route,
) -> i64 {
    match result {
        Ok(response) => response.status_code,
        Err(failure) => {
            error!(connection_id = %connection_id, route = route.key(), error = %failure, "handler failed");
            500
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

type Handshake = Result<upgrade::Upgrade, upgrade::NotAnUpgrade>;

/// Every request to the public listener: refused unless its `Host` names
/// this stack; the page's security headers on whatever is not the
/// Management API or an upgrade ([`cross_site`]).
async fn guard_cross_site(
    State(gateway): State<Arc<Gateway>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err(why) = gateway.config.cross_site.check_host(request.headers()) {
        info!("refused a request for another host name");
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let api = request.uri().path().contains("/@connections");
    let mut response = next.run(request).await;
    if !api && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        cross_site::add_page_headers(response.headers_mut());
    }
    response
}

/// `/`: a WebSocket upgrade, or the chat page for a browser.
async fn root(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    ws: Handshake,
) -> Response {
    if ws.is_err() {
        return page(&gateway, "index.html").await;
    }
    upgrade_only(State(gateway), ConnectInfo(peer), Query(query), headers, ws).await
}

/// `/dashboard`: the local metrics dashboard.
async fn dashboard(State(gateway): State<Arc<Gateway>>) -> Response {
    page(&gateway, "dashboard.html").await
}

async fn page(gateway: &Gateway, file: &str) -> Response {
    match tokio::fs::read_to_string(gateway.config.web_dir.join(file)).await {
        Ok(page) => axum::response::Html(page).into_response(),
        Err(_) => (
            StatusCode::NOT_FOUND,
            format!("{file} not found in the web client's directory; see --web-dir"),
        )
            .into_response(),
    }
}

/// `/{stage}`: WebSocket upgrades only.
async fn upgrade_only(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    ws: Handshake,
) -> Response {
    match ws {
        Ok(ws) => gateway.accept(ws, peer, headers, query).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// What the web client needs to know about this stack.
/// Every limit a client meets, from [`handlers::limits`]: the page checks
/// rooms and names and sizes its requests with them (its own copies are
/// only the fallback for a page served elsewhere; a test compares them).
fn client_limits() -> serde_json::Value {
    use handlers::limits::{
        DISPLAY_NAME_CHARS, GATEWAY_MAX_FRAME_BYTES, GATEWAY_MAX_MESSAGE_BYTES,
        HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, MAX_MODERATION_REASON_CHARS, ROOM_NAME_CHARS,
        WELCOME_MAX_LISTED,
    };
    serde_json::json!({
        "room_name_chars": *ROOM_NAME_CHARS.end(),
        "display_name_chars": *DISPLAY_NAME_CHARS.end(),
        "history_default_limit": HISTORY_DEFAULT_LIMIT,
        "history_max_limit": HISTORY_MAX_LIMIT,
        "welcome_max_listed": WELCOME_MAX_LISTED,
        "max_frame_bytes": GATEWAY_MAX_FRAME_BYTES,
        "max_message_frame_bytes": GATEWAY_MAX_MESSAGE_BYTES,
        "moderation_reason_chars": MAX_MODERATION_REASON_CHARS,
        "ban_minutes_max": *handlers::limits::BAN_MINUTES_RANGE.end(),
    })
}

async fn client_config(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or(&gateway.domain_name);
    let mut config = serde_json::json!({
        "websocket_url": format!("ws://{host}/{}", gateway.config.stage),
        "max_message_bytes": gateway.chat.limits.max_chat_message_bytes,
        "heartbeat_secs": handlers::limits::HEARTBEAT_INTERVAL.as_secs(),
        "sign_in": gateway.verifier.is_some(),
        "limits": client_limits(),
    });
    // With sign-in, who may join which room: the page says why a room was
    // refused (a browser is not told).
    if let Some(verifier) = &gateway.verifier {
        let access = &gateway.chat.access;
        config["room_access"] = serde_json::json!(access.name());
        config["members_only_rooms"] = serde_json::json!(access.members_only());
        config["rooms_claim"] = serde_json::json!(verifier.rooms_claim());
    }
    axum::Json(config).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page's fallback limits (web/chat-rules.js, for a page served
    /// where there is no /config.json) are the ones /config.json serves.
    #[test]
    fn the_pages_fallback_limits_are_the_servers() {
        let script = include_str!("../../../web/chat-rules.js");
        let start = script
            .find("const FALLBACK_LIMITS = Object.freeze({")
            .expect("web/chat-rules.js has FALLBACK_LIMITS");
        let block = &script[start..];
        let block = &block[..block.find("});").expect("its end")];
        let fallbacks: serde_json::Map<String, serde_json::Value> = block
            .lines()
            .skip(1)
            .filter_map(|line| line.trim().strip_suffix(','))
            .filter_map(|entry| entry.split_once(": "))
            .map(|(key, value)| {
                (
                    key.to_owned(),
                    serde_json::json!(value.parse::<u64>().expect("a number")),
                )
            })
            .collect();
        assert_eq!(serde_json::Value::Object(fallbacks), client_limits());
    }
    use aws_lambda_events::encodings::Body;

    #[test]
    fn a_two_way_route_without_a_body_sends_an_empty_frame_as_aws_does() {
        let mut response = ApiGatewayProxyResponse::default();
        response.status_code = 200;
        assert_eq!(route_response(response.clone()), "");
        response.body = Some(Body::Text(r#"{"type":"pong","message":"pong"}"#.into()));
        assert_eq!(
            route_response(response),
            r#"{"type":"pong","message":"pong"}"#
        );
    }
}
