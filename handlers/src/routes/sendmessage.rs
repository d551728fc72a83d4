use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::{error, info, warn};

use super::{WebSocketEvent, connection_id, reply};
use crate::Chat;
use crate::error::Error;
use crate::fanout::{FanoutKind, broadcast};
use crate::metric;
use crate::protocol::{ErrorCode, SendMessage, ServerFrame, validate_send_message};
use crate::records::Message;
use crate::time::rfc3339_millis;

/// `sendmessage`: validate, store, then fan out to every active connection,
/// the sender included. The sender alone hears about problems.
pub async fn sendmessage(
    chat: &Chat,
    event: WebSocketEvent,
) -> Result<ApiGatewayProxyResponse, Error> {
    let id = connection_id(&event)?;
    let context = &event.payload.request_context;
    let text =
        match validate_send_message(event.payload.body.as_deref(), chat.limits.max_message_bytes) {
            Ok(SendMessage::Heartbeat) => return Ok(reply(200, Some(&ServerFrame::pong()))),
            Ok(SendMessage::Chat(text)) => text,
            Err(frame) => {
                metrics::counter!(metric::MESSAGES_REJECTED).increment(1);
                info!(connection_id = %id, "rejected a sendmessage frame");
                return Ok(reply(400, Some(&frame)));
            }
        };
    let api = match chat.management.for_request(context) {
        Ok(api) => api,
        Err(failure) => {
            error!(connection_id = %id, error = %failure, "no Management API to fan out with");
            return Ok(internal_error());
        }
    };
    let message = Message {
        message_id: uuid::Uuid::new_v4().to_string(),
        connection_id: id.to_owned(),
        message: text,
        timestamp: rfc3339_millis(context.request_time_epoch)?,
    };
    if let Err(failure) = chat.store.put_message(&message).await {
        error!(connection_id = %id, error = %failure, "could not store the message");
        return Ok(internal_error());
    }
    metrics::counter!(metric::MESSAGES_SENT).increment(1);
    let frame = ServerFrame::chat(&message).to_json();
    let report = broadcast(
        &chat.store,
        &api,
        frame.as_bytes(),
        chat.limits.fanout_concurrency,
        None,
        FanoutKind::Message,
    )
    .await;
    info!(
        connection_id = %id,
        message_id = %message.message_id,
        recipients = report.recipients,
        delivered = report.delivered,
        pruned = report.pruned,
        failed = report.failed,
        "message fanned out"
    );
    if !report.missed_anyone() {
        return Ok(reply(200, None));
    }
    warn!(connection_id = %id, failed = report.failed, incomplete = report.incomplete, "fan-out missed some connections");
    let problem = if report.incomplete {
        "Your message was saved, but reading the connection list failed, so some people may not have received it.".to_owned()
    } else {
        format!(
            "Your message was saved, but could not be delivered to {} of {} connections.",
            report.failed, report.recipients
        )
    };
    Ok(reply(
        200,
        Some(&ServerFrame::error(ErrorCode::PartialDelivery, problem)),
    ))
}

fn internal_error() -> ApiGatewayProxyResponse {
    reply(
        500,
        Some(&ServerFrame::error(
            ErrorCode::Internal,
            "The server could not store your message; nothing was sent. Please try again.",
        )),
    )
}
