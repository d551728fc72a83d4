//! The SessionHistory stream consumer: the event-sourced half of the chat.
//!
//! - INSERT (a session opened): `welcome` to the newcomer, `joined` to everyone
//!   else, a connect metric.
//! - MODIFY that sets `disconnected_at` on a session without a duration: writes
//!   `duration_seconds` (conditionally, so a replay writes once), `left` to
//!   everyone still connected, disconnect and duration metrics.
//! - Anything else (the processor's own duration write, REMOVEs from TTL
//!   expiry, DynamoDB Local's `UNKNOWN_TO_SDK_VERSION`) is skipped.
//!
//! Delivery is at least once: every step is idempotent, and records that fail
//! are reported by sequence number so Lambda retries from the first of them.

use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use handlers::fanout::{FanoutKind, broadcast};
use handlers::management::{ConnectionsApi, Delivery, ManagementError};
use handlers::protocol::ServerFrame;
use handlers::records::{Session, SessionDuration};
use handlers::store::WriteOutcome;
use handlers::time::seconds_between;
use handlers::{Chat, metric};
use lambda_runtime::LambdaEvent;
use thiserror::Error;
use tracing::{error, info, warn};

/// How often, and how long apart, a `welcome` is retried while the newcomer's
/// connection still answers 410 (API Gateway does until `$connect` returns).
/// Only sessions younger than [`handlers::fanout::CONNECT_GRACE`] are
/// retried: an older one is gone, and waiting on it would hold up the stream.
const WELCOME_ATTEMPTS: u32 = 4;
const WELCOME_RETRY_DELAY: Duration = Duration::from_millis(150);

/// Why one stream record could not be processed.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error("{image} image does not decode as a session: {source}")]
    Undecodable {
        image: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    #[error(
        "session times do not parse: connected_at {connected_at:?}, disconnected_at {disconnected_at:?}"
    )]
    BadTimes {
        connected_at: String,
        disconnected_at: String,
    },
    #[error(transparent)]
    Store(#[from] handlers::error::StoreError),
    #[error(transparent)]
    Management(#[from] ManagementError),
}

/// What a record means to the chat.
#[derive(Debug, PartialEq)]
pub enum Change {
    Opened(Session),
    /// `disconnected_at` is set and `duration_seconds` is not yet.
    Closed(Session),
    /// Nothing to do (our own duration write, REMOVE, other event names).
    Ignored,
}

/// Reads a record's images into typed sessions.
pub fn classify(record: &EventRecord) -> Result<Change, RecordError> {
    match record.event_name.as_str() {
        "INSERT" => Ok(Change::Opened(decode(&record.change.new_image, "new")?)),
        "MODIFY" => {
            let session = decode(&record.change.new_image, "new")?;
            if session.disconnected_at.is_some() && session.duration_seconds.is_none() {
                Ok(Change::Closed(session))
            } else {
                Ok(Change::Ignored)
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

/// Processes a batch; failed records come back as batch item failures.
pub async fn handle(
    chat: &Chat,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
    Ok(process_batch(chat, &event.payload).await)
}

/// Processes every record in order; a failing record never stops the rest.
pub async fn process_batch(chat: &Chat, event: &Event) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        if let Err(failure) = process_record(chat, record).await {
            let sequence_number = record.change.sequence_number.clone();
            error!(
                event_id = %record.event_id,
                sequence_number = sequence_number.as_deref().unwrap_or("-"),
                error = %failure,
                "stream record failed"
            );
            metrics::counter!(metric::STREAM_RECORDS_FAILED).increment(1);
            let mut item = DynamoDbBatchItemFailure::default();
            item.item_identifier = sequence_number;
            response.batch_item_failures.push(item);
        }
    }
    response
}

async fn process_record(chat: &Chat, record: &EventRecord) -> Result<(), RecordError> {
    match classify(record)? {
        // Boxed: the fan-out futures are deep enough to strain type layout.
        Change::Opened(session) => Box::pin(opened(chat, &session)).await,
        Change::Closed(session) => Box::pin(closed(chat, &session)).await,
        Change::Ignored => Ok(()),
    }
}

async fn opened(chat: &Chat, session: &Session) -> Result<(), RecordError> {
    let api = chat.management.configured()?;
    let id = session.connection_id.as_str();
    metrics::counter!(metric::CONNECTS).increment(1);
    let welcome = ServerFrame::welcome(id, &session.connected_at).to_json();
    let attempts = if is_recent(&session.connected_at) {
        WELCOME_ATTEMPTS
    } else {
        1
    };
    if welcome_newcomer(&api, id, welcome.as_bytes(), attempts).await {
        metrics::counter!(metric::PRESENCE_FRAMES_SENT).increment(1);
    }
    let delivered = announce(
        chat,
        &api,
        &ServerFrame::joined(id, &session.connected_at),
        id,
    )
    .await;
    info!(connection_id = %id, delivered, "announced a join");
    Ok(())
}

/// Sends the newcomer its `welcome`, waiting out the moment when its
/// `$connect` has written the session but API Gateway has not yet opened the
/// connection. True when delivered.
async fn welcome_newcomer(
    api: &ConnectionsApi,
    connection_id: &str,
    frame: &[u8],
    attempts: u32,
) -> bool {
    for attempt in 1..=attempts {
        match api.post(connection_id, frame).await {
            Delivery::Delivered => return true,
            Delivery::Gone if attempt < attempts => {
                tokio::time::sleep(WELCOME_RETRY_DELAY * attempt).await;
            }
            Delivery::Gone => {
                info!(connection_id = %connection_id, "newcomer left before its welcome");
            }
            Delivery::Failed(failure) => {
                warn!(connection_id = %connection_id, error = %failure, "welcome not delivered");
                return false;
            }
        }
    }
    false
}

/// Whether a session opened within the connect grace period (by this
/// function's clock, which only decides how patient to be).
fn is_recent(connected_at: &str) -> bool {
    let grace_ms = handlers::fanout::CONNECT_GRACE.as_millis() as i64;
    chrono::DateTime::parse_from_rfc3339(connected_at).is_ok_and(|opened| {
        // A clock slightly behind API Gateway's sees a negative age: recent.
        chrono::Utc::now()
            .signed_duration_since(opened)
            .num_milliseconds()
            < grace_ms
    })
}

async fn closed(chat: &Chat, session: &Session) -> Result<(), RecordError> {
    let id = session.connection_id.as_str();
    let disconnected_at = session.disconnected_at.as_deref().unwrap_or_default();
    let duration_seconds =
        seconds_between(&session.connected_at, disconnected_at).ok_or_else(|| {
            RecordError::BadTimes {
                connected_at: session.connected_at.clone(),
                disconnected_at: disconnected_at.to_owned(),
            }
        })?;
    let api = chat.management.configured()?;
    let written = chat
        .store
        .record_duration(id, &SessionDuration { duration_seconds })
        .await?;
    if written == WriteOutcome::AlreadyDone {
        info!(connection_id = %id, "duration already recorded (a replayed record)");
        return Ok(());
    }
    metrics::counter!(metric::DISCONNECTS).increment(1);
    metrics::histogram!(metric::SESSION_DURATION).record(duration_seconds);
    let left = ServerFrame::left(id, disconnected_at, duration_seconds);
    let delivered = announce(chat, &api, &left, id).await;
    info!(connection_id = %id, duration_seconds, delivered, "announced a leave");
    Ok(())
}

/// Sends a presence frame to every connection but `subject`'s; how many
/// received it.
async fn announce(chat: &Chat, api: &ConnectionsApi, frame: &ServerFrame, subject: &str) -> usize {
    let report = broadcast(
        &chat.store,
        api,
        frame.to_json().as_bytes(),
        chat.limits.fanout_concurrency,
        Some(subject),
        FanoutKind::Presence,
    )
    .await;
    metrics::counter!(metric::PRESENCE_FRAMES_SENT).increment(report.delivered as u64);
    report.delivered
}
