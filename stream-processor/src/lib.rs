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

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use handlers::Chat;
use handlers::fanout::{Audience, broadcast};
use handlers::limits::{CONNECT_GRACE, WELCOME_ATTEMPTS, WELCOME_RETRY_STEP};
use handlers::management::Delivery;
use handlers::metric::{self, FanoutKind};
use handlers::protocol::ServerFrame;
use handlers::records::{Session, SessionDuration};
use handlers::store::WriteOutcome;
use handlers::time::Timestamp;
use lambda_runtime::LambdaEvent;
use thiserror::Error;
use tracing::{error, info, instrument, warn};

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

/// Processes every record of a batch in order; a failing record never stops
/// the rest, and comes back as a batch item failure (by sequence number) so
/// Lambda retries from the first of them.
pub async fn handle(
    chat: &Chat,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.payload.records {
        if let Err(failure) = process_record(chat, record).await {
            let sequence_number = record.change.sequence_number.clone();
            error!(
                event_id = %record.event_id,
                sequence_number = sequence_number.as_deref().unwrap_or("-"),
                error.code = failure.code(),
                error.request_id = failure.request_id(),
                error = %failure,
                "stream record failed"
            );
            metrics::counter!(metric::STREAM_RECORDS_FAILED).increment(1);
            let mut item = DynamoDbBatchItemFailure::default();
            item.item_identifier = sequence_number;
            response.batch_item_failures.push(item);
        }
    }
    Ok(response)
}

async fn process_record(chat: &Chat, record: &EventRecord) -> Result<(), RecordError> {
    match classify(record)? {
        // Boxed: the fan-out futures are deep enough to strain type layout.
        Change::Opened(session) => Box::pin(opened(chat, &session)).await,
        Change::Closed(session, at) => Box::pin(closed(chat, &session, at)).await,
        Change::Ignored => Ok(()),
    }
}

#[instrument(name = "opened", skip_all, fields(connection_id = %session.connection_id))]
async fn opened(chat: &Chat, session: &Session) -> Result<(), RecordError> {
    let id = session.connection_id.as_str();
    metrics::counter!(metric::CONNECTS).increment(1);
    let welcome = ServerFrame::welcome(session).to_json();
    let attempts = if is_recent(session.connected_at) {
        WELCOME_ATTEMPTS
    } else {
        1
    };
    if welcome_newcomer(chat, id, welcome.as_bytes(), attempts).await {
        metrics::counter!(metric::PRESENCE_FRAMES_SENT).increment(1);
    }
    let delivered = announce(chat, &ServerFrame::joined(session), session).await;
    info!(delivered, "announced a join");
    Ok(())
}

/// Sends the newcomer its `welcome`, waiting out the moment when its
/// `$connect` has written the session but API Gateway has not yet opened the
/// connection. True when delivered.
async fn welcome_newcomer(chat: &Chat, connection_id: &str, frame: &[u8], attempts: u32) -> bool {
    for attempt in 1..=attempts {
        match chat.management.post(connection_id, frame).await {
            Delivery::Delivered => return true,
            Delivery::Gone if attempt < attempts => {
                tokio::time::sleep(WELCOME_RETRY_STEP * attempt).await;
            }
            Delivery::Gone => info!("newcomer left before its welcome"),
            Delivery::Failed(failure) => {
                warn!(
                    error.code = failure.code.as_deref(),
                    error.request_id = failure.request_id.as_deref(),
                    error = %failure,
                    "welcome not delivered"
                );
                return false;
            }
        }
    }
    false
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
    session: &Session,
    disconnected_at: Timestamp,
) -> Result<(), RecordError> {
    let id = session.connection_id.as_str();
    let duration_seconds = disconnected_at.seconds_since(session.connected_at);
    let written = chat
        .store
        .record_duration(id, &SessionDuration { duration_seconds })
        .await?;
    if written == WriteOutcome::ConditionFailed {
        info!("duration already recorded (a replayed record)");
        return Ok(());
    }
    metrics::counter!(metric::DISCONNECTS).increment(1);
    metrics::histogram!(metric::SESSION_DURATION).record(duration_seconds);
    let left = ServerFrame::left(session, disconnected_at, duration_seconds);
    let delivered = announce(chat, &left, session).await;
    info!(duration_seconds, delivered, "announced a leave");
    Ok(())
}

/// Sends a presence frame to every connection in the subject's room but the
/// subject's own; how many received it.
async fn announce(chat: &Chat, frame: &ServerFrame, subject: &Session) -> usize {
    let report = broadcast(
        &chat.store,
        &chat.management,
        frame.to_json().as_bytes(),
        chat.limits.fanout_concurrency,
        Audience::room_except(&subject.room, &subject.connection_id),
        FanoutKind::Presence,
    )
    .await;
    metrics::counter!(metric::PRESENCE_FRAMES_SENT).increment(report.delivered as u64);
    report.delivered
}
