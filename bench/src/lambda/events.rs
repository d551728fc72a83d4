//! The events the functions get, as API Gateway and DynamoDB Streams send
//! them: testkit's recorded fixtures (embedded at build time) with the ids,
//! times and bodies of this run.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const CONNECT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testkit/fixtures/websocket/connect.json"
));
const DISCONNECT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testkit/fixtures/websocket/disconnect.json"
));
const MESSAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testkit/fixtures/websocket/message.json"
));
const AUTHORIZER: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testkit/fixtures/websocket/authorizer.json"
));
const STREAM_INSERT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testkit/fixtures/stream/insert.json"
));

/// A request id of the kind Lambda hands out: a random (v4) UUID.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn parse(fixture: &str, name: &str) -> anyhow::Result<Value> {
    serde_json::from_str(fixture).with_context(|| format!("fixture {name}"))
}

fn context(event: &mut Value) -> anyhow::Result<&mut serde_json::Map<String, Value>> {
    event
        .get_mut("requestContext")
        .and_then(Value::as_object_mut)
        .context("fixture without a requestContext")
}

/// `requestTime` as API Gateway writes it: `28/Nov/2026:00:13:36 +0000`.
fn request_time(at: DateTime<Utc>) -> String {
    at.format("%d/%b/%Y:%H:%M:%S %z").to_string()
}

/// The fields every WebSocket event of this run carries.
fn stamp(event: &mut Value, connection_id: &str, sequence: u64) -> anyhow::Result<()> {
    let now = Utc::now();
    let id = format!("bench{sequence:010}=");
    let context = context(event)?;
    context.insert("connectionId".into(), json!(connection_id));
    context.insert("requestTimeEpoch".into(), json!(now.timestamp_millis()));
    context.insert("requestTime".into(), json!(request_time(now)));
    context.insert("requestId".into(), json!(id));
    context.insert("extendedRequestId".into(), json!(id));
    if context.contains_key("messageId") {
        context.insert("messageId".into(), json!(id));
    }
    Ok(())
}

/// `$connect` of `connection_id`, into the default room as the fixture does.
pub fn connect(connection_id: &str, sequence: u64) -> anyhow::Result<String> {
    let mut event = parse(CONNECT, "connect.json")?;
    stamp(&mut event, connection_id, sequence)?;
    context(&mut event)?.insert("connectedAt".into(), json!(Utc::now().timestamp_millis()));
    Ok(event.to_string())
}

/// `$disconnect` of `connection_id`, connected a moment ago.
pub fn disconnect(connection_id: &str, sequence: u64) -> anyhow::Result<String> {
    let mut event = parse(DISCONNECT, "disconnect.json")?;
    stamp(&mut event, connection_id, sequence)?;
    context(&mut event)?.insert(
        "connectedAt".into(),
        json!(Utc::now().timestamp_millis() - 1000),
    );
    Ok(event.to_string())
}

/// A frame from `connection_id` on `route` (`sendmessage`, `history`,
/// `$default`).
pub fn message(
    route: &str,
    connection_id: &str,
    body: &str,
    sequence: u64,
) -> anyhow::Result<String> {
    let mut event = parse(MESSAGE, "message.json")?;
    stamp(&mut event, connection_id, sequence)?;
    context(&mut event)?.insert("routeKey".into(), json!(route));
    if let Some(event) = event.as_object_mut() {
        event.insert("body".into(), json!(body));
    }
    Ok(event.to_string())
}

/// The `$connect` authorizer's REQUEST event with `token` in the query.
pub fn authorizer(token: &str, sequence: u64) -> anyhow::Result<String> {
    let mut event = parse(AUTHORIZER, "authorizer.json")?;
    stamp(&mut event, &format!("bench{sequence:010}c"), sequence)?;
    if let Some(event) = event.as_object_mut() {
        event.insert("queryStringParameters".into(), json!({ "token": token }));
        event.insert(
            "multiValueQueryStringParameters".into(),
            json!({ "token": [token] }),
        );
    }
    Ok(event.to_string())
}

/// A SessionHistory stream batch of one INSERT: the session of a
/// connection that just opened in `room`.
pub fn session_opened(
    connection_id: &str,
    connected_at: &str,
    room: &str,
    sequence: u64,
) -> anyhow::Result<String> {
    let mut event = parse(STREAM_INSERT, "stream/insert.json")?;
    let record = event
        .get_mut("Records")
        .and_then(|records| records.get_mut(0))
        .and_then(Value::as_object_mut)
        .context("stream/insert.json has no record")?;
    record.insert("eventID".into(), json!(format!("{sequence:032x}")));
    let change = record
        .get_mut("dynamodb")
        .and_then(Value::as_object_mut)
        .context("stream/insert.json's record has no dynamodb")?;
    change.insert(
        "ApproximateCreationDateTime".into(),
        json!(Utc::now().timestamp()),
    );
    change.insert(
        "Keys".into(),
        json!({ "connection_id": { "S": connection_id } }),
    );
    change.insert(
        "NewImage".into(),
        json!({
            "connection_id": { "S": connection_id },
            "source_ip": { "S": "127.0.0.1" },
            "connected_at": { "S": connected_at },
            "room": { "S": room },
        }),
    );
    change.insert(
        "SequenceNumber".into(),
        json!(format!(
            "{}",
            100_000_000_000_000_000_000u128 + u128::from(sequence)
        )),
    );
    Ok(event.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch_millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(epoch_millis)
            .unwrap_or_else(|| panic!("{epoch_millis} is out of range"))
    }

    fn parsed(event: anyhow::Result<String>) -> Value {
        let event = event.unwrap_or_else(|problem| panic!("{problem:#}"));
        serde_json::from_str(&event).unwrap_or_else(|problem| panic!("{problem}: {event}"))
    }

    #[test]
    fn request_times_are_api_gateways_format() {
        assert_eq!(
            request_time(at(1_795_824_816_123)),
            "28/Nov/2026:00:13:36 +0000"
        );
        assert_eq!(request_time(at(0)), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(
            request_time(at(951_782_400_000)),
            "29/Feb/2000:00:00:00 +0000"
        );
        assert_eq!(
            request_time(at(1_709_251_199_999)),
            "29/Feb/2024:23:59:59 +0000"
        );
    }

    #[test]
    fn request_time_and_epoch_tell_the_same_time() {
        let event = parsed(message("history", "abc=", r#"{"action":"history"}"#, 1));
        let context = &event["requestContext"];
        let epoch = context["requestTimeEpoch"].as_i64().unwrap_or_default();
        let written = context["requestTime"].as_str().unwrap_or_default();
        let read = DateTime::parse_from_str(written, "%d/%b/%Y:%H:%M:%S %z")
            .unwrap_or_else(|problem| panic!("{written}: {problem}"));
        assert_eq!(read.timestamp(), epoch.div_euclid(1000), "{written}");
        assert_eq!(read.offset().local_minus_utc(), 0, "{written}");
    }

    #[test]
    fn request_ids_are_fresh_v4_uuids() {
        let (first, second) = (request_id(), request_id());
        let uuid =
            uuid::Uuid::parse_str(&first).unwrap_or_else(|problem| panic!("{first}: {problem}"));
        assert_eq!(uuid.get_version(), Some(uuid::Version::Random));
        // Lambda's shape: 8-4-4-4-12 lowercase hex digits.
        let groups: Vec<usize> = first.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{first}");
        assert!(
            first
                .chars()
                .all(|c| c == '-' || matches!(c, '0'..='9' | 'a'..='f')),
            "{first}"
        );
        assert_ne!(first, second);
    }

    #[test]
    fn events_carry_the_runs_ids_and_body() {
        let event = parsed(message(
            "sendmessage",
            "abc=",
            r#"{"action":"sendmessage"}"#,
            7,
        ));
        assert_eq!(event["requestContext"]["connectionId"], "abc=");
        assert_eq!(event["requestContext"]["routeKey"], "sendmessage");
        assert_eq!(event["requestContext"]["requestId"], "bench0000000007=");
        assert_eq!(event["requestContext"]["messageId"], "bench0000000007=");
        assert_eq!(event["body"], r#"{"action":"sendmessage"}"#);
        let stream = parsed(session_opened(
            "abc=",
            "2026-11-28T00:13:36.123Z",
            "cold",
            3,
        ));
        let record = &stream["Records"][0];
        assert_eq!(record["dynamodb"]["NewImage"]["room"]["S"], "cold");
        assert_eq!(record["eventID"], format!("{:032x}", 3));
        let authorizer = parsed(authorizer("t.o.k", 1));
        assert_eq!(authorizer["queryStringParameters"]["token"], "t.o.k");
        let connect = parsed(connect("BenchCold00000=", 2));
        assert_eq!(connect["requestContext"]["connectionId"], "BenchCold00000=");
        assert!(connect["requestContext"]["connectedAt"].is_i64());
    }
}
