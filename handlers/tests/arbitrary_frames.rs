//! Property: whatever a client sends, the handler library never panics and
//! answers with a well-formed frame (a JSON object with a `type` and a
//! readable `message`), or accepts it. No AWS is needed for these paths:
//! route selection, validation, and `$default`.

#![allow(clippy::expect_used)] // a failed step fails the test

use aws_lambda_events::encodings::Body;
use handlers::protocol::{
    Action, Route, parse_history_request, parse_joining, parse_moderation, validate_send_message,
};
use proptest::prelude::*;
use serde_json::Value;

fn well_formed(frame_json: &str) {
    let frame: Value = serde_json::from_str(frame_json).expect("frames are JSON");
    assert!(frame["type"].is_string(), "{frame_json}");
    assert!(
        frame["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{frame_json}"
    );
}

/// Frames a client might send: anything at all, JSON of any shape, and
/// near-misses of the real actions with hostile values.
fn client_frames() -> impl Strategy<Value = String> {
    let hostile_text = prop_oneof![
        any::<String>(),
        Just("\u{0}".to_owned()),
        Just("\u{202e}evil".to_owned()),
        Just("\u{feff}".to_owned()),
        "[ \\t\\n]{0,5}",
        ".{0,40}",
    ];
    let value = prop_oneof![
        hostile_text.clone().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(serde_json::json!([1, {"a": []}])),
    ];
    let action = prop_oneof![
        Just("sendmessage".to_owned()),
        Just("history".to_owned()),
        Just("ping".to_owned()),
        Just("remove".to_owned()),
        Just("ban".to_owned()),
        Just("delete".to_owned()),
        Just("SendMessage".to_owned()),
        hostile_text.clone(),
    ];
    prop_oneof![
        any::<String>(),
        (action.clone(), value.clone()).prop_map(|(action, message)| {
            serde_json::json!({"action": action, "message": message}).to_string()
        }),
        (value.clone(), value.clone(), value.clone()).prop_map(|(id, minutes, reason)| {
            serde_json::json!({"action": "ban", "user_id": id, "minutes": minutes, "reason": reason})
                .to_string()
        }),
        (value.clone(), value.clone()).prop_map(|(limit, before)| {
            serde_json::json!({"action": "history", "limit": limit, "before": before}).to_string()
        }),
        (0usize..2000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth))),
        (0usize..300).prop_map(|depth| format!(
            r#"{{"action":"sendmessage","message":{}"x"{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )),
        Just(r#"{"action":"sendmessage","message":"\ud800"}"#.to_owned()),
        Just(format!(
            r#"{{"action":"sendmessage","message":"{}"}}"#,
            "é".repeat(70_000)
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_frame_is_routed_and_answered_well(body in client_frames()) {
        match Route::select(&body) {
            Route::SendMessage => {
                if let Err(frame) = validate_send_message(Some(&body), 8192) {
                    well_formed(&frame.to_json());
                }
            }
            Route::History => {
                if let Err(frame) = parse_history_request(Some(&body)) {
                    well_formed(&frame.to_json());
                }
            }
            route @ (Route::Remove | Route::Ban | Route::Delete) => {
                let action = Action::from_name(route.key()).expect("an action");
                if let Err(frame) = parse_moderation(action, Some(&body)) {
                    well_formed(&frame.to_json());
                }
            }
            Route::Default => {
                let mut event = testkit::fixtures::websocket_event("message.json", "a", |_| {});
                event.body = Some(body.clone());
                let runtime = tokio::runtime::Builder::new_current_thread().build().expect("rt");
                let response = runtime.block_on(handlers::default(event)).expect("answered");
                prop_assert_eq!(response.status_code, 200);
                let Some(Body::Text(text)) = response.body else {
                    panic!("$default always answers with a body");
                };
                well_formed(&text);
            }
            route @ (Route::Connect | Route::Disconnect) => {
                panic!("a frame never selects {route:?}");
            }
        }
    }

    #[test]
    fn any_room_and_name_is_accepted_or_refused_with_a_reason(
        room in proptest::option::of(any::<String>()),
        name in proptest::option::of(any::<String>()),
    ) {
        if let Err(frame) = parse_joining(room.as_deref(), name.as_deref()) {
            well_formed(&frame.to_json());
        }
    }
}
