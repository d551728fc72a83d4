//! Sends one frame to every connection in a room. The room's connections
//! are indexed under [`ROOM_SHARDS`] keys; every shard's first page is read
//! at once and posted here, with bounded concurrency. A shard with more is
//! handed to a fan-out worker ([`workers`]: an asynchronous invocation of
//! the `fanout` function, which reads and posts the rest of that shard and
//! hands on what is left past its own page), or, without workers or when
//! the hand-off fails, read on and posted here page by page. Every
//! connection is in one shard, each page of a shard is read once, so every
//! member gets the frame once (a retried invocation aside: frames carry
//! their ids). A 410 Gone closes the stale connection's session and
//! deletes its row.

mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

pub use workers::{Fanout, FanoutTask, HandOffError, Workers, work};

use crate::Chat;
use crate::limits::{
    CONNECT_GRACE, FANOUT_FIRST_PAGE, FANOUT_THROTTLE_BACKOFF, FANOUT_THROTTLE_MAX_BACKOFF,
    FANOUT_THROTTLE_PATIENCE, FANOUT_WORKER_PAGE, ROOM_SHARDS,
};
use crate::management::{Delivery, Management};
use crate::metric::{self, FanoutKind};
use crate::protocol::{ErrorCode, ServerFrame};
use crate::records::SessionClose;
use crate::room::Room;
use crate::store::{ShardCursor, Store, WriteOutcome};
use crate::time::Timestamp;

/// What one fan-out did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Index entries read to find the recipients: the room's size (or the
    /// part of it posted here), whatever the size of the table.
    pub read: usize,
    /// Index Queries made for them.
    pub queries: usize,
    /// Shards whose rest went to a fan-out worker: their recipients are not
    /// counted here, but in the workers' reports.
    pub handed_off: usize,
}

/// Who a fan-out reaches: a room's connections, but some.
#[derive(Clone, Copy, Debug)]
pub struct Audience<'a> {
    pub room: &'a Room,
    /// Left out (newcomers, who learn who is there from their welcome).
    pub except: &'a [String],
    /// The connection whose message it is: a worker whose part missed
    /// someone tells it, as `sendmessage` does for its own part.
    pub sender: Option<&'a str>,
}

impl<'a> Audience<'a> {
    pub fn room(room: &'a Room) -> Self {
        Self {
            room,
            except: &[],
            sender: None,
        }
    }

    pub fn room_except(room: &'a Room, except: &'a [String]) -> Self {
        Self {
            except,
            ..Self::room(room)
        }
    }

    /// A chat message's audience: the whole room; `sender` hears of misses.
    pub fn message(room: &'a Room, sender: &'a str) -> Self {
        Self {
            sender: Some(sender),
            ..Self::room(room)
        }
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

    /// What to tell the sender of a message when someone may not have
    /// received it (of the part this report covers).
    pub fn problem(&self) -> Option<ServerFrame> {
        let text = if self.incomplete {
            "Your message was saved, but reading the connection list failed, so some people may not have received it.".to_owned()
        } else if self.failed > 0 {
            format!(
                "Your message was saved, but could not be delivered to {} of {} connections.",
                self.failed, self.recipients
            )
        } else {
            return None;
        };
        Some(ServerFrame::error(ErrorCode::PartialDelivery, text))
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

/// Where a fan-out starts: every shard of the room from its beginning (a
/// broadcast), or one shard from where a page ended (a worker).
#[derive(Clone, Debug)]
enum Start {
    Room,
    Shard(u32, ShardCursor),
}

/// What one fan-out counts as it goes, shared by its shards' readers and
/// its posts.
struct Counters {
    /// When throttled posts stop waiting for the account
    /// ([`FANOUT_THROTTLE_PATIENCE`] after the fan-out began).
    give_up: Instant,
    read: AtomicUsize,
    queries: AtomicUsize,
    handed_off: AtomicUsize,
    incomplete: AtomicBool,
    /// Posts throttled (429) once the client's own tries were spent.
    throttled: AtomicUsize,
}

/// Posts `frame` to the audience: a room's connections but the excepted.
pub async fn broadcast(
    chat: &Chat,
    frame: &str,
    audience: Audience<'_>,
    kind: FanoutKind,
) -> FanoutReport {
    let fanout = Fanout {
        room: audience.room.clone(),
        frame: frame.to_owned(),
        kind,
        except: audience.except.to_vec(),
        sender: audience.sender.map(str::to_owned),
    };
    deliver(chat, &Arc::new(fanout), Start::Room).await
}

/// Reads the shards `start` names, hands on what workers can take, and
/// posts the rest, `FANOUT_CONCURRENCY` at a time across all shards.
async fn deliver(chat: &Chat, fanout: &Arc<Fanout>, start: Start) -> FanoutReport {
    let kind = fanout.kind;
    let started = Instant::now();
    let counters = Arc::new(Counters {
        give_up: started + FANOUT_THROTTLE_PATIENCE,
        read: AtomicUsize::default(),
        queries: AtomicUsize::default(),
        handed_off: AtomicUsize::default(),
        incomplete: AtomicBool::default(),
        throttled: AtomicUsize::default(),
    });
    let shards: Vec<_> = match start {
        Start::Room => (0..ROOM_SHARDS)
            .map(|shard| (shard, None, FANOUT_FIRST_PAGE))
            .collect(),
        Start::Shard(shard, after) => vec![(shard, Some(after), FANOUT_WORKER_PAGE)],
    };
    let ids = stream::select_all(shards.into_iter().map(|(shard, after, first_page)| {
        let reader = ShardReader {
            chat: chat.clone(),
            fanout: Arc::clone(fanout),
            shard,
            counters: Arc::clone(&counters),
        };
        pages(reader.spawn(after, first_page)).boxed()
    }));
    // One copy, shared by every post.
    let body = Bytes::copy_from_slice(fanout.frame.as_bytes());
    let skip = &fanout.except;
    let report = ids
        .filter(|id| futures::future::ready(!skip.contains(id)))
        .map(|id| post_one(chat, body.clone(), id, kind, &counters))
        .buffer_unordered(chat.limits.fanout_concurrency.max(1))
        .fold(FanoutReport::default(), |report, outcome| {
            futures::future::ready(report.add(outcome))
        })
        .await;
    let report = FanoutReport {
        read: counters.read.load(Ordering::Relaxed),
        queries: counters.queries.load(Ordering::Relaxed),
        handed_off: counters.handed_off.load(Ordering::Relaxed),
        incomplete: counters.incomplete.load(Ordering::Relaxed),
        ..report
    };
    record(&report, kind, started);
    report
}

fn record(report: &FanoutReport, kind: FanoutKind, started: Instant) {
    let kind = kind.as_str();
    metrics::histogram!(metric::FANOUT_RECIPIENTS, metric::KIND => kind)
        .record(report.recipients as f64);
    metrics::histogram!(metric::FANOUT_LATENCY, metric::KIND => kind)
        .record(started.elapsed().as_secs_f64() * 1000.0);
    metrics::counter!(metric::FANOUT_FAILURES, metric::KIND => kind)
        .increment(report.failed as u64);
    metrics::counter!(metric::FANOUT_THROTTLED, metric::KIND => kind)
        .increment(report.throttled as u64);
    metrics::counter!(metric::FANOUT_HANDOFFS, metric::KIND => kind)
        .increment(report.handed_off as u64);
}

/// Reads one shard of a fan-out, in a task of its own: its pages are read
/// while the posts of the pages before go out, and a read in flight is
/// never left unpolled behind posts that wait for API Gateway (its
/// timeout would run out).
struct ShardReader {
    chat: Chat,
    fanout: Arc<Fanout>,
    shard: u32,
    counters: Arc<Counters>,
}

impl ShardReader {
    /// Reads the shard from `after`, the first page of `first_page`
    /// entries, the next (if no worker took them) of
    /// [`FANOUT_WORKER_PAGE`]; each page's ids come out of the channel, at
    /// most one page ahead of the posts.
    fn spawn(self, after: Option<ShardCursor>, first_page: i32) -> mpsc::Receiver<Vec<String>> {
        let (pages, receiver) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut next = Some((after, first_page));
            while let Some((after, limit)) = next.take() {
                let Some((ids, rest)) = self.page(after, limit).await else {
                    return;
                };
                next = rest.map(|rest| (Some(rest), FANOUT_WORKER_PAGE));
                if pages.send(ids).await.is_err() {
                    return;
                }
            }
        });
        receiver
    }

    /// Reads a page from `after`; when the shard goes on past it, hands the
    /// rest to a worker. Returns the page's ids and where to read on here
    /// (`None`: the shard is done, or a worker has the rest).
    async fn page(
        &self,
        after: Option<ShardCursor>,
        limit: i32,
    ) -> Option<(Vec<String>, Option<ShardCursor>)> {
        let room = &self.fanout.room;
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        let page = match self
            .chat
            .store
            .room_shard_page(room, self.shard, after.as_ref(), limit)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                warn!(
                    %room,
                    shard = self.shard,
                    error.code = error.code(),
                    error.request_id = error.request_id(),
                    %error,
                    "reading active connections failed; fan-out is incomplete"
                );
                self.counters.incomplete.store(true, Ordering::Relaxed);
                return None;
            }
        };
        self.counters.read.fetch_add(page.read, Ordering::Relaxed);
        let next = match (page.next, &self.chat.workers) {
            (Some(rest), Some(workers)) => {
                let task = FanoutTask {
                    shard: self.shard,
                    after: rest.clone(),
                    fanout: Fanout::clone(&self.fanout),
                };
                match workers.hand_off(&task).await {
                    Ok(()) => {
                        self.counters.handed_off.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Err(error) => {
                        warn!(%room, shard = self.shard, %error, "could not hand the rest of a shard to a worker; posting it here");
                        metrics::counter!(metric::FANOUT_HANDOFF_FAILURES, metric::KIND => self.fanout.kind.as_str()).increment(1);
                        Some(rest)
                    }
                }
            }
            (next, _) => next,
        };
        Some((page.ids, next))
    }
}

/// The ids of the pages a reader sends.
fn pages(receiver: mpsc::Receiver<Vec<String>>) -> impl futures::Stream<Item = String> + Send {
    stream::unfold(receiver, |mut receiver| async move {
        let ids = receiver.recv().await?;
        Some((stream::iter(ids), receiver))
    })
    .flatten()
}

async fn post_one(
    chat: &Chat,
    frame: Bytes,
    connection_id: String,
    kind: FanoutKind,
    counters: &Counters,
) -> PostOutcome {
    match post_patiently(&chat.management, &connection_id, frame, counters).await {
        Delivery::Delivered => PostOutcome::Delivered,
        Delivery::Gone => prune(&chat.store, &connection_id, kind).await,
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

/// Posts `frame`; while API Gateway throttles the account, waits and
/// tries again, until [`FANOUT_THROTTLE_PATIENCE`] after the fan-out
/// began (so a throttle that never ends costs a fan-out that long, not
/// that long a post). The account's
/// request rate is shared by every post of every fan-out, so a large
/// room's workers together offer more than it admits; a throttled post
/// holds its place among the `FANOUT_CONCURRENCY` in flight while it waits
/// (backing off, doubling up to [`FANOUT_THROTTLE_MAX_BACKOFF`]), which
/// lowers what the fan-out offers until it fits. API Gateway answers a
/// client whose buffer is full with the same 429: a few throttled posts in
/// a fan-out, and in the process, are such clients, and fail after
/// [`FANOUT_THROTTLE_MAX_BACKOFF`] of tries (their senders are held up that
/// long at most); from [`ACCOUNT_THROTTLED`] on, it is the account.
async fn post_patiently(
    api: &Management,
    connection_id: &str,
    frame: Bytes,
    counters: &Counters,
) -> Delivery {
    let mut backoff = FANOUT_THROTTLE_BACKOFF;
    let mut first_throttle = None;
    loop {
        let delivery = api.post(connection_id, frame.clone()).await;
        let Delivery::Failed(error) = &delivery else {
            return delivery;
        };
        let now = Instant::now();
        if error.status != Some(429) || now + backoff >= counters.give_up {
            return delivery;
        }
        let first = *first_throttle.get_or_insert_with(|| {
            counters.throttled.fetch_add(1, Ordering::Relaxed);
            now
        });
        // Below the signs of an account throttle, tries for a moment
        // longer (the other posts' throttles may show it meanwhile).
        let account = counters.throttled.load(Ordering::Relaxed) >= ACCOUNT_THROTTLED
            || api.throttled_lately() >= ACCOUNT_THROTTLED;
        if !account && now.duration_since(first) >= FANOUT_THROTTLE_MAX_BACKOFF {
            return delivery;
        }
        // Half the backoff, and up to as much again at random.
        tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
        backoff = (backoff * 2).min(FANOUT_THROTTLE_MAX_BACKOFF);
    }
}

/// Throttled posts, in one fan-out or by this process's Management API
/// client within a second, from which the account, not a client's full
/// buffer, is taken to be throttled.
const ACCOUNT_THROTTLED: usize = 16;

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
