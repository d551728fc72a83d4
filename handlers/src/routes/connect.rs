use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::{error, info, instrument};

use super::{WebSocketEvent, connection_id, reply, span_id};
use crate::Chat;
use crate::error::Error;
use crate::protocol::parse_joining;
use crate::records::{ActiveConnection, Retention, Session};
use crate::time::Timestamp;

/// `$connect`: records the connection and opens its session in its room
/// (`?room=`, default `lobby`) under its display name (`?name=`, optional),
/// atomically. A non-2xx answer makes API Gateway reject the handshake; a
/// bad room or name is a 400 that writes nothing.
#[instrument(name = "$connect", skip_all, fields(connection_id = span_id(&event)))]
pub async fn connect(chat: &Chat, event: WebSocketEvent) -> Result<ApiGatewayProxyResponse, Error> {
    let id = connection_id(&event)?;
    let context = &event.payload.request_context;
    let connected_at = Timestamp::from_epoch_millis(context.connected_at)?;
    let query = &event.payload.query_string_parameters;
    let joining = match parse_joining(query.first("room"), query.first("name")) {
        Ok(joining) => joining,
        Err(refusal) => {
            info!(
                reason = refusal.message(),
                "refused the handshake's parameters"
            );
            return Ok(reply(400, Some(&refusal)));
        }
    };
    let connection = ActiveConnection {
        name: joining.name.clone(),
        ..ActiveConnection::new(id.to_owned(), connected_at, joining.room.clone())
    };
    let session = Session {
        ttl: Retention::expiry(chat.retention.session_days, connected_at),
        name: joining.name,
        ..Session::opened(
            id.to_owned(),
            context.identity.source_ip.clone(),
            connected_at,
            joining.room,
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
