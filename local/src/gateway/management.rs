//! The Management API: `POST`, `GET` and `DELETE /@connections/{id}`, with
//! API Gateway's status codes, bodies and `x-amzn-ErrorType` headers, so the
//! real AWS SDK clients (Rust, boto3) map the errors as they do on AWS.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::close_code;
use std::net::{IpAddr, SocketAddr};
use tokio_tungstenite::tungstenite::Message;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tracing::info;

use handlers::limits::GATEWAY_MAX_MESSAGE_BYTES;
use handlers::time::Timestamp;

use super::Gateway;
use super::connections::{Outbound, SendError};

pub(super) fn routes(gateway: &Arc<Gateway>) -> Router<Arc<Gateway>> {
    Router::new()
        .route(
            "/{id}",
            post(post_to).get(get_connection).delete(delete_connection),
        )
        .route_layer(middleware::from_fn_with_state(Arc::clone(gateway), guard))
}

/// The Management API answers this machine only, unless a key is configured
/// (`--management-api-key`); then other peers must send it as `x-api-key`.
/// Anything else gets API Gateway's 403 `ForbiddenException`.
async fn guard(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if super::cross_site::from_a_browser(request.headers()) {
        info!(%peer, "refused a Management API call made by a browser");
        return error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden");
    }
    let given = request
        .headers()
        .get("x-api-key")
        .map(|value| value.as_bytes());
    if may_manage(
        peer.ip(),
        gateway.config.management_api_key.as_deref(),
        given,
    ) {
        if !gateway.config.management_api_delay.is_zero() {
            tokio::time::sleep(gateway.config.management_api_delay).await;
        }
        next.run(request).await
    } else {
        info!(%peer, "refused a Management API call from another machine");
        error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden")
    }
}

/// This machine always; another only with the configured key.
fn may_manage(peer: IpAddr, key: Option<&str>, given: Option<&[u8]>) -> bool {
    // On a dual-stack listener (`[::]`), 127.0.0.1 arrives as
    // `::ffff:127.0.0.1`, which is not `is_loopback` until canonicalised.
    peer.to_canonical().is_loopback()
        || key
            .zip(given)
            .is_some_and(|(key, given)| constant_time_eq(given, key.as_bytes()))
}

/// Compares without stopping at the first difference, so timing tells
/// nothing about the key.
fn constant_time_eq(given: &[u8], key: &[u8]) -> bool {
    given.len() == key.len()
        && given
            .iter()
            .zip(key)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

async fn post_to(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > GATEWAY_MAX_MESSAGE_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &format!("Message too long. Max size is {GATEWAY_MAX_MESSAGE_BYTES} bytes."),
        );
    }
    let Some(connection) = gateway.connections.get(&id) else {
        return gone();
    };
    let message = match String::from_utf8(body.to_vec()) {
        Ok(text) => Message::Text(text.into()),
        Err(_) => Message::Binary(body),
    };
    match connection.send(Outbound::Frame(message)) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(SendError::Gone) => gone(),
        Err(SendError::Full) => buffer_full(),
    }
}

async fn get_connection(State(gateway): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match gateway.connections.get(&id) {
        Some(connection) if connection.is_open() => axum::Json(json!({
            "connectedAt": iso(connection.connected_at_ms),
            "identity": {
                "sourceIp": connection.source_ip,
                "userAgent": connection.user_agent,
            },
            "lastActiveAt": iso(connection.last_active_ms()),
        }))
        .into_response(),
        _ => gone(),
    }
}

async fn delete_connection(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Response {
    let Some(connection) = gateway.connections.get(&id) else {
        return gone();
    };
    let close = Outbound::Close {
        // A connection deleted through the Management API closes normally.
        code: close_code::NORMAL,
        reason: String::new(),
    };
    match connection.send(close) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(SendError::Gone) => gone(),
        Err(SendError::Full) => buffer_full(),
    }
}

fn buffer_full() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "LimitExceededException",
        "The client-side buffer is full",
    )
}

fn gone() -> Response {
    error(StatusCode::GONE, "GoneException", "")
}

fn error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let body = if message.is_empty() {
        json!({ "message": null })
    } else {
        json!({ "message": message })
    };
    (
        status,
        [
            ("x-amzn-ErrorType", error_type),
            (header::CONTENT_TYPE.as_str(), "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// API Gateway's times here are ISO 8601 with milliseconds, the contract's
/// format; a connection's times come from this machine's clock, so they are
/// always representable.
fn iso(epoch_ms: i64) -> String {
    Timestamp::from_epoch_millis(epoch_ms)
        .map(|time| time.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, may_manage};

    #[test]
    fn only_this_machine_or_a_peer_with_the_key_may_manage_connections() {
        let local = "127.0.0.1".parse().expect("an address");
        let local6 = "::1".parse().expect("an address");
        let phone = "203.0.113.7".parse().expect("an address");
        assert!(may_manage(local, None, None));
        assert!(may_manage(local6, None, None));
        let mapped = "::ffff:127.0.0.1".parse().expect("an address");
        assert!(
            may_manage(mapped, None, None),
            "127.0.0.1 on a dual-stack listener"
        );
        let mapped_phone = "::ffff:203.0.113.7".parse().expect("an address");
        assert!(!may_manage(mapped_phone, None, None));
        assert!(!may_manage(phone, None, None), "closed by default");
        assert!(!may_manage(phone, None, Some(b"anything")));
        assert!(!may_manage(phone, Some("k3y"), None));
        assert!(!may_manage(phone, Some("k3y"), Some(b"key")));
        assert!(may_manage(phone, Some("k3y"), Some(b"k3y")));
    }

    #[test]
    fn keys_compare_equal_only_when_equal() {
        assert!(constant_time_eq(b"key-1", b"key-1"));
        assert!(!constant_time_eq(b"key-2", b"key-1"));
        assert!(!constant_time_eq(b"key-1x", b"key-1"));
        assert!(!constant_time_eq(b"", b"key-1"));
    }
}
