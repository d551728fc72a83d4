//! Raw items, read with the real client: the data contract is field names
//! and DynamoDB types, so tests check those, not the typed records.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

pub type Item = HashMap<String, AttributeValue>;

/// The item whose string key `key` is `id`, read consistently.
pub async fn get(client: &Client, table: &str, key: &str, id: &str) -> Option<Item> {
    client
        .get_item()
        .table_name(table)
        .key(key, AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
}

/// A connection's row in ActiveConnections or SessionHistory.
pub async fn connection_row(client: &Client, table: &str, connection_id: &str) -> Option<Item> {
    get(client, table, "connection_id", connection_id).await
}

/// Every item, following every page.
pub async fn scan(client: &Client, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut pages = client.scan().table_name(table).into_paginator().send();
    while let Some(page) = pages.next().await {
        items.extend(page.expect("Scan").items.unwrap_or_default());
    }
    items
}

/// A string attribute (type `S`).
pub fn string(item: &Item, field: &str) -> String {
    match item.get(field) {
        Some(AttributeValue::S(value)) => value.clone(),
        other => panic!("{field} is not a string: {other:?}"),
    }
}

/// A number attribute (type `N`), as DynamoDB writes it.
pub fn number(item: &Item, field: &str) -> String {
    match item.get(field) {
        Some(AttributeValue::N(value)) => value.clone(),
        other => panic!("{field} is not a number: {other:?}"),
    }
}

/// The attributes of a SessionHistory row `$connect` just opened, sorted:
/// the data contract's, and `open_shard` (its key in the open-sessions
/// index until it closes).
pub const OPENED_SESSION_FIELDS: [&str; 5] = [
    "connected_at",
    "connection_id",
    "open_shard",
    "room",
    "source_ip",
];

/// The item's attribute names, sorted.
pub fn field_names(item: &Item) -> Vec<String> {
    let mut names: Vec<String> = item.keys().cloned().collect();
    names.sort();
    names
}

/// Writes `rows` of ActiveConnections in `room`, opened at `connected_at`
/// (planted: no socket behind them), 25 a BatchWriteItem.
pub async fn plant_connections(
    client: &Client,
    table: &str,
    room: &handlers::Room,
    ids: &[String],
    connected_at: handlers::time::Timestamp,
) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in ids.chunks(25) {
        let writes = chunk
            .iter()
            .map(|id| {
                let row = handlers::records::ActiveConnection::new(
                    id.clone(),
                    connected_at,
                    room.clone(),
                );
                let put = PutRequest::builder()
                    .set_item(Some(serde_dynamo::to_item(row).expect("an item")))
                    .build()
                    .expect("a put");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let output = client
            .batch_write_item()
            .request_items(table, writes)
            .send()
            .await
            .expect("BatchWriteItem");
        assert!(
            output.unprocessed_items.unwrap_or_default().is_empty(),
            "every row written"
        );
    }
}
