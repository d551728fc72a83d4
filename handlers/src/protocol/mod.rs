//! The wire protocol: what clients send, and the frames the server sends back.
//! Every server frame is a JSON object with a `type` and a human-readable
//! `message`, so `wscat` users and the tutorial's web client (which prints
//! `data.message`) read them well. docs/protocol.md is the full reference.
//!
//! Here, route selection (`$request.body.action`): [`Route`] and [`Action`];
//! [`frames`] the server's frames; [`inbound`] what a client's frames and
//! handshake parameters are read into, or the `error` frame that refuses them.

mod frames;
mod inbound;

pub use frames::{DeletedNote, ErrorCode, ModerationTarget, ServerFrame};
pub use inbound::{
    BanTarget, HistoryRequest, Inbound, Joining, Moderation, Rejection, SendMessage,
    parse_history_request, parse_joining, parse_moderation, validate_send_message,
};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
