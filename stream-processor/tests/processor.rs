//! The stream processor over real-shaped DynamoDB stream batches: INSERTs,
//! MODIFYs with and without `disconnected_at`, its own duration write,
//! REMOVEs, an undecodable record, and replays.

#![allow(clippy::expect_used)] // a failed step fails the test

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use stream_processor::{Change, Processor, classify};
use testkit::Harness;
use testkit::fixtures::{stream_batch as batch, stream_record as record};
use testkit::harness::{FIXTURE_CONNECTED_AT, FIXTURE_DISCONNECTED_AT};

const NEWCOMER: &str = "L0SM9cOFvHcCIhw=";

/// One batch through a processor of its own, as a fresh process would
/// take it: no room announced before.
async fn handle(chat: &handlers::Chat, event: Event) -> DynamoDbEventResponse {
    Processor::new(chat.clone()).handle(event).await
}

fn failed_sequence_numbers(
    response: &aws_lambda_events::streams::DynamoDbEventResponse,
) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.clone().expect("identified"))
        .collect()
}

#[test]
fn records_are_classified_from_their_typed_images() {
    let Change::Opened(session) = classify(&record("insert.json")).expect("decodes") else {
        panic!("an INSERT opens a session");
    };
    assert_eq!(session.connection_id, NEWCOMER);
    assert_eq!(session.source_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(session.connected_at.to_string(), FIXTURE_CONNECTED_AT);

    let Change::Closed(session, disconnected_at) =
        classify(&record("modify_disconnected.json")).expect("decodes")
    else {
        panic!("setting disconnected_at closes a session");
    };
    assert_eq!(disconnected_at.to_string(), FIXTURE_DISCONNECTED_AT);
    assert_eq!(session.disconnect_status_code, Some(1001));

    for ignored in [
        "modify_duration.json",
        "modify_other.json",
        "remove_ttl.json",
        "unknown_ttl.json",
    ] {
        assert_eq!(
            classify(&record(ignored)).expect("decodes"),
            Change::Ignored,
            "{ignored}"
        );
    }
    assert!(classify(&record("undecodable.json")).is_err());
}

#[tokio::test]
async fn an_insert_welcomes_the_newcomer_and_tells_everyone_else() {
    let h = Harness::start().await;
    for id in ["alice", "bob", "carol", NEWCOMER] {
        h.connected(id).await;
    }
    let response = handle(&h.chat, batch(vec![record("insert.json")])).await;
    assert!(response.batch_item_failures.is_empty());

    let welcome = h.api.frames_for(NEWCOMER);
    assert_eq!(
        welcome.len(),
        1,
        "the welcome, and no presence about itself"
    );
    let welcome = &welcome[0];
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(
        welcome["message"],
        format!("Welcome to lobby! You are {NEWCOMER}. 3 other people are here.")
    );
    assert_eq!(welcome["connection_id"], NEWCOMER);
    assert_eq!(welcome["connected_at"], "2026-11-28T00:13:36.123Z");
    assert_eq!(welcome["room"], "lobby");
    assert_eq!(welcome["online_count"], 4);
    let mut online: Vec<&str> = welcome["online"]
        .as_array()
        .expect("who is online")
        .iter()
        .filter_map(|member| member["connection_id"].as_str())
        .collect();
    online.sort_unstable();
    assert_eq!(online, [NEWCOMER, "alice", "bob", "carol"]);
    for id in ["alice", "bob", "carol"] {
        let frames = h.api.frames_for(id);
        assert_eq!(
            frames,
            [json!({
                "type": "presence",
                "message": format!("{NEWCOMER} joined."),
                "room": "lobby",
                "joined": [{
                    "connection_id": NEWCOMER,
                    "name": null,
                    "connected_at": "2026-11-28T00:13:36.123Z",
                }],
                "left": [],
                "joined_count": 1,
                "left_count": 0,
                "online_count": 4,
            })],
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_batch_of_joins_costs_one_presence_frame_per_member_not_one_per_join() {
    let h = Harness::start().await;
    let members = ["alice", "bob"];
    let newcomers: Vec<String> = (0..5).map(|i| format!("Newcomer{i:02}AAAA=")).collect();
    for id in members
        .iter()
        .copied()
        .chain(newcomers.iter().map(String::as_str))
    {
        h.connected(id).await;
    }
    let records = newcomers
        .iter()
        .map(|id| {
            let mut insert = record("insert.json");
            insert.change.new_image = serde_dynamo::to_item(handlers::records::Session::opened(
                id.clone(),
                None,
                "2026-11-28T00:13:36.123Z".parse().expect("a time"),
                handlers::Room::lobby(),
            ))
            .expect("an image");
            insert
        })
        .collect();
    let response = handle(&h.chat, batch(records)).await;
    assert!(response.batch_item_failures.is_empty());
    for id in members {
        let frames = h.api.frames_for(id);
        assert_eq!(
            frames.len(),
            1,
            "{id}: one frame for five joins: {frames:?}"
        );
        let joined: Vec<&str> = frames[0]["joined"]
            .as_array()
            .expect("joined")
            .iter()
            .filter_map(|member| member["connection_id"].as_str())
            .collect();
        assert_eq!(
            joined,
            newcomers.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(
            frames[0]["message"]
                .as_str()
                .map(|m| m.matches("joined").count()),
            Some(5)
        );
    }
    for id in &newcomers {
        let frames = h.api.frames_for(id);
        assert_eq!(frames.len(), 1, "{id}: its welcome only");
        assert_eq!(frames[0]["type"], "welcome");
        assert_eq!(frames[0]["online_count"], 7);
    }
    // 5 welcomes + 2 presence frames, where one frame per join was 5 + 5 * 6.
    assert_eq!(h.api.posts().len(), 7);
}

#[tokio::test]
async fn a_welcome_waits_briefly_for_a_fresh_connection_but_not_for_an_old_one() {
    let h = Harness::start().await;
    h.connected("alice").await;
    h.api.mark_gone(NEWCOMER);
    // The fixture's session opened long ago: one attempt, no waiting.
    let response = handle(&h.chat, batch(vec![record("insert.json")])).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a newcomer who left is not a failure"
    );
    assert_eq!(h.api.attempts(NEWCOMER), 1);
    assert_eq!(
        h.api.frames_for("alice").len(),
        1,
        "the others still hear of the join"
    );

    // A session that opened just now may still be inside its $connect, when
    // API Gateway answers 410: retried a few times while its row is there.
    let fresh_insert = |id: &str| {
        let mut insert = record("insert.json");
        insert.change.new_image = serde_dynamo::to_item(handlers::records::Session::opened(
            id.into(),
            None,
            handlers::time::Timestamp::now(),
            handlers::Room::lobby(),
        ))
        .expect("an image");
        insert
    };
    let fresh = "FreshConnectio=";
    h.connected(fresh).await;
    h.api.mark_gone(fresh);
    handle(&h.chat, batch(vec![fresh_insert(fresh)])).await;
    assert_eq!(
        h.api.attempts(fresh),
        handlers::limits::WELCOME_ATTEMPTS as usize
    );

    // One that connected and was gone at once (its `$disconnect` deleted
    // its row) is not waited for: churn must not stall the stream.
    let churner = "ChurnedConnect=";
    h.api.mark_gone(churner);
    let started = std::time::Instant::now();
    handle(&h.chat, batch(vec![fresh_insert(churner)])).await;
    assert_eq!(h.api.attempts(churner), 1);
    assert!(started.elapsed() < std::time::Duration::from_millis(150));
}

#[tokio::test]
async fn a_disconnect_gets_its_duration_once_and_a_single_left_frame() {
    let h = Harness::start().await;
    for id in ["alice", "bob", NEWCOMER] {
        h.connected(id).await;
    }
    h.disconnected(NEWCOMER).await;
    let records = || {
        vec![
            record("modify_disconnected.json"),
            // Its own write comes back as another MODIFY; a duplicate of the
            // disconnect arrives too (at-least-once delivery).
            record("modify_duration.json"),
            record("modify_disconnected.json"),
        ]
    };
    let response = handle(&h.chat, batch(records())).await;
    assert!(response.batch_item_failures.is_empty());
    let session = h.session_item(NEWCOMER).await.expect("the session");
    assert_eq!(
        session.get("duration_seconds"),
        Some(&AttributeValue::N("84.877".into()))
    );

    for id in ["alice", "bob"] {
        let frames = h.api.frames_for(id);
        assert_eq!(frames.len(), 1, "{id}: exactly one frame: {frames:?}");
        assert_eq!(
            frames[0],
            json!({
                "type": "presence",
                "message": format!("{NEWCOMER} left after 84.877 s."),
                "room": "lobby",
                "joined": [],
                "left": [{
                    "connection_id": NEWCOMER,
                    "name": null,
                    "disconnected_at": "2026-11-28T00:15:01.000Z",
                    "duration_seconds": 84.877,
                }],
                "joined_count": 0,
                "left_count": 1,
                "online_count": 2,
            }),
            "one departure, though the batch held the close twice"
        );
    }

    // Replaying the whole batch changes nothing and sends nothing.
    let before = h.session_item(NEWCOMER).await.expect("the session");
    let posts_before = h.api.posts().len();
    let response = handle(&h.chat, batch(records())).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.session_item(NEWCOMER).await.expect("the session"), before);
    assert_eq!(h.api.posts().len(), posts_before);
}

#[tokio::test]
async fn records_of_no_interest_are_skipped_without_writes_or_posts() {
    let h = Harness::start().await;
    for id in ["alice", NEWCOMER] {
        h.connected(id).await;
    }
    let before = h.session_item(NEWCOMER).await.expect("the session");
    let response = handle(
        &h.chat,
        batch(vec![
            record("modify_other.json"),
            record("modify_duration.json"),
            record("remove_ttl.json"),
            record("unknown_ttl.json"),
        ]),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert!(h.api.posts().is_empty());
    assert_eq!(h.session_item(NEWCOMER).await.expect("the session"), before);
}

/// A batch stops at a record that fails: the records before it are done
/// (and announced) once, the failed one is reported, and what follows waits
/// for the retry, which starts at the failed record; so a retry repeats no
/// welcome and no presence frame.
#[tokio::test]
async fn a_poison_record_stops_the_batch_so_that_a_retry_repeats_nothing() {
    let h = Harness::start().await;
    for id in ["alice", "bob", NEWCOMER] {
        h.connected(id).await;
    }
    h.disconnected(NEWCOMER).await;
    let joined = testkit::fixtures::stream_record_for("insert.json", "bob");
    let whole = batch(vec![
        joined,
        record("undecodable.json"),
        record("modify_disconnected.json"),
    ]);
    let response = handle(&h.chat, whole.clone()).await;
    assert_eq!(
        failed_sequence_numbers(&response),
        ["200000000000000000001"]
    );
    assert_eq!(h.api.frames_for("bob").len(), 1, "bob's welcome");
    let frames = h.api.frames_for("alice");
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["joined"][0]["connection_id"], "bob");
    assert!(
        !h.session_item(NEWCOMER)
            .await
            .expect("the session")
            .contains_key("duration_seconds"),
        "after the failed record: not yet"
    );

    // Lambda retries from the failed record: nothing before it again.
    let mut retry = whole.clone();
    retry.records.drain(..1);
    handle(&h.chat, retry).await;
    assert_eq!(h.api.frames_for("bob").len(), 1, "no second welcome");
    assert_eq!(h.api.frames_for("alice").len(), 1, "no second joined");

    // Given up on it, the records after it go on.
    let mut rest = whole;
    rest.records.drain(..2);
    let response = handle(&h.chat, rest).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(
        h.session_item(NEWCOMER)
            .await
            .expect("the session")
            .contains_key("duration_seconds")
    );
    assert_eq!(listed(&h, "alice", "left"), [NEWCOMER]);
}

/// A newcomer that connected and left within one batch gets no welcome (it
/// is gone: no post, no waiting); its room hears in one frame that it came
/// and went.
#[tokio::test]
async fn a_session_that_opened_and_closed_within_a_batch_is_not_welcomed() {
    let h = Harness::start().await;
    for id in ["alice", NEWCOMER] {
        h.connected(id).await;
    }
    h.disconnected(NEWCOMER).await;
    let response = handle(
        &h.chat,
        batch(vec![
            record("insert.json"),
            record("modify_disconnected.json"),
        ]),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.api.attempts(NEWCOMER), 0, "no welcome");
    assert_eq!(listed(&h, "alice", "joined"), [NEWCOMER]);
    assert_eq!(listed(&h, "alice", "left"), [NEWCOMER]);
    assert_eq!(h.api.frames_for("alice").len(), 1, "in one frame");
    assert!(
        h.session_item(NEWCOMER)
            .await
            .expect("the session")
            .contains_key("duration_seconds"),
        "still measured"
    );
}

#[test]
fn the_response_serializes_as_lambda_expects() {
    let mut failure = aws_lambda_events::streams::DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some("200000000000000000001".into());
    let mut response = aws_lambda_events::streams::DynamoDbEventResponse::default();
    response.batch_item_failures.push(failure);
    assert_eq!(
        serde_json::to_value(&response).expect("serializes"),
        json!({"batchItemFailures": [{"itemIdentifier": "200000000000000000001"}]})
    );
}

/// Every `connection_id` listed in `list` (`joined` or `left`) of the
/// presence frames `id` received, in order.
fn listed(h: &Harness, id: &str, list: &str) -> Vec<String> {
    h.api
        .frames_for(id)
        .iter()
        .filter(|frame| frame["type"] == "presence")
        .flat_map(|frame| frame[list].as_array().cloned().unwrap_or_default())
        .filter_map(|member| member["connection_id"].as_str().map(str::to_owned))
        .collect()
}

/// An INSERT of a session opened at the fixtures' time.
fn insert_of(id: &str) -> aws_lambda_events::dynamodb::EventRecord {
    let mut insert = record("insert.json");
    insert.change.new_image = serde_dynamo::to_item(handlers::records::Session::opened(
        id.to_owned(),
        None,
        FIXTURE_CONNECTED_AT.parse().expect("a time"),
        handlers::Room::lobby(),
    ))
    .expect("an image");
    insert
}

#[tokio::test]
async fn a_batch_of_joins_and_leaves_delivered_twice_writes_and_announces_each_leave_once() {
    let h = Harness::start().await;
    let joiner = "Joiner1234567A=";
    for id in ["alice", NEWCOMER, joiner] {
        h.connected(id).await;
    }
    h.disconnected(NEWCOMER).await;
    let records = || vec![insert_of(joiner), record("modify_disconnected.json")];

    let response = handle(&h.chat, batch(records())).await;
    assert!(response.batch_item_failures.is_empty());
    let closed = h.session_item(NEWCOMER).await.expect("the session");
    assert_eq!(
        closed.get("duration_seconds"),
        Some(&AttributeValue::N("84.877".into()))
    );
    let opened = h.session_item(joiner).await.expect("the session");

    // Lambda delivers the same batch again.
    let response = handle(&h.chat, batch(records())).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.session_item(NEWCOMER).await.expect("the session"), closed);
    assert_eq!(h.session_item(joiner).await.expect("the session"), opened);
    // The departure (and its duration) follows the one write that happened;
    // the join repeats, as documented: clients treat presence as idempotent.
    assert_eq!(listed(&h, "alice", "left"), [NEWCOMER]);
    assert_eq!(listed(&h, "alice", "joined"), [joiner, joiner]);
    let welcomes = h.api.frames_for(joiner);
    assert_eq!(welcomes.len(), 2, "{welcomes:?}");
    assert!(welcomes.iter().all(|frame| frame["type"] == "welcome"));
}

#[tokio::test]
async fn a_close_processed_before_its_late_insert_is_measured_once_and_the_insert_changes_no_row() {
    let h = Harness::start().await;
    for id in ["alice", NEWCOMER] {
        h.connected(id).await;
    }
    h.disconnected(NEWCOMER).await;
    h.api.mark_gone(NEWCOMER);

    // The close arrives first, without its INSERT.
    let response = handle(&h.chat, batch(vec![record("modify_disconnected.json")])).await;
    assert!(response.batch_item_failures.is_empty());
    let measured = h.session_item(NEWCOMER).await.expect("the session");
    assert_eq!(
        measured.get("duration_seconds"),
        Some(&AttributeValue::N("84.877".into()))
    );

    // The INSERT comes late, then the close once more.
    for late in ["insert.json", "modify_disconnected.json"] {
        let response = handle(&h.chat, batch(vec![record(late)])).await;
        assert!(response.batch_item_failures.is_empty(), "{late}");
        assert_eq!(
            h.session_item(NEWCOMER).await.expect("the session"),
            measured,
            "{late} changes no row"
        );
    }
    assert!(
        h.connection_item(NEWCOMER).await.is_none(),
        "the late INSERT recreates no connection row"
    );
    assert_eq!(
        h.api.attempts(NEWCOMER),
        1,
        "one welcome attempt for the long-gone newcomer, no stalling"
    );
    assert_eq!(listed(&h, "alice", "left"), [NEWCOMER], "measured once");
    // The late join is still announced after the leave (clients remember a
    // leave, so it brings nobody back: web/chat-client.js, onJoined).
    assert_eq!(listed(&h, "alice", "joined"), [NEWCOMER]);
}

#[tokio::test]
async fn a_close_without_connected_at_is_reported_and_gets_no_duration() {
    let h = Harness::start().await;
    for id in ["alice", NEWCOMER] {
        h.connected(id).await;
    }
    h.disconnected(NEWCOMER).await;
    // A closed session whose row never had `connected_at`.
    let broken = "NoStart123456A=";
    h.db.client
        .put_item()
        .table_name(&h.db.tables.session_history)
        .item("connection_id", AttributeValue::S(broken.into()))
        .item(
            "disconnected_at",
            AttributeValue::S(FIXTURE_DISCONNECTED_AT.into()),
        )
        .send()
        .await
        .expect("seed the session");
    let mut close = record("modify_disconnected.json");
    let image = &mut close.change.new_image;
    image.remove("connected_at");
    image.insert(
        "connection_id".into(),
        serde_dynamo::AttributeValue::S(broken.into()),
    );
    let why = classify(&close).expect_err("no connected_at").to_string();
    assert!(why.contains("connected_at"), "names the field: {why}");

    let response = handle(
        &h.chat,
        batch(vec![close, record("modify_disconnected.json")]),
    )
    .await;
    assert_eq!(
        failed_sequence_numbers(&response),
        ["200000000000000000000"],
        "reported, for Lambda to retry and then send to the failure queue"
    );
    let row = h.session_item(broken).await.expect("the session");
    assert!(!row.contains_key("duration_seconds"), "no bogus duration");
    assert!(
        listed(&h, "alice", "left").is_empty(),
        "the rest waits for the retry"
    );
}

#[tokio::test]
async fn a_rooms_presence_frames_are_a_presence_window_apart() {
    let window = std::time::Duration::from_millis(400);
    let h = Harness::with_limits(handlers::ChatLimits {
        presence_window: window,
        ..handlers::ChatLimits::default()
    })
    .await;
    for id in ["alice", "Joiner01AAAA=", "Joiner02AAAA="] {
        h.connected(id).await;
    }
    // One process, two batches back to back, as a join storm brings them.
    let processor = Processor::new(h.chat.clone());
    let started = std::time::Instant::now();
    processor
        .handle(batch(vec![insert_of("Joiner01AAAA=")]))
        .await;
    assert_eq!(listed(&h, "alice", "joined"), ["Joiner01AAAA="]);
    processor
        .handle(batch(vec![insert_of("Joiner02AAAA=")]))
        .await;
    assert!(
        started.elapsed() >= window,
        "the room's second frame waited for the window: {:?}",
        started.elapsed()
    );
    assert_eq!(
        listed(&h, "alice", "joined"),
        ["Joiner01AAAA=", "Joiner02AAAA="]
    );
    let welcomed = h.api.frames_for("Joiner02AAAA=");
    assert!(
        welcomed.iter().any(|frame| frame["type"] == "welcome"),
        "{welcomed:?}"
    );
}

#[tokio::test]
async fn a_crowds_presence_frame_counts_and_lists_a_few() {
    use handlers::limits::{PRESENCE_CROWD_SIZE, PRESENCE_MAX_LISTED};
    let h = Harness::start().await;
    let members: Vec<String> = (0..PRESENCE_CROWD_SIZE)
        .map(|i| format!("Member{i:03}AAAA="))
        .collect();
    let newcomers: Vec<String> = (0..PRESENCE_MAX_LISTED + 10)
        .map(|i| format!("Newcomer{i:03}AAAA="))
        .collect();
    for id in members.iter().chain(&newcomers) {
        h.connected(id).await;
    }
    let everyone = members.len() + newcomers.len();
    let records = newcomers.iter().map(|id| insert_of(id)).collect();
    let response = handle(&h.chat, batch(records)).await;
    assert!(response.batch_item_failures.is_empty());

    for id in [&members[0], &members[PRESENCE_CROWD_SIZE - 1]] {
        let frames = h.api.frames_for(id);
        assert_eq!(frames.len(), 1, "{id}: one frame for the whole batch");
        let frame = &frames[0];
        assert_eq!(frame["joined_count"], newcomers.len());
        assert_eq!(frame["left_count"], 0);
        assert_eq!(frame["online_count"], everyone);
        assert_eq!(
            frame["message"],
            format!(
                "{} joined and 0 left; {everyone} people are here.",
                newcomers.len()
            )
        );
        let joined = frame["joined"].as_array().expect("joined");
        assert_eq!(joined.len(), PRESENCE_MAX_LISTED, "a few of the joins");
        let online = frame["online"].as_array().expect("who is here, in a crowd");
        assert_eq!(online.len(), PRESENCE_MAX_LISTED);
        for member in online {
            let listed = member["connection_id"].as_str().expect("an id");
            assert!(
                members.iter().chain(&newcomers).any(|id| id == listed),
                "{listed} is in the room"
            );
        }
    }
    let welcome = &h.api.frames_for(&newcomers[0])[0];
    assert_eq!(
        welcome["online_count"], everyone,
        "welcomes still count everyone"
    );
}
