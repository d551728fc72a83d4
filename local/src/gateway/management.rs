//! The Management API: `POST`, `GET` and `DELETE /@connections/{id}`, with
//! API Gateway's status codes, bodies and `x-amzn-ErrorType` headers, so the
//! real AWS SDK clients (Rust, boto3) map the errors as they do on AWS.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::Message;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use handlers::limits::GATEWAY_MAX_MESSAGE_BYTES;
use handlers::time::Timestamp;

use super::Gateway;
use super::connections::{Outbound, SendError};

/// Close code of a connection deleted through the Management API.
const DELETED_CLOSE_CODE: u16 = 1000;

pub(super) fn routes() -> Router<Arc<Gateway>> {
    Router::new().route(
        "/{id}",
        post(post_to).get(get_connection).delete(delete_connection),
    )
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
        code: DELETED_CLOSE_CODE,
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
