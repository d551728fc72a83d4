//! A large room's fan-out through the local stack: its rest goes to the
//! fan-out workers through the real Lambda client and the stack's own
//! Lambda API, and every member, in every shard, gets a message once.

#![allow(clippy::expect_used)] // a failed step fails the test

use handlers::Room;
use handlers::limits::{FANOUT_FIRST_PAGE, ROOM_SHARDS};
use handlers::time::Timestamp;
use testkit::QUIET;
use testkit::stack::{Client, TestStack};

/// More members than the sender posts itself in every shard.
const PLANTED: usize = 3 * ROOM_SHARDS as usize * FANOUT_FIRST_PAGE as usize / 2;

/// Rows of connections that no longer exist, in `room`, connected an hour
/// ago: each post to one answers 410.
async fn plant(t: &TestStack, room: &Room, count: usize) {
    // `~` sorts after every character of a real connection id, so within
    // a shard the real clients come first (the engine keeps an index key's
    // entries in table-key order), and their message does not wait behind
    // the planted rows' prunes.
    let ids: Vec<String> = (0..count).map(|i| format!("~Planted{i:05}A=")).collect();
    let connected_at = Timestamp::now().minus(std::time::Duration::from_secs(3600));
    testkit::item::plant_connections(
        &t.dynamodb,
        &t.stack.tables.active_connections,
        room,
        &ids,
        connected_at,
    )
    .await;
}

#[tokio::test]
async fn a_large_rooms_rest_goes_to_workers_and_everyone_gets_the_message_once() {
    let t = TestStack::start(&[]).await;
    let hall = Room::parse("hall").expect("a room");
    let url = format!("{}?room=hall", t.stack.websocket_url());
    let mut people = Vec::new();
    for _ in 0..3 {
        people.push(Client::connect(&url).await);
    }
    // After the joins have gone out, so that only the message meets them.
    let later: Vec<String> = people[1..].iter().map(|p| p.id.clone()).collect();
    people[0].until_joined(&later).await;
    plant(&t, &hall, PLANTED).await;
    people[0].say("hello, hall").await;
    for person in &mut people {
        let message = person.next_of_type("message").await;
        assert_eq!(message["text"], "hello, hall");
        let again = person.drain_of_type("message", QUIET).await;
        assert!(again.is_empty(), "once: {again:?}");
    }
    assert!(
        t.stack.fanout_workers_invoked() >= ROOM_SHARDS as usize,
        "{} workers",
        t.stack.fanout_workers_invoked()
    );
    // The planted rows each answer 410 and are pruned meanwhile, by the
    // sender and the workers (handlers/tests/sharded_fanout.rs counts them).
    t.stack.shutdown().await;
}
