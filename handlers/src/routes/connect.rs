use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::{error, info};

use super::{WebSocketEvent, connection_id, reply};
use crate::Chat;
use crate::error::Error;
use crate::records::{ActiveConnection, Session};
use crate::time::rfc3339_millis;

/// `$connect`: records the connection and opens its session, atomically.
/// A non-2xx answer makes API Gateway reject the handshake.
pub async fn connect(chat: &Chat, event: WebSocketEvent) -> Result<ApiGatewayProxyResponse, Error> {
    let id = connection_id(&event)?;
    let context = &event.payload.request_context;
    let connected_at = rfc3339_millis(context.connected_at)?;
    let connection =
        ActiveConnection::new(id.to_owned(), connected_at.clone(), context.connected_at);
    let session = Session {
        connection_id: id.to_owned(),
        source_ip: context.identity.source_ip.clone(),
        connected_at,
        disconnected_at: None,
        duration_seconds: None,
        disconnect_status_code: None,
        disconnect_reason: None,
    };
    match chat.store.open_session(&connection, &session).await {
        Ok(()) => {
            info!(connection_id = %id, "connected");
            Ok(reply(200, None))
        }
        Err(failure) => {
            error!(connection_id = %id, error = %failure, "could not open session; rejecting the handshake");
            Ok(reply(500, None))
        }
    }
}
