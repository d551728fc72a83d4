//! History cursors: opaque to clients, they carry where a page ended in the
//! room's history index. A cursor is only honoured for the room it came
//! from, so a forged one can at most page through the client's own room.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::limits::MAX_CURSOR_CHARS;
use crate::room::Room;
use crate::store::HistoryKey;
use crate::time::Timestamp;

/// The cursor that continues after `key`.
pub fn encode(key: &HistoryKey) -> String {
    // Serializing a struct of strings cannot fail.
    let json = serde_json::to_vec(key).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Why a cursor was refused (never shown in detail: all are "not a cursor
/// of this room").
#[derive(Debug, PartialEq, Eq)]
pub enum BadCursor {
    TooLong,
    NotBase64,
    NotAKey,
    OtherRoom,
    Inconsistent,
}

/// The key a cursor carries, if it is one this room's history gave out.
pub fn decode(cursor: &str, room: &Room) -> Result<HistoryKey, BadCursor> {
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(BadCursor::TooLong);
    }
    let json = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| BadCursor::NotBase64)?;
    let key: HistoryKey = serde_json::from_slice(&json).map_err(|_| BadCursor::NotAKey)?;
    if &key.room != room {
        return Err(BadCursor::OtherRoom);
    }
    // `time_order` is `timestamp#message_id`, as the store writes it.
    let consistent = key
        .time_order
        .split_once('#')
        .is_some_and(|(time, id)| id == key.message_id && time.parse::<Timestamp>().is_ok());
    if !consistent {
        return Err(BadCursor::Inconsistent);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(room: &str) -> HistoryKey {
        HistoryKey {
            room: Room::parse(room).expect("a room"),
            time_order: "2026-11-28T00:13:36.123Z#m-1".into(),
            message_id: "m-1".into(),
        }
    }

    #[test]
    fn a_cursor_round_trips_in_its_own_room_only() {
        let lobby = Room::lobby();
        let cursor = encode(&key("lobby"));
        assert!(
            cursor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(decode(&cursor, &lobby), Ok(key("lobby")));
        let other = Room::parse("other").expect("a room");
        assert_eq!(decode(&cursor, &other), Err(BadCursor::OtherRoom));
    }

    #[test]
    fn forged_and_truncated_cursors_are_refused() {
        let lobby = Room::lobby();
        let cursor = encode(&key("lobby"));
        for cut in 1..cursor.len() {
            assert!(
                decode(&cursor[..cut], &lobby).is_err(),
                "truncated to {cut}"
            );
        }
        assert_eq!(decode("not base64!", &lobby), Err(BadCursor::NotBase64));
        assert_eq!(decode(&"A".repeat(600), &lobby), Err(BadCursor::TooLong));
        let forged = HistoryKey {
            message_id: "m-2".into(),
            ..key("lobby")
        };
        assert_eq!(
            decode(&encode(&forged), &lobby),
            Err(BadCursor::Inconsistent)
        );
        let bad_room = URL_SAFE_NO_PAD
            .encode(r#"{"room":"a b","time_order":"2026-11-28T00:13:36.123Z#m","message_id":"m"}"#);
        assert_eq!(decode(&bad_room, &lobby), Err(BadCursor::NotAKey));
        assert_eq!(decode("", &lobby), Err(BadCursor::NotAKey));
    }
}
