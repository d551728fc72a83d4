use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::{debug, info, instrument, warn};

use super::{RouteResult, WebSocketEvent, connection_id, log_failure, reply, span_id};
use crate::Chat;
use crate::admission::{Admission, admit};
use crate::error::StoreError;
use crate::fanout::{Audience, FanoutReport, broadcast};
use crate::management::Delivery;
use crate::metric::{self, FanoutKind};
use crate::protocol::{ErrorCode, SendMessage, ServerFrame, validate_send_message};
use crate::rate::Allowance;
use crate::records::{Message, Retention};
use crate::time::Timestamp;

/// `sendmessage`: validate, store, then fan out to every connection in the
/// sender's room, the sender included. The sender alone hears about problems (and gets the
/// pong to the tutorial's heartbeat), by a post to its connection: the route
/// is one-way, because with a route response API Gateway would send every
/// body-less success to the client as an empty frame.
#[instrument(name = "sendmessage", skip_all, fields(connection_id = span_id(&event)))]
pub(super) async fn sendmessage(chat: &Chat, event: WebSocketEvent) -> RouteResult {
    let id = connection_id(&event)?;
    let body = event.body.as_deref();
    let text = match validate_send_message(body, chat.limits.max_chat_message_bytes) {
        Ok(SendMessage::Heartbeat) => {
            answer(chat, id, &ServerFrame::pong()).await;
            return Ok(reply(200, None));
        }
        Ok(SendMessage::Chat(text)) => text,
        Err(frame) => {
            metrics::counter!(metric::MESSAGES_REJECTED).increment(1);
            info!("rejected a sendmessage frame");
            answer(chat, id, &frame).await;
            return Ok(reply(200, None));
        }
    };
    let timestamp = Timestamp::from_epoch_millis(event.request_context.request_time_epoch)?;
    let admission = admit(
        chat,
        id,
        Allowance::Messages,
        chat.limits.message_rate,
        timestamp,
    )
    .await;
    let sender = match admission {
        Ok(Admission::Allowed(sender)) => sender,
        Ok(Admission::NoRow) => {
            info!("a message from a connection without a row");
            answer(chat, id, &not_stored()).await;
            return Ok(reply(200, None));
        }
        Ok(Admission::Refused(refusal)) => {
            metrics::counter!(metric::MESSAGES_REJECTED).increment(1);
            info!("refused a message over the rate limit");
            answer(chat, id, &refusal).await;
            return Ok(reply(200, None));
        }
        Err(failure) => {
            return Ok(store_failed(
                chat,
                id,
                &failure,
                "could not read the sender's row or record the message against the rate limit",
            )
            .await);
        }
    };
    let message = new_message(chat, id, sender, text, timestamp);
    if let Err(failure) = chat.store.put_message(&message).await {
        return Ok(store_failed(chat, id, &failure, "could not store the message").await);
    }
    metrics::counter!(metric::MESSAGES_SENT).increment(1);
    let report = fan_out(chat, &message).await;
    if let Some(problem) = report.problem() {
        answer(chat, id, &problem).await;
    }
    Ok(reply(200, None))
}

/// The message to store: `text` from `sender`, at `timestamp`.
fn new_message(
    chat: &Chat,
    id: &str,
    sender: crate::store::Sender,
    text: String,
    timestamp: Timestamp,
) -> Message {
    Message {
        ttl: Retention::expiry(chat.retention.message_days, timestamp),
        name: sender.name,
        user_id: sender.user_id,
        ..Message::new(
            // Time-ordered, and in order of creation within a process: two
            // messages of the same millisecond keep the order they came in
            // (`time_order` is `timestamp#message_id`).
            uuid::Uuid::now_v7().to_string(),
            id.to_owned(),
            sender.room,
            text,
            timestamp,
        )
    }
}

/// A DynamoDB call failed before anything was sent: logged with its AWS
/// code and request id, the sender told nothing was stored, and a 500 so the
/// failure shows in API Gateway's integration metrics.
async fn store_failed(
    chat: &Chat,
    id: &str,
    failure: &StoreError,
    what: &'static str,
) -> ApiGatewayProxyResponse {
    log_failure(failure, what);
    answer(chat, id, &not_stored()).await;
    reply(500, None)
}

/// Posts `frame` to the sender alone.
async fn answer(chat: &Chat, sender: &str, frame: &ServerFrame) {
    match chat.management.post(sender, frame.to_json().into()).await {
        Delivery::Delivered => {}
        Delivery::Gone => debug!("the sender left before its answer"),
        Delivery::Failed(failure) => warn!(
            error.code = failure.code.as_deref(),
            error.request_id = failure.request_id.as_deref(),
            error = %failure,
            "could not answer the sender"
        ),
    }
}

/// Sends the stored message to every connection (a large room's rest
/// through fan-out workers, which tell the sender of their own misses),
/// and logs what happened here.
async fn fan_out(chat: &Chat, message: &Message) -> FanoutReport {
    let frame = ServerFrame::chat(message).to_json();
    let audience = Audience::message(&message.room, &message.connection_id);
    let report = broadcast(chat, &frame, audience, FanoutKind::Message).await;
    info!(
        message_id = %message.message_id,
        recipients = report.recipients,
        delivered = report.delivered,
        pruned = report.pruned,
        failed = report.failed,
        handed_off = report.handed_off,
        "message fanned out"
    );
    if report.missed_anyone() {
        warn!(
            failed = report.failed,
            incomplete = report.incomplete,
            "fan-out missed some connections"
        );
    }
    report
}

fn not_stored() -> ServerFrame {
    ServerFrame::error(
        ErrorCode::Internal,
        "The server could not store your message; nothing was sent. Please try again.",
    )
}
