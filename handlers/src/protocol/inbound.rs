//! What a client sends, read: the frame's `action` for routing, each
//! route's body, and `$connect`'s `?room=` and `?name=`; or the `error`
//! frame that refuses it, saying why.

use serde_json::Value;

use super::{Action, ErrorCode, LEGACY_HEARTBEAT, ServerFrame};
use crate::limits::{
    BAN_MINUTES_RANGE, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, MAX_CURSOR_CHARS,
    MAX_MODERATION_REASON_CHARS, MAX_TARGET_ID_CHARS,
};
use crate::name::DisplayName;
use crate::room::Room;

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
        // No minutes, none, fewer than none, a fraction, more than a year.
        let bans = ["0", "-1", "2.5", "525601"]
            .map(|minutes| format!(r#"{{"action":"ban","user_id":"u","minutes":{minutes}}}"#));
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
            (Action::Ban, &bans[0], "minutes"),
            (Action::Ban, &bans[1], "minutes"),
            (Action::Ban, &bans[2], "minutes"),
            (Action::Ban, &bans[3], "minutes"),
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
