//! The events the functions get, as API Gateway and DynamoDB Streams send
//! them: testkit's recorded fixtures (embedded at build time) with the ids,
//! times and bodies of this run.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// A unique request id in the UUID shape Lambda uses.
pub fn request_id(sequence: u64) -> String {
    let now = now_millis() as u64;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (now >> 16) & 0xffff_ffff,
        now & 0xffff,
        (sequence >> 24) & 0xfff,
        (sequence >> 12) & 0xfff,
        sequence & 0xfff_ffff_ffff
    )
}

fn parse(fixture: &str, name: &str) -> Result<Value, String> {
    serde_json::from_str(fixture).map_err(|problem| format!("fixture {name}: {problem}"))
}

fn context(event: &mut Value) -> Result<&mut serde_json::Map<String, Value>, String> {
    event
        .get_mut("requestContext")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| "fixture without a requestContext".to_owned())
}

/// `requestTime` as API Gateway writes it: `28/Nov/2026:00:13:36 +0000`.
fn request_time(epoch_millis: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = epoch_millis.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)],
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The fields every WebSocket event of this run carries.
fn stamp(event: &mut Value, connection_id: &str, sequence: u64) -> Result<(), String> {
    let now = now_millis();
    let id = format!("bench{sequence:010}=");
    let context = context(event)?;
    context.insert("connectionId".into(), json!(connection_id));
    context.insert("requestTimeEpoch".into(), json!(now));
    context.insert("requestTime".into(), json!(request_time(now)));
    context.insert("requestId".into(), json!(id));
    context.insert("extendedRequestId".into(), json!(id));
    if context.contains_key("messageId") {
        context.insert("messageId".into(), json!(id));
    }
    Ok(())
}

/// `$connect` of `connection_id`, into the default room as the fixture does.
pub fn connect(connection_id: &str, sequence: u64) -> Result<String, String> {
    let mut event = parse(CONNECT, "connect.json")?;
    stamp(&mut event, connection_id, sequence)?;
    context(&mut event)?.insert("connectedAt".into(), json!(now_millis()));
    Ok(event.to_string())
}

/// `$disconnect` of `connection_id`, connected a moment ago.
pub fn disconnect(connection_id: &str, sequence: u64) -> Result<String, String> {
    let mut event = parse(DISCONNECT, "disconnect.json")?;
    stamp(&mut event, connection_id, sequence)?;
    context(&mut event)?.insert("connectedAt".into(), json!(now_millis() - 1000));
    Ok(event.to_string())
}

/// A frame from `connection_id` on `route` (`sendmessage`, `history`,
/// `$default`).
pub fn message(
    route: &str,
    connection_id: &str,
    body: &str,
    sequence: u64,
) -> Result<String, String> {
    let mut event = parse(MESSAGE, "message.json")?;
    stamp(&mut event, connection_id, sequence)?;
    context(&mut event)?.insert("routeKey".into(), json!(route));
    if let Some(event) = event.as_object_mut() {
        event.insert("body".into(), json!(body));
    }
    Ok(event.to_string())
}

/// The `$connect` authorizer's REQUEST event with `token` in the query.
pub fn authorizer(token: &str, sequence: u64) -> Result<String, String> {
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
) -> Result<String, String> {
    let mut event = parse(STREAM_INSERT, "stream/insert.json")?;
    let record = event
        .get_mut("Records")
        .and_then(|records| records.get_mut(0))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| "stream/insert.json has no record".to_owned())?;
    record.insert("eventID".into(), json!(format!("{sequence:032x}")));
    let change = record
        .get_mut("dynamodb")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| "stream/insert.json's record has no dynamodb".to_owned())?;
    change.insert(
        "ApproximateCreationDateTime".into(),
        json!(now_millis() / 1000),
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

    #[test]
    fn request_times_are_api_gateways_format() {
        assert_eq!(
            request_time(1_795_824_816_123),
            "28/Nov/2026:00:13:36 +0000"
        );
        assert_eq!(request_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(request_time(951_782_400_000), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn events_carry_the_runs_ids_and_body() {
        let event = message("sendmessage", "abc=", r#"{"action":"sendmessage"}"#, 7);
        let event: Value = serde_json::from_str(&event.unwrap()).unwrap();
        assert_eq!(event["requestContext"]["connectionId"], "abc=");
        assert_eq!(event["requestContext"]["routeKey"], "sendmessage");
        assert_eq!(event["body"], r#"{"action":"sendmessage"}"#);
        let stream = session_opened("abc=", "2026-11-28T00:13:36.123Z", "cold", 3).unwrap();
        let stream: Value = serde_json::from_str(&stream).unwrap();
        assert_eq!(
            stream["Records"][0]["dynamodb"]["NewImage"]["room"]["S"],
            "cold"
        );
        let authorizer: Value = serde_json::from_str(&authorizer("t.o.k", 1).unwrap()).unwrap();
        assert_eq!(authorizer["queryStringParameters"]["token"], "t.o.k");
        assert_eq!(request_id(5).len(), 36);
    }
}
