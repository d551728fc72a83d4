//! The `$connect` query string: decoded as the local gateway does (axum's
//! `Query`, i.e. `serde_urlencoded`; the last of repeated names wins, as in
//! API Gateway's single-value map), then `?room=` and `?name=` checked by
//! `parse_joining`, the token found by `token_of` (from the query, and with
//! the same text as an `Authorization` header) and verified.
//!
//! Invariants: nothing panics; an accepted room is the one asked for (or the
//! lobby) and a valid room name; an accepted name is the trimmed one asked
//! for, 1 to 32 characters without control characters; a refusal is a
//! well-formed `invalid_room` or `invalid_name` error frame; a token is never
//! empty and is what the client sent.

#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use aws_lambda_events::http::header::AUTHORIZATION;
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use aws_lambda_events::query_map::QueryMap;
use handlers::Room;
use handlers::auth::{AuthSettings, Denial, KeySource, Verifier, token_of};
use handlers::limits::{DISPLAY_NAME_CHARS, MAX_TOKEN_BYTES};
use handlers::protocol::{ErrorCode, ServerFrame, parse_joining};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::new(AuthSettings::new(KeySource::Secret(
        b"fuzz-secret-of-at-least-32-bytes".to_vec(),
    )))
    .expect("a verifier")
});

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(raw) else {
        return;
    };
    let query = QueryMap::from(pairs.into_iter().collect::<HashMap<_, _>>());
    let room = query.first("room");
    let name = query.first("name");

    match parse_joining(room, name) {
        Ok(joining) => {
            assert_eq!(joining.room.as_str(), room.unwrap_or(Room::LOBBY));
            assert_eq!(
                Room::parse(joining.room.as_str()).as_ref(),
                Ok(&joining.room)
            );
            match (&joining.name, name) {
                (Some(accepted), Some(asked)) => {
                    assert_eq!(accepted.as_str(), asked.trim());
                    let chars = accepted.as_str().chars().count();
                    assert!(DISPLAY_NAME_CHARS.contains(&chars));
                    assert!(!accepted.as_str().chars().any(char::is_control));
                }
                (None, None) => {}
                (accepted, asked) => panic!("asked {asked:?}, got {accepted:?}"),
            }
        }
        Err(frame) => {
            let json = frame.to_json();
            let value: Value = serde_json::from_str(&json).expect("frames are JSON");
            assert_eq!(value["type"], "error", "{json}");
            assert!(value["message"].as_str().is_some_and(|m| !m.is_empty()));
            let back: ServerFrame = serde_json::from_str(&json).expect("frames read back");
            assert_eq!(&back, &*frame);
            let ServerFrame::Error { code, .. } = back else {
                panic!("not an error frame: {json}");
            };
            assert!(matches!(
                code,
                ErrorCode::InvalidRoom | ErrorCode::InvalidName
            ));
        }
    }

    let no_headers = HeaderMap::new();
    let from_query = token_of(&no_headers, &query);
    assert_eq!(from_query, query.first("token").filter(|t| !t.is_empty()));
    check_token(from_query);
    if let Ok(header) = HeaderValue::from_str(raw) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, header);
        let token = token_of(&headers, &query);
        if let Some(token) = token {
            assert!(raw.contains(token) || from_query == Some(token));
        }
        check_token(token);
    }
});

fn check_token(token: Option<&str>) {
    let Some(token) = token else {
        return;
    };
    assert!(!token.is_empty());
    match VERIFIER.verify(token) {
        Ok(identity) => assert!(!identity.user_id.is_empty()),
        Err(denial) if token.len() > MAX_TOKEN_BYTES => assert_eq!(denial, Denial::Malformed),
        Err(_) => {}
    }
}
