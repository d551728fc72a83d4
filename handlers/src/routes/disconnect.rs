use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::{error, info, instrument};

use super::{WebSocketEvent, connection_id, reply, span_id};
use crate::Chat;
use crate::error::Error;
use crate::records::SessionClose;
use crate::store::WriteOutcome;
use crate::time::Timestamp;

/// `$disconnect`, kept minimal: forget the connection and close its session.
/// Durations, presence and metrics follow from the SessionHistory stream.
#[instrument(name = "$disconnect", skip_all, fields(connection_id = span_id(&event)))]
pub(super) async fn disconnect(
    chat: &Chat,
    event: WebSocketEvent,
) -> Result<ApiGatewayProxyResponse, Error> {
    let id = connection_id(&event)?;
    let context = &event.request_context;
    let close = SessionClose {
        disconnected_at: Timestamp::from_epoch_millis(context.request_time_epoch)?,
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
        error!(
            error.code = failure.code(),
            error.request_id = failure.request_id(),
            error = %failure,
            "could not delete the connection; its ttl will"
        );
        failed = true;
    }
    match closed {
        Ok(WriteOutcome::Written) => info!("disconnected"),
        Ok(WriteOutcome::ConditionFailed) => {
            info!("no open session to close (unknown or already closed)")
        }
        Err(failure) => {
            error!(
                error.code = failure.code(),
                error.request_id = failure.request_id(),
                error = %failure,
                "could not close the session"
            );
            failed = true;
        }
    }
    Ok(reply(if failed { 500 } else { 200 }, None))
}
