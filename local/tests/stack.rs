//! The whole local stack, driven as a user would: real WebSocket clients
//! against the gateway, the real AWS SDK against its Management API and its
//! DynamoDB endpoint.

#![allow(clippy::expect_used)] // a failed step fails the test

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::SinkExt;
use handlers::limits::{GATEWAY_MAX_FRAME_BYTES, GATEWAY_MAX_MESSAGE_BYTES};
use handlers::time::Timestamp;
use serde_json::json;
use testkit::QUIET;
use testkit::eventually;
use testkit::item::{
    OPENED_SESSION_FIELDS, connection_row as get, field_names, number, scan, string,
};
use testkit::stack::{Client, TestStack, start_stack, unique_prefix};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn two_clients_chat_and_each_receives_every_message_exactly_once() {
    let t = TestStack::start(&[]).await;
    let url = t.stack.websocket_url();
    let mut alice = Client::connect(&url).await;
    let mut bob = Client::connect(&url).await;

    alice.say("Hello, WebSocket!").await;
    // Wait until alice's message is through before bob answers, so both see
    // the same order.
    alice.next_of_type("message").await;
    bob.say("Hi alice").await;

    let mut alice_seen = vec![];
    alice_seen.push(alice.next_of_type("message").await);
    alice_seen.extend(alice.drain_of_type("message", QUIET).await);
    let mut bob_seen = vec![
        bob.next_of_type("message").await,
        bob.next_of_type("message").await,
    ];
    bob_seen.extend(bob.drain_of_type("message", QUIET).await);

    assert_eq!(
        alice_seen.len(),
        1,
        "alice already read her own message; one more: {alice_seen:?}"
    );
    assert_eq!(alice_seen[0]["text"], "Hi alice");
    assert_eq!(alice_seen[0]["connection_id"], bob.id.as_str());
    assert_eq!(bob_seen.len(), 2, "{bob_seen:?}");
    assert_eq!(bob_seen[0]["text"], "Hello, WebSocket!");
    assert_eq!(bob_seen[0]["connection_id"], alice.id.as_str());
    assert_eq!(bob_seen[1]["text"], "Hi alice");
    assert_eq!(bob_seen[1]["connection_id"], bob.id.as_str());
    let readable = bob_seen[0]["message"].as_str().expect("a readable message");
    assert!(
        readable.ends_with(&format!("{}: Hello, WebSocket!", alice.id)),
        "{readable}"
    );

    // All three tables hold the tutorial's fields.
    let tables = &t.stack.tables;
    let messages = scan(&t.dynamodb, &tables.message_history).await;
    assert_eq!(messages.len(), 2);
    for message in &messages {
        assert_eq!(
            field_names(message),
            [
                "connection_id",
                "message",
                "message_id",
                "room",
                "time_order",
                "timestamp"
            ]
        );
    }
    let connections = scan(&t.dynamodb, &tables.active_connections).await;
    assert_eq!(connections.len(), 2);
    for connection in &connections {
        assert_eq!(
            field_names(connection),
            // rate_allowed_at: the message rate limit's mark, once it sent,
            // and with it last_seen_at, the repair's evidence of life.
            [
                "connected_at",
                "connection_id",
                "last_seen_at",
                "rate_allowed_at",
                "room",
                "room_shard",
                "ttl"
            ]
        );
    }
    let session = get(&t.dynamodb, &tables.session_history, &alice.id)
        .await
        .expect("alice's session");
    assert_eq!(field_names(&session), OPENED_SESSION_FIELDS);
    assert_eq!(string(&session, "source_ip"), "127.0.0.1");
    t.stack.shutdown().await;
}

#[tokio::test]
async fn presence_and_durations_flow_from_the_session_stream() {
    let t = TestStack::start(&[]).await;
    let url = t.stack.websocket_url();
    let mut alice = Client::connect(&url).await;
    let mut bob = Client::connect(&url).await;
    let presence = alice.next_of_type("presence").await;
    assert_eq!(presence["joined"][0]["connection_id"], bob.id.as_str());
    // bob's welcome said who was there already.
    assert_eq!(bob.welcome["online_count"], 2);

    bob.socket
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .expect("closes");
    let presence = alice.next_of_type("presence").await;
    let left = &presence["left"][0];
    assert_eq!(left["connection_id"], bob.id.as_str());
    let duration = left["duration_seconds"].as_f64().expect("a duration");
    assert!(duration >= 0.0, "{duration}");

    let tables = t.stack.tables.clone();
    let session = eventually("bob's duration is recorded", || async {
        get(&t.dynamodb, &tables.session_history, &bob.id)
            .await
            .filter(|item| item.contains_key("duration_seconds"))
    })
    .await;
    assert_eq!(number(&session, "disconnect_status_code"), "1000");
    assert_eq!(string(&session, "disconnect_reason"), "bye");
    let recorded: f64 = number(&session, "duration_seconds")
        .parse()
        .expect("numeric");
    assert!(
        (recorded - duration).abs() < 1e-9,
        "{recorded} vs {duration}"
    );
    let time = |field| -> Timestamp { string(&session, field).parse().expect("a contract time") };
    let expected = time("disconnected_at").seconds_since(time("connected_at"));
    assert!((recorded - expected).abs() < 1e-9);
    assert!(
        get(&t.dynamodb, &tables.active_connections, &bob.id)
            .await
            .is_none()
    );
    // One `left`, not one per stream record.
    assert!(alice.drain_of_type("presence", QUIET).await.is_empty());
    t.stack.shutdown().await;
}

#[tokio::test]
async fn a_failing_connect_rejects_the_handshake_with_its_status() {
    let t = TestStack::start(&[]).await;
    // Without its table, $connect's transaction fails and the handler
    // answers 500.
    t.dynamodb
        .delete_table()
        .table_name(&t.stack.tables.active_connections)
        .send()
        .await
        .expect("DeleteTable");
    let refused = tokio_tungstenite::connect_async(t.stack.websocket_url())
        .await
        .expect_err("the upgrade is refused");
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 500);
        }
        other => panic!("expected an HTTP error, got {other}"),
    }
    assert_eq!(t.stack.connection_count(), 0, "nothing is left registered");
    assert!(
        scan(&t.dynamodb, &t.stack.tables.session_history)
            .await
            .is_empty(),
        "no session was half-written"
    );
    t.stack.shutdown().await;
}

#[tokio::test]
async fn a_client_that_vanishes_is_disconnected() {
    let t = TestStack::start(&[]).await;
    let client = Client::connect(&t.stack.websocket_url()).await;
    let id = client.id.clone();
    // Drop the TCP connection without a close frame.
    drop(client);
    let tables = t.stack.tables.clone();
    let session = t.closed_session(&id).await;
    assert_eq!(number(&session, "disconnect_status_code"), "1006");
    assert!(
        get(&t.dynamodb, &tables.active_connections, &id)
            .await
            .is_none()
    );
    t.stack.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_and_disconnected() {
    let t = TestStack::start(&["--idle-timeout-secs", "1"]).await;
    let mut client = Client::connect(&t.stack.websocket_url()).await;
    let frame = client.closed_by_server().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Away);
    let session = t.closed_session(&client.id).await;
    assert_eq!(number(&session, "disconnect_status_code"), "1001");
    t.stack.shutdown().await;
}

#[tokio::test]
async fn connections_close_at_the_maximum_duration_even_when_busy() {
    let t = TestStack::start(&["--max-connection-secs", "1"]).await;
    let mut client = Client::connect(&t.stack.websocket_url()).await;
    client.send_text(r#"{"action":"ping"}"#).await;
    let frame = client.closed_by_server().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Away);
    t.stack.shutdown().await;
}

#[tokio::test]
async fn a_stale_connection_is_pruned_when_a_message_reaches_it() {
    let t = TestStack::start(&[]).await;
    let tables = t.stack.tables.clone();
    // A row whose $disconnect never arrived, from an hour ago.
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    t.dynamodb
        .put_item()
        .table_name(&tables.active_connections)
        .item("connection_id", AttributeValue::S("StaleStaleStal=".into()))
        .item("room", AttributeValue::S("lobby".into()))
        .item(
            "room_shard",
            AttributeValue::S(handlers::records::room_shard(
                &handlers::Room::lobby(),
                handlers::records::shard_of("StaleStaleStal=", handlers::limits::ROOM_SHARDS),
            )),
        )
        .item(
            "connected_at",
            AttributeValue::S(an_hour_ago.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        )
        .item(
            "ttl",
            AttributeValue::N((an_hour_ago.timestamp() + 8100).to_string()),
        )
        .send()
        .await
        .expect("seed a stale row");
    let mut alice = Client::connect(&t.stack.websocket_url()).await;
    alice.say("anyone there?").await;
    alice.next_of_type("message").await;
    eventually("the stale row is pruned", || async {
        get(&t.dynamodb, &tables.active_connections, "StaleStaleStal=")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        alice.drain_of_type("error", QUIET).await.is_empty(),
        "a pruned connection is not a delivery failure"
    );
    t.stack.shutdown().await;
}

#[tokio::test]
async fn unroutable_frames_get_error_frames_and_heartbeats_get_pongs() {
    let t = TestStack::start(&[]).await;
    let mut client = Client::connect(&t.stack.websocket_url()).await;

    client.send_text("hello?").await;
    let error = client.next_of_type("error").await;
    assert_eq!(error["code"], "invalid_json");
    assert!(
        error["message"]
            .as_str()
            .expect("text")
            .contains(r#"{"action":"sendmessage","message":"Hello"}"#)
    );

    client
        .send_text(r#"{"action":"shout","message":"hi"}"#)
        .await;
    let error = client.next_of_type("error").await;
    assert_eq!(error["code"], "unknown_action");
    assert_eq!(
        error["valid_actions"],
        json!(["sendmessage", "ping", "history", "remove", "ban", "delete"])
    );

    client
        .send_text(r#"{"action":"sendmessage","message":"   "}"#)
        .await;
    assert_eq!(client.next_of_type("error").await["code"], "empty_message");

    client.send_text(r#"{"action":"ping"}"#).await;
    assert_eq!(
        client.next_of_type("pong").await,
        json!({"type": "pong", "message": "pong"})
    );
    client
        .send_text(r#"{"action":"sendmessage","message":"ping"}"#)
        .await;
    assert_eq!(client.next_of_type("pong").await["message"], "pong");

    assert!(
        client.drain_of_type("message", QUIET).await.is_empty(),
        "nothing was broadcast"
    );
    assert!(t.stored_messages().await.is_empty());
    t.stack.shutdown().await;
}

#[tokio::test]
async fn oversized_frames_close_with_1009_and_binary_frames_with_1003() {
    let t = TestStack::start(&[]).await;
    let url = t.stack.websocket_url();

    let mut big = Client::connect(&url).await;
    let text = json!({"action": "sendmessage", "message": "x".repeat(GATEWAY_MAX_FRAME_BYTES)})
        .to_string();
    big.send_text(&text).await;
    let frame = big.closed_by_server().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Size);

    let mut binary = Client::connect(&url).await;
    binary
        .socket
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .expect("sends");
    let frame = binary.closed_by_server().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Unsupported);

    let tables = t.stack.tables.clone();
    for (id, code) in [(big.id.clone(), "1009"), (binary.id.clone(), "1003")] {
        let session = t.closed_session(&id).await;
        assert_eq!(number(&session, "disconnect_status_code"), code);
    }
    assert!(
        scan(&t.dynamodb, &tables.message_history).await.is_empty(),
        "nothing was stored"
    );
    t.stack.shutdown().await;
}

/// Sends `text` as `parts` fragments: a text frame and continuations.
async fn send_fragmented(client: &mut Client, text: &str, parts: usize) {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let bytes = text.as_bytes();
    let size = bytes.len().div_ceil(parts);
    for (index, chunk) in bytes.chunks(size).enumerate() {
        let opcode = OpCode::Data(if index == 0 {
            Data::Text
        } else {
            Data::Continue
        });
        let last = (index + 1) * size >= bytes.len();
        let frame = Frame::message(chunk.to_vec(), opcode, last);
        client
            .socket
            .send(Message::Frame(frame))
            .await
            .expect("sends a fragment");
    }
}

#[tokio::test]
async fn the_frame_and_message_limits_are_separate() {
    let t = TestStack::start(&[]).await;
    let url = t.stack.websocket_url();
    let fragment = GATEWAY_MAX_FRAME_BYTES - 1024;

    // 60 KB in 31 KB frames: every frame and the message are within the
    // gateway's limits, so the handler answers (the chat's own limit is 8 KB).
    let mut client = Client::connect(&url).await;
    let text =
        json!({"action": "sendmessage", "message": "y".repeat(2 * fragment - 64)}).to_string();
    send_fragmented(&mut client, &text, 2).await;
    assert_eq!(
        client.next_of_type("error").await["code"],
        "message_too_long"
    );

    // Over 128 KB in 31 KB frames: the message limit closes with 1009.
    let over = GATEWAY_MAX_MESSAGE_BYTES + 1024;
    let text = json!({"action": "sendmessage", "message": "z".repeat(over)}).to_string();
    send_fragmented(&mut client, &text, text.len().div_ceil(fragment)).await;
    let frame = client.closed_by_server().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Size);
    t.stack.shutdown().await;
}

#[tokio::test]
async fn message_history_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prefix = unique_prefix();
    let t = start_stack(dir.path(), &prefix, &[]).await;
    let mut client = Client::connect(&t.stack.websocket_url()).await;
    client.say("remember me").await;
    client.next_of_type("message").await;
    t.stack.shutdown().await;

    let t = start_stack(dir.path(), &prefix, &[]).await;
    let messages = t.stored_messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(string(&messages[0], "message"), "remember me");
    // The shutdown closed the session, and the drained stream measured it.
    let session = get(&t.dynamodb, &t.stack.tables.session_history, &client.id)
        .await
        .expect("the session");
    assert_eq!(number(&session, "disconnect_status_code"), "1001");
    assert!(session.contains_key("duration_seconds"), "{session:?}");
    t.stack.shutdown().await;
}

#[tokio::test]
async fn the_chats_own_client_asks_the_management_api_whether_a_connection_is_there() {
    let t = TestStack::start(&[]).await;
    let management = testkit::management::plain_http_management(
        &chat_local::aws::local_sdk_config(),
        &t.stack.management_endpoint(),
    );
    let client = Client::connect(&t.stack.websocket_url()).await;
    assert_eq!(management.is_connected(&client.id).await, Ok(true));
    assert_eq!(management.is_connected("L0SM9cOFvHcCIhw=").await, Ok(false));
    t.stack.shutdown().await;
}

#[tokio::test]
async fn the_management_api_answers_like_api_gateway() {
    use aws_sdk_apigatewaymanagement::primitives::Blob;

    let t = TestStack::start(&[]).await;
    let api = t.management_client();
    let mut client = Client::connect(&t.stack.websocket_url()).await;

    api.post_to_connection()
        .connection_id(&client.id)
        .data(Blob::new(
            r#"{"type":"notice","message":"hello from the server"}"#,
        ))
        .send()
        .await
        .expect("posted");
    assert_eq!(
        client.next_of_type("notice").await["message"],
        "hello from the server"
    );

    let info = api
        .get_connection()
        .connection_id(&client.id)
        .send()
        .await
        .expect("GetConnection");
    assert!(info.connected_at.is_some());
    assert!(info.last_active_at.is_some());
    assert_eq!(
        info.identity.and_then(|identity| identity.source_ip),
        Some("127.0.0.1".to_owned())
    );

    let too_big = api
        .post_to_connection()
        .connection_id(&client.id)
        .data(Blob::new(vec![b'x'; GATEWAY_MAX_MESSAGE_BYTES + 1]))
        .send()
        .await
        .expect_err("over 128 KB");
    assert!(
        too_big
            .as_service_error()
            .is_some_and(|e| e.is_payload_too_large_exception()),
        "{too_big:?}"
    );

    let gone = api
        .post_to_connection()
        .connection_id("NoSuchConnect=")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("unknown id");
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_gone_exception()),
        "{gone:?}"
    );

    api.delete_connection()
        .connection_id(&client.id)
        .send()
        .await
        .expect("DeleteConnection");
    client.closed_by_server().await;
    t.closed_session(&client.id).await;
    let after = api
        .get_connection()
        .connection_id(&client.id)
        .send()
        .await
        .expect_err("gone now");
    assert!(
        after
            .as_service_error()
            .is_some_and(|e| e.is_gone_exception())
    );
    t.stack.shutdown().await;
}

#[tokio::test]
async fn serves_the_page_its_config_and_metrics() {
    let t = TestStack::start(&[]).await;
    let mut client = Client::connect(&t.stack.websocket_url()).await;
    client.say("count me").await;
    client.next_of_type("message").await;
    // A client's mistake: refused, and counted as a refusal, not a failure.
    let refused =
        tokio_tungstenite::connect_async(format!("{}?room=a%20b", t.stack.websocket_url()))
            .await
            .expect_err("a bad room is refused");
    assert!(
        matches!(&refused, tokio_tungstenite::tungstenite::Error::Http(response) if response.status() == 400),
        "{refused}"
    );

    let base = t.stack.page_url();
    let page = http_get(&base).await;
    assert!(page.contains("<html"), "{page}");
    let config: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{base}config.json")).await).expect("json");
    assert_eq!(config["websocket_url"], t.stack.websocket_url());
    assert_eq!(config["max_message_bytes"], 8192);
    assert_eq!(
        config["heartbeat_secs"],
        handlers::limits::HEARTBEAT_INTERVAL.as_secs()
    );
    assert_eq!(
        config["sign_in"], false,
        "sign-in is off unless a key is given"
    );
    let metrics = http_get(&format!("{base}metrics")).await;
    assert!(metrics.contains("messages_sent"), "{metrics}");
    let refusals: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("handshakes_refused "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no handshakes_refused counter: {metrics}"));
    assert!(refusals >= 1.0, "{metrics}");
    t.stack.shutdown().await;
}

/// A plain HTTP/1.1 GET over TCP; the body as text.
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .expect("a path");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

#[tokio::test]
async fn a_flooding_client_gets_its_burst_then_rate_limited_errors_and_others_hear_only_the_burst()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let limit = [
        "--message-rate-burst",
        "5",
        "--message-rate-per-second",
        "1",
    ];
    let t = start_stack(dir.path(), &unique_prefix(), &limit).await;
    let url = t.stack.websocket_url();
    let mut flooder = Client::connect(&url).await;
    let mut listener = Client::connect(&url).await;
    for n in 0..8 {
        flooder.say(&format!("flood {n}")).await;
    }
    for _ in 0..3 {
        let refusal = flooder.next_of_type("error").await;
        assert_eq!(refusal["code"], "rate_limited", "{refusal}");
        assert!(refusal["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0));
    }
    for n in 0..5 {
        let heard = listener.next_of_type("message").await;
        assert_eq!(heard["text"], format!("flood {n}"));
    }
    // A marker after a pause proves nothing else arrived in between.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    flooder.say("after a pause").await;
    assert_eq!(
        listener.next_of_type("message").await["text"],
        "after a pause"
    );
    let stored = t.stored_messages().await.len();
    assert_eq!(stored, 6, "the burst and the marker, nothing refused");
    t.stack.shutdown().await;
}
