//! Round trips over JSON fixtures of real API Gateway WebSocket events: the
//! fields the handlers read survive deserialization and re-serialization.

#![allow(clippy::expect_used)] // a failed step fails the test

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use testkit::fixtures::websocket as fixture;

fn round_trip(event: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayWebsocketProxyRequest {
    let json = serde_json::to_string(event).expect("serializes");
    serde_json::from_str(&json).expect("deserializes again")
}

#[test]
fn connect_event_carries_times_and_source_ip() {
    let event = fixture("connect.json");
    let context = &event.request_context;
    assert_eq!(context.route_key.as_deref(), Some("$connect"));
    assert_eq!(context.event_type.as_deref(), Some("CONNECT"));
    assert_eq!(context.connection_id.as_deref(), Some("L0SM9cOFvHcCIhw="));
    assert_eq!(context.connected_at, 1_795_824_816_123);
    assert_eq!(context.request_time_epoch, 1_795_824_816_125);
    assert_eq!(context.identity.source_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(context.apiid.as_deref(), Some("abcdef1234"));
    assert_eq!(context.stage.as_deref(), Some("dev"));
    assert_eq!(
        context.domain_name.as_deref(),
        Some("abcdef1234.execute-api.us-east-1.amazonaws.com")
    );
    assert_eq!(round_trip(&event), event);
}

#[test]
fn disconnect_event_carries_status_code_and_reason() {
    let event = fixture("disconnect.json");
    let context = &event.request_context;
    assert_eq!(context.route_key.as_deref(), Some("$disconnect"));
    assert_eq!(context.event_type.as_deref(), Some("DISCONNECT"));
    assert_eq!(context.disconnect_status_code, Some(1001));
    assert_eq!(context.disconnect_reason.as_deref(), Some("Going away"));
    assert_eq!(context.request_time_epoch, 1_795_824_901_000);
    assert_eq!(round_trip(&event), event);
}

#[test]
fn message_event_carries_message_id_and_body() {
    let event = fixture("message.json");
    let context = &event.request_context;
    assert_eq!(context.route_key.as_deref(), Some("sendmessage"));
    assert_eq!(context.event_type.as_deref(), Some("MESSAGE"));
    assert_eq!(context.message_id.as_deref(), Some("L0SNDcOFoAMCIhw="));
    assert_eq!(
        event.body.as_deref(),
        Some(r#"{"action":"sendmessage","message":"Hello, WebSocket!"}"#)
    );
    assert_eq!(round_trip(&event), event);
}
