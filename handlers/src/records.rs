//! Typed records for the three tables. Field names are the product's data
//! contract (the tutorial's names); every read and write goes through these
//! types via `serde_dynamo`.

use serde::{Deserialize, Serialize};

/// API Gateway closes a WebSocket connection after 2 hours at most.
pub const MAX_CONNECTION_SECONDS: i64 = 2 * 60 * 60;
/// An ActiveConnections row outlives its connection's 2-hour limit by this
/// much before DynamoDB's TTL may delete it, so a live row is never expired.
pub const CONNECTION_TTL_MARGIN_SECONDS: i64 = 15 * 60;

/// A row of ActiveConnections: one per open WebSocket connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveConnection {
    pub connection_id: String,
    pub connected_at: String,
    /// Epoch seconds after which DynamoDB may expire the row: the fallback for
    /// a `$disconnect` that API Gateway (best effort) never delivered.
    pub ttl: i64,
}

impl ActiveConnection {
    /// The row for a connection opened at `connected_at_millis` (API
    /// Gateway's `connectedAt`).
    pub fn new(connection_id: String, connected_at: String, connected_at_millis: i64) -> Self {
        Self {
            connection_id,
            connected_at,
            ttl: connected_at_millis.div_euclid(1000)
                + MAX_CONNECTION_SECONDS
                + CONNECTION_TTL_MARGIN_SECONDS,
        }
    }
}

/// Only the key of an ActiveConnections row: what a fan-out reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionKey {
    pub connection_id: String,
}

/// A row of SessionHistory: one per connection, opened by `$connect`, closed
/// by `$disconnect`, completed with its duration by the stream processor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub connection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    pub connected_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_status_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
}

/// What `$disconnect` sets on a session: written as one update, never as a
/// new row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClose {
    pub disconnected_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_status_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
}

/// What the stream processor sets on a closed session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionDuration {
    pub duration_seconds: f64,
}

/// A row of MessageHistory: one per accepted chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub message_id: String,
    pub connection_id: String,
    pub message: String,
    pub timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use serde_dynamo::{Item, from_item, to_item};

    #[test]
    fn connection_ttl_is_past_the_two_hour_limit() {
        let row = ActiveConnection::new("id".into(), "t".into(), 1_795_824_816_123);
        assert_eq!(row.ttl, 1_795_824_816 + 2 * 3600 + 15 * 60);
    }

    #[test]
    fn session_item_uses_the_contract_field_names_and_types() {
        let session = Session {
            connection_id: "L0SM9cOFvHcCIhw=".into(),
            source_ip: Some("203.0.113.7".into()),
            connected_at: "2026-11-28T00:13:36.123Z".into(),
            disconnected_at: Some("2026-11-28T00:15:01.000Z".into()),
            duration_seconds: Some(84.877),
            disconnect_status_code: Some(1001),
            disconnect_reason: Some("Going away".into()),
        };
        let item: std::collections::HashMap<String, AttributeValue> =
            to_item(&session).expect("serializes");
        assert_eq!(
            item.get("duration_seconds"),
            Some(&AttributeValue::N("84.877".into()))
        );
        assert_eq!(
            item.get("disconnect_status_code"),
            Some(&AttributeValue::N("1001".into()))
        );
        assert_eq!(
            item.get("source_ip"),
            Some(&AttributeValue::S("203.0.113.7".into()))
        );
        let back: Session = from_item(item).expect("deserializes");
        assert_eq!(back, session);
    }

    #[test]
    fn an_open_session_has_no_close_attributes() {
        let session = Session {
            connection_id: "a".into(),
            source_ip: None,
            connected_at: "2026-11-28T00:13:36.123Z".into(),
            disconnected_at: None,
            duration_seconds: None,
            disconnect_status_code: None,
            disconnect_reason: None,
        };
        let item: Item = to_item(&session).expect("serializes");
        let mut keys: Vec<_> = item.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["connected_at", "connection_id"]);
    }
}
