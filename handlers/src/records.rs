//! Typed records for the three tables. Field names are the product's data
//! contract (the tutorial's names); every read and write goes through these
//! types via `serde_dynamo`. Key attributes and table settings live in
//! infra/tables.json.

use serde::{Deserialize, Serialize};

use crate::limits::{
    CONNECTION_TTL_MARGIN, GATEWAY_MAX_CONNECTION_DURATION, OPEN_SESSION_SHARDS, ROOM_SHARDS,
};
use crate::name::DisplayName;
use crate::room::Room;
use crate::time::Timestamp;

/// A row of ActiveConnections: one per open WebSocket connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveConnection {
    pub connection_id: String,
    pub connected_at: Timestamp,
    /// Epoch seconds after which DynamoDB may expire the row: the fallback for
    /// a `$disconnect` that API Gateway (best effort) never delivered.
    pub ttl: i64,
    /// Rows written before rooms existed are in the lobby.
    #[serde(default)]
    pub room: Room,
    /// The key of the `room-shard-index`, through which the room's fan-out
    /// reads its connections ([`room_shard`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_shard: Option<String>,
    /// The display name chosen on connect (or the signed-in name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<DisplayName>,
    /// The signed-in user (the token's `sub`), when sign-in is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The message rate limit's mark, epoch ms (see [`crate::rate`]); set by
    /// `sendmessage`, absent before the first message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_allowed_at: Option<i64>,
    /// The history allowance's mark, epoch ms; set by `history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_allowed_at: Option<i64>,
    /// When the connection last sent a chat message or asked for history (set with the rate
    /// limit's mark): the repair's evidence that it was alive then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<Timestamp>,
}

impl ActiveConnection {
    /// The row for a connection opened at `connected_at`, expiring after API
    /// Gateway's connection limit plus a margin.
    pub fn new(connection_id: String, connected_at: Timestamp, room: Room) -> Self {
        let lifetime = GATEWAY_MAX_CONNECTION_DURATION + CONNECTION_TTL_MARGIN;
        Self {
            room_shard: Some(room_shard(&room, shard_of(&connection_id, ROOM_SHARDS))),
            connection_id,
            ttl: connected_at.epoch_millis().div_euclid(1000) + lifetime.as_secs() as i64,
            connected_at,
            room,
            name: None,
            user_id: None,
            rate_allowed_at: None,
            history_allowed_at: None,
            last_seen_at: None,
        }
    }
}

/// How long the history tables keep what they store: `None` keeps it for
/// ever (the tutorial's behaviour). Carried out by DynamoDB's TTL on `ttl`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// `MESSAGE_RETENTION_DAYS`: chat messages.
    pub message_days: Option<u32>,
    /// `SESSION_RETENTION_DAYS`: sessions, and with them the personal data
    /// they hold (`source_ip`).
    pub session_days: Option<u32>,
}

impl Retention {
    /// The `ttl` (epoch seconds) of something written at `at`, kept `days`.
    pub fn expiry(days: Option<u32>, at: Timestamp) -> Option<i64> {
        days.map(|days| at.epoch_millis().div_euclid(1000) + i64::from(days) * 24 * 60 * 60)
    }
}

/// Who is in a room: what the room index holds of each ActiveConnections
/// row, and what `welcome` and `presence` frames list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub connection_id: String,
    /// `null` when none was chosen (show the connection id).
    #[serde(default)]
    pub name: Option<DisplayName>,
    /// Absent only for rows indexed before the index carried it.
    #[serde(default)]
    pub connected_at: Option<Timestamp>,
}

/// Someone who left a room, as `presence` frames list them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Departure {
    pub connection_id: String,
    pub name: Option<DisplayName>,
    pub disconnected_at: Timestamp,
    pub duration_seconds: f64,
    /// Present when a moderator removed them (or banned them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removal>,
}

/// Why a moderator took someone out of a room: on their session, in the
/// room's `presence` frame, and in the `removed` frame they get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// The moderator's words, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With a ban: until when they may not come back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_until: Option<Timestamp>,
}

impl Member {
    /// A session that just opened, as a member of its room.
    pub fn of(session: &Session) -> Self {
        Self {
            connection_id: session.connection_id.clone(),
            name: session.name.clone(),
            connected_at: Some(session.connected_at),
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
    pub connected_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_status_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    /// Sessions opened before rooms existed were in the lobby.
    #[serde(default)]
    pub room: Room,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<DisplayName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Epoch seconds after which DynamoDB deletes the session
    /// ([`Retention::session_days`]); absent: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// Present while the session is open, removed when it closes: the key
    /// of the sparse `open-sessions-index`, through which the repair finds
    /// sessions left open without scanning the table ([`open_shard`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_shard: Option<u32>,
    /// The signed-in user moderates the room (their token's roles claim):
    /// their welcome says so, for the page to offer the controls.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moderator: bool,
    /// Set when a moderator closed the session ([`SessionClose::removal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal: Option<Removal>,
}

/// The `open-sessions-index` key of a connection's session.
pub fn open_shard(connection_id: &str) -> u32 {
    shard_of(connection_id, OPEN_SESSION_SHARDS)
}

/// The `room-shard-index` key of shard `shard` of `room`: `lobby#3`. Room
/// names have no `#`.
pub fn room_shard(room: &Room, shard: u32) -> String {
    format!("{room}#{shard}")
}

/// A connection's shard of `shards`: FNV-1a of its id, modulo `shards`.
/// Stable across builds and platforms (std's hashers promise neither),
/// since it is stored.
pub fn shard_of(connection_id: &str, shards: u32) -> u32 {
    let hash = connection_id.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash % shards
}

/// An open session, as the `open-sessions-index` holds it (keys only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSession {
    pub connection_id: String,
    pub connected_at: Timestamp,
}

impl Session {
    /// A session as `$connect` opens it: nothing about its end yet.
    pub fn opened(
        connection_id: String,
        source_ip: Option<String>,
        connected_at: Timestamp,
        room: Room,
    ) -> Self {
        Self {
            open_shard: Some(open_shard(&connection_id)),
            connection_id,
            source_ip,
            connected_at,
            disconnected_at: None,
            duration_seconds: None,
            disconnect_status_code: None,
            disconnect_reason: None,
            room,
            name: None,
            user_id: None,
            ttl: None,
            moderator: false,
            removal: None,
        }
    }
}

/// What `$disconnect` (or a prune, or the repair) sets on a session:
/// written as one update that also removes `open_shard`, never as a new row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClose {
    pub disconnected_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_status_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    /// A moderator's removal (or ban).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal: Option<Removal>,
}

/// The close code recorded for a connection a moderator removed: 1008,
/// WebSocket's "policy violation".
pub const REMOVED_CLOSE_CODE: i64 = 1008;

/// The close code recorded for a connection that ended without a
/// `$disconnect` saying how: 1006, what API Gateway records for a connection
/// that ended without a close frame.
pub const ABNORMAL_CLOSE_CODE: i64 = 1006;

impl SessionClose {
    /// The close of a connection found gone (by a 410, or by the repair),
    /// as of `at`, for `reason`.
    pub fn unseen(at: Timestamp, reason: &str) -> Self {
        Self {
            disconnected_at: at,
            disconnect_status_code: Some(ABNORMAL_CLOSE_CODE),
            disconnect_reason: Some(reason.to_owned()),
            removal: None,
        }
    }

    /// The close of a connection a moderator removed, as of `at`.
    pub fn removed(at: Timestamp, removal: Removal) -> Self {
        Self {
            disconnected_at: at,
            disconnect_status_code: Some(REMOVED_CLOSE_CODE),
            disconnect_reason: Some("Removed by a moderator".to_owned()),
            removal: Some(removal),
        }
    }
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
    pub timestamp: Timestamp,
    #[serde(default)]
    pub room: Room,
    /// The sender's display name when it was sent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<DisplayName>,
    /// The signed-in sender, when sign-in is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `timestamp#message_id`: the history index's sort key, unique even
    /// when two messages share a millisecond, so pages never overlap; and,
    /// `message_id` being a UUIDv7 made in order, in the order they came
    /// in.
    pub time_order: String,
    /// Epoch seconds after which DynamoDB deletes the message
    /// ([`Retention::message_days`]); absent: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// Set when the message was deleted: it is then a tombstone, its
    /// `message` empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Deletion>,
}

/// Who deleted a message, and when: what its tombstone keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub at: Timestamp,
    pub by: DeletedBy,
    /// The connection that deleted it, and its signed-in user if any: for
    /// the record, never sent to the room.
    pub connection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// In what capacity a message was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletedBy {
    Author,
    Moderator,
}

/// A user's ban from a room, a row of Moderation (`entry` =
/// [`Ban::entry_of`]): read by `$connect`, one consistent GetItem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub room: Room,
    pub entry: String,
    pub user_id: String,
    pub until: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The moderator's user id.
    pub banned_by: String,
    pub banned_at: Timestamp,
    /// Epoch seconds after which DynamoDB may delete the row.
    pub ttl: i64,
}

impl Ban {
    /// The sort key of `user_id`'s ban in a room.
    pub fn entry_of(user_id: &str) -> String {
        format!("ban#{user_id}")
    }
}

/// A row of Moderation saying that a signed-in user's rooms claim named
/// the room by its exact name (`entry` = [`MembersOnly::ENTRY`]): with
/// `ROOM_ACCESS` `open`, only tokens naming it may join it from then on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersOnly {
    pub room: Room,
    pub entry: String,
    /// When a claim first named it.
    pub since: Timestamp,
}

impl MembersOnly {
    pub const ENTRY: &'static str = "members-only";

    pub fn new(room: Room, since: Timestamp) -> Self {
        Self {
            room,
            entry: Self::ENTRY.to_owned(),
            since,
        }
    }
}

/// One moderator action, a row of Moderation (`entry` =
/// `audit#<at>#<id>`, so a room's log reads in time order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub room: Room,
    pub entry: String,
    /// `remove`, `ban` or `delete`.
    pub action: String,
    /// Who: the moderator's (or author's) user id and connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_user_id: Option<String>,
    pub actor_connection_id: String,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_connection_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u64>,
    /// Kept as long as sessions are ([`Retention::session_days`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

impl Message {
    pub fn new(
        message_id: String,
        connection_id: String,
        room: Room,
        message: String,
        timestamp: Timestamp,
    ) -> Self {
        Self {
            time_order: format!("{timestamp}#{message_id}"),
            message_id,
            connection_id,
            message,
            timestamp,
            room,
            name: None,
            user_id: None,
            ttl: None,
            deleted: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use serde_dynamo::{Item, from_item, to_item};

    use crate::time::tests::at;

    #[test]
    fn connection_ttl_is_past_the_two_hour_limit() {
        let row = ActiveConnection::new("id".into(), at("2026-11-28T00:13:36.123Z"), Room::lobby());
        assert_eq!(row.ttl, 1_795_824_816 + 2 * 3600 + 15 * 60);
    }

    #[test]
    fn session_item_uses_the_contract_field_names_and_types() -> Result<(), serde_dynamo::Error> {
        let session = Session {
            disconnected_at: Some(at("2026-11-28T00:15:01.000Z")),
            duration_seconds: Some(84.877),
            disconnect_status_code: Some(1001),
            disconnect_reason: Some("Going away".into()),
            ..Session::opened(
                "L0SM9cOFvHcCIhw=".into(),
                Some("203.0.113.7".into()),
                at("2026-11-28T00:13:36.123Z"),
                Room::lobby(),
            )
        };
        let item: std::collections::HashMap<String, AttributeValue> = to_item(&session)?;
        assert_eq!(
            item.get("connected_at"),
            Some(&AttributeValue::S("2026-11-28T00:13:36.123Z".into()))
        );
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
        let back: Session = from_item(item)?;
        assert_eq!(back, session);
        Ok(())
    }

    #[test]
    fn an_opened_session_has_no_close_attributes() -> Result<(), serde_dynamo::Error> {
        let session = Session::opened(
            "a".into(),
            None,
            at("2026-11-28T00:13:36.123Z"),
            Room::lobby(),
        );
        let item: Item = to_item(&session)?;
        let mut keys: Vec<_> = item.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["connected_at", "connection_id", "open_shard", "room"]
        );
        Ok(())
    }

    #[test]
    fn open_shards_are_stable_and_spread_over_every_shard() {
        // Stored values: these must never change.
        assert_eq!(open_shard("L0SM9cOFvHcCIhw="), 13);
        assert_eq!(open_shard(""), 5);
        let mut counts = [0_u32; OPEN_SESSION_SHARDS as usize];
        for n in 0..16_000 {
            counts[open_shard(&format!("conn{n:012}=")) as usize] += 1;
        }
        for (shard, count) in counts.iter().enumerate() {
            assert!(
                (800..1200).contains(count),
                "shard {shard}: {count} of 16,000"
            );
        }
    }

    #[test]
    fn rows_written_before_rooms_existed_are_in_the_lobby() -> Result<(), serde_dynamo::Error> {
        let mut item: Item = to_item(Session::opened(
            "a".into(),
            None,
            at("2026-11-28T00:13:36.123Z"),
            Room::parse("team").expect("a room"),
        ))?;
        item.remove("room");
        let session: Session = from_item(item)?;
        assert_eq!(session.room, Room::lobby());
        Ok(())
    }

    #[test]
    fn messages_sort_by_time_then_id_and_expire_only_when_retention_is_set() {
        let message = Message::new(
            "m-1".into(),
            "a".into(),
            Room::lobby(),
            "hi".into(),
            at("2026-11-28T00:13:36.123Z"),
        );
        assert_eq!(message.time_order, "2026-11-28T00:13:36.123Z#m-1");
        assert_eq!(message.ttl, None);
        assert_eq!(
            Retention::expiry(Some(30), at("2026-11-28T00:13:36.123Z")),
            Some(1_795_824_816 + 30 * 86_400)
        );
        assert_eq!(
            Retention::expiry(None, at("2026-11-28T00:13:36.123Z")),
            None
        );
    }
}
