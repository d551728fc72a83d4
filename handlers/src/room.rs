//! Rooms: every connection, session and message belongs to one, chosen with
//! `?room=NAME` on connect (default [`Room::LOBBY`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::ROOM_NAME_CHARS;

/// A room name: 1 to 64 ASCII letters, digits, `-` and `_`. Case matters
/// (`Lobby` is not `lobby`), as it does for route keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Room(String);

/// Why a room name was refused; the text is shown to the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRoom {
    #[error("room names are {min} to {max} characters; this one has {0}", min = ROOM_NAME_CHARS.start(), max = ROOM_NAME_CHARS.end())]
    Length(usize),
    #[error("room names use only letters A-Z and a-z, digits, '-' and '_'")]
    Characters,
}

impl Room {
    /// Where a connection without `?room=` goes: the tutorial's one chat.
    pub const LOBBY: &'static str = "lobby";

    pub fn lobby() -> Self {
        Self(Self::LOBBY.to_owned())
    }

    pub fn parse(name: &str) -> Result<Self, InvalidRoom> {
        let length = name.chars().count();
        if !ROOM_NAME_CHARS.contains(&length) {
            return Err(InvalidRoom::Length(length));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(InvalidRoom::Characters);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Room {
    fn default() -> Self {
        Self::lobby()
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Room {
    type Error = InvalidRoom;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name)
    }
}

impl From<Room> for String {
    fn from(room: Room) -> Self {
        room.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_1_to_64_safe_characters_are_rooms() {
        for name in ["lobby", "a", "Team-7_b", &"x".repeat(64)] {
            assert_eq!(Room::parse(name).map(String::from).as_deref(), Ok(name));
        }
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        assert_eq!(Room::parse(""), Err(InvalidRoom::Length(0)));
        assert_eq!(Room::parse(&"x".repeat(65)), Err(InvalidRoom::Length(65)));
        for hostile in [
            "a b",
            "<script>",
            "lobby/../x",
            "caf\u{e9}",
            "a\u{0}b",
            "\u{202e}evil",
            "a#b",
            "lobby\n",
        ] {
            assert_eq!(
                Room::parse(hostile),
                Err(InvalidRoom::Characters),
                "{hostile:?}"
            );
        }
        assert!(
            InvalidRoom::Length(0)
                .to_string()
                .contains("1 to 64 characters")
        );
    }

    #[test]
    fn stored_rooms_are_checked_when_read() {
        assert!(serde_json::from_str::<Room>(r#""lobby""#).is_ok());
        assert!(serde_json::from_str::<Room>(r#""no spaces""#).is_err());
    }
}
