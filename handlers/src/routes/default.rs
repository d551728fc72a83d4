use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::info;

use super::{WebSocketEvent, connection_id, reply};
use crate::Chat;
use crate::error::Error;
use crate::protocol::{ErrorCode, Inbound, ServerFrame};

/// How much of an unknown action is echoed back.
const MAX_ECHOED_ACTION_CHARS: usize = 40;

/// `$default`: everything no other route matched. `{"action":"ping"}` gets a
/// pong; anything else gets an error naming the valid actions.
pub async fn default(
    _chat: &Chat,
    event: WebSocketEvent,
) -> Result<ApiGatewayProxyResponse, Error> {
    let id = connection_id(&event)?;
    let frame = match Inbound::parse(event.payload.body.as_deref()) {
        Inbound::Object {
            action: Some(action),
            ..
        } if action == "ping" => {
            return Ok(reply(200, Some(&ServerFrame::pong())));
        }
        Inbound::NotJson => {
            ServerFrame::unroutable(ErrorCode::InvalidJson, "Frames must be JSON objects")
        }
        Inbound::Object { action: None, .. } => {
            ServerFrame::unroutable(ErrorCode::UnknownAction, "The frame has no \"action\"")
        }
        Inbound::Object {
            action: Some(action),
            ..
        } => {
            let shown: String = action.chars().take(MAX_ECHOED_ACTION_CHARS).collect();
            let ellipsis = if shown.len() < action.len() {
                "…"
            } else {
                ""
            };
            ServerFrame::unroutable(
                ErrorCode::UnknownAction,
                &format!("Unknown action \"{shown}{ellipsis}\""),
            )
        }
    };
    info!(connection_id = %id, "answered an unroutable frame");
    Ok(reply(400, Some(&frame)))
}
