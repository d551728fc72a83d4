//! The repair of sessions left open, on the local stack's schedule: once at
//! every start, for the sessions a previous run left open (`kill -9`, a
//! crash: none of its connections survives), and on a timer while it runs,
//! asking the gateway about each connection as the deployed function asks
//! API Gateway (handlers/src/reconcile.rs does the work in both cases).
//!
//! While the stack runs it writes a liveness mark (the time, every
//! [`LIVENESS_MARK_INTERVAL`]) in its data directory: at the next start, a
//! session left open by a killed run is closed as of that mark, when its
//! connection was last known alive, not as of the restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use handlers::limits::{CONNECT_GRACE, REPAIR_CONCURRENCY, REPAIR_SETTLE};
use handlers::reconcile::{self, Liveness, RepairPolicy, Repaired};
use handlers::time::Timestamp;
use handlers::{Chat, Store};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often the liveness mark is written: how much a restart after a
/// crash may overstate the sessions it closes.
pub const LIVENESS_MARK_INTERVAL: Duration = Duration::from_secs(1);

/// The `disconnect_reason` of a session a previous run left open.
pub const RESTART_REASON: &str = "Connection lost: the local stack stopped without closing it";

/// Where a stack keeps its liveness mark: one file per table prefix, so
/// stacks sharing a data directory (with `--table-prefix`) keep their own.
pub fn mark_path(data_dir: &Path, table_prefix: &str) -> PathBuf {
    data_dir.join(format!("{table_prefix}last-alive"))
}

/// The liveness mark a previous run left, if it left one that parses.
pub fn read_mark(path: &Path) -> Option<Timestamp> {
    let text = std::fs::read_to_string(path).ok()?;
    match text.trim().parse() {
        Ok(mark) => Some(mark),
        Err(error) => {
            warn!(path = %path.display(), %error, "ignoring a liveness mark that does not parse");
            None
        }
    }
}

/// Writes `now` as the liveness mark: to a temporary file renamed over the
/// mark, so a crash never leaves half a mark.
fn write_mark(path: &Path, now: Timestamp) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, now.to_string())?;
    std::fs::rename(&temporary, path)
}

/// Closes every session a previous run left open, as of `mark` (its last
/// liveness mark) or its own last sign of life.
pub async fn after_restart(
    store: &Store,
    max_connection: Duration,
    mark: Option<Timestamp>,
) -> Result<Repaired, handlers::error::StoreError> {
    let policy = RepairPolicy {
        now: Timestamp::now(),
        max_connection,
        alive_until: mark,
        // No `$disconnect` of a dead process is on its way, and none of its
        // connections is still connecting.
        settle: Duration::ZERO,
        connect_grace: Duration::ZERO,
        concurrency: REPAIR_CONCURRENCY,
        deadline: None,
        gone_reason: RESTART_REASON.to_owned(),
    };
    reconcile::repair(store, &policy, |_| async {
        Ok::<_, std::convert::Infallible>(Liveness::Gone)
    })
    .await
}

/// Writes the liveness mark (when there is a `mark` path) and runs the
/// repair every `interval`, until `stop`.
pub async fn run(
    chat: Chat,
    max_connection: Duration,
    interval: Duration,
    mark: Option<PathBuf>,
    stop: CancellationToken,
) {
    let mut marks = tokio::time::interval(LIVENESS_MARK_INTERVAL);
    marks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut repairs = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    repairs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mark_failed = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = marks.tick() => {
                let Some(path) = &mark else { continue };
                match write_mark(path, Timestamp::now()) {
                    Ok(()) => mark_failed = false,
                    // Said once, not every second.
                    Err(error) if !mark_failed => {
                        mark_failed = true;
                        warn!(path = %path.display(), %error, "cannot write the liveness mark; after a crash, sessions will be closed as of their last message");
                    }
                    Err(_) => {}
                }
            }
            _ = repairs.tick() => {
                let repair = scheduled(&chat, max_connection);
                tokio::select! {
                    () = stop.cancelled() => break,
                    result = repair => if let Err(error) = result {
                        warn!(error.code = error.code(), %error, "the repair of sessions left open failed; the next one will try again");
                    },
                }
            }
        }
    }
}

/// One scheduled repair: as the deployed function's, with the gateway
/// answering `GetConnection` through the Management API.
async fn scheduled(
    chat: &Chat,
    max_connection: Duration,
) -> Result<Repaired, handlers::error::StoreError> {
    let policy = RepairPolicy {
        now: Timestamp::now(),
        max_connection,
        alive_until: None,
        settle: REPAIR_SETTLE,
        connect_grace: CONNECT_GRACE,
        concurrency: REPAIR_CONCURRENCY,
        deadline: None,
        gone_reason: reconcile::GONE_REASON.to_owned(),
    };
    let management = &chat.management;
    reconcile::repair(&chat.store, &policy, |id| async move {
        management.liveness(&id).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_read_back_as_written_and_a_broken_one_is_ignored() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = mark_path(&dir.path().join("data"), "t1-");
        assert_eq!(read_mark(&path), None, "no mark before the first run");
        let now = Timestamp::now();
        write_mark(&path, now).expect("written");
        assert_eq!(read_mark(&path), Some(now));
        std::fs::write(&path, "half a ti").expect("written");
        assert_eq!(read_mark(&path), None);
    }
}
