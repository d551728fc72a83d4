//! The events API Gateway hands the route handlers, as the real
//! `aws_lambda_events` type, with every field API Gateway sends.

use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayWebsocketProxyRequest, ApiGatewayWebsocketProxyRequestContext,
};
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue};
use aws_lambda_events::query_map::QueryMap;
use chrono::{DateTime, Utc};
use handlers::protocol::Route;
use serde_json::Value;

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
) -> ApiGatewayWebsocketProxyRequest {
    let mut headers = headers.clone();
    insert(&mut headers, "x-forwarded-for", &connection.source_ip);
    insert(&mut headers, "x-forwarded-proto", "http");
    let mut request = ApiGatewayWebsocketProxyRequest::default();
    request.multi_value_headers = headers.clone();
    request.headers = headers;
    let mut single = HashMap::new();
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in query {
        // API Gateway keeps the last value in the single-value map.
        single.insert(name.clone(), value.clone());
        multi.entry(name.clone()).or_default().push(value.clone());
    }
    request.query_string_parameters = QueryMap::from(single);
    request.multi_value_query_string_parameters = QueryMap::from(multi);
    request.request_context = context(
        api,
        connection,
        Route::Connect,
        "CONNECT",
        connection.connected_at_ms,
    );
    request
}

/// A frame routed to `route` (`sendmessage` or `$default`).
pub fn message(
    api: &Api<'_>,
    connection: &Connection,
    route: Route,
    body: &str,
    received_at_ms: i64,
) -> ApiGatewayWebsocketProxyRequest {
    let mut request = ApiGatewayWebsocketProxyRequest::default();
    request.request_context = context(api, connection, route, "MESSAGE", received_at_ms);
    request.request_context.message_id = Some(new_id());
    request.body = Some(body.to_owned());
    request
}

/// `$disconnect`, with the close code and reason.
pub fn disconnect(
    api: &Api<'_>,
    connection: &Connection,
    status_code: u16,
    reason: &str,
    at_ms: i64,
) -> ApiGatewayWebsocketProxyRequest {
    let mut request = ApiGatewayWebsocketProxyRequest::default();
    // What API Gateway sends on `$disconnect`: the host and empty values.
    let mut headers = HeaderMap::new();
    insert(&mut headers, "host", api.domain_name);
    for empty in ["x-api-key", "x-forwarded-for", "x-restapi"] {
        insert(&mut headers, empty, "");
    }
    request.multi_value_headers = headers.clone();
    request.headers = headers;
    request.request_context = context(api, connection, Route::Disconnect, "DISCONNECT", at_ms);
    request.request_context.disconnect_status_code = Some(i64::from(status_code));
    request.request_context.disconnect_reason = Some(reason.to_owned());
    request
}

fn context(
    api: &Api<'_>,
    connection: &Connection,
    route: Route,
    event_type: &str,
    at_ms: i64,
) -> ApiGatewayWebsocketProxyRequestContext {
    let request_id = new_id();
    let mut context = ApiGatewayWebsocketProxyRequestContext::default();
    context.route_key = Some(route.key().to_owned());
    context.event_type = Some(event_type.to_owned());
    context.extended_request_id = Some(request_id.clone());
    context.request_id = Some(request_id);
    context.request_time = Some(request_time(at_ms));
    context.message_direction = Some("IN".to_owned());
    context.stage = Some(api.stage.to_owned());
    context.connected_at = connection.connected_at_ms;
    context.request_time_epoch = at_ms;
    context.identity.source_ip = Some(connection.source_ip.clone());
    context.identity.user_agent = connection.user_agent.clone();
    context.domain_name = Some(api.domain_name.to_owned());
    context.connection_id = Some(connection.id.clone());
    context.apiid = Some(api.api_id.to_owned());
    // API Gateway passes the authorizer's context to every route of the
    // connection, with the principal id beside it.
    if let Some(identity) = &connection.identity {
        if let Value::Object(fields) = handlers::routes::context_of(identity) {
            context.authorizer.fields = fields.into_iter().collect();
        }
        context.authorizer.fields.insert(
            "principalId".to_owned(),
            Value::String(identity.user_id.clone()),
        );
    }
    context
}

/// API Gateway's `requestTime`: `28/Nov/2026:00:13:36 +0000`.
fn request_time(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .format("%d/%b/%Y:%H:%M:%S %z")
        .to_string()
}

/// Adds a header whose name and value are known to be valid; an invalid
/// value (a client's address cannot be one) is left out.
fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
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
    fn events_survive_the_json_api_gateway_would_send() {
        let (connection, _outbox) = Connection::new(
            "L0SM9cOFvHcCIhw=".into(),
            1_795_824_816_123,
            "127.0.0.1".into(),
            None,
            None,
            std::sync::Arc::new(crate::gateway::throttle::TokenBucket::new(
                crate::config::DEFAULT_ADDRESS_BUDGET,
            )),
        );
        let api = Api {
            api_id: "local",
            stage: "dev",
            domain_name: "127.0.0.1:8080",
        };
        let query = [
            ("room".to_owned(), "a".to_owned()),
            ("room".to_owned(), "b".to_owned()),
        ];
        let request = connect(&api, &connection, &HeaderMap::new(), &query);
        assert_eq!(request.query_string_parameters.first("room"), Some("b"));
        assert_eq!(
            request.multi_value_query_string_parameters.all("room"),
            Some(vec!["a", "b"])
        );
        let json = serde_json::to_value(&request).expect("serializes");
        assert_eq!(json["requestContext"]["routeKey"], "$connect");
        assert_eq!(json["requestContext"]["connectedAt"], 1_795_824_816_123_i64);
        assert_eq!(json["requestContext"]["identity"]["sourceIp"], "127.0.0.1");
        assert_eq!(json["headers"]["x-forwarded-for"], "127.0.0.1");
        let back: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(json).expect("deserializes");
        assert_eq!(
            back.request_context.connection_id.as_deref(),
            Some("L0SM9cOFvHcCIhw=")
        );

        let request = disconnect(&api, &connection, 1001, "Going away", 1_795_824_901_000);
        let context = &request.request_context;
        assert_eq!(context.route_key.as_deref(), Some("$disconnect"));
        assert_eq!(context.disconnect_status_code, Some(1001));
        assert_eq!(context.request_time_epoch, 1_795_824_901_000);
    }
}
