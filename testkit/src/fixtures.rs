//! Events as AWS sends them, from the JSON files in testkit/fixtures/:
//! `websocket/` (API Gateway WebSocket events) and `stream/` (DynamoDB
//! stream batches of SessionHistory).

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::dynamodb::{Event, EventRecord};
use serde_json::{Value, json};

fn read(relative: &str) -> String {
    let path = format!("{}/fixtures/{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// A WebSocket event fixture, as parsed.
pub fn websocket(name: &str) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_str(&read(&format!("websocket/{name}"))).expect("a WebSocket event")
}

/// A WebSocket event fixture for connection `id`, with its request context
/// (as JSON) adjusted.
pub fn websocket_event(
    name: &str,
    id: &str,
    adjust: impl FnOnce(&mut Value),
) -> ApiGatewayWebsocketProxyRequest {
    let mut json: Value = serde_json::from_str(&read(&format!("websocket/{name}"))).expect("JSON");
    json["requestContext"]["connectionId"] = json!(id);
    adjust(&mut json["requestContext"]);
    serde_json::from_value(json).expect("a WebSocket event")
}

/// The one record of a stream fixture.
pub fn stream_record(name: &str) -> EventRecord {
    let mut event: Event =
        serde_json::from_str(&read(&format!("stream/{name}"))).expect("a DynamoDB stream event");
    assert_eq!(event.records.len(), 1, "{name} holds one record");
    event.records.remove(0)
}

/// The one record of a stream fixture, about connection `id` instead (its
/// keys and both images).
pub fn stream_record_for(name: &str, id: &str) -> EventRecord {
    let mut json = serde_json::to_value(stream_record(name)).expect("JSON");
    for part in ["Keys", "NewImage", "OldImage"] {
        if let Some(image) = json["dynamodb"].get_mut(part)
            && image.get("connection_id").is_some()
        {
            image["connection_id"] = json!({ "S": id });
        }
    }
    serde_json::from_value(json).expect("a stream record")
}

/// A batch of records, renumbered so sequence numbers are unique and
/// increasing in batch order.
pub fn stream_batch(records: Vec<EventRecord>) -> Event {
    let mut event = Event::default();
    event.records = records
        .into_iter()
        .enumerate()
        .map(|(index, mut record)| {
            record.change.sequence_number = Some(format!("2000000000000000000{index:02}"));
            record
        })
        .collect();
    event
}

/// The REQUEST authorizer's event for `$connect`, with `token` as the query
/// parameter or the `Authorization` header.
pub fn authorizer_event(
    query_token: Option<&str>,
    header: Option<&str>,
) -> aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest {
    let mut json: Value = serde_json::from_str(&read("websocket/authorizer.json")).expect("JSON");
    if let Some(token) = query_token {
        json["queryStringParameters"]["token"] = json!(token);
        json["multiValueQueryStringParameters"]["token"] = json!([token]);
    }
    if let Some(value) = header {
        json["headers"]["Authorization"] = json!(value);
        json["multiValueHeaders"]["Authorization"] = json!([value]);
    }
    serde_json::from_value(json).expect("an authorizer event")
}
