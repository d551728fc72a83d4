//! Connections that ended without a `$disconnect` (API Gateway delivers it
//! best effort; the local stack can be killed): their sessions still close,
//! their rooms are told they left, and no ghost stays in anyone's list.
//! The whole stack on port 0 with real WebSocket clients.

#![allow(clippy::expect_used)] // a failed step fails the test

use std::time::Duration;

use handlers::records::{ActiveConnection, Session};
use handlers::time::Timestamp;
use handlers::{Room, Store};
use serde_json::Value;
use testkit::item::{connection_row, number, string};
use testkit::stack::{Client, TestStack};

/// A connection API Gateway no longer has, but whose rows say it is in
/// `room` (its `$disconnect` never came), opened `age` ago.
async fn plant_ghost(t: &TestStack, id: &str, room: &str, age: Duration) {
    let store = Store::new(t.dynamodb.clone(), t.stack.tables.clone());
    let room = Room::parse(room).expect("a room name");
    let connected_at = Timestamp::now().minus(age);
    let row = ActiveConnection::new(id.to_owned(), connected_at, room.clone());
    let session = Session::opened(id.to_owned(), None, connected_at, room);
    store.open_session(&row, &session).await.expect("planted");
}

/// The `presence` frame telling `client` that `id` left.
async fn told_left(client: &mut Client, id: &str) -> Value {
    loop {
        let presence = client.next_of_type("presence").await;
        let left = presence["left"].as_array().cloned().unwrap_or_default();
        if let Some(departure) = left.iter().find(|d| d["connection_id"] == id) {
            return departure.clone();
        }
    }
}

#[tokio::test]
async fn a_connection_whose_disconnect_never_came_is_closed_by_the_next_message() {
    let t = TestStack::start(&[]).await;
    let url = format!("{}?room=ghosts", t.stack.websocket_url());
    let mut alice = Client::connect(&url).await;
    plant_ghost(&t, "GhostGhostGhost=", "ghosts", Duration::from_secs(60)).await;

    alice.say("anyone here?").await;
    alice.next_of_type("message").await;
    let departure = told_left(&mut alice, "GhostGhostGhost=").await;
    assert!(departure["duration_seconds"].as_f64().expect("a duration") >= 60.0);

    let session = t.closed_session("GhostGhostGhost=").await;
    assert_eq!(number(&session, "disconnect_status_code"), "1006");
    assert_eq!(
        string(&session, "disconnect_reason"),
        handlers::fanout::PRUNED_REASON
    );
    assert!(!session.contains_key("open_shard"));
    assert!(
        connection_row(
            &t.dynamodb,
            &t.stack.tables.active_connections,
            "GhostGhostGhost="
        )
        .await
        .is_none()
    );
    // Nobody's `welcome` lists it any more.
    let bob = Client::connect(&url).await;
    let online = bob.welcome["online"].as_array().expect("a list").clone();
    assert!(
        online
            .iter()
            .all(|m| m["connection_id"] != "GhostGhostGhost=")
    );
    t.stack.shutdown().await;
}

#[tokio::test]
async fn the_repair_runs_by_itself_and_closes_what_no_message_found() {
    let t = TestStack::start(&["--repair-interval-secs", "1"]).await;
    let url = format!("{}?room=quiet", t.stack.websocket_url());
    let mut watcher = Client::connect(&url).await;
    let mut alice = Client::connect(&url).await;
    // Alice's arrival has gone out to the room before the ghost is in it:
    // no post ever finds the ghost gone, only the repair can.
    watcher.until_joined(std::slice::from_ref(&alice.id)).await;
    plant_ghost(&t, "QuietGhostGhost=", "quiet", Duration::from_secs(60)).await;

    // Nobody says anything: the repair asks the gateway, which no longer
    // has the connection.
    told_left(&mut alice, "QuietGhostGhost=").await;
    let session = t.closed_session("QuietGhostGhost=").await;
    assert_eq!(number(&session, "disconnect_status_code"), "1006");
    assert_eq!(
        string(&session, "disconnect_reason"),
        handlers::reconcile::GONE_REASON
    );
    assert_eq!(
        string(&session, "disconnected_at"),
        string(&session, "connected_at"),
        "nothing says it was alive after it connected"
    );
    // Alice, alive all along, is left alone.
    let hers = connection_row(&t.dynamodb, &t.stack.tables.session_history, &alice.id)
        .await
        .expect("her session");
    assert!(!hers.contains_key("disconnected_at"));
    t.stack.shutdown().await;
}
