//! The deployed stage's route throttling, applied by the local gateway as
//! API Gateway applies it: a token bucket per route across every
//! connection; a frame over it reaches no handler and is answered "Too Many
//! Requests". And each connection's own history allowance, which the
//! handler applies on AWS too.

#![allow(clippy::expect_used)] // a failed step fails the test

use testkit::stack::{Client, TestStack, start_stack, unique_prefix};

#[tokio::test]
async fn a_route_over_the_stages_rate_is_refused_for_everyone_and_others_are_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = ["--history-rate-limit", "1", "--history-burst-limit", "2"];
    let t = start_stack(dir.path(), &unique_prefix(), &limits).await;
    let url = t.stack.websocket_url();
    let mut alice = Client::connect(&url).await;
    let mut bob = Client::connect(&url).await;
    alice.send_text(r#"{"action":"history"}"#).await;
    alice.next_of_type("history").await;
    bob.send_text(r#"{"action":"history"}"#).await;
    bob.next_of_type("history").await;
    // The stage's bucket is shared: the third page in a second is refused,
    // whoever asks, before any handler runs.
    alice.send_text(r#"{"action":"history"}"#).await;
    let refusal = loop {
        // Presence frames may come first; the gateway's answer has no type.
        let frame = alice.next_frame().await;
        if frame.get("type").is_none() {
            break frame;
        }
        assert_ne!(frame["type"], "history", "a page over the stage's rate");
    };
    assert_eq!(refusal["message"], "Too Many Requests", "{refusal}");
    assert_eq!(refusal["connectionId"], alice.id.as_str());
    // Other routes have buckets of their own.
    bob.say("still here").await;
    assert_eq!(bob.next_of_type("message").await["text"], "still here");
    // A second later the bucket has refilled.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    alice.send_text(r#"{"action":"history"}"#).await;
    alice.next_of_type("history").await;
    t.stack.shutdown().await;
}

#[tokio::test]
async fn each_connection_has_its_own_history_allowance() {
    use handlers::limits::HISTORY_RATE;
    let t = TestStack::start(&[]).await;
    let url = t.stack.websocket_url();
    let mut greedy = Client::connect(&url).await;
    let mut other = Client::connect(&url).await;
    for _ in 0..HISTORY_RATE.burst {
        greedy.send_text(r#"{"action":"history"}"#).await;
        greedy.next_of_type("history").await;
    }
    greedy.send_text(r#"{"action":"history"}"#).await;
    let refusal = greedy.next_of_type("error").await;
    assert_eq!(refusal["code"], "rate_limited");
    assert_eq!(refusal["action"], "history");
    other.send_text(r#"{"action":"history"}"#).await;
    other.next_of_type("history").await;
    t.stack.shutdown().await;
}

/// The next `pong`, or the refusal that came instead.
async fn pong_or_refusal(client: &mut Client) -> serde_json::Value {
    loop {
        let frame = client.next_frame().await;
        if frame["type"] == "pong" || frame["type"] == "error" {
            return frame;
        }
    }
}

#[tokio::test]
async fn connections_of_one_address_share_its_budget_and_another_address_has_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = ["--address-rate-limit", "1", "--address-burst-limit", "4"];
    let t = start_stack(dir.path(), &unique_prefix(), &limits).await;
    let url = t.stack.websocket_url();
    let mut first = Client::connect(&url).await;
    let mut second = Client::connect(&url).await;
    let ping = r#"{"action":"ping"}"#;
    // Two pings each: the address's burst of four, shared.
    for _ in 0..2 {
        for client in [&mut first, &mut second] {
            client.send_text(ping).await;
            assert_eq!(pong_or_refusal(client).await["type"], "pong");
        }
    }
    // A fifth, whichever connection sends it, is refused with the
    // connection limit's frame, naming the address.
    second.send_text(ping).await;
    let refusal = pong_or_refusal(&mut second).await;
    assert_eq!(refusal["code"], "rate_limited", "{refusal}");
    assert!(
        refusal["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms <= 1000),
        "{refusal}"
    );
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("your address")),
        "{refusal}"
    );
    // Another machine has a budget of its own.
    let other = std::net::IpAddr::from([127, 0, 0, 2]);
    let mut elsewhere = Client::connect_from(&url, t.stack.address, other).await;
    elsewhere.send_text(ping).await;
    assert_eq!(pong_or_refusal(&mut elsewhere).await["type"], "pong");
    t.stack.shutdown().await;
}

/// No stage throttle or address budget in the way: what is left is the
/// connection's own queue.
const UNTHROTTLED: [&str; 8] = [
    "--address-rate-limit",
    "100000",
    "--address-burst-limit",
    "100000",
    "--history-rate-limit",
    "5000",
    "--history-burst-limit",
    "5000",
];

#[tokio::test]
async fn a_client_that_floods_and_leaves_leaves_little_behind() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().expect("temp dir");
    let t = start_stack(dir.path(), &unique_prefix(), &UNTHROTTLED).await;
    let url = t.stack.websocket_url();
    let mut flood = Client::connect(&url).await;
    let id = flood.id.clone();
    // 100,000 history requests as fast as the socket takes them, none read.
    let request = Message::text(r#"{"action":"history"}"#);
    for _ in 0..100_000 {
        flood.socket.feed(request.clone()).await.expect("writes");
    }
    flood.socket.flush().await.expect("flushes");
    drop(flood);
    let left = std::time::Instant::now();
    t.closed_session(&id).await;
    let took = left.elapsed();
    // Unbounded, its $disconnect waited for every request: about a minute.
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
    // And the stack stops promptly.
    let stopping = std::time::Instant::now();
    t.stack.shutdown().await;
    assert!(stopping.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn the_stack_stops_within_seconds_while_a_client_floods() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let t = TestStack::start(&[]).await;
    let mut flood = Client::connect(&t.stack.websocket_url()).await;
    let flooding = tokio::spawn(async move {
        let request = Message::text(r#"{"action":"history"}"#);
        while flood.socket.send(request.clone()).await.is_ok() {}
    });
    // Long enough for its unread refusals to fill both sockets' buffers.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let stopping = std::time::Instant::now();
    let stopped = t.stack.shutdown().await;
    let took = stopping.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "{took:?}, {stopped:?}"
    );
    // A client that does not read cannot hold its close frame, nor its
    // $disconnect.
    assert_eq!(stopped.abandoned_connections, 0, "{stopped:?}");
    flooding.await.expect("the flood ends with the stack");
}
