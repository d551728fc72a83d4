use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::{error, info};

use super::{WebSocketEvent, connection_id, reply};
use crate::Chat;
use crate::error::Error;
use crate::records::SessionClose;
use crate::store::CloseOutcome;
use crate::time::rfc3339_millis;

/// `$disconnect`, kept minimal: forget the connection and close its session.
/// Durations, presence and metrics follow from the SessionHistory stream.
pub async fn disconnect(
    chat: &Chat,
    event: WebSocketEvent,
) -> Result<ApiGatewayProxyResponse, Error> {
    let id = connection_id(&event)?;
    let context = &event.payload.request_context;
    let close = SessionClose {
        disconnected_at: rfc3339_millis(context.request_time_epoch)?,
        disconnect_status_code: context.disconnect_status_code,
        disconnect_reason: context
            .disconnect_reason
            .clone()
            .filter(|reason| !reason.is_empty()),
    };
    let (deleted, closed) = tokio::join!(
        chat.store.delete_connection(id),
        chat.store.close_session(id, &close)
    );
    let mut failed = false;
    if let Err(failure) = deleted {
        error!(connection_id = %id, error = %failure, "could not delete the connection; its ttl will");
        failed = true;
    }
    match closed {
        Ok(CloseOutcome::Closed) => info!(connection_id = %id, "disconnected"),
        Ok(CloseOutcome::NotOpen) => {
            info!(connection_id = %id, "no open session to close (unknown or already closed)")
        }
        Err(failure) => {
            error!(connection_id = %id, error = %failure, "could not close the session");
            failed = true;
        }
    }
    Ok(reply(if failed { 500 } else { 200 }, None))
}
