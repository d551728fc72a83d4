//! Display names: what a person is called in the chat, chosen with
//! `?name=NAME` on connect. A name is never identity: two people may pick
//! the same one, and nothing checks it (signed-in identity is `user_id`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::DISPLAY_NAME_CHARS;

/// A trimmed display name of 1 to 32 characters, without control characters
/// or the formatting characters that reorder text around it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

/// Why a name was refused; the text is shown to the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("names are {min} to {max} characters once trimmed; this one has {0}", min = DISPLAY_NAME_CHARS.start(), max = DISPLAY_NAME_CHARS.end())]
    Length(usize),
    #[error("names cannot contain control characters (U+{0:04X})")]
    Control(u32),
    #[error("names cannot contain characters that reorder text (U+{0:04X})")]
    Bidi(u32),
    #[error("names cannot contain invisible characters (U+{0:04X})")]
    Invisible(u32),
    #[error(
        "names must be UTF-8: this one has bytes that are not (U+FFFD, the replacement character, stands for them)"
    )]
    NotUtf8,
    #[error("names need at least one visible character")]
    NothingVisible,
}

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, InvalidName> {
        let name = raw.trim();
        // Checked before the length, so a 10 KB name of controls says why.
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(InvalidName::Control(u32::from(c)));
        }
        if let Some(c) = name.chars().find(|c| reorders_text(*c)) {
            return Err(InvalidName::Bidi(u32::from(c)));
        }
        // `?name=%FF` reaches us decoded with U+FFFD in place of the bytes.
        if name.contains('\u{FFFD}') {
            return Err(InvalidName::NotUtf8);
        }
        if let Some(c) = name.chars().find(|c| invisible(*c)) {
            return Err(InvalidName::Invisible(u32::from(c)));
        }
        if name.chars().all(|c| c.is_whitespace() || joins(c)) && !name.is_empty() {
            return Err(InvalidName::NothingVisible);
        }
        let length = name.chars().count();
        if !DISPLAY_NAME_CHARS.contains(&length) {
            return Err(InvalidName::Length(length));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Bidirectional embeddings, overrides, isolates and marks: they let a name
/// make the text after it read differently.
fn reorders_text(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Characters that show nothing and do nothing a name needs: zero-width
/// space, word joiner, byte order mark, soft hyphen, Mongolian vowel
/// separator, and the invisible math operators. (The zero-width joiner and
/// non-joiner stay allowed: emoji sequences and several scripts need them,
/// though never on their own.)
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    )
}

/// The zero-width joiner and non-joiner.
fn joins(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}')
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DisplayName {
    type Error = InvalidName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name)
    }
}

impl From<DisplayName> for String {
    fn from(name: DisplayName) -> Self {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_may_be_any_script() {
        for (raw, kept) in [
            ("  Ada  ", "Ada"),
            ("Zoë Ω 李", "Zoë Ω 李"),
            ("<b>markup</b>", "<b>markup</b>"),
            ("🙂", "🙂"),
        ] {
            assert_eq!(
                DisplayName::parse(raw).map(String::from).as_deref(),
                Ok(kept)
            );
        }
        let longest = "n".repeat(32);
        assert!(DisplayName::parse(&longest).is_ok());
    }

    #[test]
    fn hostile_names_are_refused_with_a_reason() {
        assert_eq!(DisplayName::parse("   "), Err(InvalidName::Length(0)));
        assert_eq!(
            DisplayName::parse(&"n".repeat(33)),
            Err(InvalidName::Length(33))
        );
        assert_eq!(
            DisplayName::parse(&"x".repeat(10 * 1024)),
            Err(InvalidName::Length(10 * 1024))
        );
        assert_eq!(DisplayName::parse("a\u{0}b"), Err(InvalidName::Control(0)));
        assert_eq!(DisplayName::parse("a\nb"), Err(InvalidName::Control(10)));
        assert_eq!(
            DisplayName::parse("a\u{1b}[31mred"),
            Err(InvalidName::Control(0x1b))
        );
        assert_eq!(
            DisplayName::parse("\u{202E}evil"),
            Err(InvalidName::Bidi(0x202E))
        );
        assert_eq!(
            DisplayName::parse("a\u{2067}b"),
            Err(InvalidName::Bidi(0x2067))
        );
        assert!(InvalidName::Bidi(0x202E).to_string().contains("U+202E"));
    }

    #[test]
    fn undecodable_and_invisible_names_are_refused_and_joiners_kept_in_emoji() {
        // `?name=%FF`, decoded.
        assert_eq!(DisplayName::parse("\u{FFFD}"), Err(InvalidName::NotUtf8));
        assert_eq!(DisplayName::parse("a\u{FFFD}b"), Err(InvalidName::NotUtf8));
        for (raw, code) in [
            ("a\u{200B}b", 0x200B),
            ("\u{FEFF}Ada", 0xFEFF),
            ("Ad\u{2060}a", 0x2060),
            ("A\u{00AD}da", 0xAD),
        ] {
            assert_eq!(
                DisplayName::parse(raw),
                Err(InvalidName::Invisible(code)),
                "{raw:?}"
            );
        }
        assert_eq!(
            DisplayName::parse("\u{200D}"),
            Err(InvalidName::NothingVisible)
        );
        let family = "👨\u{200D}👩\u{200D}👧";
        assert_eq!(
            DisplayName::parse(family).map(String::from).as_deref(),
            Ok(family)
        );
    }
}
