//! The four route handlers against a real DynamoDB engine (embedded dynoxide,
//! or `CHAT_TEST_DYNAMODB_ENDPOINT`) and a real HTTP Management API endpoint,
//! through the real AWS SDK clients (testkit's Harness).

#![allow(clippy::expect_used)] // a failed step fails the test

use aws_sdk_dynamodb::types::AttributeValue;
use handlers::ChatLimits;
use serde_json::json;
use testkit::Harness;
use testkit::harness::{DISCONNECT_AT, MESSAGE_AT, body_json};
use testkit::item::{OPENED_SESSION_FIELDS, field_names, number, string};

#[tokio::test]
async fn connect_writes_both_rows_with_the_contract_fields() {
    let h = Harness::start().await;
    let response = h.connect("L0SM9cOFvHcCIhw=").await;
    assert_eq!(response.status_code, 200);
    assert!(response.body.is_none());

    let connection = h
        .connection_item("L0SM9cOFvHcCIhw=")
        .await
        .expect("ActiveConnections row");
    assert_eq!(
        field_names(&connection),
        ["connected_at", "connection_id", "room", "room_shard", "ttl"]
    );
    assert_eq!(string(&connection, "connected_at"), h.at(0));
    // 2 h connection limit plus a margin, in epoch seconds.
    assert_eq!(
        number(&connection, "ttl"),
        (h.base / 1000 + 7200 + 900).to_string()
    );

    let session = h
        .session_item("L0SM9cOFvHcCIhw=")
        .await
        .expect("SessionHistory row");
    assert_eq!(
        field_names(&session),
        OPENED_SESSION_FIELDS,
        "open_shard: the session is in the open-sessions index until it closes"
    );
    assert_eq!(
        number(&session, "open_shard"),
        handlers::records::open_shard("L0SM9cOFvHcCIhw=").to_string()
    );
    assert_eq!(string(&session, "source_ip"), "203.0.113.7");
    assert_eq!(string(&session, "connected_at"), h.at(0));
    assert_eq!(
        string(&session, "room"),
        "lobby",
        "no ?room=: the tutorial's one chat"
    );
    assert_eq!(string(&connection, "room"), "lobby");
}

#[tokio::test]
async fn connect_is_all_or_nothing() {
    let h = Harness::start().await;
    // A session row from another connection attempt with the same id: the
    // transaction must cancel and leave no ActiveConnections row behind.
    h.db.client
        .put_item()
        .table_name(&h.db.tables.session_history)
        .item("connection_id", AttributeValue::S("dup".into()))
        .item(
            "connected_at",
            AttributeValue::S("2026-01-01T00:00:00.000Z".into()),
        )
        .send()
        .await
        .expect("seed a conflicting session");
    let response = h.connect("dup").await;
    assert_eq!(response.status_code, 500, "the handshake is rejected");
    assert!(
        h.connection_item("dup").await.is_none(),
        "nothing is half-written"
    );
    let session = h.session_item("dup").await.expect("the earlier session");
    assert_eq!(string(&session, "connected_at"), "2026-01-01T00:00:00.000Z");
}

#[tokio::test]
async fn a_replayed_connect_succeeds_without_change() {
    let h = Harness::start().await;
    assert_eq!(h.connect("again").await.status_code, 200);
    assert_eq!(h.connect("again").await.status_code, 200);
    assert_eq!(h.active_ids().await, ["again"]);
}

#[tokio::test]
async fn a_connect_replayed_after_its_disconnect_does_not_reopen_the_session() {
    let h = Harness::start().await;
    h.connect("late").await;
    h.disconnect_at("late", DISCONNECT_AT).await;
    assert_eq!(h.connect("late").await.status_code, 500);
    let session = h.session_item("late").await.expect("session");
    assert_eq!(string(&session, "disconnected_at"), h.at(DISCONNECT_AT));
    assert!(h.active_ids().await.is_empty());
}

#[tokio::test]
async fn disconnect_closes_the_session_once_and_never_creates_one() {
    let h = Harness::start().await;
    h.connect("L0SM9cOFvHcCIhw=").await;
    let response = h.disconnect_at("L0SM9cOFvHcCIhw=", DISCONNECT_AT).await;
    assert_eq!(response.status_code, 200);
    assert!(
        h.active_ids().await.is_empty(),
        "the connection row is gone"
    );

    let session = h.session_item("L0SM9cOFvHcCIhw=").await.expect("session");
    assert_eq!(
        field_names(&session),
        [
            "connected_at",
            "connection_id",
            "disconnect_reason",
            "disconnect_status_code",
            "disconnected_at",
            "room",
            "source_ip"
        ],
        "no duration (the stream processor computes it); out of the open-sessions index"
    );
    assert_eq!(string(&session, "disconnected_at"), h.at(DISCONNECT_AT));
    assert_eq!(number(&session, "disconnect_status_code"), "1001");
    assert_eq!(string(&session, "disconnect_reason"), "Going away");

    // A replayed $disconnect does not move disconnected_at.
    assert_eq!(
        h.disconnect_at("L0SM9cOFvHcCIhw=", DISCONNECT_AT + 98_000)
            .await
            .status_code,
        200
    );
    let session = h.session_item("L0SM9cOFvHcCIhw=").await.expect("session");
    assert_eq!(string(&session, "disconnected_at"), h.at(DISCONNECT_AT));

    // An unknown connection gets no row.
    assert_eq!(
        h.disconnect_at("never-connected", DISCONNECT_AT + 98_000)
            .await
            .status_code,
        200
    );
    assert!(h.session_item("never-connected").await.is_none());
}

#[tokio::test]
async fn sendmessage_stores_once_and_reaches_every_connection_across_scan_pages() {
    let h = Harness::start().await;
    let ids: Vec<String> = (0..7).map(|i| format!("conn-{i}+/=")).collect();
    for id in &ids {
        assert_eq!(h.connect(id).await.status_code, 200);
    }
    let response = h
        .send(
            &ids[0],
            r#"{"action":"sendmessage","message":"Hello, WebSocket!"}"#,
        )
        .await;
    assert_eq!(response.status_code, 200);
    assert!(
        response.body.is_none(),
        "nothing extra for the sender when all went well"
    );

    let messages = h.messages().await;
    assert_eq!(messages.len(), 1);
    let stored = &messages[0];
    assert_eq!(
        field_names(stored),
        [
            "connection_id",
            "message",
            "message_id",
            "room",
            "time_order",
            "timestamp"
        ]
    );
    assert_eq!(string(stored, "connection_id"), ids[0]);
    assert_eq!(string(stored, "message"), "Hello, WebSocket!");
    assert_eq!(string(stored, "timestamp"), h.at(MESSAGE_AT));
    let message_id = string(stored, "message_id");
    assert!(uuid::Uuid::parse_str(&message_id).is_ok());

    for id in &ids {
        let frames = h.api.frames_for(id);
        assert_eq!(frames.len(), 1, "{id} receives the message exactly once");
        let frame = &frames[0];
        assert_eq!(frame["type"], "message");
        assert_eq!(frame["message_id"], message_id.as_str());
        assert_eq!(frame["connection_id"], ids[0].as_str());
        assert_eq!(frame["text"], "Hello, WebSocket!");
        assert_eq!(frame["timestamp"], h.at(MESSAGE_AT).as_str());
        assert_eq!(
            frame["message"],
            format!("[{}] {}: Hello, WebSocket!", h.at(MESSAGE_AT), ids[0]).as_str()
        );
    }
}

#[tokio::test]
async fn a_gone_connection_is_pruned_and_others_still_receive() {
    let h = Harness::start().await;
    for id in ["alice", "bob", "stale"] {
        h.connect(id).await;
    }
    h.api.mark_gone("stale");
    let response = h
        .send("alice", r#"{"action":"sendmessage","message":"hi"}"#)
        .await;
    assert_eq!(response.status_code, 200);
    assert!(
        response.body.is_none(),
        "a pruned connection is not a failure"
    );
    assert_eq!(h.active_ids().await, ["alice", "bob"]);
    assert_eq!(h.api.frames_for("alice").len(), 1);
    assert_eq!(h.api.frames_for("bob").len(), 1);
    let session = h.session_item("stale").await.expect("its session");
    assert_eq!(number(&session, "disconnect_status_code"), "1006");
    assert_eq!(
        string(&session, "disconnect_reason"),
        handlers::fanout::PRUNED_REASON
    );
    assert!(!session.contains_key("open_shard"), "out of the open index");
}

#[tokio::test]
async fn a_connection_still_in_its_handshake_is_not_pruned() {
    let h = Harness::start().await;
    h.connect("alice").await;
    let now = chrono::Utc::now().timestamp_millis();
    let event = h.event("connect.json", "newcomer", |context| {
        context["connectedAt"] = json!(now);
    });
    handlers::connect(&h.chat, event).await.expect("connect");
    // API Gateway answers 410 until the newcomer's $connect has completed.
    h.api.mark_gone("newcomer");
    let response = h
        .send("alice", r#"{"action":"sendmessage","message":"hi"}"#)
        .await;
    assert!(response.body.is_none(), "not a delivery failure");
    assert_eq!(h.active_ids().await, ["alice", "newcomer"]);
    let session = h.session_item("newcomer").await.expect("its session");
    assert!(
        !session.contains_key("disconnected_at"),
        "its session stays open"
    );
}

#[tokio::test]
async fn other_delivery_failures_are_reported_to_the_sender_and_keep_the_row() {
    let h = Harness::start().await;
    for id in ["alice", "bob", "broken"] {
        h.connect(id).await;
    }
    h.api.mark_failing("broken");
    let response = h
        .send("alice", r#"{"action":"sendmessage","message":"hi"}"#)
        .await;
    assert_eq!(response.status_code, 200);
    assert!(response.body.is_none(), "sendmessage is one-way");
    let alice = h.api.frames_for("alice");
    assert_eq!(alice.len(), 2, "her message, then the problem: {alice:?}");
    let frame = &alice[1];
    assert_eq!(frame["type"], "error");
    assert_eq!(frame["code"], "partial_delivery");
    assert_eq!(
        frame["message"],
        "Your message was saved, but could not be delivered to 1 of 3 connections."
    );
    let text = frame.to_string();
    for internal in ["Forbidden", "403", "Management API", "broken"] {
        assert!(!text.contains(internal), "no internals for clients: {text}");
    }
    assert_eq!(h.api.frames_for("bob").len(), 1);
    assert_eq!(h.active_ids().await, ["alice", "bob", "broken"]);
    assert_eq!(h.messages().await.len(), 1);
}

#[tokio::test]
async fn invalid_messages_get_an_error_frame_and_are_stored_and_sent_nowhere() {
    let limit = 16;
    let h = Harness::with_limits(ChatLimits {
        max_chat_message_bytes: limit,
        ..ChatLimits::default()
    })
    .await;
    h.connect("alice").await;
    let cases = [
        (r#"{"action":"sendmessage"}"#, "invalid_message"),
        (
            r#"{"action":"sendmessage","message":["a"]}"#,
            "invalid_message",
        ),
        (
            r#"{"action":"sendmessage","message":"   "}"#,
            "empty_message",
        ),
        (
            r#"{"action":"sendmessage","message":"seventeen bytes!!"}"#,
            "message_too_long",
        ),
    ];
    for (index, (body, code)) in cases.into_iter().enumerate() {
        let response = h.send("alice", body).await;
        assert_eq!(
            response.status_code, 200,
            "{body}: a client mistake is no integration error"
        );
        assert!(response.body.is_none(), "sendmessage is one-way");
        let answers = h.api.frames_for("alice");
        assert_eq!(
            answers.len(),
            index + 1,
            "one answer per frame: {answers:?}"
        );
        let frame = &answers[index];
        assert_eq!(frame["type"], "error", "{body}");
        assert_eq!(frame["code"], code, "{body}");
        assert!(frame["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Exactly at the limit is fine.
    let response = h
        .send(
            "alice",
            r#"{"action":"sendmessage","message":"sixteen bytes!!!"}"#,
        )
        .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(h.messages().await.len(), 1);
    let sent: Vec<_> = h
        .api
        .posts()
        .into_iter()
        .filter(|(_, frame)| frame["type"] == "message")
        .collect();
    assert_eq!(sent.len(), 1, "only the valid message was sent");
}

#[tokio::test]
async fn the_too_long_error_names_the_limit() {
    let h = Harness::start().await;
    h.connect("alice").await;
    let long = "x".repeat(8 * 1024 + 1);
    let response = h
        .send(
            "alice",
            &json!({"action": "sendmessage", "message": long}).to_string(),
        )
        .await;
    assert!(response.body.is_none(), "sendmessage is one-way");
    let frame = &h.api.frames_for("alice")[0];
    assert_eq!(frame["code"], "message_too_long");
    assert_eq!(frame["limit_bytes"], 8192);
    assert_eq!(
        frame["message"],
        "message is 8193 bytes; the limit is 8192 bytes"
    );
}

#[tokio::test]
async fn heartbeats_are_answered_not_stored_or_broadcast() {
    let h = Harness::start().await;
    h.connect("alice").await;
    h.connect("bob").await;
    let legacy = h
        .send("alice", r#"{"action":"sendmessage","message":"ping"}"#)
        .await;
    assert_eq!(legacy.status_code, 200);
    assert!(
        legacy.body.is_none(),
        "sendmessage is one-way: the pong is posted"
    );
    assert_eq!(
        h.api.posts(),
        [(
            "alice".to_owned(),
            json!({"type": "pong", "message": "pong"})
        )],
        "to the sender alone"
    );
    // `$default` is two-way: its pong is the route response.
    let ping = h.default_route("alice", r#"{"action":"ping"}"#).await;
    assert_eq!(ping.status_code, 200);
    assert_eq!(body_json(&ping), json!({"type": "pong", "message": "pong"}));
    assert!(h.messages().await.is_empty());
    assert_eq!(h.api.posts().len(), 1, "nothing broadcast");
}

#[tokio::test]
async fn default_route_names_the_valid_actions() {
    let h = Harness::start().await;
    h.connect("alice").await;
    let cases = [
        (
            r#"{"action":"shout","message":"hi"}"#,
            "unknown_action",
            "Unknown action \"shout\"",
        ),
        (
            r#"{"message":"hi"}"#,
            "unknown_action",
            "The frame has no \"action\"",
        ),
        ("hello there", "invalid_json", "Frames must be JSON objects"),
    ];
    for (body, code, starts) in cases {
        let response = h.default_route("alice", body).await;
        assert_eq!(
            response.status_code, 200,
            "a client mistake is no integration error"
        );
        let frame = body_json(&response);
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["code"], code);
        let message = frame["message"].as_str().expect("a message");
        assert!(message.starts_with(starts), "{message}");
        assert!(message.contains("sendmessage"), "{message}");
        assert!(
            message.contains(r#"{"action":"sendmessage","message":"Hello"}"#),
            "{message}"
        );
        assert_eq!(
            frame["valid_actions"],
            json!(["sendmessage", "ping", "history", "remove", "ban", "delete"])
        );
    }
    assert!(h.api.posts().is_empty());
}
