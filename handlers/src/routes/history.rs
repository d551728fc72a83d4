use tracing::{info, instrument};

use super::{RouteResult, WebSocketEvent, connection_id, log_failure, reply, span_id};
use crate::Chat;
use crate::admission::{Admission, admit};
use crate::cursor;
use crate::limits::{HISTORY_FRAME_BYTES, HISTORY_RATE};
use crate::protocol::{ErrorCode, ServerFrame, parse_history_request};
use crate::rate::Allowance;
use crate::records::Message;
use crate::room::Room;
use crate::store::HistoryKey;
use crate::time::Timestamp;

/// `history`: a page of the sender's room's messages, newest first, to the
/// sender alone, within its connection's allowance ([`HISTORY_RATE`]). A
/// two-way route: it always answers with a body.
#[instrument(name = "history", skip_all, fields(connection_id = span_id(&event)))]
pub(super) async fn history(chat: &Chat, event: WebSocketEvent) -> RouteResult {
    let id = connection_id(&event)?;
    let request = match parse_history_request(event.body.as_deref()) {
        Ok(request) => request,
        Err(frame) => return Ok(reply(200, Some(&frame))),
    };
    let now = Timestamp::from_epoch_millis(event.request_context.request_time_epoch)?;
    let admission = admit(chat, id, Allowance::History, Some(HISTORY_RATE), now).await;
    let room = match admission {
        Ok(Admission::Allowed(sender)) => sender.room,
        Ok(Admission::Refused(refusal)) => {
            info!("refused a history request over the connection's allowance");
            return Ok(reply(200, Some(&refusal)));
        }
        Ok(Admission::NoRow) => {
            info!("history asked by a connection without a row");
            return Ok(reply(200, Some(&not_connected())));
        }
        Err(failure) => {
            log_failure(&failure, "could not read the connection's room");
            return Ok(reply(500, Some(&unavailable())));
        }
    };
    let before = match request
        .before
        .as_deref()
        .map(|text| cursor::decode(text, &room))
    {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(why)) => {
            info!(?why, "refused a history cursor");
            return Ok(reply(200, Some(&ServerFrame::invalid_cursor())));
        }
    };
    match chat
        .store
        .history(&room, request.limit, before.as_ref())
        .await
    {
        Ok((messages, more)) => Ok(reply(200, Some(&page(&room, messages, more)))),
        Err(failure) => {
            log_failure(&failure, "could not read the history");
            Ok(reply(500, Some(&unavailable())))
        }
    }
}

/// The `history` frame for `messages` (newest first): as many as fit in one
/// API Gateway message; the cursor continues after the last one sent.
fn page(room: &Room, messages: Vec<Message>, more: bool) -> ServerFrame {
    // Room for the envelope: summary, room name, cursor, punctuation.
    let mut budget = HISTORY_FRAME_BYTES - 2 * 1024;
    let total = messages.len();
    let mut frames = Vec::with_capacity(total);
    let mut last = None;
    for message in messages {
        let frame = ServerFrame::chat(&message);
        let size = frame.to_json().len() + 1;
        if size > budget {
            break;
        }
        budget -= size;
        frames.push(frame);
        last = Some(message);
    }
    let cut_short = frames.len() < total;
    let cursor = match last {
        Some(message) if more || cut_short => Some(cursor::encode(&HistoryKey::of(&message))),
        _ => None,
    };
    ServerFrame::history(room, frames, cursor)
}

fn not_connected() -> ServerFrame {
    ServerFrame::error(
        ErrorCode::Internal,
        "This connection is no longer known to the server; reconnect to see the history.",
    )
}

fn unavailable() -> ServerFrame {
    ServerFrame::error(
        ErrorCode::Internal,
        "The server could not read the history; please try again.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn message(index: usize, bytes: usize) -> Message {
        Message::new(
            format!("m-{index:03}"),
            "alice".into(),
            Room::lobby(),
            "x".repeat(bytes),
            Timestamp::from_epoch_millis(1_795_824_816_000 - index as i64).expect("a time"),
        )
    }

    fn cursor_of(frame: &ServerFrame) -> (usize, Option<String>) {
        match frame {
            ServerFrame::History {
                messages, cursor, ..
            } => (messages.len(), cursor.clone()),
            other => panic!("a history frame, not {other:?}"),
        }
    }

    #[test]
    fn a_page_that_would_not_fit_in_one_message_ends_early_with_a_cursor() {
        // 100 messages of 8 KiB do not fit in 128 KB (each frame carries its
        // text twice: `text`, and within the readable `message`).
        let messages: Vec<Message> = (0..100).map(|i| message(i, 8 * 1024)).collect();
        let frame = page(&Room::lobby(), messages, false);
        assert!(frame.to_json().len() <= HISTORY_FRAME_BYTES);
        let (count, cursor) = cursor_of(&frame);
        assert!((5..100).contains(&count), "{count}");
        let key = cursor::decode(&cursor.expect("continues"), &Room::lobby()).expect("valid");
        assert_eq!(key.message_id, format!("m-{:03}", count - 1));
    }

    #[test]
    fn the_cursor_is_null_only_at_the_beginning_of_the_room() {
        let messages: Vec<Message> = (0..3).map(|i| message(i, 10)).collect();
        assert_eq!(
            cursor_of(&page(&Room::lobby(), messages.clone(), false)).1,
            None
        );
        assert!(cursor_of(&page(&Room::lobby(), messages, true)).1.is_some());
        assert_eq!(cursor_of(&page(&Room::lobby(), vec![], false)), (0, None));
    }
}
