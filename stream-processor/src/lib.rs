//! The SessionHistory stream consumer: the event-sourced half of the chat.
//!
//! - INSERT (a session opened): `welcome` to the newcomer (with who is in
//!   the room), a connect metric, and the newcomer among the batch's `joined`.
//! - MODIFY that sets `disconnected_at` on a session without a duration: writes
//!   `duration_seconds` (conditionally, so a replay writes once), then the
//!   session is among the batch's `left`; disconnect and duration metrics.
//! - After the batch (or the records before the first that failed): each
//!   room with changes is read once; welcomes, then one `presence` frame per
//!   room and member with the room's joins and leaves (in a crowd, counts
//!   and a few names: [`handlers::protocol::frames::is_crowd`]), posted
//!   concurrently within bounds. A room's frames are at least the presence
//!   window apart ([`Processor`]); a session that opened and closed within
//!   the batch is not welcomed.
//! - Anything else (the processor's own duration write, REMOVEs from TTL
//!   expiry, DynamoDB Local's `UNKNOWN_TO_SDK_VERSION`) is skipped.
//!
//! Delivery is at least once: every step is idempotent, and records that fail
//! are reported by sequence number so Lambda retries from the first of them.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, stream};

use handlers::fanout::{Audience, broadcast};
use handlers::limits::{CONNECT_GRACE, WELCOME_ATTEMPTS, WELCOME_MAX_LISTED, WELCOME_RETRY_STEP};
use handlers::management::Delivery;
use handlers::metric::{self, FanoutKind};
use handlers::protocol::ServerFrame;
use handlers::records::{Departure, Member, Session, SessionDuration};
use handlers::store::WriteOutcome;
use handlers::time::Timestamp;
use handlers::{Chat, Room};
use thiserror::Error;
use tracing::{debug, error, info, instrument, warn};

/// Why one stream record could not be processed.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error("{image} image does not decode as a session: {source}")]
    Undecodable {
        image: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    #[error(transparent)]
    Store(#[from] handlers::error::StoreError),
}

impl RecordError {
    /// The AWS error code behind this failure, as a log field.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Store(error) => error.code(),
            Self::Undecodable { .. } => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Store(error) => error.request_id(),
            Self::Undecodable { .. } => None,
        }
    }
}

/// What a record means to the chat.
#[derive(Debug, PartialEq)]
pub enum Change {
    Opened(Session),
    /// `disconnected_at` is set (to the second field) and `duration_seconds`
    /// is not yet.
    Closed(Session, Timestamp),
    /// Nothing to do (our own duration write, REMOVE, other event names).
    Ignored,
}

/// Reads a record's images into typed sessions.
pub fn classify(record: &EventRecord) -> Result<Change, RecordError> {
    match record.event_name.as_str() {
        "INSERT" => Ok(Change::Opened(decode(&record.change.new_image, "new")?)),
        "MODIFY" => {
            let session: Session = decode(&record.change.new_image, "new")?;
            match (session.disconnected_at, session.duration_seconds) {
                (Some(disconnected_at), None) => Ok(Change::Closed(session, disconnected_at)),
                _ => Ok(Change::Ignored),
            }
        }
        // REMOVE (TTL expiry or a delete) and anything a newer stream format
        // might send, e.g. DynamoDB Local's UNKNOWN_TO_SDK_VERSION for TTL.
        _ => Ok(Change::Ignored),
    }
}

fn decode(image: &serde_dynamo::Item, which: &'static str) -> Result<Session, RecordError> {
    serde_dynamo::from_item(image.clone()).map_err(|source| RecordError::Undecodable {
        image: which,
        source,
    })
}

/// The stream processor of one process: the chat's clients, and when each
/// room's last `presence` frame finished going out. A room announced less
/// than the presence window ago ([`handlers::ChatLimits::presence_window`]) is
/// announced when the window ends, so however fast people come and go a
/// member gets about one frame a second; the stream meanwhile waits (its
/// records are read in order, one batch at a time per shard), and the next
/// batch brings everything that happened since in one frame.
///
/// On AWS this paces each stream shard's invocations; a table of several
/// shards may announce a room once per shard and window (docs/scale.md).
pub struct Processor {
    chat: Chat,
    announced: Mutex<HashMap<Room, Instant>>,
}

/// Rooms a processor remembers announcing; past it, those announced more
/// than a window ago are forgotten.
const ROOMS_REMEMBERED: usize = 10_000;

impl Processor {
    pub fn new(chat: Chat) -> Self {
        Self {
            chat,
            announced: Mutex::default(),
        }
    }

    pub fn chat(&self) -> &Chat {
        &self.chat
    }

    /// Processes a batch (`process_batch`, below). Boxed here, where it is
    /// defined, so its state machine and the SDK calls inside it are
    /// compiled with this crate, not again in the local stack
    /// (docs/performance.md, "Build time").
    pub fn handle(
        &self,
        event: Event,
    ) -> Pin<Box<dyn Future<Output = DynamoDbEventResponse> + Send + '_>> {
        Box::pin(process_batch(self, event))
    }

    /// Waits until `room` may be announced again: a window after its last
    /// frame finished going out, so that the member posted last then is
    /// not posted again sooner.
    async fn window_for(&self, room: &Room) {
        let last = self.announced().get(room).copied();
        if let Some(last) = last {
            tokio::time::sleep_until((last + self.chat.limits.presence_window).into()).await;
        }
    }

    /// Marks `room` announced as of now.
    fn announced_now(&self, room: &Room) {
        let window = self.chat.limits.presence_window;
        let mut announced = self.announced();
        if announced.len() >= ROOMS_REMEMBERED {
            announced.retain(|_, at| at.elapsed() < window);
        }
        announced.insert(room.clone(), Instant::now());
    }

    fn announced(&self) -> std::sync::MutexGuard<'_, HashMap<Room, Instant>> {
        self.announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Processes a batch: each record in order until one fails (it comes back
/// as the batch item failure, by sequence number, and Lambda retries from it,
/// so nothing before it is done twice and nothing after it is done yet),
/// then, concurrently within a bound, one `welcome` per newcomer and one
/// `presence` frame per room and recipient for the whole batch: N joins
/// cost N welcomes and one frame per member, not N² posts. A newcomer whose
/// close is in the same batch gets no welcome.
async fn process_batch(processor: &Processor, event: Event) -> DynamoDbEventResponse {
    let chat = &processor.chat;
    let mut response = DynamoDbEventResponse::default();
    let mut changes: BTreeMap<Room, RoomChanges> = BTreeMap::new();
    let mut newcomers: Vec<Session> = Vec::new();
    for record in &event.records {
        match Box::pin(process_record(chat, record)).await {
            Ok(Outcome::Joined(session)) => {
                let room = changes.entry(session.room.clone()).or_default();
                room.joined.push(Member::of(&session));
                room.newcomers.push(session.connection_id.clone());
                newcomers.push(session);
            }
            Ok(Outcome::Left(room, departure)) => {
                // Came and went within one batch: no welcome for it (it is
                // gone); its room still hears, in the one frame, that it
                // came and went.
                newcomers.retain(|session| session.connection_id != departure.connection_id);
                changes.entry(room).or_default().left.push(departure);
            }
            Ok(Outcome::Nothing) => {}
            Err(failure) => {
                let sequence_number = record.change.sequence_number.clone();
                error!(
                    event_id = %record.event_id,
                    sequence_number = sequence_number.as_deref().unwrap_or("-"),
                    error.code = failure.code(),
                    error.request_id = failure.request_id(),
                    error = %failure,
                    "stream record failed; the batch is retried from it"
                );
                metrics::counter!(metric::STREAM_RECORDS_FAILED).increment(1);
                let mut item = DynamoDbBatchItemFailure::default();
                item.item_identifier = sequence_number;
                response.batch_item_failures.push(item);
                break;
            }
        }
    }
    let concurrency = chat.limits.fanout_concurrency.max(1);
    let mut rooms_now = list_rooms(chat, changes.keys().cloned().collect()).await;
    welcome_all(chat, &newcomers, &rooms_now, concurrency).await;
    let announcements: Vec<_> = changes
        .into_iter()
        .map(|(room, room_changes)| {
            let now = rooms_now.remove(&room).flatten();
            async move {
                processor.window_for(&room).await;
                Box::pin(announce(chat, &room, room_changes, now)).await;
                processor.announced_now(&room);
            }
        })
        .collect();
    stream::iter(announcements)
        .buffer_unordered(ROOMS_AT_ONCE)
        .collect::<()>()
        .await;
    response
}

/// Rooms whose presence frames go out at once; each fans out with
/// `FANOUT_CONCURRENCY` posts in flight.
const ROOMS_AT_ONCE: usize = 4;

/// Who is in each of `rooms` (up to [`WELCOME_MAX_LISTED`]) and how many,
/// read once per room and batch for its welcomes and its presence frame;
/// `None` for a room that could not be read.
async fn list_rooms(chat: &Chat, rooms: Vec<Room>) -> BTreeMap<Room, Option<(Vec<Member>, usize)>> {
    // Futures made first, then run: a stream of closures borrowing them
    // would not be `Send` for every lifetime.
    let listings: Vec<_> = rooms
        .into_iter()
        .map(|room| async move {
            let members = list_room(chat, &room).await;
            (room, members)
        })
        .collect();
    stream::iter(listings)
        .buffer_unordered(ROOMS_AT_ONCE)
        .collect()
        .await
}

/// Welcomes every newcomer, `concurrency` at a time, with its room as
/// `listed` (nobody listed when it could not be read). A newcomer whose
/// connection is not open yet (410: its `$connect` has written the session
/// but not returned) is tried again, up to [`WELCOME_ATTEMPTS`] times, all
/// of them together after a pause, so the waiting holds up no one else's
/// welcome.
async fn welcome_all(
    chat: &Chat,
    newcomers: &[Session],
    listed: &BTreeMap<Room, Option<(Vec<Member>, usize)>>,
    concurrency: usize,
) {
    let mut pending: Vec<(&Session, Bytes)> = newcomers
        .iter()
        .map(|newcomer| {
            let (online, count) = listed
                .get(&newcomer.room)
                .cloned()
                .flatten()
                .unwrap_or_default();
            let frame = ServerFrame::welcome(newcomer, online, count).to_json();
            (newcomer, Bytes::from(frame))
        })
        .collect();
    for attempt in 1..=WELCOME_ATTEMPTS {
        // Futures made first, then run: a stream of closures borrowing them
        // would not be `Send` for every lifetime.
        let tries: Vec<_> = pending
            .into_iter()
            .map(|(session, frame)| async move {
                let delivery = chat
                    .management
                    .post(&session.connection_id, frame.clone())
                    .await;
                (session, frame, delivery)
            })
            .collect();
        let outcomes: Vec<_> = stream::iter(tries)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        pending = Vec::new();
        for (session, frame, delivery) in outcomes {
            let connection_id = &session.connection_id;
            match delivery {
                Delivery::Delivered => {
                    metrics::counter!(metric::PRESENCE_FRAMES_SENT).increment(1);
                }
                Delivery::Gone if attempt < WELCOME_ATTEMPTS && is_recent(session.connected_at) => {
                    pending.push((session, frame));
                }
                Delivery::Gone => debug!(%connection_id, "the newcomer left before its welcome"),
                Delivery::Failed(failure) => warn!(
                    %connection_id,
                    error.code = failure.code.as_deref(),
                    error.request_id = failure.request_id.as_deref(),
                    error = %failure,
                    "welcome not delivered"
                ),
            }
        }
        pending = still_here(chat, pending, concurrency).await;
        if pending.is_empty() {
            return;
        }
        tokio::time::sleep(WELCOME_RETRY_STEP * attempt).await;
    }
}

/// Of the newcomers whose connection answered 410 (API Gateway opens it
/// only once its `$connect` has returned), those whose row is still there:
/// one that left meanwhile (its `$disconnect` ran) is not tried again.
async fn still_here<'a>(
    chat: &Chat,
    pending: Vec<(&'a Session, Bytes)>,
    concurrency: usize,
) -> Vec<(&'a Session, Bytes)> {
    let checks: Vec<_> = pending
        .into_iter()
        .map(|(session, frame)| async move {
            let left = matches!(chat.store.sender(&session.connection_id).await, Ok(None));
            if left {
                debug!(connection_id = %session.connection_id, "the newcomer left before its welcome: not tried again");
            }
            (!left).then_some((session, frame))
        })
        .collect();
    stream::iter(checks)
        .buffer_unordered(concurrency)
        .filter_map(futures::future::ready)
        .collect()
        .await
}

/// What one record changed in its room.
enum Outcome {
    Joined(Session),
    Left(Room, Departure),
    Nothing,
}

/// The arrivals and departures of one room in one batch.
#[derive(Default)]
struct RoomChanges {
    joined: Vec<Member>,
    left: Vec<Departure>,
    /// Told by their own `welcome`, so left out of the `presence` frame.
    newcomers: Vec<String>,
}

async fn process_record(chat: &Chat, record: &EventRecord) -> Result<Outcome, RecordError> {
    match classify(record)? {
        Change::Opened(session) => {
            metrics::counter!(metric::CONNECTS).increment(1);
            Ok(Outcome::Joined(session))
        }
        Change::Closed(session, at) => closed(chat, session, at).await,
        Change::Ignored => Ok(Outcome::Nothing),
    }
}

/// Who is in `room`; `None` when it cannot be read.
async fn list_room(chat: &Chat, room: &Room) -> Option<(Vec<Member>, usize)> {
    match chat.store.room_members(room, WELCOME_MAX_LISTED).await {
        Ok(members) => Some(members),
        Err(failure) => {
            warn!(%room, error = %failure, "could not list the room; welcoming and announcing without it");
            None
        }
    }
}

/// Whether a session opened within [`CONNECT_GRACE`] by this function's
/// clock, which only decides how patient to be with its `welcome`. A clock
/// slightly behind API Gateway's sees a negative age: recent.
fn is_recent(connected_at: Timestamp) -> bool {
    connected_at > Timestamp::now().minus(CONNECT_GRACE)
}

#[instrument(name = "closed", skip_all, fields(connection_id = %session.connection_id))]
async fn closed(
    chat: &Chat,
    session: Session,
    disconnected_at: Timestamp,
) -> Result<Outcome, RecordError> {
    let duration_seconds = disconnected_at.seconds_since(session.connected_at);
    let written = chat
        .store
        .record_duration(
            &session.connection_id,
            &SessionDuration { duration_seconds },
        )
        .await?;
    if written == WriteOutcome::ConditionFailed {
        debug!("duration already recorded: a replayed record, nothing to do");
        return Ok(Outcome::Nothing);
    }
    metrics::counter!(metric::DISCONNECTS).increment(1);
    metrics::histogram!(metric::SESSION_DURATION).record(duration_seconds);
    let departure = Departure {
        connection_id: session.connection_id,
        name: session.name,
        disconnected_at,
        duration_seconds,
        removed: session.removal,
    };
    Ok(Outcome::Left(session.room, departure))
}

/// Tells a room, in one frame per member, who joined and who left, and
/// (`now`) who is here; the batch's newcomers are left out (their welcome
/// lists everyone).
async fn announce(
    chat: &Chat,
    room: &Room,
    changes: RoomChanges,
    now: Option<(Vec<Member>, usize)>,
) {
    let joined = changes.joined.len();
    let left = changes.left.len();
    let frame = ServerFrame::presence(room, changes.joined, changes.left, now);
    let report = broadcast(
        chat,
        &frame.to_json(),
        Audience::room_except(room, &changes.newcomers),
        FanoutKind::Presence,
    )
    .await;
    metrics::counter!(metric::PRESENCE_FRAMES_SENT).increment(report.delivered as u64);
    info!(%room, joined, left, delivered = report.delivered, "announced presence");
}
