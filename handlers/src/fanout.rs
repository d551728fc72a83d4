//! Sends one frame to every connection in a room: pages of the room index
//! are read as the posts go out, posts run with bounded concurrency, and a
//! 410 Gone closes the stale connection's session and deletes its row.

use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use tracing::{debug, info, warn};

use crate::error::StoreError;
use crate::limits::CONNECT_GRACE;
use crate::management::{Delivery, Management};
use crate::metric::{self, FanoutKind};
use crate::records::SessionClose;
use crate::room::Room;
use crate::store::{Store, WriteOutcome};
use crate::time::Timestamp;

/// What one fan-out did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FanoutReport {
    /// Posts attempted.
    pub recipients: usize,
    pub delivered: usize,
    /// Stale connections found (410): sessions closed, rows deleted.
    pub pruned: usize,
    /// Connections that answered 410 but were kept: connected within
    /// [`CONNECT_GRACE`] (still completing `$connect`), or already removed.
    /// Not failures.
    pub still_connecting: usize,
    /// Posts that failed otherwise, and stale rows that could not be deleted.
    pub failed: usize,
    /// Of the failed posts, those API Gateway throttled (429) to the end.
    pub throttled: usize,
    /// Reading the connections failed part-way; some were never tried.
    pub incomplete: bool,
    /// Index entries read to find the recipients: the room's size, whatever
    /// the size of the table.
    pub read: usize,
}

/// Who a fan-out reaches: a room's connections, but some.
#[derive(Clone, Copy, Debug)]
pub struct Audience<'a> {
    pub room: &'a Room,
    /// Left out (newcomers, who learn who is there from their welcome).
    pub except: &'a [String],
}

impl<'a> Audience<'a> {
    pub fn room(room: &'a Room) -> Self {
        Self { room, except: &[] }
    }

    pub fn room_except(room: &'a Room, except: &'a [String]) -> Self {
        Self { room, except }
    }
}

impl FanoutReport {
    fn add(mut self, outcome: PostOutcome) -> Self {
        self.recipients += 1;
        match outcome {
            PostOutcome::Delivered => self.delivered += 1,
            PostOutcome::Pruned => self.pruned += 1,
            PostOutcome::StillConnecting => self.still_connecting += 1,
            PostOutcome::Failed => self.failed += 1,
            PostOutcome::Throttled => {
                self.failed += 1;
                self.throttled += 1;
            }
        }
        self
    }

    /// Whether someone who should have received the frame may not have.
    pub fn missed_anyone(&self) -> bool {
        self.failed > 0 || self.incomplete
    }
}

enum PostOutcome {
    Delivered,
    Pruned,
    StillConnecting,
    Failed,
    /// Failed because API Gateway throttled it (429), every try.
    Throttled,
}

/// Posts `frame` to the audience: a room's connections but the excepted.
pub async fn broadcast(
    store: &Store,
    api: &Management,
    frame: &[u8],
    concurrency: usize,
    audience: Audience<'_>,
    kind: FanoutKind,
) -> FanoutReport {
    let started = Instant::now();
    // One copy, shared by every post.
    let frame = Bytes::copy_from_slice(frame);
    let mut incomplete = false;
    let mut read = 0;
    let skip = audience.except;
    let ids = store
        .room_connection_ids(audience.room)
        .map_ok(|page| {
            read += page.read;
            stream::iter(page.ids.into_iter().map(Ok::<_, StoreError>))
        })
        .try_flatten()
        // A failed page ends the fan-out; what was read is still sent.
        .take_while(|id| {
            let keep = id.is_ok();
            if let Err(error) = id {
                warn!(
                    error.code = error.code(),
                    error.request_id = error.request_id(),
                    %error,
                    "reading active connections failed; fan-out is incomplete"
                );
                incomplete = true;
            }
            futures::future::ready(keep)
        })
        .filter_map(|id| futures::future::ready(id.ok()))
        .filter(|id| futures::future::ready(!skip.contains(id)));
    let report = ids
        .map(|id| post_one(store, api, frame.clone(), id, kind))
        .buffer_unordered(concurrency.max(1))
        .fold(FanoutReport::default(), |report, outcome| {
            futures::future::ready(report.add(outcome))
        })
        .await;
    let report = FanoutReport {
        incomplete,
        read,
        ..report
    };
    let kind = kind.as_str();
    metrics::histogram!(metric::FANOUT_RECIPIENTS, metric::KIND => kind)
        .record(report.recipients as f64);
    metrics::histogram!(metric::FANOUT_LATENCY, metric::KIND => kind)
        .record(started.elapsed().as_secs_f64() * 1000.0);
    metrics::counter!(metric::FANOUT_FAILURES, metric::KIND => kind)
        .increment(report.failed as u64);
    metrics::counter!(metric::FANOUT_THROTTLED, metric::KIND => kind)
        .increment(report.throttled as u64);
    report
}

async fn post_one(
    store: &Store,
    api: &Management,
    frame: Bytes,
    connection_id: String,
    kind: FanoutKind,
) -> PostOutcome {
    match api.post(&connection_id, frame).await {
        Delivery::Delivered => PostOutcome::Delivered,
        Delivery::Gone => prune(store, &connection_id, kind).await,
        Delivery::Failed(error) => {
            warn!(
                connection_id = %connection_id,
                error.code = error.code.as_deref(),
                error.request_id = error.request_id.as_deref(),
                %error,
                "post to connection failed"
            );
            if error.status == Some(429) {
                PostOutcome::Throttled
            } else {
                PostOutcome::Failed
            }
        }
    }
}

/// The `disconnect_reason` of a session closed because a post to its
/// connection answered 410.
pub const PRUNED_REASON: &str = "Connection gone: a post to it answered 410";

/// Closes the session of a connection that answered 410 Gone (as of now,
/// code 1006, [`PRUNED_REASON`]: the stream processor then measures it and
/// tells the room it left), then deletes its row; unless it connected
/// within [`CONNECT_GRACE`]. The session first, so a failure leaves the row
/// and the open session for the next 410 or the repair.
async fn prune(store: &Store, connection_id: &str, kind: FanoutKind) -> PostOutcome {
    let seen = Timestamp::now();
    let cutoff = seen.minus(CONNECT_GRACE);
    let close = SessionClose::unseen(seen, PRUNED_REASON);
    let pruned = match store
        .close_session_opened_before(connection_id, &close, cutoff)
        .await
    {
        Ok(WriteOutcome::Written) => store
            .delete_connection(connection_id)
            .await
            .map(|()| WriteOutcome::Written),
        // Connected within the grace period, or its session was closed
        // already (a `$disconnect` that could not delete the row): the row
        // goes if it is old enough.
        Ok(WriteOutcome::ConditionFailed) => store.prune_connection(connection_id, cutoff).await,
        Err(error) => Err(error),
    };
    match pruned {
        Ok(WriteOutcome::Written) => {
            metrics::counter!(metric::CONNECTIONS_PRUNED, metric::KIND => kind.as_str())
                .increment(1);
            info!(connection_id = %connection_id, "pruned a stale connection and closed its session");
            PostOutcome::Pruned
        }
        // Expected: a connection inside its `$connect` answers 410 until it
        // returns; or another fan-out pruned it first.
        Ok(WriteOutcome::ConditionFailed) => {
            debug!(connection_id = %connection_id, "a 410 from a connection that is still connecting, or already pruned: kept");
            PostOutcome::StillConnecting
        }
        Err(error) => {
            warn!(
                connection_id = %connection_id,
                error.code = error.code(),
                error.request_id = error.request_id(),
                %error,
                "could not prune stale connection"
            );
            PostOutcome::Failed
        }
    }
}
