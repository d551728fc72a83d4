//! The DynamoDB adapter: the one module that touches raw `AttributeValue`
//! maps. Everything going in or out is a typed record from [`crate::records`],
//! converted with `serde_dynamo`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use serde::{Deserialize, Serialize};
use serde_dynamo::{from_item, from_items, to_item};

use crate::config::Tables;
use crate::error::StoreError;
use crate::limits::ROOM_SHARDS;
use crate::name::DisplayName;
use crate::rate::Allowance;
use crate::records::{
    ActiveConnection, AuditEntry, Ban, ConnectionKey, Deletion, Member, MembersOnly, Message,
    OpenSession, Session, SessionClose, SessionDuration, room_shard,
};
use crate::room::Room;
use crate::time::Timestamp;

/// The global secondary index of ActiveConnections by `room_shard` (keys,
/// `connected_at` and `name`), as infra/tables.json declares it: a room's
/// connections under [`ROOM_SHARDS`] keys.
pub const ROOM_INDEX: &str = "room-shard-index";
/// The global secondary index of MessageHistory by `room` and `time_order`.
pub const HISTORY_INDEX: &str = "room-time-index";
/// The sparse global secondary index of ActiveConnections by `user_id`
/// (with `room`): a signed-in user's connections, for a ban.
pub const USER_INDEX: &str = "user-index";
/// The sparse global secondary index of SessionHistory by `open_shard` and
/// `connected_at`: open sessions only (keys only).
pub const OPEN_SESSIONS_INDEX: &str = "open-sessions-index";

/// Where a page of [`Store::open_sessions`] ended.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenSessionKey(HashMap<String, AttributeValue>);

/// One page of a shard of a room's connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionPage {
    pub ids: Vec<String>,
    /// Index entries DynamoDB read for it (`ScannedCount`).
    pub read: usize,
    /// Where the next page of the shard starts; `None` after its last.
    pub next: Option<ShardCursor>,
}

/// Where a page of a room shard ended (its `LastEvaluatedKey`): a fan-out
/// worker's start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCursor {
    pub room_shard: String,
    pub connection_id: String,
}

/// Where a history page ended: the last message's keys in the history index,
/// from which the next (older) page starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryKey {
    pub room: Room,
    pub time_order: String,
    pub message_id: String,
}

impl HistoryKey {
    pub fn of(message: &Message) -> Self {
        Self {
            room: message.room.clone(),
            time_order: message.time_order.clone(),
            message_id: message.message_id.clone(),
        }
    }
}

/// Who sent a frame, as its connection row says.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Sender {
    /// Rows written before rooms existed are in the lobby.
    #[serde(default)]
    pub room: Room,
    #[serde(default)]
    pub name: Option<DisplayName>,
    #[serde(default)]
    pub user_id: Option<String>,
    /// The rate limit's mark (see [`crate::rate`]); `None` before the
    /// connection's first message.
    #[serde(default)]
    pub rate_allowed_at: Option<i64>,
    /// The history allowance's mark; `None` before its first page.
    #[serde(default)]
    pub history_allowed_at: Option<i64>,
}

impl Sender {
    /// Its mark for `allowance`.
    pub fn mark(&self, allowance: Allowance) -> Option<i64> {
        match allowance {
            Allowance::Messages => self.rate_allowed_at,
            Allowance::History => self.history_allowed_at,
        }
    }
}

/// What [`Store::claim_on_schedule`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The sender was on schedule: its mark has moved; its row as it is now.
    Moved(Sender),
    /// The sender's mark is ahead of now (a burst): nothing was written; its
    /// row as it is. `None`: the connection has no row.
    Ahead(Option<Sender>),
}

/// Whether a conditional write happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The condition did not hold; the table is unchanged. What that means
    /// is the caller's to say (already done, too young, not open).
    ConditionFailed,
}

/// The DynamoDB client configuration every part of the chat uses: `sdk`'s,
/// with [`crate::limits::DYNAMODB_CALL_TIMEOUT`] on each call.
pub fn dynamodb_config(sdk: &aws_types::SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(sdk).timeout_config(
        aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
            .operation_timeout(crate::limits::DYNAMODB_CALL_TIMEOUT)
            .build(),
    )
}

/// The chat's tables, reached through the real DynamoDB client.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    tables: Tables,
    /// Items per page of a room's connections; `None` lets DynamoDB fill
    /// 1 MB pages.
    page_size: Option<i32>,
    /// Rooms this process knows are marked members-only, so a member's
    /// connect writes each mark once, not every time.
    marked: Arc<Mutex<HashSet<Room>>>,
}

/// What `$connect` reads of a room for a signed-in user, in one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomEntry {
    /// The user's ban from the room, if there is a row (ended or not).
    pub ban: Option<Ban>,
    /// Some signed-in user's rooms claim has named the room.
    pub claimed: bool,
}

/// The most rooms one process remembers as marked; past it, it starts over
/// (a mark is written again at worst).
const MARKED_ROOMS_REMEMBERED: usize = 10_000;

impl Store {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            client,
            tables,
            page_size: None,
            marked: Arc::default(),
        }
    }

    /// Caps the items per page of a room's connections (tests use it to
    /// exercise pagination).
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items);
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

    /// One page of the open sessions under `shard` (see
    /// [`crate::records::open_shard`]) of the sparse `open-sessions-index`,
    /// oldest first, from `start` (the previous page's end); and where the
    /// next page starts, if there is one. A closed session has left the
    /// index, so this reads what is open, not the table.
    pub async fn open_sessions(
        &self,
        shard: u32,
        start: Option<OpenSessionKey>,
    ) -> Result<(Vec<OpenSession>, Option<OpenSessionKey>), StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.session_history)
            .index_name(OPEN_SESSIONS_INDEX)
            .key_condition_expression("open_shard = :shard")
            .expression_attribute_values(":shard", AttributeValue::N(shard.to_string()))
            .set_exclusive_start_key(start.map(|key| key.0))
            .set_limit(self.page_size)
            .send()
            .await
            .map_err(StoreError::call("Query"))?;
        let sessions = from_items(output.items.unwrap_or_default())?;
        Ok((sessions, output.last_evaluated_key.map(OpenSessionKey)))
    }

    /// When a connection last sent a message, as its row says; `None` when
    /// it has no row or never sent one.
    pub async fn last_seen(&self, connection_id: &str) -> Result<Option<Timestamp>, StoreError> {
        #[derive(Deserialize)]
        struct Seen {
            last_seen_at: Option<Timestamp>,
        }
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.active_connections)
            .key("connection_id", AttributeValue::S(connection_id.to_owned()))
            .projection_expression("last_seen_at")
            .send()
            .await
            .map_err(StoreError::call("GetItem"))?;
        let seen: Option<Seen> = output.item.map(from_item).transpose()?;
        Ok(seen.and_then(|seen| seen.last_seen_at))
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

    /// Sets the close attributes on an open session and takes it out of the
    /// open-sessions index. Never creates a row and never overwrites an
    /// earlier `disconnected_at`: the condition fails for an unknown id or
    /// an already closed session.
    pub async fn close_session(
        &self,
        connection_id: &str,
        close: &SessionClose,
    ) -> Result<WriteOutcome, StoreError> {
        self.update_if(
            &self.tables.session_history,
            ("connection_id", connection_id),
            close,
            Some("open_shard"),
            "attribute_exists(connection_id) AND attribute_not_exists(disconnected_at)",
            None,
        )
        .await
    }

    /// [`Store::close_session`], only if the session opened before
    /// `connected_before`: a connection that answers 410 within its first
    /// moments may still be inside its `$connect`, and is not gone.
    pub async fn close_session_opened_before(
        &self,
        connection_id: &str,
        close: &SessionClose,
        connected_before: Timestamp,
    ) -> Result<WriteOutcome, StoreError> {
        self.update_if(
            &self.tables.session_history,
            ("connection_id", connection_id),
            close,
            Some("open_shard"),
            "attribute_exists(connection_id) AND attribute_not_exists(disconnected_at) \
             AND connected_at < :cutoff",
            Some((":cutoff", AttributeValue::S(connected_before.to_string()))),
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
            ("connection_id", connection_id),
            duration,
            None,
            "attribute_exists(disconnected_at) AND attribute_not_exists(duration_seconds)",
            None,
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

    /// A page of shard `shard` of a room's connections (at most `limit`,
    /// or the test page size), from `after` (the previous page's end), from
    /// the room index: never a Scan, so the cost is the shard's size, not
    /// the table's.
    pub async fn room_shard_page(
        &self,
        room: &Room,
        shard: u32,
        after: Option<&ShardCursor>,
        limit: i32,
    ) -> Result<ConnectionPage, StoreError> {
        let output = self
            .shard_query(room, shard)
            // The key alone: a third of the bytes to encode, send and parse
            // per recipient than the index's projection.
            .projection_expression("connection_id")
            .set_exclusive_start_key(after.map(to_item).transpose()?)
            .limit(self.page_size.map_or(limit, |size| size.min(limit)))
            .send()
            .await
            .map_err(StoreError::call("Query"))?;
        let keys: Vec<ConnectionKey> = from_items(output.items.unwrap_or_default())?;
        Ok(ConnectionPage {
            ids: keys.into_iter().map(|key| key.connection_id).collect(),
            read: usize::try_from(output.scanned_count).unwrap_or_default(),
            next: output.last_evaluated_key.map(from_item).transpose()?,
        })
    }

    /// The room's members (up to `max`) and how many there are, from every
    /// shard of the room index at once.
    pub async fn room_members(
        &self,
        room: &Room,
        max: usize,
    ) -> Result<(Vec<Member>, usize), StoreError> {
        let shards = (0..ROOM_SHARDS).map(|shard| self.shard_members(room, shard, max));
        let mut members = Vec::new();
        let mut count = 0;
        for (listed, counted) in futures::future::try_join_all(shards).await? {
            count += counted;
            members.extend(listed.into_iter().take(max.saturating_sub(members.len())));
        }
        Ok((members, count))
    }

    /// One shard's members (up to `max`), and how many it holds.
    async fn shard_members(
        &self,
        room: &Room,
        shard: u32,
        max: usize,
    ) -> Result<(Vec<Member>, usize), StoreError> {
        let mut members = Vec::new();
        let mut count = 0;
        let mut pages = self
            .shard_query(room, shard)
            .set_limit(self.page_size)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(StoreError::call("Query"))?;
            let items = page.items.unwrap_or_default();
            count += items.len();
            let room_left = max.saturating_sub(members.len());
            let listed: Vec<Member> =
                from_items(items.into_iter().take(room_left).collect::<Vec<_>>())?;
            members.extend(listed);
        }
        Ok((members, count))
    }

    /// A Query of one shard of a room's connections.
    fn shard_query(
        &self,
        room: &Room,
        shard: u32,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.tables.active_connections)
            .index_name(ROOM_INDEX)
            .key_condition_expression("room_shard = :shard")
            .expression_attribute_values(":shard", AttributeValue::S(room_shard(room, shard)))
    }

    /// Who an open connection is: its room and display name; `None` when it
    /// has no row (closed, or pruned).
    pub async fn sender(&self, connection_id: &str) -> Result<Option<Sender>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.active_connections)
            .key("connection_id", AttributeValue::S(connection_id.to_owned()))
            .projection_expression("#room, #name, user_id, rate_allowed_at, history_allowed_at")
            .expression_attribute_names("#room", "room")
            .expression_attribute_names("#name", "name")
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::call("GetItem"))?;
        output.item.map(from_item).transpose().map_err(Into::into)
    }

    /// Reads the sender's row and, when its `allowance` mark is not after
    /// `now` (or unset: a sender on schedule, the usual case), moves the
    /// mark to `next` in the same conditional write. A request then costs
    /// one call instead of a read and a write; a burst gets the row back
    /// from the refused condition and goes on with
    /// [`Store::advance_rate_mark`].
    pub async fn claim_on_schedule(
        &self,
        connection_id: &str,
        allowance: Allowance,
        now: Timestamp,
        next: i64,
    ) -> Result<Claim, StoreError> {
        let written = self
            .set_rate_mark(connection_id, allowance, next, now)
            .condition_expression(
                "attribute_exists(connection_id) AND (attribute_not_exists(#mark) OR #mark <= :now)",
            )
            .expression_attribute_values(":now", AttributeValue::N(now.epoch_millis().to_string()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(
                ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match written {
            Ok(output) => {
                let row = output.attributes.unwrap_or_default();
                Ok(Claim::Moved(from_item(row)?))
            }
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    match refused.item() {
                        Some(row) => Ok(Claim::Ahead(Some(from_item(row.clone())?))),
                        // No row, or an engine that does not return it.
                        None => Ok(Claim::Ahead(self.sender(connection_id).await?)),
                    }
                }
                _ => Err(StoreError::call("UpdateItem")(error)),
            },
        }
    }

    /// Moves a connection's `allowance` mark from `seen` (what its row said)
    /// to `next`, unless another request moved it since or the row is gone:
    /// the rate limit's one conditional write.
    pub async fn advance_rate_mark(
        &self,
        connection_id: &str,
        allowance: Allowance,
        seen: Option<i64>,
        next: i64,
        now: Timestamp,
    ) -> Result<WriteOutcome, StoreError> {
        let update = self.set_rate_mark(connection_id, allowance, next, now);
        let update = match seen {
            Some(seen) => update
                .condition_expression("attribute_exists(connection_id) AND #mark = :seen")
                .expression_attribute_values(":seen", AttributeValue::N(seen.to_string())),
            None => update.condition_expression(
                "attribute_exists(connection_id) AND attribute_not_exists(#mark)",
            ),
        };
        match update.send().await {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(error) if is_condition_failure(&error) => Ok(WriteOutcome::ConditionFailed),
            Err(error) => Err(StoreError::call("UpdateItem")(error)),
        }
    }

    /// An UpdateItem moving a connection's `allowance` mark (`#mark`) to
    /// `next`, and its `last_seen_at` to `now` (the request's time: evidence
    /// for the repair that the connection was alive); the caller adds its
    /// condition.
    fn set_rate_mark(
        &self,
        connection_id: &str,
        allowance: Allowance,
        next: i64,
        now: Timestamp,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.tables.active_connections)
            .key("connection_id", AttributeValue::S(connection_id.to_owned()))
            .update_expression("SET #mark = :next, last_seen_at = :seen_at")
            .expression_attribute_names("#mark", allowance.mark())
            .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
            .expression_attribute_values(":seen_at", AttributeValue::S(now.to_string()))
    }

    /// `user_id`'s ban from `room` (ended or not: the caller compares
    /// `until`) and whether a claim has named the room: one consistent
    /// BatchGetItem, so a ban holds from the moment it is written.
    pub async fn room_entry(&self, room: &Room, user_id: &str) -> Result<RoomEntry, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let table = &self.tables.moderation;
        let key = |entry: String| {
            HashMap::from([
                ("room".to_owned(), AttributeValue::S(room.to_string())),
                ("entry".to_owned(), AttributeValue::S(entry)),
            ])
        };
        let mut pending = Some(
            KeysAndAttributes::builder()
                .keys(key(Ban::entry_of(user_id)))
                .keys(key(MembersOnly::ENTRY.to_owned()))
                .consistent_read(true)
                .build()
                .map_err(StoreError::request("BatchGetItem"))?,
        );
        let mut found = RoomEntry::default();
        // Keys DynamoDB left unprocessed (throttling) are asked again.
        for _ in 0..crate::limits::BATCH_GET_ATTEMPTS {
            let Some(keys) = pending.take() else {
                return Ok(found);
            };
            let mut output = self
                .client
                .batch_get_item()
                .request_items(table, keys)
                .send()
                .await
                .map_err(StoreError::call("BatchGetItem"))?;
            let items = output
                .responses
                .as_mut()
                .and_then(|responses| responses.remove(table))
                .unwrap_or_default();
            for item in items {
                let is_mark = matches!(item.get("entry"), Some(AttributeValue::S(entry)) if entry == MembersOnly::ENTRY);
                if is_mark {
                    found.claimed = true;
                } else {
                    found.ban = Some(from_item(item)?);
                }
            }
            pending = output
                .unprocessed_keys
                .and_then(|mut unprocessed| unprocessed.remove(table))
                .filter(|keys| !keys.keys().is_empty());
        }
        match pending {
            None => Ok(found),
            Some(_) => Err(StoreError::Dynamo(crate::error::AwsError {
                service: "DynamoDB",
                operation: "BatchGetItem",
                code: None,
                request_id: None,
                status: None,
                detail: "keys left unprocessed after every attempt (throttled)".to_owned(),
            })),
        }
    }

    /// Marks each of `rooms` members-only (a signed-in user's claim named
    /// it), once: a room already marked keeps its first `since`.
    pub async fn mark_members_only(
        &self,
        rooms: impl IntoIterator<Item = &Room>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let known = |room: &Room| {
            self.marked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(room)
        };
        let new: Vec<Room> = rooms
            .into_iter()
            .filter(|room| !known(room))
            .cloned()
            .collect();
        for room in new {
            let written = self
                .client
                .put_item()
                .table_name(&self.tables.moderation)
                .set_item(Some(to_item(MembersOnly::new(room.clone(), now))?))
                .condition_expression("attribute_not_exists(entry)")
                .send()
                .await;
            match written {
                Ok(_) => {}
                Err(error) if is_condition_failure(&error) => {}
                Err(error) => return Err(StoreError::call("PutItem")(error)),
            }
            let mut marked = self.marked.lock().unwrap_or_else(PoisonError::into_inner);
            if marked.len() >= MARKED_ROOMS_REMEMBERED {
                marked.clear();
            }
            marked.insert(room);
        }
        Ok(())
    }

    /// Writes a ban, replacing an earlier one of the same user and room.
    pub async fn put_ban(&self, ban: &Ban) -> Result<(), StoreError> {
        self.put(&self.tables.moderation, to_item(ban)?).await
    }

    /// Writes a moderator action to the room's audit log.
    pub async fn put_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.put(&self.tables.moderation, to_item(entry)?).await
    }

    async fn put(
        &self,
        table: &str,
        item: HashMap<String, AttributeValue>,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(StoreError::call("PutItem"))?;
        Ok(())
    }

    /// The connections of a signed-in user, with their rooms, from the
    /// sparse user index: what a ban removes.
    pub async fn user_connections(&self, user_id: &str) -> Result<Vec<(String, Room)>, StoreError> {
        #[derive(Deserialize)]
        struct Entry {
            connection_id: String,
            #[serde(default)]
            room: Room,
        }
        let mut found = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.tables.active_connections)
            .index_name(USER_INDEX)
            .key_condition_expression("user_id = :user")
            .expression_attribute_values(":user", AttributeValue::S(user_id.to_owned()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(StoreError::call("Query"))?;
            let entries: Vec<Entry> = from_items(page.items.unwrap_or_default())?;
            found.extend(
                entries
                    .into_iter()
                    .map(|entry| (entry.connection_id, entry.room)),
            );
        }
        Ok(found)
    }

    /// One stored message, tombstone or not.
    pub async fn message(&self, message_id: &str) -> Result<Option<Message>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.message_history)
            .key("message_id", AttributeValue::S(message_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::call("GetItem"))?;
        output.item.map(from_item).transpose().map_err(Into::into)
    }

    /// Turns a stored message into a tombstone: its text gone, who deleted
    /// it and when kept. The condition fails when it is already one (or
    /// gone).
    pub async fn tombstone(
        &self,
        message_id: &str,
        deletion: &Deletion,
    ) -> Result<WriteOutcome, StoreError> {
        #[derive(Serialize)]
        struct Tombstone<'a> {
            message: &'static str,
            deleted: &'a Deletion,
        }
        self.update_if(
            &self.tables.message_history,
            ("message_id", message_id),
            &Tombstone {
                message: "",
                deleted: deletion,
            },
            None,
            "attribute_exists(message_id) AND attribute_not_exists(deleted)",
            None,
        )
        .await
    }

    /// Up to `limit` messages of `room`, newest first, older than `before`
    /// (a key from an earlier page), and whether older ones remain.
    pub async fn history(
        &self,
        room: &Room,
        limit: usize,
        before: Option<&HistoryKey>,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let mut messages = Vec::new();
        let mut start = before.map(to_item).transpose()?;
        // One more than asked for tells whether older messages remain.
        while messages.len() <= limit {
            let wanted = i32::try_from(limit + 1 - messages.len()).unwrap_or(i32::MAX);
            let output = self
                .room_query(&self.tables.message_history, HISTORY_INDEX, room)
                .scan_index_forward(false)
                .limit(wanted)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StoreError::call("Query"))?;
            let page: Vec<Message> = from_items(output.items.unwrap_or_default())?;
            messages.extend(page);
            match output.last_evaluated_key {
                Some(key) if messages.len() <= limit => start = Some(key),
                _ => break,
            }
        }
        let more = messages.len() > limit;
        messages.truncate(limit);
        Ok((messages, more))
    }

    /// A Query of one room's entries of a room-keyed index.
    fn room_query(
        &self,
        table: &str,
        index: &str,
        room: &Room,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#room = :room")
            .expression_attribute_names("#room", "room")
            .expression_attribute_values(":room", AttributeValue::S(room.to_string()))
    }

    /// `SET` every field of `changes` (and `REMOVE` the attribute `remove`)
    /// on the row whose hash key `key` has `key_value`, if `condition` (with its one
    /// extra value, if any) holds.
    async fn update_if<T: Serialize>(
        &self,
        table: &str,
        (key, key_value): (&str, &str),
        changes: &T,
        remove: Option<&str>,
        condition: &str,
        condition_value: Option<(&str, AttributeValue)>,
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
        let mut expression = format!("SET {}", assignments.join(", "));
        if let Some(attribute) = remove {
            expression.push_str(" REMOVE #removed");
            names.insert("#removed".to_owned(), attribute.to_owned());
        }
        if let Some((name, value)) = condition_value {
            values.insert(name.to_owned(), value);
        }
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(key, AttributeValue::S(key_value.to_owned()))
            .update_expression(expression)
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
