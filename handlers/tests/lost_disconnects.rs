//! Sessions whose close did not happen where it should have: a `$disconnect`
//! API Gateway never delivered, a close that failed, a connection row that
//! DynamoDB's TTL expired. Each ends closed (code 1006), as of when its
//! connection was last known alive, found through the open-sessions index.
//! Against a real DynamoDB engine and a real HTTP Management API (Harness).

#![allow(clippy::expect_used)] // a failed step fails the test

use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;

use handlers::reconcile::{self, Liveness, RepairPolicy};
use handlers::records::{ActiveConnection, Session, open_shard};
use handlers::time::Timestamp;
use handlers::{Chat, Room, Store};
use testkit::Harness;
use testkit::harness::{DISCONNECT_AT, MESSAGE_AT};
use testkit::item::{Item, number, string};
use testkit::proxy::{Fault, FaultProxy, dynamodb};

/// A repair as the scheduled function runs it, without its waits.
fn policy() -> RepairPolicy {
    RepairPolicy {
        now: Timestamp::now(),
        max_connection: Duration::from_secs(2 * 60 * 60),
        alive_until: None,
        settle: Duration::ZERO,
        connect_grace: handlers::limits::CONNECT_GRACE,
        concurrency: 4,
        deadline: None,
        gone_reason: reconcile::GONE_REASON.to_owned(),
    }
}

fn chat(text: &str) -> String {
    serde_json::json!({ "action": "sendmessage", "message": text }).to_string()
}

fn is_open(session: &Item) -> bool {
    !session.contains_key("disconnected_at")
}

/// Opens a session (and its row) `age` ago, as `$connect` would have.
async fn opened_ago(h: &Harness, id: &str, age: Duration) {
    let connected_at = Timestamp::now().minus(age);
    let row = ActiveConnection::new(id.to_owned(), connected_at, Room::lobby());
    let session = Session::opened(id.to_owned(), None, connected_at, Room::lobby());
    h.chat
        .store
        .open_session(&row, &session)
        .await
        .expect("opened");
}

#[tokio::test]
async fn a_failed_close_keeps_the_connection_row_and_the_repair_closes_the_session() {
    let h = Harness::start().await;
    h.connect("alice").await;
    h.send_at("alice", &chat("still here"), 0).await;
    // Every UpdateItem fails: SessionHistory cannot be closed.
    let proxy = FaultProxy::start(&h.db.endpoint).await;
    proxy.fail(&dynamodb("UpdateItem"), Fault::INTERNAL_ERROR);
    let failing = Chat {
        store: Store::new(
            chat_local::aws::dynamodb_client(&h.db.sdk, &proxy.endpoint),
            h.db.tables.clone(),
        ),
        ..h.chat.clone()
    };
    let event = h.event("disconnect.json", "alice", |_| {});
    let response = handlers::disconnect(&failing, event)
        .await
        .expect("handled");
    assert_eq!(response.status_code, 500, "a failure shows in the metrics");
    assert!(proxy.faulted(&dynamodb("UpdateItem")) > 0);
    let session = h.session_item("alice").await.expect("session");
    assert!(is_open(&session));
    assert!(
        h.connection_item("alice").await.is_some(),
        "the row stays, with its last sign of life, until the session is closed"
    );

    let report = reconcile::repair(&h.chat.store, &policy(), |_| async {
        Ok::<_, Infallible>(Liveness::Gone)
    })
    .await
    .expect("repaired");
    assert_eq!((report.open, report.gone), (1, 1));
    let session = h.session_item("alice").await.expect("session");
    assert_eq!(
        string(&session, "disconnected_at"),
        h.at(MESSAGE_AT),
        "closed as of its last message, not as of the repair"
    );
    assert_eq!(number(&session, "disconnect_status_code"), "1006");
    assert_eq!(
        string(&session, "disconnect_reason"),
        reconcile::GONE_REASON
    );
    assert!(!session.contains_key("open_shard"));
    assert!(h.connection_item("alice").await.is_none());
}

#[tokio::test]
async fn a_session_past_the_connection_limit_is_closed_without_asking_api_gateway() {
    let h = Harness::start().await;
    // Its `$disconnect` never came, and DynamoDB's TTL took its row.
    opened_ago(&h, "expired", Duration::from_secs(3 * 60 * 60)).await;
    h.chat
        .store
        .delete_connection("expired")
        .await
        .expect("expired by TTL");
    let asked = Mutex::new(Vec::new());
    let report = reconcile::repair(&h.chat.store, &policy(), |id| {
        asked.lock().expect("lock").push(id);
        async { Ok::<_, Infallible>(Liveness::Alive) }
    })
    .await
    .expect("repaired");
    assert!(asked.lock().expect("lock").is_empty(), "no GetConnection");
    assert_eq!((report.open, report.expired), (1, 1));
    let session = h.session_item("expired").await.expect("session");
    assert_eq!(
        string(&session, "disconnected_at"),
        string(&session, "connected_at"),
        "nothing says it was alive after it connected"
    );
    assert_eq!(
        string(&session, "disconnect_reason"),
        reconcile::EXPIRED_REASON
    );
    assert_eq!(number(&session, "disconnect_status_code"), "1006");
}

#[tokio::test]
async fn the_repair_asks_only_about_what_it_cannot_rule_on_and_closes_only_the_gone() {
    let h = Harness::start().await;
    // Five sessions under one open_shard: the Harness's two-item pages make
    // the repair follow the index's pages.
    let crowd: Vec<String> = (0..)
        .map(|n| format!("crowd-{n}"))
        .filter(|id| open_shard(id) == 3)
        .take(5)
        .collect();
    for id in crowd
        .iter()
        .chain(["gone", "unsure"].map(String::from).iter())
    {
        h.connect(id).await;
    }
    h.send_at("gone", &chat("last words"), 0).await;
    h.connect("left-properly").await;
    h.disconnect_at("left-properly", DISCONNECT_AT).await;
    // Still inside its `$connect`, as far as anyone can tell.
    opened_ago(&h, "newcomer", Duration::from_secs(1)).await;

    let asked = Mutex::new(Vec::new());
    let report = reconcile::repair(&h.chat.store, &policy(), |id| {
        asked.lock().expect("lock").push(id.clone());
        async move {
            match id.as_str() {
                "gone" => Ok(Liveness::Gone),
                "unsure" => Err("GetConnection timed out"),
                _ => Ok(Liveness::Alive),
            }
        }
    })
    .await
    .expect("repaired");
    let mut asked = asked.into_inner().expect("lock");
    asked.sort();
    let mut expected: Vec<String> = crowd.clone();
    expected.extend(["gone".to_owned(), "unsure".to_owned()]);
    expected.sort();
    assert_eq!(
        asked, expected,
        "each open session it could not rule on, once"
    );
    assert_eq!(report.open, 8, "open sessions only: not the closed one");
    assert_eq!((report.gone, report.alive, report.unknown), (1, 6, 1));

    let gone = h.session_item("gone").await.expect("session");
    assert_eq!(string(&gone, "disconnected_at"), h.at(MESSAGE_AT));
    for id in crowd
        .iter()
        .chain(["unsure", "newcomer"].map(String::from).iter())
    {
        let session = h.session_item(id).await.expect("session");
        assert!(is_open(&session), "{id} stays open");
    }
    let closed = h.session_item("left-properly").await.expect("session");
    assert_eq!(string(&closed, "disconnected_at"), h.at(DISCONNECT_AT));
    assert_eq!(number(&closed, "disconnect_status_code"), "1001");

    // A second run finds only what is still open, and closes nothing again.
    let again = reconcile::repair(&h.chat.store, &policy(), |_| async {
        Ok::<_, Infallible>(Liveness::Alive)
    })
    .await
    .expect("repaired");
    assert_eq!((again.open, again.gone), (7, 0));
}

#[tokio::test]
async fn a_disconnect_that_arrives_while_the_repair_decides_keeps_its_own_close() {
    let h = Harness::start().await;
    h.connect("alice").await;
    let report = reconcile::repair(&h.chat.store, &policy(), |id| {
        let h = &h;
        async move {
            // API Gateway already answers 410; its `$disconnect` lands now.
            h.disconnect_at(&id, DISCONNECT_AT).await;
            Ok::<_, Infallible>(Liveness::Gone)
        }
    })
    .await
    .expect("repaired");
    assert_eq!((report.gone, report.closed_meanwhile), (0, 1));
    let session = h.session_item("alice").await.expect("session");
    assert_eq!(string(&session, "disconnected_at"), h.at(DISCONNECT_AT));
    assert_eq!(number(&session, "disconnect_status_code"), "1001");
}

#[tokio::test]
async fn a_repair_past_its_deadline_stops_and_says_so() {
    let h = Harness::start().await;
    h.connect("alice").await;
    let policy = RepairPolicy {
        deadline: Some(tokio::time::Instant::now()),
        ..policy()
    };
    let report = reconcile::repair(&h.chat.store, &policy, |_| async {
        Ok::<_, Infallible>(Liveness::Gone)
    })
    .await
    .expect("repaired");
    assert!(report.stopped_at_deadline);
    assert_eq!(report.gone, 0);
    assert!(is_open(&h.session_item("alice").await.expect("session")));
}
