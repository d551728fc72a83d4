//! The frames the server sends: one JSON object each, with a `type` and a
//! human-readable `message`.

use serde::{Deserialize, Serialize};

use super::{Action, EXAMPLE_FRAME};
use crate::limits::{PRESENCE_CROWD_SIZE, PRESENCE_MAX_LISTED};
use crate::name::DisplayName;
use crate::rate::{Allowance, Rate};
use crate::records::{DeletedBy, Departure, Member, Removal, Session};
use crate::room::Room;
use crate::time::Timestamp;

/// A frame from the server to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A chat message, broadcast to every connection in its room (and, in
    /// `history` pages, exactly as it was delivered).
    Message {
        /// `[timestamp] connection_id: text`, for clients that only print this.
        message: String,
        message_id: String,
        connection_id: String,
        /// The sender's chosen display name; `null` when none (show the
        /// connection id). Not identity: anyone may pick any name.
        name: Option<DisplayName>,
        text: String,
        timestamp: Timestamp,
        room: Room,
        /// A deleted message's tombstone (in `history` pages): `text` is
        /// empty.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deleted: Option<DeletedNote>,
    },
    /// A page of a room's messages, newest first, to the sender alone.
    History {
        message: String,
        room: Room,
        /// `message` frames, newest first.
        messages: Vec<ServerFrame>,
        /// Fetches the next older page; `null` at the beginning of the room.
        cursor: Option<String>,
    },
    /// Answer to a heartbeat; `message` is exactly `pong`.
    Pong { message: String },
    /// Something the client sent could not be accepted.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit_bytes: Option<usize>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        valid_actions: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        example: Option<String>,
        /// With `rate_limited`: when a request would be accepted again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// With `rate_limited`: the action refused (`sendmessage` or
        /// `history`), each with its own allowance.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<String>,
    },
    /// Sent to a new connection: who it is, where, and who is there.
    Welcome {
        message: String,
        connection_id: String,
        name: Option<DisplayName>,
        connected_at: Timestamp,
        room: Room,
        /// Who is in the room now, the newcomer included (at most
        /// [`crate::limits::WELCOME_MAX_LISTED`]).
        online: Vec<Member>,
        /// How many are in the room now.
        online_count: usize,
        /// The newcomer may remove, ban and delete in this room.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        moderator: bool,
    },
    /// Who joined and who left the room since the last presence frame: at
    /// most one per room and presence window
    /// ([`crate::limits::ChatLimits::presence_window`]), however many came
    /// and went.
    Presence {
        message: String,
        room: Room,
        /// Who joined: all of them, or in a crowd ([`is_crowd`]) at most
        /// [`PRESENCE_MAX_LISTED`].
        joined: Vec<Member>,
        /// Who left: likewise.
        left: Vec<Departure>,
        /// How many joined and left: more than listed in a crowd.
        joined_count: usize,
        left_count: usize,
        /// How many are in the room now; absent when it could not be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        online_count: Option<usize>,
        /// In a crowd only: who is here (at most [`PRESENCE_MAX_LISTED`]),
        /// in place of the list a client kept from joins and leaves it was
        /// not all told of.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        online: Option<Vec<Member>>,
    },
    /// To the room: a message was deleted (show it as deleted, also in
    /// history already loaded).
    Deleted {
        message: String,
        room: Room,
        message_id: String,
        by: DeletedBy,
        at: Timestamp,
    },
    /// To a connection a moderator is closing, just before it closes: why.
    Removed {
        message: String,
        room: Room,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// With a ban: until when joining this room is refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        banned_until: Option<Timestamp>,
    },
    /// The answer to a moderation action that was carried out.
    Moderated {
        message: String,
        /// `remove`, `ban` or `delete`.
        action: String,
        #[serde(flatten)]
        target: ModerationTarget,
    },
}

/// What a moderation action acted on, as its answer names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_until: Option<Timestamp>,
}

/// What a tombstone's `message` frame says of its deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedNote {
    pub at: Timestamp,
    pub by: DeletedBy,
}

/// Machine-readable reason of an `error` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object.
    InvalidJson,
    /// `action` missing or not one we know.
    UnknownAction,
    /// `message` missing or not a string.
    InvalidMessage,
    /// `message` empty after trimming.
    EmptyMessage,
    /// `message` longer than the limit.
    MessageTooLong,
    /// Stored, but not delivered to every connection.
    PartialDelivery,
    /// `limit` of a `history` request is not a positive integer.
    InvalidLimit,
    /// `before` of a `history` request is not a well-formed cursor naming
    /// this room.
    InvalidCursor,
    /// `?room=` on connect is not a room name.
    InvalidRoom,
    /// `?name=` on connect is not a display name.
    InvalidName,
    /// More messages (or history requests) than the connection's allowance;
    /// nothing was done.
    RateLimited,
    /// On connect (403): the room is members-only and the token's rooms
    /// claim does not name it.
    RoomForbidden,
    /// On connect (403): a moderator banned this user from the room.
    Banned,
    /// A moderation action by someone who may not: not a moderator, or
    /// not the message's author.
    Forbidden,
    /// A moderation action naming a connection or message that does not
    /// exist (any more).
    NotFound,
    /// A moderation action naming a connection or message of another room.
    OtherRoom,
    /// A moderation frame with a missing or malformed field.
    InvalidRequest,
    /// `delete` of a message already deleted.
    AlreadyDeleted,
    /// `remove` or `ban` naming oneself.
    SelfTarget,
    /// The server failed; nothing was stored.
    Internal,
}

impl ServerFrame {
    pub fn pong() -> Self {
        Self::Pong {
            message: "pong".to_owned(),
        }
    }

    pub fn chat(message: &crate::records::Message) -> Self {
        let deleted = message.deleted.as_ref().map(|deletion| DeletedNote {
            at: deletion.at,
            by: deletion.by,
        });
        let text = match &deleted {
            Some(note) => format!("(message deleted by {})", deleted_by(note.by)),
            None => message.message.clone(),
        };
        Self::Message {
            message: format!(
                "[{}] {}: {}",
                message.timestamp,
                shown(&message.connection_id, message.name.as_ref()),
                text
            ),
            message_id: message.message_id.clone(),
            connection_id: message.connection_id.clone(),
            name: message.name.clone(),
            text: message.message.clone(),
            timestamp: message.timestamp,
            room: message.room.clone(),
            deleted,
        }
    }

    /// To the room: `message_id` was deleted.
    pub fn deleted(room: &Room, message_id: &str, by: DeletedBy, at: Timestamp) -> Self {
        Self::Deleted {
            message: format!("A message was deleted by {}.", deleted_by(by)),
            room: room.clone(),
            message_id: message_id.to_owned(),
            by,
            at,
        }
    }

    /// To a connection being removed from `room`.
    pub fn removed(room: &Room, removal: &Removal) -> Self {
        Self::Removed {
            message: removal_text(room, removal),
            room: room.clone(),
            reason: removal.reason.clone(),
            banned_until: removal.banned_until,
        }
    }

    /// The refusal of a handshake into `room` while `removal`'s ban lasts
    /// (403): the same words as the `removed` frame of the ban.
    pub fn banned(room: &Room, removal: &Removal) -> Self {
        Self::error(ErrorCode::Banned, removal_text(room, removal))
    }

    /// The answer to a moderation action carried out.
    pub fn moderated(action: Action, message: String, target: ModerationTarget) -> Self {
        Self::Moderated {
            message,
            action: action.name().to_owned(),
            target,
        }
    }

    /// A page of `room`'s history: `messages` newest first.
    pub fn history(room: &Room, messages: Vec<ServerFrame>, cursor: Option<String>) -> Self {
        let summary = match (messages.len(), &cursor) {
            (0, _) => format!("No earlier messages in {room}."),
            (count, Some(_)) => format!("{count} earlier messages in {room}; there are more."),
            (count, None) => {
                format!("{count} earlier messages in {room}, back to the beginning.")
            }
        };
        Self::History {
            message: summary,
            room: room.clone(),
            messages,
            cursor,
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            limit_bytes: None,
            valid_actions: Vec::new(),
            example: None,
            retry_after_ms: None,
            action: None,
        }
    }

    /// The answer to an unknown or missing action, or a non-JSON frame.
    pub fn unroutable(code: ErrorCode, problem: &str) -> Self {
        Self::Error {
            code,
            message: format!(
                "{problem}. Valid actions: {}. Example: {EXAMPLE_FRAME}",
                Action::ALL.map(Action::name).join(", ")
            ),
            limit_bytes: None,
            valid_actions: Action::ALL
                .iter()
                .map(|action| action.name().to_owned())
                .collect(),
            example: Some(EXAMPLE_FRAME.to_owned()),
            retry_after_ms: None,
            action: None,
        }
    }

    /// A request over the connection's `allowance`: nothing was done.
    pub fn rate_limited(allowance: Allowance, rate: &Rate, retry_after_ms: u64) -> Self {
        let what = match allowance {
            Allowance::Messages => "too many messages",
            Allowance::History => "too many history requests",
        };
        let outcome = match allowance {
            Allowance::Messages => "nothing was sent",
            Allowance::History => "no page was read",
        };
        Self::Error {
            code: ErrorCode::RateLimited,
            message: format!(
                "{what}: at most {} a second, {} at once; {outcome}. Try again in {:.1} s",
                rate.per_second,
                rate.burst,
                retry_after_ms as f64 / 1000.0
            ),
            limit_bytes: None,
            valid_actions: Vec::new(),
            example: None,
            retry_after_ms: Some(retry_after_ms),
            action: Some(allowance.action().to_owned()),
        }
    }

    /// A frame over its client address's budget (the local stack's, every
    /// route together): nothing was done.
    pub fn address_rate_limited(per_second: u32, burst: u32, retry_after_ms: u64) -> Self {
        Self::Error {
            code: ErrorCode::RateLimited,
            message: format!(
                "too many frames from your address: at most {per_second} a second, {burst} at once, \
                 all its connections together; this one was not handled. Try again in {:.1} s",
                retry_after_ms as f64 / 1000.0
            ),
            limit_bytes: None,
            valid_actions: Vec::new(),
            example: None,
            retry_after_ms: Some(retry_after_ms),
            action: None,
        }
    }

    pub fn too_long(length: usize, limit: usize) -> Self {
        Self::Error {
            code: ErrorCode::MessageTooLong,
            message: format!("message is {length} bytes; the limit is {limit} bytes"),
            limit_bytes: Some(limit),
            valid_actions: Vec::new(),
            example: None,
            retry_after_ms: None,
            action: None,
        }
    }

    pub fn welcome(session: &Session, online: Vec<Member>, online_count: usize) -> Self {
        let id = &session.connection_id;
        let others = online_count.saturating_sub(1);
        Self::Welcome {
            message: format!(
                "Welcome to {}! You are {}. {}",
                session.room,
                shown(id, session.name.as_ref()),
                match others {
                    0 => "Nobody else is here yet.".to_owned(),
                    1 => "1 other person is here.".to_owned(),
                    n => format!("{n} other people are here."),
                }
            ),
            connection_id: id.clone(),
            name: session.name.clone(),
            connected_at: session.connected_at,
            room: session.room.clone(),
            online,
            online_count,
            moderator: session.moderator,
        }
    }

    /// Arrivals and departures in `room`, with the room as read after them
    /// (`now`: up to a page of members, and how many there are; `None` when
    /// it could not be read). A small room's frame lists every change and
    /// `message` names them, e.g. `Ada joined. Bob left after 84.877 s.`; a
    /// crowd's ([`is_crowd`]) lists a few of each, who is here, and counts.
    pub fn presence(
        room: &Room,
        mut joined: Vec<Member>,
        mut left: Vec<Departure>,
        now: Option<(Vec<Member>, usize)>,
    ) -> Self {
        let (joined_count, left_count) = (joined.len(), left.len());
        let online_count = now.as_ref().map(|(_, count)| *count);
        let (message, online) = if is_crowd(joined_count + left_count, online_count) {
            joined.truncate(PRESENCE_MAX_LISTED);
            left.truncate(PRESENCE_MAX_LISTED);
            let mut online = now.map(|(members, _)| members).unwrap_or_default();
            online.truncate(PRESENCE_MAX_LISTED);
            (
                crowd_message(joined_count, left_count, online_count),
                Some(online),
            )
        } else {
            (changes_message(&joined, &left), None)
        };
        Self::Presence {
            message,
            room: room.clone(),
            joined,
            left,
            joined_count,
            left_count,
            online_count,
            online,
        }
    }

    /// The human-readable `message` every frame has.
    pub fn message(&self) -> &str {
        match self {
            Self::Message { message, .. }
            | Self::History { message, .. }
            | Self::Pong { message }
            | Self::Error { message, .. }
            | Self::Welcome { message, .. }
            | Self::Presence { message, .. }
            | Self::Deleted { message, .. }
            | Self::Removed { message, .. }
            | Self::Moderated { message, .. } => message,
        }
    }

    /// The answer to a `before` that is not a cursor of this room's history.
    pub fn invalid_cursor() -> Self {
        Self::error(
            ErrorCode::InvalidCursor,
            "`before` must be the `cursor` of an earlier history page of this room",
        )
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with non-string
        // keys, no custom serializers.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"internal error"}"#.to_owned()
        })
    }
}

/// Whether a presence frame stops naming everyone: in a room of more than
/// [`PRESENCE_CROWD_SIZE`] members, or for more changes than
/// [`PRESENCE_MAX_LISTED`]. Its recipients then take who is here from its
/// `online` and `online_count`, so a frame stays small however many come
/// and go.
pub fn is_crowd(changes: usize, online_count: Option<usize>) -> bool {
    changes > PRESENCE_MAX_LISTED || online_count.is_some_and(|count| count > PRESENCE_CROWD_SIZE)
}

/// `Ada joined. Bob left after 84.877 s.`
fn changes_message(joined: &[Member], left: &[Departure]) -> String {
    let mut lines: Vec<String> = joined
        .iter()
        .map(|member| {
            format!(
                "{} joined.",
                shown(&member.connection_id, member.name.as_ref())
            )
        })
        .collect();
    lines.extend(left.iter().map(|departure| {
        let who = shown(&departure.connection_id, departure.name.as_ref());
        match &departure.removed {
            None => format!("{who} left after {:.3} s.", departure.duration_seconds),
            Some(removal) => {
                let what = if removal.banned_until.is_some() {
                    "banned"
                } else {
                    "removed"
                };
                match &removal.reason {
                    Some(reason) => format!("{who} was {what} by a moderator: {reason}"),
                    None => format!("{who} was {what} by a moderator."),
                }
            }
        }
    }));
    lines.join(" ")
}

/// `120 joined and 3 left; 4210 people are here.`
fn crowd_message(joined: usize, left: usize, online_count: Option<usize>) -> String {
    let changes = format!("{joined} joined and {left} left");
    match online_count {
        Some(1) => format!("{changes}; 1 person is here."),
        Some(count) => format!("{changes}; {count} people are here."),
        None => format!("{changes}."),
    }
}

/// How a person is shown in readable text: their name, else their
/// connection id.
fn shown<'a>(connection_id: &'a str, name: Option<&'a DisplayName>) -> &'a str {
    name.map_or(connection_id, DisplayName::as_str)
}

/// What a removed or banned person is told: by whom, until when, why.
fn removal_text(room: &Room, removal: &Removal) -> String {
    let mut text = match removal.banned_until {
        Some(until) => format!("A moderator banned you from {room} until {until}."),
        None => format!("A moderator removed you from {room}."),
    };
    if let Some(reason) = &removal.reason {
        text.push_str(&format!(" Reason: {reason}"));
    }
    text
}

/// How a deletion is told: by whom, in words.
fn deleted_by(by: DeletedBy) -> &'static str {
    match by {
        DeletedBy::Author => "its author",
        DeletedBy::Moderator => "a moderator",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn chat_frames_carry_the_contract_fields_and_a_readable_message() {
        let frame = ServerFrame::chat(&crate::records::Message::new(
            "m-1".into(),
            "L0SM9cOFvHcCIhw=".into(),
            Room::lobby(),
            "Hello".into(),
            "2026-11-28T00:13:36.123Z".parse().expect("a time"),
        ));
        let json: Value = serde_json::from_str(&frame.to_json()).expect("json");
        assert_eq!(json["type"], "message");
        assert_eq!(
            json["message"],
            "[2026-11-28T00:13:36.123Z] L0SM9cOFvHcCIhw=: Hello"
        );
        assert_eq!(json["message_id"], "m-1");
        assert_eq!(json["connection_id"], "L0SM9cOFvHcCIhw=");
        assert_eq!(json["text"], "Hello");
        assert_eq!(json["timestamp"], "2026-11-28T00:13:36.123Z");
        assert_eq!(json["room"], "lobby");
        let fields: Vec<_> = json
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            fields.len(),
            8,
            "storage-only fields (time_order, ttl) stay out: {fields:?}"
        );
    }

    #[test]
    fn pong_message_is_exactly_pong() {
        assert_eq!(
            ServerFrame::pong().to_json(),
            r#"{"type":"pong","message":"pong"}"#
        );
    }
}
