//! Closing the sessions of connections that died without a `$disconnect`:
//! after the local stack was killed, or on AWS when API Gateway's best-effort
//! `$disconnect` never came. Each dead connection's session gets
//! `disconnected_at`, close code [`DIED_CLOSE_CODE`] and a reason (the
//! stream processor then measures it and tells the room), and its
//! ActiveConnections row is deleted. Safe to run twice: a closed session is
//! never closed again.

use std::future::Future;

use tracing::{info, warn};

use crate::error::StoreError;
use crate::records::SessionClose;
use crate::store::{Store, WriteOutcome};
use crate::time::Timestamp;

/// The close code recorded for a connection that died unseen: 1006, what
/// API Gateway records for a connection that ended without a close frame.
pub const DIED_CLOSE_CODE: i64 = 1006;

/// What a reconciliation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Connections looked at.
    pub checked: usize,
    /// Sessions closed (and rows deleted) because their connection was dead.
    pub closed: usize,
    /// Connections whose liveness could not be told; left alone.
    pub unknown: usize,
}

/// Closes, as of `now`, every connection `is_alive` says is gone.
pub async fn close_dead_connections<F, Fut, E>(
    store: &Store,
    now: Timestamp,
    reason: &str,
    is_alive: F,
) -> Result<Reconciled, StoreError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<bool, E>>,
    E: std::fmt::Display,
{
    let mut report = Reconciled::default();
    for id in store.all_connection_ids().await? {
        report.checked += 1;
        match is_alive(id.clone()).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(error) => {
                warn!(connection_id = %id, %error, "cannot tell whether the connection lives; left alone");
                report.unknown += 1;
                continue;
            }
        }
        let close = SessionClose {
            disconnected_at: now,
            disconnect_status_code: Some(DIED_CLOSE_CODE),
            disconnect_reason: Some(reason.to_owned()),
        };
        if store.close_session(&id, &close).await? == WriteOutcome::Written {
            info!(connection_id = %id, "closed the session of a dead connection");
        }
        store.delete_connection(&id).await?;
        report.closed += 1;
    }
    Ok(report)
}
