//! A room's fan-out reads only that room's entries of the room index,
//! however many connections sit in other rooms.

#![allow(clippy::expect_used)] // a failed step fails the test

use handlers::Room;
use handlers::fanout::{Audience, broadcast};
use handlers::metric::FanoutKind;
use handlers::time::Timestamp;
use testkit::Harness;

/// Writes `count` ActiveConnections rows in `room`.
async fn seed(h: &Harness, room: &Room, count: usize) -> Vec<String> {
    let ids: Vec<String> = (0..count).map(|i| format!("{room}-{i:05}")).collect();
    testkit::item::plant_connections(
        &h.db.client,
        &h.db.tables.active_connections,
        room,
        &ids,
        Timestamp::now(),
    )
    .await;
    ids
}

#[tokio::test]
async fn a_fan_out_reads_its_room_only_while_thousands_sit_elsewhere() {
    let h = Harness::start().await;
    let crowd = Room::parse("crowd").expect("a room");
    let quiet = Room::parse("quiet").expect("a room");
    seed(&h, &crowd, 2000).await;
    let mut members = seed(&h, &quiet, 3).await;
    let report = broadcast(
        &h.chat,
        r#"{"type":"notice","message":"hi"}"#,
        Audience::room(&quiet),
        FanoutKind::Message,
    )
    .await;
    assert_eq!(report.recipients, 3);
    assert_eq!(report.delivered, 3);
    assert_eq!(
        report.read, 3,
        "index entries read: the room's, not the table's"
    );
    let mut reached: Vec<String> = h.api.posts().into_iter().map(|(id, _)| id).collect();
    reached.sort();
    members.sort();
    assert_eq!(reached, members);
}

#[tokio::test]
async fn a_connection_whose_row_predates_rooms_is_in_the_lobby() {
    let h = Harness::start().await;
    // Written before rooms existed: no `room` attribute, so not in the index.
    h.db.client
        .put_item()
        .table_name(&h.db.tables.active_connections)
        .item(
            "connection_id",
            aws_sdk_dynamodb::types::AttributeValue::S("OldOldOldOldOl=".into()),
        )
        .send()
        .await
        .expect("an old row");
    let sender = h.chat.store.sender("OldOldOldOldOl=").await.expect("read");
    assert_eq!(sender.map(|sender| sender.room), Some(Room::lobby()));
    assert_eq!(h.chat.store.sender("unknown").await.expect("read"), None);
}

/// A burst within one millisecond comes back from `history` in the order it
/// was said, as live delivery has it.
#[tokio::test]
async fn history_keeps_the_order_of_messages_of_the_same_millisecond() {
    let h = testkit::Harness::with_limits(handlers::ChatLimits {
        message_rate: None,
        ..handlers::ChatLimits::default()
    })
    .await;
    h.connect("alice").await;
    let said: Vec<String> = (0..20).map(|n| format!("burst {n:02}")).collect();
    for text in &said {
        let body = serde_json::json!({ "action": "sendmessage", "message": text }).to_string();
        // Every one with the same requestTimeEpoch.
        h.send_at("alice", &body, 0).await;
    }
    let (_, page) = h.history("alice", r#"{"action":"history"}"#).await;
    let mut read: Vec<String> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| message["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    read.reverse(); // newest first
    assert_eq!(read, said);
}
