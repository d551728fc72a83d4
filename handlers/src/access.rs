//! Who may join which room, and who may moderate it: the rooms and roles
//! claims of a verified token, and the deployment's rule for rooms a claim
//! does not name. Only with sign-in on: without it every room is open to
//! anyone who knows its name (docs/security.md).
//!
//! The authorizer reads the claims ([`Grants::from_claims`]) and passes them
//! on in its context ([`Grants::to_context`]); `$connect` decides with
//! [`RoomAccess::admits`], the moderation routes read the moderator flag
//! back from the same context. One decision, in one place, on AWS and
//! locally.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::limits::{MAX_ROOM_PATTERNS, ROOM_NAME_CHARS};
use crate::room::Room;

/// The claim listing the rooms a token's holder may join, unless configured.
pub const DEFAULT_ROOMS_CLAIM: &str = "rooms";
/// The claim listing a token's roles, unless configured.
pub const DEFAULT_ROLES_CLAIM: &str = "roles";
/// The role that may remove, ban and delete in the rooms its holder may join.
pub const MODERATOR_ROLE: &str = "moderator";

/// The authorizer context's fields (what API Gateway passes to every route).
const ROOMS_FIELD: &str = "rooms";
const MODERATOR_FIELD: &str = "moderator";

/// One entry of a rooms claim: a room's exact name, or a prefix ending in
/// `*` (`team-*`; `*` alone: every room).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomPattern {
    Exact(Room),
    Prefix(String),
}

impl RoomPattern {
    pub fn matches(&self, room: &Room) -> bool {
        match self {
            Self::Exact(exact) => exact == room,
            Self::Prefix(prefix) => room.as_str().starts_with(prefix.as_str()),
        }
    }
}

impl FromStr for RoomPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.strip_suffix('*') {
            Some("") => Ok(Self::Prefix(String::new())),
            Some(prefix) => {
                // A prefix is the start of a room name: the same characters,
                // one shorter at most.
                let valid =
                    prefix.chars().count() < *ROOM_NAME_CHARS.end() && Room::parse(prefix).is_ok();
                if valid {
                    Ok(Self::Prefix(prefix.to_owned()))
                } else {
                    Err(format!("\"{}\" is not a room prefix", shortened(text)))
                }
            }
            None => Room::parse(text)
                .map(Self::Exact)
                .map_err(|why| format!("\"{}\" is not a room name: {why}", shortened(text))),
        }
    }
}

impl fmt::Display for RoomPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(room) => write!(f, "{room}"),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// A list of room patterns: a claim's, or the deployment's members-only
/// rooms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomPatterns(Vec<RoomPattern>);

impl RoomPatterns {
    pub fn matches(&self, room: &Room) -> bool {
        self.0.iter().any(|pattern| pattern.matches(room))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each pattern as written (`team-*`, `staff`).
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Patterns separated by commas or whitespace (a setting, or the
    /// authorizer context).
    pub fn parse_list(text: &str) -> Result<Self, String> {
        Self::from_entries(
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|entry| !entry.is_empty()),
        )
    }

    /// A claim's value: an array of strings, or one string of patterns
    /// separated by spaces or commas (as OAuth's `scope` is).
    fn from_claim(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(text) => Self::parse_list(text),
            Value::Array(entries) => {
                let texts: Option<Vec<&str>> = entries.iter().map(Value::as_str).collect();
                Self::from_entries(texts.ok_or("it holds something other than strings")?)
            }
            _ => Err("it is neither a string nor an array of strings".to_owned()),
        }
    }

    fn from_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let patterns = entries
            .into_iter()
            .map(str::parse)
            .collect::<Result<Vec<RoomPattern>, String>>()?;
        if patterns.len() > MAX_ROOM_PATTERNS {
            return Err(format!(
                "it names {} rooms; at most {MAX_ROOM_PATTERNS} are read",
                patterns.len()
            ));
        }
        Ok(Self(patterns))
    }
}

impl fmt::Display for RoomPatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&texts.join(" "))
    }
}

/// Which claims decide access, and under what names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimNames {
    /// `AUTH_ROOMS_CLAIM` (default [`DEFAULT_ROOMS_CLAIM`]).
    pub rooms: String,
    /// `AUTH_ROLES_CLAIM` (default [`DEFAULT_ROLES_CLAIM`]).
    pub roles: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            rooms: DEFAULT_ROOMS_CLAIM.to_owned(),
            roles: DEFAULT_ROLES_CLAIM.to_owned(),
        }
    }
}

/// What a signed-in user's token grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// The rooms claim; `None` when the token has none.
    pub rooms: Option<RoomPatterns>,
    /// The roles claim holds [`MODERATOR_ROLE`].
    pub moderator: bool,
}

/// A claim that is there but cannot be read: the token is refused (its
/// holder would otherwise get less, or more, than their provider meant).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {claim} claim is malformed: {why}")]
pub struct MalformedClaim {
    pub claim: String,
    pub why: String,
}

impl Grants {
    /// The grants in a verified token's claims.
    pub fn from_claims(
        claims: &Map<String, Value>,
        names: &ClaimNames,
    ) -> Result<Self, MalformedClaim> {
        let malformed = |claim: &str| {
            let claim = claim.to_owned();
            move |why: String| MalformedClaim { claim, why }
        };
        let rooms = claims
            .get(&names.rooms)
            .map(RoomPatterns::from_claim)
            .transpose()
            .map_err(malformed(&names.rooms))?;
        let moderator = match claims.get(&names.roles) {
            None => false,
            Some(Value::String(roles)) => {
                roles.split([' ', ',']).any(|role| role == MODERATOR_ROLE)
            }
            Some(Value::Array(roles)) => {
                let roles: Option<Vec<&str>> = roles.iter().map(Value::as_str).collect();
                roles
                    .ok_or_else(|| {
                        malformed(&names.roles)("it holds something other than strings".to_owned())
                    })?
                    .contains(&MODERATOR_ROLE)
            }
            Some(_) => {
                return Err(malformed(&names.roles)(
                    "it is neither a string nor an array of strings".to_owned(),
                ));
            }
        };
        Ok(Self { rooms, moderator })
    }

    /// Adds the grants to an authorizer context: `rooms` (patterns separated
    /// by spaces; absent without a claim) and `moderator` (only when true).
    /// API Gateway's context holds strings, numbers and booleans only.
    pub fn to_context(&self, context: &mut Map<String, Value>) {
        if let Some(rooms) = &self.rooms {
            context.insert(ROOMS_FIELD.to_owned(), Value::String(rooms.to_string()));
        }
        if self.moderator {
            context.insert(MODERATOR_FIELD.to_owned(), Value::Bool(true));
        }
    }

    /// The grants an authorizer context carries (what [`Grants::to_context`]
    /// wrote; API Gateway may hand a boolean back as a string).
    pub fn from_context(context: &std::collections::HashMap<String, Value>) -> Self {
        let rooms = context
            .get(ROOMS_FIELD)
            .and_then(Value::as_str)
            // Written by our own authorizer from checked patterns.
            .and_then(|rooms| RoomPatterns::parse_list(rooms).ok());
        let moderator = matches!(context.get(MODERATOR_FIELD), Some(Value::Bool(true)))
            || context.get(MODERATOR_FIELD).and_then(Value::as_str) == Some("true");
        Self { rooms, moderator }
    }

    fn names(&self, room: &Room) -> bool {
        self.rooms.as_ref().is_some_and(|rooms| rooms.matches(room))
    }

    /// The rooms the rooms claim names exactly (its prefixes left out).
    pub fn exact_rooms(&self) -> impl Iterator<Item = &Room> {
        self.rooms
            .iter()
            .flat_map(|rooms| rooms.0.iter())
            .filter_map(|pattern| match pattern {
                RoomPattern::Exact(room) => Some(room),
                RoomPattern::Prefix(_) => None,
            })
    }
}

/// The deployment's rule for signed-in users (`ROOM_ACCESS`,
/// `MEMBERS_ONLY_ROOMS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomAccess {
    /// `open`: every signed-in user may join any room but the members-only
    /// ones, which only tokens whose rooms claim names them may join: those
    /// `members_only` names, and every room a signed-in user's rooms claim
    /// has named by its exact name (learned as they connect:
    /// [`RoomAccess::learns_claims`]).
    Open { members_only: RoomPatterns },
    /// `closed`: a signed-in user may join only the rooms their token's
    /// rooms claim names.
    Closed,
}

impl Default for RoomAccess {
    fn default() -> Self {
        Self::Open {
            members_only: RoomPatterns::default(),
        }
    }
}

/// Why `$connect` refused a signed-in user a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomRefusal {
    /// The room is members-only (or every room is, `closed`) and the
    /// token's rooms claim does not name it.
    NotAMember,
}

impl RoomAccess {
    /// Reads `ROOM_ACCESS` (`open`, the default, or `closed`) and
    /// `MEMBERS_ONLY_ROOMS` (patterns; with `closed` every room is
    /// members-only, so the list changes nothing).
    pub fn from_settings(access: Option<&str>, members_only: Option<&str>) -> Result<Self, String> {
        let members_only = members_only.map(RoomPatterns::parse_list).transpose()?;
        match access.map(str::trim) {
            None | Some("open") => Ok(Self::Open {
                members_only: members_only.unwrap_or_default(),
            }),
            Some("closed") => Ok(Self::Closed),
            Some(other) => Err(format!("\"{other}\" is neither `open` nor `closed`")),
        }
    }

    /// Whether the rooms claims name are remembered as members-only (with
    /// `open`; with `closed` every room is).
    pub fn learns_claims(&self) -> bool {
        matches!(self, Self::Open { .. })
    }

    /// `open` or `closed`, as the setting is written.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Open { .. } => "open",
            Self::Closed => "closed",
        }
    }

    /// The rooms only their members may join, with `open` (`closed`: every
    /// room).
    pub fn members_only(&self) -> Vec<String> {
        match self {
            Self::Open { members_only } => members_only.entries(),
            Self::Closed => vec!["*".to_owned()],
        }
    }

    /// Whether a signed-in user with `grants` may join `room`; `claimed`:
    /// some signed-in user's rooms claim has named it.
    pub fn admits(&self, room: &Room, grants: &Grants, claimed: bool) -> Result<(), RoomRefusal> {
        let members_only = match self {
            Self::Open { members_only } => claimed || members_only.matches(room),
            Self::Closed => true,
        };
        if !members_only || grants.names(room) {
            Ok(())
        } else {
            Err(RoomRefusal::NotAMember)
        }
    }
}

/// At most 40 characters of something a client sent, for a message.
fn shortened(text: &str) -> String {
    let mut shown: String = text.chars().take(40).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn room(name: &str) -> Room {
        Room::parse(name).expect("a room")
    }

    fn grants(claims: Value) -> Result<Grants, MalformedClaim> {
        let Value::Object(claims) = claims else {
            panic!("an object");
        };
        Grants::from_claims(&claims, &ClaimNames::default())
    }

    #[test]
    fn patterns_are_exact_names_or_prefixes() {
        let patterns = RoomPatterns::parse_list("staff, team-*").expect("valid");
        assert!(patterns.matches(&room("staff")));
        assert!(!patterns.matches(&room("staff2")));
        assert!(patterns.matches(&room("team-a")));
        assert!(patterns.matches(&room("team-")));
        assert!(!patterns.matches(&room("tea")));
        assert!(
            RoomPatterns::parse_list("*")
                .expect("valid")
                .matches(&room("any"))
        );
        for bad in [
            "te.am*",
            "a*b",
            "**",
            "café",
            &"a".repeat(65),
            &format!("{}*", "a".repeat(64)),
        ] {
            assert!(RoomPatterns::parse_list(bad).is_err(), "{bad}");
        }
        assert_eq!(patterns.to_string(), "staff team-*");
    }

    #[test]
    fn claims_are_arrays_or_strings_and_anything_else_is_malformed() {
        let both =
            grants(json!({"rooms": ["team-*", "staff"], "roles": ["moderator"]})).expect("valid");
        assert!(both.moderator && both.names(&room("team-x")) && both.names(&room("staff")));
        let spaced = grants(json!({"rooms": "a b", "roles": "reader moderator"})).expect("valid");
        assert!(spaced.moderator && spaced.names(&room("b")));
        let none = grants(json!({})).expect("valid");
        assert_eq!(none, Grants::default());
        assert!(
            !grants(json!({"roles": ["moderators"]}))
                .expect("valid")
                .moderator
        );
        for bad in [
            json!({"rooms": 7}),
            json!({"rooms": ["a", 7]}),
            json!({"rooms": ["no spaces allowed"]}),
            json!({"rooms": vec!["r"; MAX_ROOM_PATTERNS + 1]}),
            json!({"roles": {"moderator": true}}),
            json!({"roles": [null]}),
        ] {
            let error = grants(bad.clone()).expect_err("malformed");
            assert!(
                error.to_string().contains("claim is malformed"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn grants_travel_through_the_authorizer_context_unchanged() {
        let given =
            grants(json!({"rooms": ["team-*", "staff"], "roles": "moderator"})).expect("valid");
        let mut context = Map::new();
        given.to_context(&mut context);
        assert_eq!(context["rooms"], "team-* staff");
        let back = Grants::from_context(&context.into_iter().collect());
        assert_eq!(back, given);
        let mut as_text = std::collections::HashMap::new();
        as_text.insert("moderator".to_owned(), json!("true"));
        assert!(Grants::from_context(&as_text).moderator);
        assert_eq!(Grants::from_context(&Default::default()), Grants::default());
    }

    #[test]
    fn open_access_guards_only_the_members_only_rooms_and_closed_every_room() {
        let member = grants(json!({"rooms": ["team-*"]})).expect("valid");
        let outsider = grants(json!({})).expect("valid");
        let open = RoomAccess::from_settings(Some("open"), Some("team-*,staff")).expect("valid");
        assert_eq!(open.admits(&room("team-a"), &member, false), Ok(()));
        assert_eq!(
            open.admits(&room("team-a"), &outsider, false),
            Err(RoomRefusal::NotAMember)
        );
        assert_eq!(
            open.admits(&room("staff"), &member, false),
            Err(RoomRefusal::NotAMember)
        );
        assert_eq!(open.admits(&room("lobby"), &outsider, false), Ok(()));
        // A room some token's claim named is members-only, whatever the list.
        assert_eq!(
            open.admits(&room("secret"), &outsider, true),
            Err(RoomRefusal::NotAMember)
        );
        let named = grants(json!({"rooms": ["secret", "team-*"]})).expect("valid");
        assert_eq!(open.admits(&room("secret"), &named, true), Ok(()));
        assert_eq!(named.exact_rooms().collect::<Vec<_>>(), [&room("secret")]);
        assert!(open.learns_claims());
        let closed = RoomAccess::from_settings(Some("closed"), None).expect("valid");
        assert_eq!(closed.admits(&room("team-a"), &member, false), Ok(()));
        assert!(!closed.learns_claims());
        assert_eq!(
            closed.admits(&room("lobby"), &member, false),
            Err(RoomRefusal::NotAMember)
        );
        assert_eq!(
            RoomAccess::from_settings(None, None),
            Ok(RoomAccess::default())
        );
        assert_eq!(
            RoomAccess::from_settings(Some("closed"), Some("team-*")),
            Ok(RoomAccess::Closed)
        );
        assert!(RoomAccess::from_settings(Some("shut"), None).is_err());
        assert!(RoomAccess::from_settings(None, Some("bad/name")).is_err());
    }
}
