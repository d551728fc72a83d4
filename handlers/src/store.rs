//! The DynamoDB adapter: the one module that touches raw `AttributeValue`
//! maps. Everything going in or out is a typed record from [`crate::records`],
//! converted with `serde_dynamo`.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use futures::Stream;
use serde::Serialize;
use serde_dynamo::{from_items, to_item};

use crate::config::Tables;
use crate::error::StoreError;
use crate::records::{
    ActiveConnection, ConnectionKey, Message, Session, SessionClose, SessionDuration,
};
use crate::time::Timestamp;

/// Whether a conditional write happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The condition did not hold; the table is unchanged. What that means
    /// is the caller's to say (already done, too young, not open).
    ConditionFailed,
}

/// The chat's tables, reached through the real DynamoDB client.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    tables: Tables,
    /// Items per Scan page; `None` lets DynamoDB fill 1 MB pages.
    scan_page_size: Option<i32>,
}

impl Store {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            client,
            tables,
            scan_page_size: None,
        }
    }

    /// Caps the items per Scan page (tests use it to exercise pagination).
    pub fn with_scan_page_size(mut self, items: i32) -> Self {
        self.scan_page_size = Some(items);
        self
    }

    /// Writes the ActiveConnections row and the SessionHistory row in one
    /// transaction: both or neither. A session row that already exists for a
    /// different connection attempt, or that was already closed, cancels it;
    /// a replay of the same `$connect` (same `connected_at`) on an open
    /// session succeeds without change.
    pub async fn open_session(
        &self,
        connection: &ActiveConnection,
        session: &Session,
    ) -> Result<(), StoreError> {
        let connection_put = Put::builder()
            .table_name(&self.tables.active_connections)
            .set_item(Some(to_item(connection)?))
            .build()
            .map_err(StoreError::request("TransactWriteItems"))?;
        let session_put = Put::builder()
            .table_name(&self.tables.session_history)
            .set_item(Some(to_item(session)?))
            .condition_expression(
                "attribute_not_exists(connection_id) \
                 OR (connected_at = :connected_at AND attribute_not_exists(disconnected_at))",
            )
            .expression_attribute_values(
                ":connected_at",
                AttributeValue::S(session.connected_at.to_string()),
            )
            .build()
            .map_err(StoreError::request("TransactWriteItems"))?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(connection_put).build())
            .transact_items(TransactWriteItem::builder().put(session_put).build())
            .send()
            .await
            .map_err(StoreError::call("TransactWriteItems"))?;
        Ok(())
    }

    /// Deletes a connection's ActiveConnections row; deleting a missing row
    /// is not an error.
    pub async fn delete_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.tables.active_connections)
            .key("connection_id", AttributeValue::S(connection_id.to_owned()))
            .send()
            .await
            .map_err(StoreError::call("DeleteItem"))?;
        Ok(())
    }

    /// Deletes a connection that answered 410 Gone if it connected before
    /// `connected_before`: API Gateway answers 410 while a connection is still
    /// completing `$connect`, and such a connection is not stale.
    pub async fn prune_connection(
        &self,
        connection_id: &str,
        connected_before: Timestamp,
    ) -> Result<WriteOutcome, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.active_connections)
            .key("connection_id", AttributeValue::S(connection_id.to_owned()))
            .condition_expression("connected_at < :cutoff")
            .expression_attribute_values(":cutoff", AttributeValue::S(connected_before.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(error) if is_condition_failure(&error) => Ok(WriteOutcome::ConditionFailed),
            Err(error) => Err(StoreError::call("DeleteItem")(error)),
        }
    }

    /// Sets the close attributes on an open session. Never creates a row and
    /// never overwrites an earlier `disconnected_at`: the condition fails for
    /// an unknown id or an already closed session.
    pub async fn close_session(
        &self,
        connection_id: &str,
        close: &SessionClose,
    ) -> Result<WriteOutcome, StoreError> {
        self.update_if(
            &self.tables.session_history,
            connection_id,
            close,
            "attribute_exists(connection_id) AND attribute_not_exists(disconnected_at)",
        )
        .await
    }

    /// Sets `duration_seconds` on a closed session that has none yet, so a
    /// replayed stream record writes once (the condition fails on a replay).
    pub async fn record_duration(
        &self,
        connection_id: &str,
        duration: &SessionDuration,
    ) -> Result<WriteOutcome, StoreError> {
        self.update_if(
            &self.tables.session_history,
            connection_id,
            duration,
            "attribute_exists(disconnected_at) AND attribute_not_exists(duration_seconds)",
        )
        .await
    }

    /// Stores a chat message; a `message_id` is never reused.
    pub async fn put_message(&self, message: &Message) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.message_history)
            .set_item(Some(to_item(message)?))
            .condition_expression("attribute_not_exists(message_id)")
            .send()
            .await
            .map_err(StoreError::call("PutItem"))?;
        Ok(())
    }

    /// Every active connection id, one Scan page at a time, projecting only
    /// the key. Follows `LastEvaluatedKey` to the end, so no table size is
    /// silently truncated at DynamoDB's 1 MB page limit.
    pub fn connection_ids(&self) -> impl Stream<Item = Result<Vec<String>, StoreError>> + use<> {
        let pages = self
            .client
            .scan()
            .table_name(&self.tables.active_connections)
            .projection_expression("connection_id")
            .set_limit(self.scan_page_size)
            .into_paginator()
            .send();
        futures::stream::unfold(pages, |mut pages| async move {
            let page = pages.next().await?;
            let ids = page.map_err(StoreError::call("Scan")).and_then(|output| {
                let keys: Vec<ConnectionKey> = from_items(output.items.unwrap_or_default())?;
                Ok(keys.into_iter().map(|key| key.connection_id).collect())
            });
            Some((ids, pages))
        })
    }

    /// `SET` every field of `changes` on the row keyed by `connection_id`,
    /// if `condition` holds.
    async fn update_if<T: Serialize>(
        &self,
        table: &str,
        connection_id: &str,
        changes: &T,
        condition: &str,
    ) -> Result<WriteOutcome, StoreError> {
        let fields: HashMap<String, AttributeValue> = to_item(changes)?;
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut assignments = Vec::new();
        for (index, (field, value)) in fields.into_iter().enumerate() {
            assignments.push(format!("#f{index} = :v{index}"));
            names.insert(format!("#f{index}"), field);
            values.insert(format!(":v{index}"), value);
        }
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key("connection_id", AttributeValue::S(connection_id.to_owned()))
            .update_expression(format!("SET {}", assignments.join(", ")))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(error) if is_condition_failure(&error) => Ok(WriteOutcome::ConditionFailed),
            Err(error) => Err(StoreError::call("UpdateItem")(error)),
        }
    }
}

/// Whether a write failed only because its condition did not hold.
fn is_condition_failure<E, R>(error: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error.as_service_error().and_then(|service| service.code())
        == Some("ConditionalCheckFailedException")
}
