use tracing::{info, instrument};

use super::{RouteResult, WebSocketEvent, connection_id, reply, span_id};
use crate::limits::MAX_ECHOED_ACTION_CHARS;
use crate::protocol::{Action, ErrorCode, Inbound, ServerFrame};

/// `$default`: everything no other route matched. `{"action":"ping"}` gets a
/// pong; anything else gets an error naming the valid actions. Answers from
/// the event alone: no tables, no Management API.
#[instrument(name = "$default", skip_all, fields(connection_id = span_id(&event)))]
pub async fn default(event: WebSocketEvent) -> RouteResult {
    connection_id(&event)?;
    let frame = match Inbound::parse(event.body.as_deref()) {
        Inbound::Object {
            action: Some(action),
            ..
        } if Action::from_name(&action) == Some(Action::Ping) => {
            return Ok(reply(200, Some(&ServerFrame::pong())));
        }
        Inbound::NotJson(problem) => ServerFrame::unroutable(ErrorCode::InvalidJson, &problem),
        Inbound::Object { action: None, .. } => {
            ServerFrame::unroutable(ErrorCode::UnknownAction, "The frame has no \"action\"")
        }
        Inbound::Object {
            action: Some(action),
            ..
        } => ServerFrame::unroutable(
            ErrorCode::UnknownAction,
            &format!("Unknown action \"{}\"", shortened(&action)),
        ),
    };
    info!("answered an unroutable frame");
    Ok(reply(200, Some(&frame)))
}

/// At most [`MAX_ECHOED_ACTION_CHARS`] characters, with an ellipsis if cut.
fn shortened(action: &str) -> String {
    let mut shown: String = action.chars().take(MAX_ECHOED_ACTION_CHARS).collect();
    if shown.len() < action.len() {
        shown.push('…');
    }
    shown
}
