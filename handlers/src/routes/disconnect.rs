use tracing::{debug, info, instrument};

use super::{RouteResult, WebSocketEvent, connection_id, log_failure, reply, span_id};
use crate::Chat;
use crate::records::SessionClose;
use crate::store::WriteOutcome;
use crate::time::Timestamp;

/// `$disconnect`, kept minimal: close the connection's session, then forget
/// the connection. Durations, presence and metrics follow from the
/// SessionHistory stream.
///
/// In that order, so a failure never loses a session: while the close has
/// not happened, the session stays in the open-sessions index (where the
/// repair finds it, [`crate::reconcile`]) and the connection row keeps its
/// last sign of life for the repair to use.
#[instrument(name = "$disconnect", skip_all, fields(connection_id = span_id(&event)))]
pub(super) async fn disconnect(chat: &Chat, event: WebSocketEvent) -> RouteResult {
    let id = connection_id(&event)?;
    let context = &event.request_context;
    let close = SessionClose {
        disconnected_at: Timestamp::from_epoch_millis(context.request_time_epoch)?,
        disconnect_status_code: context.disconnect_status_code,
        disconnect_reason: context
            .disconnect_reason
            .clone()
            .filter(|reason| !reason.is_empty()),
        removal: None,
    };
    match chat.store.close_session(id, &close).await {
        Ok(WriteOutcome::Written) => info!("disconnected"),
        // Expected now and then: a replayed `$disconnect`, or a 410 or the
        // repair that closed the session first.
        Ok(WriteOutcome::ConditionFailed) => {
            debug!("no open session to close: unknown, or already closed by a prune or the repair")
        }
        Err(failure) => {
            log_failure(
                &failure,
                "could not close the session; the repair will (the connection row is kept for it)",
            );
            return Ok(reply(500, None));
        }
    }
    if let Err(failure) = chat.store.delete_connection(id).await {
        log_failure(
            &failure,
            "could not delete the connection; a prune or its ttl will",
        );
        return Ok(reply(500, None));
    }
    Ok(reply(200, None))
}
