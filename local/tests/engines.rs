//! Where the embedded engine (dynoxide) and Amazon's DynamoDB Local differ in
//! ways the product meets, pinned so a change in either is noticed. Runs on
//! whichever engine the test pass uses (`CHAT_TEST_DYNAMODB_ENDPOINT`); see
//! docs/local.md, "Engines".

#![allow(clippy::expect_used)] // a failed step fails the test

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use handlers::records::{ActiveConnection, Session};
use handlers::time::Timestamp;
use handlers::{Room, Store};
use testkit::TestDynamo;

#[tokio::test]
async fn stream_records_decode_the_same_and_differ_only_in_timestamp_precision() {
    let db = TestDynamo::start().await;
    let store = Store::new(db.client.clone(), db.tables.clone());
    let session = Session::opened(
        "EngineCheck123A=".into(),
        Some("127.0.0.1".into()),
        Timestamp::now(),
        Room::lobby(),
    );
    let connection = ActiveConnection::new(
        session.connection_id.clone(),
        session.connected_at,
        session.room.clone(),
    );
    store
        .open_session(&connection, &session)
        .await
        .expect("connect");
    let before = chrono::Utc::now();

    let arn = db
        .client
        .describe_table()
        .table_name(&db.tables.session_history)
        .send()
        .await
        .expect("DescribeTable")
        .table
        .and_then(|table| table.latest_stream_arn)
        .expect("SessionHistory has a stream");
    let streams = chat_local::aws::streams_client(&db.sdk, &db.endpoint);
    let shards = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("DescribeStream")
        .stream_description
        .and_then(|description| description.shards)
        .expect("shards");
    let mut records = Vec::new();
    for shard in shards {
        let iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id.expect("shard id"))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator
            .expect("an iterator");
        let output = streams
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .expect("GetRecords");
        records.extend(output.records.unwrap_or_default());
    }
    assert_eq!(records.len(), 1, "one INSERT");
    let record =
        chat_local::poller::to_event_record(&records[0], &arn, chat_local::aws::LOCAL_REGION);
    assert_eq!(record.event_name, "INSERT");

    // Both engines: the image decodes into the typed record, unchanged.
    let decoded: Session =
        serde_dynamo::from_item(record.change.new_image.clone()).expect("decodes");
    assert_eq!(decoded, session);

    // The difference: DynamoDB Local truncates ApproximateCreationDateTime to
    // the minute; dynoxide (like DynamoDB) reports the write time. The product
    // never reads it: durations come from the images' own timestamps.
    let approximate = record.change.approximate_creation_date_time;
    if db.is_embedded() {
        let skew = (before - approximate).num_seconds().abs();
        assert!(
            skew <= 5,
            "dynoxide stamps the write time: {approximate} vs {before}"
        );
    } else {
        assert_eq!(
            approximate.timestamp() % 60,
            0,
            "DynamoDB Local: {approximate}"
        );
        assert_eq!(approximate.timestamp_subsec_nanos(), 0);
        assert!((before - approximate).num_seconds() < 61);
    }
}
