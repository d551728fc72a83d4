use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::{error, info, instrument};

use super::{WebSocketEvent, connection_id, reply, span_id};
use crate::Chat;
use crate::error::Error;
use crate::protocol::{ErrorCode, ServerFrame};
use crate::records::{ActiveConnection, Retention, Session};
use crate::room::Room;
use crate::time::Timestamp;

/// `$connect`: records the connection and opens its session in its room
/// (`?room=`, default `lobby`), atomically. A non-2xx answer makes API
/// Gateway reject the handshake; a bad room name is a 400 that writes
/// nothing.
#[instrument(name = "$connect", skip_all, fields(connection_id = span_id(&event)))]
pub async fn connect(chat: &Chat, event: WebSocketEvent) -> Result<ApiGatewayProxyResponse, Error> {
    let id = connection_id(&event)?;
    let context = &event.payload.request_context;
    let connected_at = Timestamp::from_epoch_millis(context.connected_at)?;
    let room = match event.payload.query_string_parameters.first("room") {
        None => Room::lobby(),
        Some(name) => match Room::parse(name) {
            Ok(room) => room,
            Err(why) => {
                info!(%why, "refused a room name");
                let reason = format!("?room= is not a room name: {why}");
                return Ok(reply(
                    400,
                    Some(&ServerFrame::error(ErrorCode::InvalidRoom, reason)),
                ));
            }
        },
    };
    let connection = ActiveConnection::new(id.to_owned(), connected_at, room.clone());
    let session = Session {
        ttl: Retention::expiry(chat.retention.session_days, connected_at),
        ..Session::opened(
            id.to_owned(),
            context.identity.source_ip.clone(),
            connected_at,
            room,
        )
    };
    match chat.store.open_session(&connection, &session).await {
        Ok(()) => {
            info!("connected");
            Ok(reply(200, None))
        }
        Err(failure) => {
            error!(
                error.code = failure.code(),
                error.request_id = failure.request_id(),
                error = %failure,
                "could not open session; rejecting the handshake"
            );
            Ok(reply(500, None))
        }
    }
}
