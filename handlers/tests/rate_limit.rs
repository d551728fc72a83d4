//! The per-connection message rate limit, through `sendmessage` with a real
//! DynamoDB engine: a burst, then the sustained rate; refused messages are
//! answered and neither stored nor sent.

#![allow(clippy::expect_used)] // a failed step fails the test

use handlers::ChatLimits;
use handlers::rate::{Allowance, Rate};
use serde_json::Value;
use testkit::Harness;

const RATE: Rate = Rate {
    per_second: 5,
    burst: 3,
};

fn chat(text: &str) -> String {
    format!(r#"{{"action":"sendmessage","message":"{text}"}}"#)
}

fn errors(h: &Harness, id: &str) -> Vec<Value> {
    h.api
        .frames_for(id)
        .into_iter()
        .filter(|frame| frame["type"] == "error")
        .collect()
}

async fn limited() -> Harness {
    Harness::with_limits(ChatLimits {
        message_rate: Some(RATE),
        ..ChatLimits::default()
    })
    .await
}

#[tokio::test]
async fn a_burst_goes_through_then_messages_over_the_rate_are_refused_and_kept_nowhere() {
    let h = limited().await;
    h.connect("alice").await;
    h.connect("bob").await;
    for n in 0..3 {
        h.send_at("alice", &chat(&format!("burst {n}")), 0).await;
    }
    let response = h.send_at("alice", &chat("one too many"), 0).await;
    assert_eq!(response.status_code, 200, "a client's mistake, not ours");

    let refusals = errors(&h, "alice");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["code"], "rate_limited");
    assert_eq!(refusals[0]["retry_after_ms"], 200);
    let text = refusals[0]["message"].as_str().expect("a message");
    assert!(
        text.contains("5 a second") && text.contains("3 at once"),
        "{text}"
    );
    assert_eq!(
        h.messages().await.len(),
        3,
        "the refused message is not stored"
    );
    let to_bob = h.api.frames_for("bob");
    assert_eq!(to_bob.len(), 3, "nor sent: {to_bob:?}");
    assert!(to_bob.iter().all(|frame| frame["text"] != "one too many"));

    // One interval later, one more message fits.
    h.send_at("alice", &chat("on schedule"), 200).await;
    assert_eq!(h.messages().await.len(), 4);
    assert_eq!(errors(&h, "alice").len(), 1);
}

#[tokio::test]
async fn the_limit_is_per_connection() {
    let h = limited().await;
    h.connect("alice").await;
    h.connect("bob").await;
    for n in 0..4 {
        h.send_at("alice", &chat(&format!("alice {n}")), 0).await;
    }
    for n in 0..3 {
        h.send_at("bob", &chat(&format!("bob {n}")), 0).await;
    }
    assert_eq!(errors(&h, "alice").len(), 1);
    assert!(
        errors(&h, "bob").is_empty(),
        "alice's flood costs bob nothing"
    );
    assert_eq!(h.messages().await.len(), 6);
}

#[tokio::test]
async fn two_messages_racing_from_one_connection_both_count() {
    let h = limited().await;
    h.connect("alice").await;
    let (one, two) = (chat("one"), chat("two"));
    let (first, second) = tokio::join!(h.send_at("alice", &one, 0), h.send_at("alice", &two, 0));
    assert_eq!((first.status_code, second.status_code), (200, 200));
    assert!(
        errors(&h, "alice").is_empty(),
        "the loser of the write retries"
    );
    assert_eq!(h.messages().await.len(), 2);
    // Both moved the mark: only the burst's third message fits now.
    h.send_at("alice", &chat("three"), 0).await;
    h.send_at("alice", &chat("four"), 0).await;
    assert_eq!(h.messages().await.len(), 3);
    assert_eq!(errors(&h, "alice").len(), 1);
}

#[tokio::test]
async fn without_a_rate_nothing_is_refused() {
    let h = Harness::with_limits(ChatLimits {
        message_rate: None,
        ..ChatLimits::default()
    })
    .await;
    h.connect("alice").await;
    for n in 0..30 {
        h.send_at("alice", &chat(&format!("{n}")), 0).await;
    }
    assert!(errors(&h, "alice").is_empty());
    assert_eq!(h.messages().await.len(), 30);
}

/// The timestamp `ms` after the epoch.
fn at_ms(ms: i64) -> handlers::time::Timestamp {
    handlers::time::Timestamp::from_epoch_millis(ms).expect("in range")
}

#[tokio::test]
async fn one_write_reads_an_on_schedule_sender_and_moves_its_mark() {
    use handlers::store::Claim;
    let h = limited().await;
    h.connect("alice").await;
    let store = &h.chat.store;
    let Claim::Moved(sender) = store
        .claim_on_schedule("alice", Allowance::Messages, at_ms(1_000), 1_200)
        .await
        .expect("claimed")
    else {
        panic!("a first message is on schedule");
    };
    assert_eq!(sender.rate_allowed_at, Some(1_200));
    assert_eq!(sender.room.to_string(), "lobby");
    assert_eq!(
        store.last_seen("alice").await.expect("read"),
        Some(at_ms(1_000)),
        "a message is the repair's evidence that its connection was alive"
    );
    // Before the mark: nothing is written, and the row comes back as it is.
    assert_eq!(
        store
            .claim_on_schedule("alice", Allowance::Messages, at_ms(1_100), 1_300)
            .await
            .expect("read"),
        Claim::Ahead(Some(sender.clone()))
    );
    assert_eq!(
        store.sender("alice").await.expect("read"),
        Some(sender.clone())
    );
    // At the mark it is on schedule again.
    assert!(matches!(
        store.claim_on_schedule("alice", Allowance::Messages, at_ms(1_200), 1_400).await,
        Ok(Claim::Moved(moved)) if moved.rate_allowed_at == Some(1_400)
    ));
    assert_eq!(
        store
            .claim_on_schedule("nobody", Allowance::Messages, at_ms(1_000), 1_200)
            .await
            .expect("read"),
        Claim::Ahead(None),
        "no row is made for a connection that has none"
    );
    assert_eq!(store.sender("nobody").await.expect("read"), None);
}

#[tokio::test]
async fn history_pages_have_an_allowance_of_their_own_per_connection() {
    use handlers::limits::HISTORY_RATE;
    let h = limited().await;
    h.connect("alice").await;
    h.connect("bob").await;
    let ask = r#"{"action":"history"}"#;
    for n in 0..HISTORY_RATE.burst {
        let (status, page) = h.history("alice", ask).await;
        assert_eq!(
            (status, page["type"].as_str()),
            (200, Some("history")),
            "page {n}"
        );
    }
    let (status, refusal) = h.history("alice", ask).await;
    assert_eq!(status, 200, "a client's mistake, not ours");
    assert_eq!(refusal["type"], "error");
    assert_eq!(refusal["code"], "rate_limited");
    assert_eq!(refusal["action"], "history", "{refusal}");
    assert_eq!(
        refusal["retry_after_ms"],
        1000 / i64::from(HISTORY_RATE.per_second)
    );
    let text = refusal["message"].as_str().expect("a message");
    assert!(text.contains("history"), "{text}");

    // Another connection is not held back, nor are alice's messages.
    let (_, page) = h.history("bob", ask).await;
    assert_eq!(page["type"], "history");
    h.send_at("alice", &chat("still allowed"), 0).await;
    assert!(errors(&h, "alice").is_empty());
    assert_eq!(h.messages().await.len(), 1);
}
