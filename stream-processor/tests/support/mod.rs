//! Shared by the stream processor's tests: fixtures of real DynamoDB stream
//! events, and a chat wired to a real DynamoDB engine and a real HTTP
//! Management API endpoint.

#![allow(dead_code, clippy::expect_used)] // each test binary uses part of it

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodb::types::AttributeValue;
use handlers::records::{ActiveConnection, Session};
use handlers::testing::{FakeManagementApi, TestDynamo};
use handlers::{Chat, Limits, Management, Store};
use lambda_runtime::{Context, LambdaEvent};

/// The one record of a fixture file.
pub fn record(fixture: &str) -> EventRecord {
    let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    let mut event: Event = serde_json::from_str(&text).expect("a DynamoDB stream event");
    assert_eq!(event.records.len(), 1, "{fixture} holds one record");
    event.records.remove(0)
}

/// A batch of records, renumbered so sequence numbers are unique and
/// increasing in batch order.
pub fn batch(records: Vec<EventRecord>) -> LambdaEvent<Event> {
    let mut event = Event::default();
    event.records = records
        .into_iter()
        .enumerate()
        .map(|(index, mut record)| {
            record.change.sequence_number = Some(format!("2000000000000000000{index:02}"));
            record
        })
        .collect();
    LambdaEvent::new(event, Context::default())
}

pub struct Harness {
    pub db: TestDynamo,
    pub api: FakeManagementApi,
    pub chat: Chat,
}

impl Harness {
    pub async fn start() -> Self {
        let db = TestDynamo::start().await;
        let api = FakeManagementApi::start().await;
        let store = Store::new(db.client.clone(), db.tables.clone()).with_scan_page_size(2);
        let management = Management::new(&db.sdk, Some(api.endpoint.clone()));
        let chat = Chat::new(store, management, Limits::default());
        Self { db, api, chat }
    }

    /// A chat whose Management API endpoint is not configured.
    pub fn without_endpoint(&self) -> Chat {
        Chat::new(
            self.chat.store.clone(),
            Management::new(&self.db.sdk, None),
            Limits::default(),
        )
    }

    /// Rows as `$connect` would have written them.
    pub async fn connected(&self, id: &str) {
        let session = Session {
            connection_id: id.to_owned(),
            source_ip: Some("203.0.113.7".to_owned()),
            connected_at: "2026-11-28T00:13:36.123Z".to_owned(),
            disconnected_at: None,
            duration_seconds: None,
            disconnect_status_code: None,
            disconnect_reason: None,
        };
        // The fixtures' connected_at, but a ttl counted from an hour ago, so
        // the row is not expired (DynamoDB Local really deletes expired rows).
        let an_hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
        let connection =
            ActiveConnection::new(id.to_owned(), session.connected_at.clone(), an_hour_ago);
        self.chat
            .store
            .open_session(&connection, &session)
            .await
            .expect("connected");
    }

    /// What `$disconnect` would have done, at the fixture's time.
    pub async fn disconnected(&self, id: &str) {
        self.chat
            .store
            .delete_connection(id)
            .await
            .expect("deleted");
        self.chat
            .store
            .close_session(
                id,
                &handlers::records::SessionClose {
                    disconnected_at: "2026-11-28T00:15:01.000Z".to_owned(),
                    disconnect_status_code: Some(1001),
                    disconnect_reason: Some("Going away".to_owned()),
                },
            )
            .await
            .expect("closed");
    }

    pub async fn session_item(
        &self,
        id: &str,
    ) -> std::collections::HashMap<String, AttributeValue> {
        self.db
            .client
            .get_item()
            .table_name(&self.db.tables.session_history)
            .key("connection_id", AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
            .expect("the session exists")
    }
}
