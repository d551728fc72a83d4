//! The wire protocol: what clients send, and the frames the server sends back.
//! Every server frame is a JSON object with a `type` and a human-readable
//! `message`, so `wscat` users and the tutorial's web client (which prints
//! `data.message`) read them well. docs/protocol.md is the full reference.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::limits::{
    BAN_MINUTES_RANGE, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, MAX_CURSOR_CHARS,
    MAX_MODERATION_REASON_CHARS, MAX_TARGET_ID_CHARS,
};
use crate::name::DisplayName;
use crate::rate::{Allowance, Rate};
use crate::records::{DeletedBy, Departure, Member, Removal, Session};
use crate::room::Room;
use crate::time::Timestamp;

/// The example shown to a client that sent something we do not understand.
pub const EXAMPLE_FRAME: &str = r#"{"action":"sendmessage","message":"Hello"}"#;
/// The tutorial client's heartbeat text, answered with a pong.
pub const LEGACY_HEARTBEAT: &str = "ping";

/// The routes of the chat's WebSocket API. infra/serverless.yml declares the
/// same routes (a test checks it); the local gateway dispatches on this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Connect,
    Disconnect,
    SendMessage,
    History,
    /// The three moderation routes, one function (routes/moderate.rs).
    Remove,
    Ban,
    Delete,
    Default,
}

impl Route {
    pub const ALL: [Self; 8] = [
        Self::Connect,
        Self::Disconnect,
        Self::SendMessage,
        Self::History,
        Self::Remove,
        Self::Ban,
        Self::Delete,
        Self::Default,
    ];

    /// The route key, as API Gateway names it.
    pub fn key(self) -> &'static str {
        match self {
            Self::Connect => "$connect",
            Self::Disconnect => "$disconnect",
            Self::SendMessage => "sendmessage",
            Self::History => "history",
            Self::Remove => "remove",
            Self::Ban => "ban",
            Self::Delete => "delete",
            Self::Default => "$default",
        }
    }

    /// Whether the route has a route response, so the handler's body goes
    /// back to the caller. Only routes that always answer with a body: on a
    /// two-way route API Gateway sends an absent body as an empty frame.
    pub fn is_two_way(self) -> bool {
        matches!(
            self,
            Self::History | Self::Remove | Self::Ban | Self::Delete | Self::Default
        )
    }

    /// The route API Gateway's route selection (`$request.body.action`)
    /// picks for a frame: the custom route named by a known action, else
    /// `$default`.
    pub fn select(body: &str) -> Self {
        match Inbound::parse(Some(body)) {
            Inbound::Object {
                action: Some(action),
                ..
            } => Action::from_name(&action).map_or(Self::Default, Action::route),
            _ => Self::Default,
        }
    }
}

/// The actions a client can name in `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Chat: `{"action":"sendmessage","message":"..."}`.
    SendMessage,
    /// Heartbeat: `{"action":"ping"}`, answered with a pong.
    Ping,
    /// A page of the room's earlier messages:
    /// `{"action":"history","limit":50,"before":"<cursor>"}`.
    History,
    /// A moderator closes a connection of their room:
    /// `{"action":"remove","connection_id":"…","reason":"…"}`.
    Remove,
    /// A moderator bans a user from their room for a while:
    /// `{"action":"ban","user_id":"…","minutes":60,"reason":"…"}`.
    Ban,
    /// A moderator (or its author) deletes a message:
    /// `{"action":"delete","message_id":"…"}`.
    Delete,
}

impl Action {
    pub const ALL: [Self; 6] = [
        Self::SendMessage,
        Self::Ping,
        Self::History,
        Self::Remove,
        Self::Ban,
        Self::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::SendMessage => "sendmessage",
            Self::Ping => "ping",
            Self::History => "history",
            Self::Remove => "remove",
            Self::Ban => "ban",
            Self::Delete => "delete",
        }
    }

    /// Case-sensitive, as API Gateway's route selection is.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.name() == name)
    }

    /// The route that handles it: its own custom route, or `$default`.
    pub fn route(self) -> Route {
        match self {
            Self::SendMessage => Route::SendMessage,
            Self::Ping => Route::Default,
            Self::History => Route::History,
            Self::Remove => Route::Remove,
            Self::Ban => Route::Ban,
            Self::Delete => Route::Delete,
        }
    }
}

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
    /// Who joined and who left the room since the last presence frame: one
    /// frame per stream batch and recipient, however many came and went.
    Presence {
        message: String,
        room: Room,
        joined: Vec<Member>,
        left: Vec<Departure>,
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
        let mut message = match removal.banned_until {
            Some(until) => format!("A moderator banned you from {room} until {until}."),
            None => format!("A moderator removed you from {room}."),
        };
        if let Some(reason) = &removal.reason {
            message.push_str(&format!(" Reason: {reason}"));
        }
        Self::Removed {
            message,
            room: room.clone(),
            reason: removal.reason.clone(),
            banned_until: removal.banned_until,
        }
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

    /// Arrivals and departures in `room`; `message` names them, e.g.
    /// `Ada joined. Bob left after 84.877 s.`
    pub fn presence(room: &Room, joined: Vec<Member>, left: Vec<Departure>) -> Self {
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
        Self::Presence {
            message: lines.join(" "),
            room: room.clone(),
            joined,
            left,
        }
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

/// How a person is shown in readable text: their name, else their
/// connection id.
fn shown<'a>(connection_id: &'a str, name: Option<&'a DisplayName>) -> &'a str {
    name.map_or(connection_id, DisplayName::as_str)
}

/// A client frame, as far as routing is concerned: `$request.body.action`.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// Not a JSON object: what it is instead, for the client.
    NotJson(String),
    /// A JSON object; `action` when it is a string.
    Object {
        action: Option<String>,
        body: serde_json::Map<String, Value>,
    },
}

impl Inbound {
    pub fn parse(body: Option<&str>) -> Self {
        let problem = match body.map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(body))) => {
                return Self::Object {
                    action: body
                        .get("action")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    body,
                };
            }
            None => "the frame is empty".to_owned(),
            // serde_json says what and where: "number out of range at line 1
            // column 12", "expected value at line 1 column 1".
            Some(Err(error)) => format!("the frame is not valid JSON ({error})"),
            Some(Ok(other)) => format!("the frame is JSON, but {}", kind_of(&other)),
        };
        Self::NotJson(format!("Frames must be JSON objects: {problem}"))
    }

    /// The object, or the `invalid_json` error a route answers instead.
    fn into_object(self) -> Result<serde_json::Map<String, Value>, Rejection> {
        match self {
            Self::Object { body, .. } => Ok(body),
            Self::NotJson(problem) => Err(Box::new(ServerFrame::unroutable(
                ErrorCode::InvalidJson,
                &problem,
            ))),
        }
    }
}

/// What a JSON value that is not an object is, for an error message.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "an array, not an object",
        Value::String(_) => "a string, not an object",
        Value::Number(_) => "a number, not an object",
        Value::Bool(_) => "a boolean, not an object",
        Value::Null => "null, not an object",
        Value::Object(_) => "an object",
    }
}

/// Why a client frame was refused: the `error` frame that says so (boxed:
/// frames are large, refusals rare).
pub type Rejection = Box<ServerFrame>;

/// A `sendmessage` body, checked against the limits.
#[derive(Debug, PartialEq, Eq)]
pub enum SendMessage {
    /// The tutorial client's heartbeat: answered with a pong, never stored.
    Heartbeat,
    Chat(String),
}

/// Validates a `sendmessage` frame's `message`, or says what is wrong with it.
pub fn validate_send_message(
    body: Option<&str>,
    max_message_bytes: usize,
) -> Result<SendMessage, Rejection> {
    let body = Inbound::parse(body).into_object()?;
    let message = match body.get("message") {
        Some(Value::String(message)) => message,
        Some(_) => {
            return Err(Box::new(ServerFrame::error(
                ErrorCode::InvalidMessage,
                "`message` must be a string, e.g. {\"action\":\"sendmessage\",\"message\":\"Hello\"}",
            )));
        }
        None => {
            return Err(Box::new(ServerFrame::error(
                ErrorCode::InvalidMessage,
                "`message` is missing, e.g. {\"action\":\"sendmessage\",\"message\":\"Hello\"}",
            )));
        }
    };
    if message == LEGACY_HEARTBEAT {
        return Ok(SendMessage::Heartbeat);
    }
    if message.trim().is_empty() {
        return Err(Box::new(ServerFrame::error(
            ErrorCode::EmptyMessage,
            "message is empty",
        )));
    }
    if message.len() > max_message_bytes {
        return Err(Box::new(ServerFrame::too_long(
            message.len(),
            max_message_bytes,
        )));
    }
    Ok(SendMessage::Chat(message.clone()))
}

/// Where and as whom a connection joins: `?room=` and `?name=` on connect.
#[derive(Debug, PartialEq, Eq)]
pub struct Joining {
    pub room: Room,
    pub name: Option<DisplayName>,
}

/// Checks the handshake's `room` (default [`Room::LOBBY`]) and `name`.
pub fn parse_joining(room: Option<&str>, name: Option<&str>) -> Result<Joining, Rejection> {
    let room = match room.map(Room::parse) {
        None => Room::lobby(),
        Some(Ok(room)) => room,
        Some(Err(why)) => {
            return Err(Box::new(ServerFrame::error(
                ErrorCode::InvalidRoom,
                format!("?room= is not a room name: {why}"),
            )));
        }
    };
    let name = match name.map(DisplayName::parse) {
        None => None,
        Some(Ok(name)) => Some(name),
        Some(Err(why)) => {
            return Err(Box::new(ServerFrame::error(
                ErrorCode::InvalidName,
                format!("?name= is not a display name: {why}"),
            )));
        }
    };
    Ok(Joining { room, name })
}

/// How a deletion is told: by whom, in words.
fn deleted_by(by: DeletedBy) -> &'static str {
    match by {
        DeletedBy::Author => "its author",
        DeletedBy::Moderator => "a moderator",
    }
}

/// A moderation frame, checked (routes/moderate.rs carries it out).
#[derive(Debug, PartialEq, Eq)]
pub enum Moderation {
    Remove {
        connection_id: String,
        reason: Option<String>,
    },
    Ban {
        target: BanTarget,
        minutes: u64,
        reason: Option<String>,
    },
    Delete {
        message_id: String,
    },
}

/// Whom a ban names: a user, or a connection whose user is meant.
#[derive(Debug, PartialEq, Eq)]
pub enum BanTarget {
    User(String),
    Connection(String),
}

/// Reads a `remove`, `ban` or `delete` frame; anything missing or
/// malformed is an `invalid_request` naming the field.
pub fn parse_moderation(action: Action, body: Option<&str>) -> Result<Moderation, Rejection> {
    let body = Inbound::parse(body).into_object()?;
    match action {
        Action::Remove => Ok(Moderation::Remove {
            connection_id: required_id(&body, "connection_id", action)?,
            reason: reason(&body)?,
        }),
        Action::Ban => {
            let target = match (body.get("user_id"), body.get("connection_id")) {
                (Some(_), Some(_)) => {
                    return Err(invalid_request(
                        "name either `user_id` or `connection_id`, not both",
                        action,
                    ));
                }
                (Some(_), None) => BanTarget::User(required_id(&body, "user_id", action)?),
                (None, Some(_)) => {
                    BanTarget::Connection(required_id(&body, "connection_id", action)?)
                }
                (None, None) => {
                    return Err(invalid_request(
                        "`user_id` (or `connection_id`) is missing",
                        action,
                    ));
                }
            };
            let minutes = body
                .get("minutes")
                .and_then(Value::as_u64)
                .filter(|minutes| BAN_MINUTES_RANGE.contains(minutes))
                .ok_or_else(|| {
                    invalid_request(
                        &format!(
                            "`minutes` must be a whole number from {} to {} (a year)",
                            BAN_MINUTES_RANGE.start(),
                            BAN_MINUTES_RANGE.end()
                        ),
                        action,
                    )
                })?;
            Ok(Moderation::Ban {
                target,
                minutes,
                reason: reason(&body)?,
            })
        }
        Action::Delete => Ok(Moderation::Delete {
            message_id: required_id(&body, "message_id", action)?,
        }),
        Action::SendMessage | Action::Ping | Action::History => {
            Err(invalid_request("not a moderation action", action))
        }
    }
}

/// An example of each moderation frame, for error messages.
fn moderation_example(action: Action) -> &'static str {
    match action {
        Action::Ban => r#"{"action":"ban","user_id":"…","minutes":60,"reason":"spam"}"#,
        Action::Delete => r#"{"action":"delete","message_id":"…"}"#,
        _ => r#"{"action":"remove","connection_id":"…","reason":"spam"}"#,
    }
}

fn invalid_request(problem: &str, action: Action) -> Rejection {
    Box::new(ServerFrame::error(
        ErrorCode::InvalidRequest,
        format!("{problem}, e.g. {}", moderation_example(action)),
    ))
}

/// A non-empty id of at most [`MAX_TARGET_ID_CHARS`].
fn required_id(
    body: &serde_json::Map<String, Value>,
    field: &str,
    action: Action,
) -> Result<String, Rejection> {
    match body.get(field).and_then(Value::as_str).map(str::trim) {
        Some(id) if !id.is_empty() && id.chars().count() <= MAX_TARGET_ID_CHARS => {
            Ok(id.to_owned())
        }
        Some(id) if !id.is_empty() => Err(invalid_request(
            &format!("`{field}` is longer than {MAX_TARGET_ID_CHARS} characters"),
            action,
        )),
        _ => Err(invalid_request(
            &format!("`{field}` must be a non-empty string"),
            action,
        )),
    }
}

/// The optional `reason`: trimmed, at most [`MAX_MODERATION_REASON_CHARS`],
/// no control characters (it is shown to the room).
fn reason(body: &serde_json::Map<String, Value>) -> Result<Option<String>, Rejection> {
    let problem = |text: &str| {
        Box::new(ServerFrame::error(
            ErrorCode::InvalidRequest,
            text.to_owned(),
        ))
    };
    match body.get("reason") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(reason)) => {
            let reason = reason.trim();
            if reason.chars().count() > MAX_MODERATION_REASON_CHARS {
                Err(problem(&format!(
                    "`reason` is longer than {MAX_MODERATION_REASON_CHARS} characters"
                )))
            } else if reason.chars().any(char::is_control) {
                Err(problem("`reason` may not hold control characters"))
            } else {
                Ok(Some(reason.to_owned()).filter(|reason| !reason.is_empty()))
            }
        }
        Some(_) => Err(problem("`reason` must be a string")),
    }
}

/// A `history` request, checked.
#[derive(Debug, PartialEq, Eq)]
pub struct HistoryRequest {
    /// 1 to [`HISTORY_MAX_LIMIT`]: larger values are capped.
    pub limit: usize,
    /// The opaque cursor of an earlier page, unchecked.
    pub before: Option<String>,
}

/// Reads `limit` (default [`HISTORY_DEFAULT_LIMIT`], capped at
/// [`HISTORY_MAX_LIMIT`]) and `before` from a `history` frame.
pub fn parse_history_request(body: Option<&str>) -> Result<HistoryRequest, Rejection> {
    let body = Inbound::parse(body).into_object()?;
    let limit = match body.get("limit") {
        None | Some(Value::Null) => HISTORY_DEFAULT_LIMIT,
        Some(Value::Number(number)) => match number.as_u64() {
            Some(n) if n >= 1 => usize::try_from(n)
                .unwrap_or(HISTORY_MAX_LIMIT)
                .min(HISTORY_MAX_LIMIT),
            _ => return Err(Box::new(invalid_limit())),
        },
        Some(_) => return Err(Box::new(invalid_limit())),
    };
    let before = match body.get("before") {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) if cursor.len() <= MAX_CURSOR_CHARS => Some(cursor.clone()),
        Some(_) => return Err(Box::new(ServerFrame::invalid_cursor())),
    };
    Ok(HistoryRequest { limit, before })
}

fn invalid_limit() -> ServerFrame {
    ServerFrame::error(
        ErrorCode::InvalidLimit,
        format!(
            "`limit` must be a whole number from 1 (at most {HISTORY_MAX_LIMIT} are sent), e.g. {{\"action\":\"history\",\"limit\":20}}"
        ),
    )
}

impl ServerFrame {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(frame: impl std::ops::Deref<Target = ServerFrame>) -> ErrorCode {
        match &*frame {
            ServerFrame::Error { code, .. } => *code,
            other => panic!("expected an error frame, got {other:?}"),
        }
    }

    #[test]
    fn accepts_the_tutorials_frame() {
        assert_eq!(
            validate_send_message(
                Some(r#"{"action":"sendmessage","message":"Hello, WebSocket!"}"#),
                8192
            ),
            Ok(SendMessage::Chat("Hello, WebSocket!".into()))
        );
    }

    #[test]
    fn the_legacy_heartbeat_is_not_a_chat_message() {
        assert_eq!(
            validate_send_message(Some(r#"{"action":"sendmessage","message":"ping"}"#), 8192),
            Ok(SendMessage::Heartbeat)
        );
    }

    #[test]
    fn rejects_bad_messages_with_a_reason() {
        let cases = [
            (r#"{"action":"sendmessage"}"#, ErrorCode::InvalidMessage),
            (
                r#"{"action":"sendmessage","message":42}"#,
                ErrorCode::InvalidMessage,
            ),
            (
                r#"{"action":"sendmessage","message":"  \n\t "}"#,
                ErrorCode::EmptyMessage,
            ),
            (
                r#"{"action":"sendmessage","message":""}"#,
                ErrorCode::EmptyMessage,
            ),
            ("not json", ErrorCode::InvalidJson),
        ];
        for (body, expected) in cases {
            let frame = validate_send_message(Some(body), 8192).expect_err(body);
            assert_eq!(code_of(frame), expected, "{body}");
        }
    }

    #[test]
    fn the_limit_counts_utf8_bytes_and_is_inclusive() {
        let at_limit = "é".repeat(4); // 8 bytes
        let body = format!(r#"{{"action":"sendmessage","message":"{at_limit}"}}"#);
        assert!(validate_send_message(Some(&body), 8).is_ok());
        let over = format!(r#"{{"action":"sendmessage","message":"{at_limit}a"}}"#);
        let frame = validate_send_message(Some(&over), 8).expect_err("over the limit");
        assert_eq!(
            *frame,
            ServerFrame::Error {
                code: ErrorCode::MessageTooLong,
                message: "message is 9 bytes; the limit is 8 bytes".into(),
                limit_bytes: Some(8),
                valid_actions: vec![],
                example: None,
                retry_after_ms: None,
                action: None,
            }
        );
    }

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
    fn history_requests_take_a_limit_capped_at_100_and_an_optional_cursor() {
        let parse = |body: &str| parse_history_request(Some(body));
        assert_eq!(
            parse(r#"{"action":"history"}"#),
            Ok(HistoryRequest {
                limit: 50,
                before: None
            })
        );
        assert_eq!(
            parse(r#"{"action":"history","limit":1000,"before":"abc"}"#),
            Ok(HistoryRequest {
                limit: 100,
                before: Some("abc".into())
            })
        );
        for bad in [
            r#"{"action":"history","limit":0}"#,
            r#"{"action":"history","limit":-3}"#,
            r#"{"action":"history","limit":2.5}"#,
            r#"{"action":"history","limit":"10"}"#,
        ] {
            assert_eq!(
                code_of(parse(bad).expect_err(bad)),
                ErrorCode::InvalidLimit,
                "{bad}"
            );
        }
        for bad in [
            r#"{"action":"history","before":7}"#,
            &format!(r#"{{"action":"history","before":"{}"}}"#, "a".repeat(513)),
        ] {
            assert_eq!(
                code_of(parse(bad).expect_err(bad)),
                ErrorCode::InvalidCursor,
                "{bad}"
            );
        }
        assert_eq!(
            code_of(parse("[]").expect_err("[]")),
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn moderation_frames_are_read_or_refused_naming_the_field() {
        let parse = |action, body: &str| parse_moderation(action, Some(body));
        assert_eq!(
            parse(
                Action::Remove,
                r#"{"action":"remove","connection_id":" c-1 ","reason":"  spam  "}"#
            ),
            Ok(Moderation::Remove {
                connection_id: "c-1".into(),
                reason: Some("spam".into())
            })
        );
        assert_eq!(
            parse(
                Action::Ban,
                r#"{"action":"ban","connection_id":"c-1","minutes":60,"reason":""}"#
            ),
            Ok(Moderation::Ban {
                target: BanTarget::Connection("c-1".into()),
                minutes: 60,
                reason: None
            })
        );
        assert_eq!(
            parse(Action::Delete, r#"{"action":"delete","message_id":"m-1"}"#),
            Ok(Moderation::Delete {
                message_id: "m-1".into()
            })
        );
        let too_long = format!(
            r#"{{"action":"remove","connection_id":"c","reason":"{}"}}"#,
            "é".repeat(MAX_MODERATION_REASON_CHARS + 1)
        );
        let long_id = format!(
            r#"{{"action":"delete","message_id":"{}"}}"#,
            "m".repeat(MAX_TARGET_ID_CHARS + 1)
        );
        for (action, bad, field) in [
            (Action::Remove, r#"{"action":"remove"}"#, "connection_id"),
            (
                Action::Remove,
                r#"{"action":"remove","connection_id":""}"#,
                "connection_id",
            ),
            (Action::Remove, too_long.as_str(), "reason"),
            (
                Action::Remove,
                r#"{"action":"remove","connection_id":"c","reason":"a\u0007b"}"#,
                "reason",
            ),
            (
                Action::Remove,
                r#"{"action":"remove","connection_id":"c","reason":7}"#,
                "reason",
            ),
            (Action::Ban, r#"{"action":"ban","minutes":5}"#, "user_id"),
            (
                Action::Ban,
                r#"{"action":"ban","user_id":"u","connection_id":"c","minutes":5}"#,
                "not both",
            ),
            (Action::Ban, r#"{"action":"ban","user_id":"u"}"#, "minutes"),
            (
                Action::Ban,
                r#"{"action":"ban","user_id":"u","minutes":0}"#,
                "minutes",
            ),
            (
                Action::Ban,
                r#"{"action":"ban","user_id":"u","minutes":-1}"#,
                "minutes",
            ),
            (
                Action::Ban,
                r#"{"action":"ban","user_id":"u","minutes":2.5}"#,
                "minutes",
            ),
            (
                Action::Ban,
                r#"{"action":"ban","user_id":"u","minutes":525601}"#,
                "minutes",
            ),
            (Action::Delete, long_id.as_str(), "message_id"),
        ] {
            let frame = parse(action, bad).expect_err(bad);
            assert_eq!(code_of(&*frame), ErrorCode::InvalidRequest, "{bad}");
            assert!(
                frame.message().contains(field),
                "{bad}: {}",
                frame.message()
            );
        }
        assert_eq!(
            code_of(parse(Action::Delete, "nope").expect_err("not JSON")),
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn pong_message_is_exactly_pong() {
        assert_eq!(
            ServerFrame::pong().to_json(),
            r#"{"type":"pong","message":"pong"}"#
        );
    }

    #[test]
    fn route_selection_follows_the_action_field_case_sensitively() {
        let cases = [
            (
                r#"{"action":"sendmessage","message":"hi"}"#,
                Route::SendMessage,
            ),
            (r#"{"action":"ping"}"#, Route::Default),
            (r#"{"action":"SendMessage"}"#, Route::Default),
            (r#"{"action":7}"#, Route::Default),
            (r#"["sendmessage"]"#, Route::Default),
            ("sendmessage", Route::Default),
            ("", Route::Default),
        ];
        for (body, route) in cases {
            assert_eq!(Route::select(body), route, "{body}");
        }
    }

    #[test]
    fn route_keys_are_api_gateways_and_unique() {
        let keys: std::collections::HashSet<_> = Route::ALL.map(Route::key).into();
        assert_eq!(keys.len(), Route::ALL.len());
        assert!(keys.contains("$connect") && keys.contains("$default"));
        for action in Action::ALL {
            assert_eq!(Action::from_name(action.name()), Some(action));
        }
    }

    #[test]
    fn routing_reads_action_only_when_it_is_a_string() {
        assert_eq!(
            Inbound::parse(Some("[1,2]")),
            Inbound::NotJson(
                "Frames must be JSON objects: the frame is JSON, but an array, not an object"
                    .into()
            )
        );
        assert_eq!(
            Inbound::parse(None),
            Inbound::NotJson("Frames must be JSON objects: the frame is empty".into())
        );
        // An object whose number JSON cannot hold says so, and where.
        let Inbound::NotJson(problem) =
            Inbound::parse(Some(r#"{"action":"sendmessage","n":1e309}"#))
        else {
            panic!("1e309 does not parse");
        };
        assert!(
            problem.contains("number out of range at line 1 column"),
            "{problem}"
        );
        let Inbound::Object { action, .. } = Inbound::parse(Some(r#"{"action":7}"#)) else {
            panic!("an object");
        };
        assert_eq!(action, None);
    }
}
