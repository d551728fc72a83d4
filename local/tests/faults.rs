//! The local stack against a DynamoDB that fails: its endpoint is a
//! [`FaultProxy`] in front of a real engine, which refuses connections,
//! answers chosen operations with errors, or never answers them. What the
//! tables really hold is read from the engine behind the proxy.
//!
//! The Management API faults (429, 5xx, 410, 403) are driven through the
//! handlers with [`Harness`]: the stack's own Management API is its gateway,
//! which cannot be made to throttle.

#![allow(clippy::expect_used)] // a failed step fails the test

use std::collections::HashMap;

use chat_local::EmbeddedDynamo;
use serde_json::Value;
use testkit::item::{number, scan, string};
use testkit::proxy::{Fault, FaultProxy, STREAMS, dynamodb};
use testkit::stack::{Client, TestStack, start_stack_on, unique_prefix};
use testkit::{Harness, PATIENCE, QUIET, eventually};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A stack whose DynamoDB is behind a fault proxy.
struct Faulty {
    t: TestStack,
    proxy: FaultProxy,
    /// The engine itself, past the proxy.
    direct: aws_sdk_dynamodb::Client,
    engine: Option<EmbeddedDynamo>,
    _dir: tempfile::TempDir,
}

impl Faulty {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    async fn start_with(flags: &[&str]) -> Self {
        let (endpoint, engine) = match testkit::dynamo::external_endpoint() {
            Some(endpoint) => (endpoint, None),
            None => {
                let engine = EmbeddedDynamo::start(None, ([127, 0, 0, 1], 0).into())
                    .await
                    .expect("the embedded DynamoDB starts");
                (engine.endpoint.clone(), Some(engine))
            }
        };
        let proxy = FaultProxy::start(&endpoint).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let t = start_stack_on(
            Some(proxy.endpoint.clone()),
            dir.path(),
            &unique_prefix(),
            flags,
        )
        .await;
        let direct =
            chat_local::aws::dynamodb_client(&chat_local::aws::local_sdk_config(), &endpoint);
        Self {
            t,
            proxy,
            direct,
            engine,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        self.t.stack.websocket_url()
    }

    async fn connection_ids(&self) -> Vec<String> {
        let table = &self.t.stack.tables.active_connections;
        let mut ids: Vec<String> = scan(&self.direct, table)
            .await
            .iter()
            .map(|row| string(row, "connection_id"))
            .collect();
        ids.sort();
        ids
    }

    async fn sessions(&self) -> Vec<testkit::item::Item> {
        scan(&self.direct, &self.t.stack.tables.session_history).await
    }

    async fn messages(&self) -> Vec<String> {
        scan(&self.direct, &self.t.stack.tables.message_history)
            .await
            .iter()
            .map(|row| string(row, "message"))
            .collect()
    }

    /// The id of the one connection row not in `known`.
    async fn new_connection(&self, known: &[&str]) -> String {
        eventually("the new connection's row", || async {
            let ids = self.connection_ids().await;
            let new: Vec<String> = ids
                .into_iter()
                .filter(|id| !known.contains(&id.as_str()))
                .collect();
            (new.len() == 1).then(|| new[0].clone())
        })
        .await
    }

    async fn stop(self) {
        self.proxy.heal().await;
        self.t.stack.shutdown().await;
        if let Some(engine) = self.engine {
            engine.shutdown().await;
        }
    }
}

/// The status of a refused WebSocket handshake; panics if it is accepted,
/// and gives up (failing the test) rather than hang.
async fn refused_status(url: &str) -> u16 {
    let attempt = tokio::time::timeout(PATIENCE * 2, tokio_tungstenite::connect_async(url))
        .await
        .expect("the handshake is answered, not left hanging");
    match attempt.expect_err("the upgrade is refused") {
        tokio_tungstenite::tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn a_connect_is_refused_with_500_and_leaves_nothing_when_dynamodb_refuses_or_hangs() {
    let f = Faulty::start().await;

    f.proxy.refuse_connections(true).await;
    let address = f.proxy.endpoint.trim_start_matches("http://");
    let refused = tokio::net::TcpStream::connect(address).await.err();
    assert_eq!(
        refused.map(|error| error.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(refused_status(&f.url()).await, 500, "DynamoDB refusing");
    f.proxy.heal().await;

    // A transaction that never gets an answer.
    f.proxy.fail(&dynamodb("TransactWriteItems"), Fault::Hang);
    assert_eq!(refused_status(&f.url()).await, 500, "DynamoDB hanging");
    assert!(f.proxy.faulted(&dynamodb("TransactWriteItems")) > 0);
    f.proxy.heal().await;

    // A transaction refused by DynamoDB: neither row, as one.
    f.proxy
        .fail(&dynamodb("TransactWriteItems"), Fault::INTERNAL_ERROR);
    assert_eq!(refused_status(&f.url()).await, 500, "DynamoDB failing");
    f.proxy.heal().await;

    assert_eq!(f.t.stack.connection_count(), 0, "nobody left registered");
    assert!(f.connection_ids().await.is_empty(), "no connection rows");
    assert!(f.sessions().await.is_empty(), "no session rows");

    // Healed, the next one gets in as usual.
    let client = Client::connect(&f.url()).await;
    assert_eq!(f.connection_ids().await, [client.id.as_str()]);
    drop(client);
    f.stop().await;
}

#[tokio::test]
async fn a_connect_slower_than_the_integration_timeout_is_refused_with_504() {
    let f = Faulty::start_with(&["--integration-timeout-ms", "300"]).await;

    // Without the timeout, the hung transaction would end in a 500 after
    // the DynamoDB call's own 5 s.
    f.proxy.fail(&dynamodb("TransactWriteItems"), Fault::Hang);
    assert_eq!(refused_status(&f.url()).await, 504);
    f.proxy.heal().await;
    assert_eq!(f.t.stack.connection_count(), 0, "nobody left registered");

    let client = Client::connect(&f.url()).await;
    assert_eq!(f.connection_ids().await, [client.id.as_str()]);
    drop(client);
    f.stop().await;
}

#[tokio::test]
async fn sendmessage_answers_an_error_and_stores_nothing_half_done_when_dynamodb_fails() {
    let f = Faulty::start().await;
    let mut alice = Client::connect(&f.url()).await;
    let mut bob = Client::connect(&f.url()).await;

    // Neither the sender's row nor the message can be reached or written:
    // an `internal` error to the sender, nothing stored, nothing sent.
    for outage in ["refused", "put failing", "put hanging"] {
        match outage {
            "refused" => f.proxy.refuse_connections(true).await,
            "put failing" => f.proxy.fail(&dynamodb("PutItem"), Fault::INTERNAL_ERROR),
            _ => f.proxy.fail(&dynamodb("PutItem"), Fault::Hang),
        }
        alice.say(outage).await;
        let error = alice.next_of_type("error").await;
        assert_eq!(error["code"], "internal", "{outage}: {error}");
        assert_eq!(
            error["message"],
            "The server could not store your message; nothing was sent. Please try again.",
            "{outage}"
        );
        f.proxy.heal().await;
    }
    assert!(f.messages().await.is_empty(), "nothing stored");

    // Stored, but the room cannot be read: the sender is told, not misled.
    f.proxy.fail(&dynamodb("Query"), Fault::INTERNAL_ERROR);
    alice.say("stored, not delivered").await;
    let error = alice.next_of_type("error").await;
    assert_eq!(error["code"], "partial_delivery", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("reading the connection list failed")),
        "{error}"
    );
    f.proxy.heal().await;
    assert_eq!(f.messages().await, ["stored, not delivered"]);

    // Healed: the next message is stored once and reaches both.
    alice.say("back").await;
    assert_eq!(alice.next_of_type("message").await["text"], "back");
    let mut seen = vec![bob.next_of_type("message").await];
    seen.extend(bob.drain_of_type("message", QUIET).await);
    let texts: Vec<&Value> = seen.iter().map(|frame| &frame["text"]).collect();
    assert_eq!(texts, ["back"], "bob saw nothing of the failed sends");
    let mut stored = f.messages().await;
    stored.sort();
    assert_eq!(stored, ["back", "stored, not delivered"]);
    drop((alice, bob));
    f.stop().await;
}

/// How often each connection id is listed in `list` (`joined` or `left`)
/// of presence frames.
fn presence_counts(frames: &[Value], list: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for frame in frames {
        for member in frame[list].as_array().expect("a list") {
            let id = member["connection_id"].as_str().expect("an id").to_owned();
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
}

/// While DynamoDB Streams fails (`fault`), people join and one leaves; once
/// it is back, the poller delivers every record: welcomes, one presence
/// entry per join and leave, and the duration.
async fn a_streams_outage_loses_no_records(fault: Fault) {
    let f = Faulty::start().await;
    let mut alice = Client::connect(&f.url()).await;

    f.proxy.fail(STREAMS, fault);
    eventually("the poller meets the outage", || async {
        (f.proxy.faulted(STREAMS) > 0).then_some(())
    })
    .await;
    let mut bob = Client::open(&f.url()).await;
    let bob_id = f.new_connection(&[&alice.id]).await;
    let mut carol = Client::open(&f.url()).await;
    let carol_id = f.new_connection(&[&alice.id, &bob_id]).await;
    carol
        .socket
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .expect("closes");
    let closed = f.t.closed_session(&carol_id).await;
    assert!(!closed.contains_key("duration_seconds"), "not measured yet");

    f.proxy.heal().await;
    bob.await_welcome().await;
    assert_eq!(bob.id, bob_id);
    let session = eventually("carol's duration is recorded", || async {
        f.sessions().await.into_iter().find(|row| {
            string(row, "connection_id") == carol_id && row.contains_key("duration_seconds")
        })
    })
    .await;
    assert_eq!(number(&session, "disconnect_status_code"), "1000");

    // alice hears of each join and of carol's leave, once.
    let mut frames = Vec::new();
    while presence_counts(&frames, "left").get(&carol_id) != Some(&1)
        || presence_counts(&frames, "joined").len() < 2
    {
        frames.push(alice.next_of_type("presence").await);
    }
    frames.extend(alice.drain_of_type("presence", QUIET).await);
    assert_eq!(
        presence_counts(&frames, "joined"),
        HashMap::from([(bob_id.clone(), 1), (carol_id.clone(), 1)]),
        "{frames:?}"
    );
    assert_eq!(
        presence_counts(&frames, "left"),
        HashMap::from([(carol_id.clone(), 1)]),
        "{frames:?}"
    );
    drop((alice, bob));
    f.stop().await;
}

#[tokio::test]
async fn the_poller_resumes_after_streams_errors_without_losing_records() {
    a_streams_outage_loses_no_records(Fault::INTERNAL_ERROR).await;
}

#[tokio::test]
async fn the_poller_resumes_after_streams_stop_answering_without_losing_records() {
    a_streams_outage_loses_no_records(Fault::Hang).await;
}

#[tokio::test]
async fn management_api_throttling_and_5xx_are_retried_a_bounded_number_of_times_410_and_403_never()
{
    let h = Harness::start().await;
    for id in ["alice", "throttled", "failing", "forbidden", "gone"] {
        h.connect(id).await;
    }
    let attempts = handlers::limits::POST_ATTEMPTS as usize;
    // Throttled for all but the last attempt, so delivered after retries.
    h.api.fail_next("throttled", 429, attempts - 1);
    h.api.fail_next("failing", 500, usize::MAX);
    h.api.mark_failing("forbidden");
    h.api.mark_gone("gone");

    let response = h
        .send("alice", r#"{"action":"sendmessage","message":"hi"}"#)
        .await;
    assert_eq!(response.status_code, 200);

    assert_eq!(
        h.api.attempts("throttled"),
        attempts,
        "retried, then delivered"
    );
    assert_eq!(h.api.frames_for("throttled").len(), 1);
    assert_eq!(h.api.attempts("failing"), attempts, "bounded");
    assert_eq!(h.api.attempts("forbidden"), 1, "403 is never retried");
    assert_eq!(h.api.attempts("gone"), 1, "410 is never retried");
    let alice = h.api.frames_for("alice");
    assert_eq!(alice.len(), 2, "{alice:?}");
    assert_eq!(alice[1]["code"], "partial_delivery");
    assert_eq!(
        alice[1]["message"],
        "Your message was saved, but could not be delivered to 2 of 5 connections."
    );
    assert_eq!(
        h.active_ids().await,
        ["alice", "failing", "forbidden", "throttled"],
        "only the gone connection is pruned"
    );
}

/// A throttled API Gateway is not asked again and again: once the
/// function's retry budget is spent, a throttled post is final at its first
/// answer, and the sender hears how many were missed.
#[tokio::test]
async fn an_account_throttle_that_never_ends_costs_a_fan_out_its_patience_and_no_more() {
    use handlers::limits::{
        FANOUT_THROTTLE_PATIENCE, POST_ATTEMPTS, RETRY_BUDGET_TOKENS, RETRY_COST,
    };
    let h = Harness::start().await;
    h.connect("alice").await;
    let throttled: Vec<String> = (0..200).map(|n| format!("throttled-{n:03}")).collect();
    for id in &throttled {
        h.connect(id).await;
        h.api.fail_next(id, 429, usize::MAX);
    }
    let started = std::time::Instant::now();
    h.send("alice", r#"{"action":"sendmessage","message":"hi"}"#)
        .await;
    let took = started.elapsed();
    // Every post waits for the account together: the fan-out gives up
    // once, at its patience, whatever the size of the room.
    assert!(took >= FANOUT_THROTTLE_PATIENCE / 2, "{took:?}");
    assert!(took < FANOUT_THROTTLE_PATIENCE * 2, "{took:?}");

    let attempts: Vec<usize> = throttled.iter().map(|id| h.api.attempts(id)).collect();
    // The client's immediate retries come out of its budget; the waits
    // between a fan-out's tries (at least 25 ms, up to a second) bound
    // the rest.
    // (A post the transport could not even send, under a loaded machine,
    // reached the fake not at all: no retry either.)
    let retries: usize = attempts.iter().map(|n| n.saturating_sub(1)).sum();
    let affordable = (RETRY_BUDGET_TOKENS / RETRY_COST) as usize;
    let waits = (FANOUT_THROTTLE_PATIENCE.as_millis() / 25) as usize;
    assert!(
        retries <= affordable + throttled.len() * waits,
        "{retries} retries"
    );
    assert!(
        attempts.iter().any(|n| *n > POST_ATTEMPTS as usize),
        "throttled posts are tried again after a wait: {attempts:?}"
    );
    let alice = h.api.frames_for("alice");
    assert_eq!(
        alice.last().expect("frames")["message"],
        "Your message was saved, but could not be delivered to 200 of 201 connections."
    );
}
