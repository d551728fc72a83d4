//! A text frame's body, as the gateway selects its route and the
//! `sendmessage`, `history` and `$default` handlers parse it (pure functions
//! only: no tables, no Management API).
//!
//! Invariants: nothing panics; the route is the one the `action` field names,
//! read independently of `Route::select`; an accepted chat message is the
//! frame's `message`, not blank and within the byte limit; an accepted history
//! request is within its limits; every refusal is a well-formed JSON `error`
//! frame that reads back as itself; `$default` answers from the event alone
//! with a small frame.

#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::encodings::Body;
use handlers::Room;
use handlers::cursor;
use handlers::limits::{
    CHAT_MESSAGE_BYTES_RANGE, DEFAULT_CHAT_MESSAGE_BYTES, HISTORY_MAX_LIMIT, MAX_CURSOR_CHARS,
    MAX_ECHOED_ACTION_CHARS,
};
use handlers::protocol::{
    ErrorCode, LEGACY_HEARTBEAT, Route, SendMessage, ServerFrame, parse_history_request,
    validate_send_message,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8: the gateway closes the connection (1007) otherwise.
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let json = serde_json::from_str::<Value>(body).ok();
    let is_object = json.as_ref().is_some_and(Value::is_object);
    let action = json
        .as_ref()
        .and_then(|json| json.get("action"))
        .and_then(Value::as_str);

    let route = Route::select(body);
    let expected = match action {
        Some("sendmessage") => Route::SendMessage,
        Some("history") => Route::History,
        _ => Route::Default,
    };
    assert_eq!(route, expected, "route of {body:?}");

    // Each parser must cope with any body, not only the ones routed to it.
    let message = json.as_ref().and_then(|json| json.get("message"));
    sendmessage(body, is_object, message);
    history(body, is_object);
    if route == Route::Default {
        default(body, is_object, action);
    }
    // A cursor is client text too: the body itself as `before`.
    if let Ok(key) = cursor::decode(body, &Room::lobby()) {
        assert_eq!(key.room, Room::lobby());
    }
});

fn sendmessage(body: &str, is_object: bool, message: Option<&Value>) {
    let limits = [
        *CHAT_MESSAGE_BYTES_RANGE.start(),
        16,
        DEFAULT_CHAT_MESSAGE_BYTES,
        *CHAT_MESSAGE_BYTES_RANGE.end(),
    ];
    for limit in limits {
        match validate_send_message(Some(body), limit) {
            Ok(SendMessage::Heartbeat) => {
                assert_eq!(message.and_then(Value::as_str), Some(LEGACY_HEARTBEAT));
            }
            Ok(SendMessage::Chat(text)) => {
                assert!(is_object);
                assert!(text.len() <= limit, "{} bytes over {limit}", text.len());
                assert!(!text.trim().is_empty());
                assert_ne!(text, LEGACY_HEARTBEAT);
                assert_eq!(message.and_then(Value::as_str), Some(text.as_str()));
            }
            Err(frame) => {
                let code = error_code(&frame);
                assert!(
                    matches!(
                        code,
                        ErrorCode::InvalidJson
                            | ErrorCode::InvalidMessage
                            | ErrorCode::EmptyMessage
                            | ErrorCode::MessageTooLong
                    ),
                    "{code:?}"
                );
                assert_eq!(code == ErrorCode::InvalidJson, !is_object);
                if let ServerFrame::Error {
                    code: ErrorCode::MessageTooLong,
                    limit_bytes,
                    ..
                } = *frame
                {
                    assert_eq!(limit_bytes, Some(limit));
                }
            }
        }
    }
}

fn history(body: &str, is_object: bool) {
    match parse_history_request(Some(body)) {
        Ok(request) => {
            assert!(is_object);
            assert!((1..=HISTORY_MAX_LIMIT).contains(&request.limit));
            if let Some(before) = &request.before {
                assert!(before.len() <= MAX_CURSOR_CHARS);
                // What the handler does next, before it reads the table.
                if let Ok(key) = cursor::decode(before, &Room::lobby()) {
                    let again = cursor::decode(&cursor::encode(&key), &Room::lobby());
                    assert_eq!(again, Ok(key));
                }
            }
        }
        Err(frame) => {
            let code = error_code(&frame);
            assert!(
                matches!(
                    code,
                    ErrorCode::InvalidJson | ErrorCode::InvalidLimit | ErrorCode::InvalidCursor
                ),
                "{code:?}"
            );
            assert_eq!(code == ErrorCode::InvalidJson, !is_object);
        }
    }
}

/// `$default`, run to completion in one poll: it awaits nothing.
fn default(body: &str, is_object: bool, action: Option<&str>) {
    let mut request = ApiGatewayWebsocketProxyRequest::default();
    request.request_context.connection_id = Some("fuzz-connection".to_owned());
    request.body = Some(body.to_owned());
    let Poll::Ready(result) =
        pin!(handlers::default(request)).poll(&mut Context::from_waker(Waker::noop()))
    else {
        panic!("$default waited for something");
    };
    let response = result.expect("$default always answers");
    assert_eq!(response.status_code, 200);
    let Some(Body::Text(text)) = response.body else {
        panic!("$default answers with a text body");
    };
    let frame: ServerFrame = serde_json::from_str(&text).expect("a server frame");
    if action == Some("ping") {
        assert_eq!(frame, ServerFrame::pong());
        return;
    }
    let code = error_code(&frame);
    let expected = if is_object {
        ErrorCode::UnknownAction
    } else {
        ErrorCode::InvalidJson
    };
    assert_eq!(code, expected);
    // An unknown action is echoed, cut to MAX_ECHOED_ACTION_CHARS and an
    // ellipsis (each at most 4 bytes, 6 once escaped in JSON).
    let bound = 400 + 6 * (MAX_ECHOED_ACTION_CHARS + 1);
    assert!(text.len() <= bound, "{} bytes: {text}", text.len());
}

/// Checks that `frame` is a well-formed `error` frame and returns its code.
fn error_code(frame: &ServerFrame) -> ErrorCode {
    let json = frame.to_json();
    let value: Value = serde_json::from_str(&json).expect("frames are JSON");
    assert_eq!(value["type"], "error", "{json}");
    assert!(value["code"].is_string(), "{json}");
    assert!(
        value["message"]
            .as_str()
            .is_some_and(|message| !message.trim().is_empty()),
        "{json}"
    );
    let back: ServerFrame = serde_json::from_str(&json).expect("frames read back");
    assert_eq!(&back, frame);
    match back {
        ServerFrame::Error { code, .. } => code,
        other => panic!("not an error frame: {other:?}"),
    }
}
