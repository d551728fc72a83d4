//! Rooms and history through the whole local stack, with real WebSocket
//! clients: on whichever engine the test pass uses.

#![allow(clippy::expect_used)] // a failed step fails the test

use std::collections::HashSet;

use serde_json::{Value, json};
use testkit::QUIET;
use testkit::item::{number, scan};
use testkit::stack::{Client, TestStack, start_stack, unique_prefix};

fn in_room(url: &str, room: &str) -> String {
    format!("{url}?room={room}")
}

#[tokio::test]
async fn messages_and_presence_never_cross_rooms() {
    let t = TestStack::start(&[]).await;
    let url = t.stack.websocket_url();
    let mut red = Client::connect(&in_room(&url, "red")).await;
    let mut blue = Client::connect(&in_room(&url, "blue")).await;
    let mut lobby = Client::connect(&url).await;
    let mut red_too = Client::connect(&in_room(&url, "red")).await;

    // Presence: red hears of red_too; nobody else does.
    let presence = red.next_of_type("presence").await;
    assert_eq!(presence["joined"][0]["connection_id"], red_too.id.as_str());
    assert_eq!(presence["room"], "red");

    red.say("red only").await;
    blue.say("blue only").await;
    lobby.say("lobby only").await;
    for (client, text) in [
        (&mut red, "red only"),
        (&mut red_too, "red only"),
        (&mut blue, "blue only"),
        (&mut lobby, "lobby only"),
    ] {
        let message = client.next_of_type("message").await;
        assert_eq!(message["text"], text);
        let others = client.drain_of_type("message", QUIET).await;
        assert!(others.is_empty(), "{text}: {others:?}");
    }
    for client in [&mut blue, &mut lobby] {
        let presence = client.drain_of_type("presence", QUIET).await;
        assert!(presence.is_empty(), "{presence:?}");
    }

    // A red leave reaches red only.
    red_too.socket.close(None).await.expect("closes");
    let presence = red.next_of_type("presence").await;
    assert_eq!(presence["left"][0]["connection_id"], red_too.id.as_str());
    for client in [&mut blue, &mut lobby] {
        assert!(client.drain_of_type("presence", QUIET).await.is_empty());
    }

    // Each message is stored with its room.
    let rooms: HashSet<(String, String)> = t
        .stored_messages()
        .await
        .iter()
        .map(|item| {
            (
                testkit::item::string(item, "room"),
                testkit::item::string(item, "message"),
            )
        })
        .collect();
    let expected: HashSet<(String, String)> = [
        ("red", "red only"),
        ("blue", "blue only"),
        ("lobby", "lobby only"),
    ]
    .iter()
    .map(|(room, text)| ((*room).to_owned(), (*text).to_owned()))
    .collect();
    assert_eq!(rooms, expected);
    t.stack.shutdown().await;
}

#[tokio::test]
async fn a_bad_room_name_refuses_the_upgrade_with_400_and_a_reason_and_writes_nothing() {
    let t = TestStack::start(&[]).await;
    let url = t.stack.websocket_url();
    let long = "x".repeat(65);
    for hostile in [
        "",
        "a%20b",
        "%3Cscript%3E",
        "..%2F..%2Fetc",
        "caf%C3%A9",
        "%E2%80%AEevil",
        "a%00b",
        long.as_str(),
    ] {
        let error = tokio_tungstenite::connect_async(in_room(&url, hostile))
            .await
            .err()
            .unwrap_or_else(|| panic!("?room={hostile} was accepted"));
        let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
            panic!("?room={hostile}: not an HTTP refusal: {error}");
        };
        assert_eq!(response.status(), 400, "?room={hostile}");
        let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default())
            .expect("the reason, as an error frame");
        assert_eq!(body["code"], "invalid_room", "?room={hostile}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("?room= is not a room name")),
            "{body}"
        );
    }
    let tables = &t.stack.tables;
    assert!(
        scan(&t.dynamodb, &tables.active_connections)
            .await
            .is_empty()
    );
    assert!(scan(&t.dynamodb, &tables.session_history).await.is_empty());
    t.stack.shutdown().await;
}

/// Asks for history and returns the frame.
async fn history(client: &mut Client, request: Value) -> Value {
    client.send_text(&request.to_string()).await;
    client.next_of_type_or_error("history").await
}

#[tokio::test]
async fn history_pages_are_complete_ordered_and_never_overlap_while_others_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    // One writer sends faster than the message rate limit allows.
    let unlimited = ["--message-rate-per-second", "0"];
    let t = start_stack(dir.path(), &unique_prefix(), &unlimited).await;
    let url = in_room(&t.stack.websocket_url(), "books");
    let mut writer = Client::connect(&url).await;
    let mut written = Vec::new();
    for index in 0..23 {
        let text = format!("before {index}");
        writer.say(&text).await;
        let echo = writer.next_of_type("message").await;
        written.push(echo["message_id"].as_str().expect("an id").to_owned());
    }
    // Someone in another room, and a message there, never show up.
    let mut other = Client::connect(&in_room(&t.stack.websocket_url(), "films")).await;
    other.say("elsewhere").await;
    other.next_of_type("message").await;

    let mut reader = Client::connect(&url).await;
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        // A concurrent writer: each page is asked for right after a new message.
        writer.say(&format!("during {pages}")).await;
        let page = history(
            &mut reader,
            json!({"action": "history", "limit": 5, "before": cursor}),
        )
        .await;
        assert_eq!(page["room"], "books");
        let messages = page["messages"].as_array().expect("messages").clone();
        assert!(messages.len() <= 5);
        assert!(page["message"].as_str().is_some_and(|m| !m.is_empty()));
        seen.extend(messages);
        pages += 1;
        cursor = page["cursor"].clone();
        if cursor.is_null() {
            break;
        }
        assert!(pages < 20, "paging must end");
    }
    // Newest first, no overlaps, nothing from another room.
    let orders: Vec<(String, String)> = seen
        .iter()
        .map(|m| {
            (
                m["timestamp"].as_str().expect("a time").to_owned(),
                m["message_id"].as_str().expect("an id").to_owned(),
            )
        })
        .collect();
    let mut sorted = orders.clone();
    sorted.sort();
    sorted.reverse();
    sorted.dedup();
    assert_eq!(orders, sorted, "strictly newest first, each once");
    assert!(
        seen.iter()
            .all(|m| m["room"] == "books" && m["type"] == "message")
    );
    assert!(seen.iter().all(|m| m["text"] != "elsewhere"));
    // Complete: everything written before the first page, back to the start.
    let ids: HashSet<&str> = seen
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    for id in &written {
        assert!(ids.contains(id.as_str()), "{id} missing");
    }
    // The frames are the live ones, field for field.
    let live = writer.next_of_type("message").await;
    let fields = |frame: &Value| {
        let mut keys: Vec<String> = frame
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(fields(&seen[0]), fields(&live));
    t.stack.shutdown().await;
}

#[tokio::test]
async fn hostile_cursors_and_limits_get_an_error_and_read_nothing() {
    let t = TestStack::start(&[]).await;
    let base = t.stack.websocket_url();
    let mut films = Client::connect(&in_room(&base, "films")).await;
    for index in 0..3 {
        films.say(&format!("film {index}")).await;
        films.next_of_type("message").await;
    }
    let page = history(&mut films, json!({"action": "history", "limit": 1})).await;
    let films_cursor = page["cursor"].as_str().expect("more pages").to_owned();

    let mut books = Client::connect(&in_room(&base, "books")).await;
    let truncated = &films_cursor[..films_cursor.len() / 2];
    for (request, code) in [
        (
            json!({"action": "history", "before": films_cursor}),
            "invalid_cursor",
        ),
        (
            json!({"action": "history", "before": truncated}),
            "invalid_cursor",
        ),
        (
            json!({"action": "history", "before": "eyJyb29tIjoiYm9va3MifQ"}),
            "invalid_cursor",
        ),
        (json!({"action": "history", "before": 12}), "invalid_cursor"),
        (
            json!({"action": "history", "before": "x".repeat(5000)}),
            "invalid_cursor",
        ),
        (json!({"action": "history", "limit": 0}), "invalid_limit"),
        (
            json!({"action": "history", "limit": "all"}),
            "invalid_limit",
        ),
    ] {
        books.send_text(&request.to_string()).await;
        let error = books.next_of_type("error").await;
        assert_eq!(error["code"], code, "{request}");
        assert!(
            books.drain_of_type("history", QUIET).await.is_empty(),
            "{request}"
        );
    }
    // An empty room's history is empty, with no cursor.
    let page = history(&mut books, json!({"action": "history"})).await;
    assert_eq!(page["messages"], json!([]));
    assert_eq!(page["cursor"], Value::Null);
    t.stack.shutdown().await;
}

#[tokio::test]
async fn retention_sets_a_ttl_on_messages_and_sessions_only_when_configured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let t = start_stack(
        dir.path(),
        &unique_prefix(),
        &[
            "--message-retention-days",
            "30",
            "--session-retention-days",
            "7",
        ],
    )
    .await;
    let mut client = Client::connect(&t.stack.websocket_url()).await;
    client.say("keep me a month").await;
    client.next_of_type("message").await;
    let now = chrono::Utc::now().timestamp();
    let tables = &t.stack.tables;
    let messages = scan(&t.dynamodb, &tables.message_history).await;
    let ttl: i64 = number(&messages[0], "ttl").parse().expect("a number");
    assert!((ttl - (now + 30 * 86_400)).abs() < 120, "{ttl}");
    let sessions = scan(&t.dynamodb, &tables.session_history).await;
    let ttl: i64 = number(&sessions[0], "ttl").parse().expect("a number");
    assert!((ttl - (now + 7 * 86_400)).abs() < 120, "{ttl}");
    t.stack.shutdown().await;

    // The default keeps everything: no ttl at all.
    let dir = tempfile::tempdir().expect("temp dir");
    let t = start_stack(dir.path(), &unique_prefix(), &[]).await;
    let mut client = Client::connect(&t.stack.websocket_url()).await;
    client.say("keep me for ever").await;
    client.next_of_type("message").await;
    let messages = t.stored_messages().await;
    assert!(!messages[0].contains_key("ttl"));
    let sessions = scan(&t.dynamodb, &t.stack.tables.session_history).await;
    assert!(!sessions[0].contains_key("ttl"));
    t.stack.shutdown().await;
}

#[tokio::test]
async fn display_names_travel_with_messages_presence_and_history_and_are_not_identity() {
    let t = TestStack::start(&[]).await;
    let url = t.stack.websocket_url();
    let mut ada = Client::connect(&format!("{url}?room=books&name=%20Ada%20")).await;
    let mut other_ada = Client::connect(&format!("{url}?room=books&name=Ada")).await;
    let mut anonymous = Client::connect(&format!("{url}?room=books")).await;
    let mut markup = Client::connect(&format!("{url}?room=books&name=%3Cb%3Ehi%3C%2Fb%3E")).await;

    let presence = ada.next_of_type("presence").await;
    let joined = &presence["joined"][0];
    assert_eq!(joined["name"], "Ada", "trimmed");
    assert!(
        presence["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Ada joined.")),
        "{presence}"
    );
    assert_ne!(
        joined["connection_id"],
        ada.id.as_str(),
        "the same name, another person"
    );

    ada.say("hello").await;
    let message = anonymous.next_of_type("message").await;
    assert_eq!(message["name"], "Ada");
    assert_eq!(message["connection_id"], ada.id.as_str());
    assert!(
        message["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("] Ada: hello"))
    );
    anonymous.say("hi").await;
    let message = other_ada.next_of_type_or_error("message").await;
    let message = if message["text"] == "hello" {
        other_ada.next_of_type("message").await
    } else {
        message
    };
    assert_eq!(
        message["name"],
        Value::Null,
        "no name: null, shown by connection id"
    );
    assert!(
        message["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(&format!("] {}: hi", anonymous.id)))
    );
    markup.say("x").await;
    let page = history(&mut markup, json!({"action": "history"})).await;
    let names: Vec<&Value> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert_eq!(names, [&json!("<b>hi</b>"), &Value::Null, &json!("Ada")]);
    t.stack.shutdown().await;
}

#[tokio::test]
async fn hostile_names_refuse_the_upgrade_with_400_and_a_reason() {
    let t = TestStack::start(&[]).await;
    let url = t.stack.websocket_url();
    let ten_kb = "x".repeat(10 * 1024);
    for hostile in [
        "",
        "%20%20",
        "a%00b",
        "a%0Ab",
        "%1B%5B31mred",
        "%E2%80%AEevil",
        &ten_kb,
        // Not UTF-8: decoded with U+FFFD in its place.
        "%FF",
        // Zero-width space, byte order mark: invisible.
        "a%E2%80%8Bb",
        "%EF%BB%BFAda",
    ] {
        let error = tokio_tungstenite::connect_async(format!("{url}?name={hostile}"))
            .await
            .err()
            .unwrap_or_else(|| panic!("?name={hostile} was accepted"));
        let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
            panic!("?name={hostile}: not an HTTP refusal: {error}");
        };
        assert_eq!(response.status(), 400, "?name={hostile}");
        let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default())
            .expect("the reason, as an error frame");
        assert_eq!(body["code"], "invalid_name", "?name={hostile}");
    }
    let tables = &t.stack.tables;
    assert!(scan(&t.dynamodb, &tables.session_history).await.is_empty());
    t.stack.shutdown().await;
}
