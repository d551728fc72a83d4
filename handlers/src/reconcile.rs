//! The repair of sessions left open: a `$disconnect` API Gateway never
//! delivered (it is best effort), a close that failed, a local stack that
//! was killed. Runs on a schedule (the `reconcile` function on AWS, a timer
//! and every start in the local stack).
//!
//! It reads the open sessions from SessionHistory's sparse
//! `open-sessions-index` (a session leaves it when it closes), never the
//! whole table, and for each:
//!
//! - older than API Gateway's connection limit plus [`REPAIR_MARGIN`]: its
//!   connection is gone whatever API Gateway would say, so it is closed
//!   without a call;
//! - younger than [`CONNECT_GRACE`]: left alone (it may be inside its
//!   `$connect`), unless the caller knows no connection survives;
//! - otherwise API Gateway is asked (`GetConnection`); a connection it no
//!   longer has is closed after [`REPAIR_SETTLE`], so a `$disconnect` on its
//!   way closes it first, with its own code and time.
//!
//! A repaired session is closed with code 1006 as of when its connection
//! was last known alive, never when the repair ran: its last message
//! (`last_seen_at` on its row), or a bound the caller knows (the local
//! stack's last liveness mark before a restart), within its connection
//! limit. Its row is then deleted. The stream processor measures the
//! session and tells its room, as for any close. Safe to run twice or
//! concurrently: every close is conditional.

use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, stream};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::Chat;
use crate::error::StoreError;
use crate::limits::{
    CONNECT_GRACE, GATEWAY_MAX_CONNECTION_DURATION, OPEN_SESSION_SHARDS, REPAIR_CONCURRENCY,
    REPAIR_MARGIN, REPAIR_SETTLE,
};
use crate::metric;
use crate::records::{OpenSession, SessionClose};
use crate::store::{Store, WriteOutcome};
use crate::time::Timestamp;

/// The `disconnect_reason` of a session whose connection API Gateway no
/// longer has.
pub const GONE_REASON: &str = "Connection gone (found by the repair)";
/// The `disconnect_reason` of a session older than any connection can be.
pub const EXPIRED_REASON: &str =
    "Connection past API Gateway's connection limit (closed by the repair)";

/// What API Gateway says of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone,
}

/// How one repair run decides.
#[derive(Clone, Debug)]
pub struct RepairPolicy {
    /// The repair's clock.
    pub now: Timestamp,
    /// The longest a connection lives: API Gateway's 2 hours (the local
    /// stack's `--max-connection-secs`).
    pub max_connection: Duration,
    /// No connection was alive after this, when the caller knows it (the
    /// local stack's last liveness mark, at its restart); `None` on AWS.
    pub alive_until: Option<Timestamp>,
    /// The wait between finding connections gone and closing them.
    pub settle: Duration,
    /// Sessions younger than this are left alone: their connection may be
    /// inside its `$connect` ([`CONNECT_GRACE`]; zero when the caller knows
    /// no connection survives, as at the local stack's restart).
    pub connect_grace: Duration,
    /// `GetConnection` calls and writes in flight at once.
    pub concurrency: usize,
    /// No session is started on after this (the function's time is up); the
    /// next run goes on.
    pub deadline: Option<Instant>,
    /// The `disconnect_reason` of a session found gone.
    pub gone_reason: String,
}

/// What a repair run did (the scheduled function's answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Repaired {
    /// Open sessions found in the index.
    pub open: usize,
    /// Closed without a call: older than the connection limit allows.
    pub expired: usize,
    /// Closed because API Gateway no longer has their connection.
    pub gone: usize,
    /// Found closed when the repair came to close them (a `$disconnect`
    /// arrived meanwhile).
    pub closed_meanwhile: usize,
    /// Alive, or too young to tell: left open.
    pub alive: usize,
    /// Whose liveness could not be told, or whose close failed: left for
    /// the next run.
    pub unknown: usize,
    /// The run reached its deadline before the end of the index: the next
    /// run goes on.
    pub stopped_at_deadline: bool,
}

/// How much of a scheduled run's time is kept back from its deadline: the
/// last sessions' settle and closes, and the answer.
const DEADLINE_RESERVE: Duration = Duration::from_secs(15);

/// The scheduled repair on AWS (the `reconcile` function): API Gateway's
/// connection limit, `GetConnection` for each session it cannot rule on
/// alone, and the function's `deadline`.
pub async fn scheduled(chat: &Chat, deadline: Instant) -> Result<Repaired, StoreError> {
    let policy = RepairPolicy {
        now: Timestamp::now(),
        max_connection: GATEWAY_MAX_CONNECTION_DURATION,
        alive_until: None,
        settle: REPAIR_SETTLE,
        connect_grace: CONNECT_GRACE,
        concurrency: REPAIR_CONCURRENCY,
        deadline: Some(deadline.checked_sub(DEADLINE_RESERVE).unwrap_or(deadline)),
        gone_reason: GONE_REASON.to_owned(),
    };
    let management = &chat.management;
    repair(&chat.store, &policy, |id| async move {
        management.liveness(&id).await
    })
    .await
}

/// When a session opened at `connected_at` was last known alive: its last
/// sign of life (`last_seen`), or the caller's bound on every connection's
/// life (`alive_until`) if later, never past what its connection limit or
/// the clock allow.
pub fn last_alive(
    connected_at: Timestamp,
    last_seen: Option<Timestamp>,
    policy: &RepairPolicy,
) -> Timestamp {
    let evidence = last_seen.map_or(connected_at, |seen| seen.max(connected_at));
    let latest = policy
        .alive_until
        .map_or(evidence, |until| until.max(evidence));
    latest
        .min(connected_at.plus(policy.max_connection))
        .min(policy.now)
        .max(connected_at)
}

/// Closes the sessions whose connections `probe` says are gone, and those
/// too old to be alive; see the module's description.
pub async fn repair<F, Fut, E>(
    store: &Store,
    policy: &RepairPolicy,
    probe: F,
) -> Result<Repaired, StoreError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Liveness, E>>,
    E: std::fmt::Display,
{
    let mut report = Repaired::default();
    let expired_before = policy
        .now
        .minus(policy.max_connection.saturating_add(REPAIR_MARGIN));
    let young_after = policy.now.minus(policy.connect_grace);
    // A run cut short by its deadline must not always leave the same
    // shards for later: each run starts at a shard of its own.
    let first = fastrand::u32(0..OPEN_SESSION_SHARDS);
    for shard in (0..OPEN_SESSION_SHARDS).map(|n| (first + n) % OPEN_SESSION_SHARDS) {
        if past(policy.deadline) {
            report.stopped_at_deadline = true;
            break;
        }
        let mut start = None;
        loop {
            let (sessions, next) = store.open_sessions(shard, start).await?;
            report.open += sessions.len();
            let mut expired = Vec::new();
            let mut to_ask = Vec::new();
            for session in sessions {
                if session.connected_at < expired_before {
                    expired.push(session);
                } else if session.connected_at > young_after {
                    report.alive += 1;
                } else {
                    to_ask.push(session);
                }
            }
            let gone = ask(&probe, to_ask, policy, &mut report).await;
            if !gone.is_empty() && !policy.settle.is_zero() {
                tokio::time::sleep(policy.settle).await;
            }
            let expired = close_all(store, expired, EXPIRED_REASON, policy, &mut report).await;
            let gone = close_all(store, gone, &policy.gone_reason, policy, &mut report).await;
            metrics::counter!(metric::SESSIONS_REPAIRED).increment((expired + gone) as u64);
            report.expired += expired;
            report.gone += gone;
            match next {
                Some(key) if !past(policy.deadline) => start = Some(key),
                Some(_) => {
                    report.stopped_at_deadline = true;
                    break;
                }
                None => break,
            }
        }
    }
    let eventful = report.expired + report.gone + report.unknown > 0 || report.stopped_at_deadline;
    if eventful {
        info!(
            open = report.open,
            expired = report.expired,
            gone = report.gone,
            closed_meanwhile = report.closed_meanwhile,
            alive = report.alive,
            unknown = report.unknown,
            stopped_at_deadline = report.stopped_at_deadline,
            "repaired the sessions left open"
        );
    } else {
        debug!(
            open = report.open,
            alive = report.alive,
            "no session left open to repair"
        );
    }
    Ok(report)
}

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}

/// Asks `probe` about each session; the ones whose connection is gone.
async fn ask<F, Fut, E>(
    probe: &F,
    sessions: Vec<OpenSession>,
    policy: &RepairPolicy,
    report: &mut Repaired,
) -> Vec<OpenSession>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Liveness, E>>,
    E: std::fmt::Display,
{
    let answers: Vec<_> = stream::iter(sessions)
        .map(|session| async move {
            let answer = probe(session.connection_id.clone()).await;
            (session, answer)
        })
        .buffer_unordered(policy.concurrency.max(1))
        .collect()
        .await;
    let mut gone = Vec::new();
    for (session, answer) in answers {
        match answer {
            Ok(Liveness::Alive) => report.alive += 1,
            Ok(Liveness::Gone) => gone.push(session),
            Err(error) => {
                warn!(connection_id = %session.connection_id, %error, "cannot tell whether the connection lives; left for the next repair");
                report.unknown += 1;
            }
        }
    }
    gone
}

/// Closes each session as of its connection's last sign of life, then
/// deletes its row; how many it closed.
async fn close_all(
    store: &Store,
    sessions: Vec<OpenSession>,
    reason: &str,
    policy: &RepairPolicy,
    report: &mut Repaired,
) -> usize {
    let outcomes: Vec<_> = stream::iter(sessions)
        .map(|session| close_one(store, session, reason, policy))
        .buffer_unordered(policy.concurrency.max(1))
        .collect()
        .await;
    let mut closed = 0;
    for outcome in outcomes {
        match outcome {
            Ok(WriteOutcome::Written) => closed += 1,
            // Expected: its `$disconnect` (or a prune) closed it meanwhile.
            Ok(WriteOutcome::ConditionFailed) => report.closed_meanwhile += 1,
            Err(()) => report.unknown += 1,
        }
    }
    closed
}

async fn close_one(
    store: &Store,
    session: OpenSession,
    reason: &str,
    policy: &RepairPolicy,
) -> Result<WriteOutcome, ()> {
    let id = &session.connection_id;
    let logged = |error: StoreError| {
        warn!(
            connection_id = %id,
            error.code = error.code(),
            error.request_id = error.request_id(),
            %error,
            "could not repair the session; left for the next repair"
        );
    };
    let last_seen = store.last_seen(id).await.map_err(logged)?;
    let at = last_alive(session.connected_at, last_seen, policy);
    let outcome = store
        .close_session(id, &SessionClose::unseen(at, reason))
        .await
        .map_err(logged)?;
    match outcome {
        WriteOutcome::Written => {
            info!(connection_id = %id, disconnected_at = %at, reason, "closed a session left open")
        }
        WriteOutcome::ConditionFailed => {
            debug!(connection_id = %id, "closed meanwhile, by its $disconnect or a prune: nothing to do")
        }
    }
    store.delete_connection(id).await.map_err(logged)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::tests::at;

    fn policy(now: &str, alive_until: Option<&str>) -> RepairPolicy {
        RepairPolicy {
            now: at(now),
            max_connection: Duration::from_secs(2 * 60 * 60),
            alive_until: alive_until.map(at),
            settle: Duration::ZERO,
            connect_grace: CONNECT_GRACE,
            concurrency: 1,
            deadline: None,
            gone_reason: GONE_REASON.to_owned(),
        }
    }

    #[test]
    fn a_repaired_session_ends_at_its_last_sign_of_life_not_at_the_repair() {
        let connected = at("2026-12-06T10:00:00.000Z");
        let repair = policy("2026-12-06T11:00:00.000Z", None);
        assert_eq!(last_alive(connected, None, &repair), connected);
        assert_eq!(
            last_alive(connected, Some(at("2026-12-06T10:03:00.000Z")), &repair),
            at("2026-12-06T10:03:00.000Z")
        );
        // A local stack killed at 10:00:03 and started again an hour later.
        let restart = policy("2026-12-06T11:00:00.000Z", Some("2026-12-06T10:00:03.000Z"));
        assert_eq!(
            last_alive(connected, None, &restart),
            at("2026-12-06T10:00:03.000Z")
        );
        // A session opened after the last mark lived no longer than that.
        assert_eq!(
            last_alive(at("2026-12-06T10:00:03.500Z"), None, &restart),
            at("2026-12-06T10:00:03.500Z")
        );
    }

    #[test]
    fn no_session_outlives_its_connection_limit_or_the_clock() {
        let connected = at("2026-12-06T10:00:00.000Z");
        let late = policy("2026-12-07T10:00:00.000Z", Some("2026-12-07T09:00:00.000Z"));
        assert_eq!(
            last_alive(connected, None, &late),
            at("2026-12-06T12:00:00.000Z")
        );
        let skewed = policy("2026-12-06T10:30:00.000Z", None);
        assert_eq!(
            last_alive(connected, Some(at("2026-12-06T10:45:00.000Z")), &skewed),
            at("2026-12-06T10:30:00.000Z"),
            "a last sign of life ahead of the repair's clock"
        );
    }
}
