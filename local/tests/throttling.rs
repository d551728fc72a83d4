//! The deployed stage's route throttling, applied by the local gateway as
//! API Gateway applies it: a token bucket per route across every
//! connection; a frame over it reaches no handler and is answered "Too Many
//! Requests". And each connection's own history allowance, which the
//! handler applies on AWS too.

#![allow(clippy::expect_used)] // a failed step fails the test

use testkit::stack::{Client, start_stack, unique_prefix};

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
    let dir = tempfile::tempdir().expect("temp dir");
    let t = start_stack(dir.path(), &unique_prefix(), &[]).await;
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
