//! The events API Gateway hands the route handlers, built with every field
//! API Gateway sends and deserialized into the real `aws_lambda_events` type.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Map, Value, json};

use super::connections::Connection;
use super::ids::new_id;

/// Fields of every event that describe the API and the connection.
pub struct Api<'a> {
    pub api_id: &'a str,
    pub stage: &'a str,
    pub domain_name: &'a str,
}

/// `$connect`, with the upgrade request's headers and query string.
pub fn connect(
    api: &Api<'_>,
    connection: &Connection,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> LambdaEvent<ApiGatewayWebsocketProxyRequest> {
    let mut headers = headers_json(headers);
    headers.insert("X-Forwarded-For".into(), json!(connection.source_ip));
    headers.insert("X-Forwarded-Proto".into(), json!("http"));
    let multi: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.clone(), json!([value])))
        .collect();
    let mut query_single = Map::new();
    let mut query_multi: Map<String, Value> = Map::new();
    for (name, value) in query {
        query_single.insert(name.clone(), json!(value));
        match query_multi.get_mut(name).and_then(Value::as_array_mut) {
            Some(values) => values.push(json!(value)),
            None => {
                query_multi.insert(name.clone(), json!([value]));
            }
        }
    }
    let mut event = json!({
        "headers": headers,
        "multiValueHeaders": multi,
        "requestContext": context(api, connection, "$connect", "CONNECT", connection.connected_at_ms),
        "isBase64Encoded": false,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query_single);
        event["multiValueQueryStringParameters"] = Value::Object(query_multi);
    }
    into_event(event)
}

/// A frame routed to `route_key` (`sendmessage` or `$default`).
pub fn message(
    api: &Api<'_>,
    connection: &Connection,
    route_key: &str,
    body: &str,
    received_at_ms: i64,
) -> LambdaEvent<ApiGatewayWebsocketProxyRequest> {
    let mut context = context(api, connection, route_key, "MESSAGE", received_at_ms);
    context["messageId"] = json!(new_id());
    into_event(json!({
        "requestContext": context,
        "body": body,
        "isBase64Encoded": false,
    }))
}

/// `$disconnect`, with the close code and reason.
pub fn disconnect(
    api: &Api<'_>,
    connection: &Connection,
    status_code: u16,
    reason: &str,
    at_ms: i64,
) -> LambdaEvent<ApiGatewayWebsocketProxyRequest> {
    let mut context = context(api, connection, "$disconnect", "DISCONNECT", at_ms);
    context["disconnectStatusCode"] = json!(status_code);
    context["disconnectReason"] = json!(reason);
    let headers = json!({
        "Host": api.domain_name,
        "x-api-key": "",
        "X-Forwarded-For": "",
        "x-restapi": "",
    });
    let multi = json!({
        "Host": [api.domain_name],
        "x-api-key": [""],
        "X-Forwarded-For": [""],
        "x-restapi": [""],
    });
    into_event(json!({
        "headers": headers,
        "multiValueHeaders": multi,
        "requestContext": context,
        "isBase64Encoded": false,
    }))
}

fn context(
    api: &Api<'_>,
    connection: &Connection,
    route_key: &str,
    event_type: &str,
    at_ms: i64,
) -> Value {
    let request_id = new_id();
    let mut identity = json!({ "sourceIp": connection.source_ip });
    if let Some(user_agent) = &connection.user_agent {
        identity["userAgent"] = json!(user_agent);
    }
    json!({
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(at_ms),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": connection.connected_at_ms,
        "requestTimeEpoch": at_ms,
        "identity": identity,
        "requestId": request_id,
        "domainName": api.domain_name,
        "connectionId": connection.id,
        "apiId": api.api_id,
    })
}

/// API Gateway's `requestTime`: `28/Nov/2026:00:13:36 +0000`.
fn request_time(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .format("%d/%b/%Y:%H:%M:%S %z")
        .to_string()
}

fn headers_json(headers: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            out.insert(title_case(name.as_str()), json!(value));
        }
    }
    out
}

/// `sec-websocket-key` -> `Sec-WebSocket-Key`, as API Gateway forwards them.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| match part {
            "websocket" => "WebSocket".to_owned(),
            _ => {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn into_event(json: Value) -> LambdaEvent<ApiGatewayWebsocketProxyRequest> {
    // The JSON above always has the required fields (connectedAt,
    // requestTimeEpoch), so this cannot fail; a default event would be
    // rejected by the handler as missing its connection id.
    let request = serde_json::from_value(json).unwrap_or_default();
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    LambdaEvent::new(request, context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_time_has_api_gateways_format() {
        assert_eq!(
            request_time(1_795_824_816_123),
            "28/Nov/2026:00:13:36 +0000"
        );
    }

    #[test]
    fn header_names_are_title_cased() {
        assert_eq!(title_case("sec-websocket-key"), "Sec-WebSocket-Key");
        assert_eq!(title_case("user-agent"), "User-Agent");
        assert_eq!(title_case("host"), "Host");
    }
}
