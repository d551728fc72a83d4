use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::{error, info, instrument, warn};

use super::{WebSocketEvent, connection_id, reply, span_id};
use crate::Chat;
use crate::error::Error;
use crate::fanout::{FanoutReport, broadcast};
use crate::metric::{self, FanoutKind};
use crate::protocol::{ErrorCode, SendMessage, ServerFrame, validate_send_message};
use crate::records::Message;
use crate::time::Timestamp;

/// `sendmessage`: validate, store, then fan out to every active connection,
/// the sender included. The sender alone hears about problems.
#[instrument(name = "sendmessage", skip_all, fields(connection_id = span_id(&event)))]
pub async fn sendmessage(
    chat: &Chat,
    event: WebSocketEvent,
) -> Result<ApiGatewayProxyResponse, Error> {
    let id = connection_id(&event)?;
    let body = event.payload.body.as_deref();
    let text = match validate_send_message(body, chat.limits.max_chat_message_bytes) {
        Ok(SendMessage::Heartbeat) => return Ok(reply(200, Some(&ServerFrame::pong()))),
        Ok(SendMessage::Chat(text)) => text,
        Err(frame) => {
            metrics::counter!(metric::MESSAGES_REJECTED).increment(1);
            info!("rejected a sendmessage frame");
            return Ok(reply(400, Some(&frame)));
        }
    };
    let message = Message {
        message_id: uuid::Uuid::new_v4().to_string(),
        connection_id: id.to_owned(),
        message: text,
        timestamp: Timestamp::from_epoch_millis(event.payload.request_context.request_time_epoch)?,
    };
    if let Err(failure) = chat.store.put_message(&message).await {
        error!(error = %failure, "could not store the message");
        return Ok(not_stored());
    }
    metrics::counter!(metric::MESSAGES_SENT).increment(1);
    let report = fan_out(chat, &message).await;
    Ok(match delivery_problem(&report) {
        None => reply(200, None),
        Some(problem) => reply(
            200,
            Some(&ServerFrame::error(ErrorCode::PartialDelivery, problem)),
        ),
    })
}

/// Sends the stored message to every connection, and logs what happened.
async fn fan_out(chat: &Chat, message: &Message) -> FanoutReport {
    let frame = ServerFrame::chat(message).to_json();
    let report = broadcast(
        &chat.store,
        &chat.management,
        frame.as_bytes(),
        chat.limits.fanout_concurrency,
        None,
        FanoutKind::Message,
    )
    .await;
    info!(
        message_id = %message.message_id,
        recipients = report.recipients,
        delivered = report.delivered,
        pruned = report.pruned,
        failed = report.failed,
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

/// What to tell the sender when someone may not have received the message.
fn delivery_problem(report: &FanoutReport) -> Option<String> {
    if report.incomplete {
        Some("Your message was saved, but reading the connection list failed, so some people may not have received it.".to_owned())
    } else if report.failed > 0 {
        Some(format!(
            "Your message was saved, but could not be delivered to {} of {} connections.",
            report.failed, report.recipients
        ))
    } else {
        None
    }
}

fn not_stored() -> ApiGatewayProxyResponse {
    reply(
        500,
        Some(&ServerFrame::error(
            ErrorCode::Internal,
            "The server could not store your message; nothing was sent. Please try again.",
        )),
    )
}
