use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::{error, info, instrument};

use super::{WebSocketEvent, connection_id, reply, span_id};
use crate::Chat;
use crate::error::Error;
use crate::metric;
use crate::name::DisplayName;
use crate::protocol::parse_joining;
use crate::records::{ActiveConnection, Retention, Session};
use crate::time::Timestamp;

/// `$connect`: records the connection and opens its session in its room
/// (`?room=`, default `lobby`) under its display name (`?name=`, optional),
/// atomically. A non-2xx answer makes API Gateway reject the handshake; a
/// bad room or name is a 400 that writes nothing.
#[instrument(name = "$connect", skip_all, fields(connection_id = span_id(&event)))]
pub(super) async fn connect(
    chat: &Chat,
    event: WebSocketEvent,
) -> Result<ApiGatewayProxyResponse, Error> {
    let id = connection_id(&event)?;
    let context = &event.request_context;
    let connected_at = Timestamp::from_epoch_millis(context.connected_at)?;
    let query = &event.query_string_parameters;
    let signed_in = signed_in_user(&event);
    // A signed-in name is the token's; `?name=` is then ignored.
    let asked_name = if signed_in.is_some() {
        None
    } else {
        query.first("name")
    };
    let joining = match parse_joining(query.first("room"), asked_name) {
        Ok(joining) => joining,
        Err(refusal) => {
            info!(
                reason = refusal.message(),
                "refused the handshake's parameters"
            );
            // Not a failure: the alarms subtract these from API Gateway's
            // IntegrationError (infra/alarms.js).
            metrics::counter!(metric::HANDSHAKES_REFUSED).increment(1);
            return Ok(reply(400, Some(&refusal)));
        }
    };
    let (user_id, name) = match signed_in {
        Some((user_id, name)) => (Some(user_id), name),
        None => (None, joining.name),
    };
    let connection = ActiveConnection {
        name: name.clone(),
        user_id: user_id.clone(),
        ..ActiveConnection::new(id.to_owned(), connected_at, joining.room.clone())
    };
    let session = Session {
        ttl: Retention::expiry(chat.retention.session_days, connected_at),
        name,
        user_id,
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

/// The user the `$connect` authorizer let in (`requestContext.authorizer`,
/// set by API Gateway, never by the client), with the name from their token.
fn signed_in_user(event: &WebSocketEvent) -> Option<(String, Option<DisplayName>)> {
    let fields = &event.request_context.authorizer.fields;
    let user_id = fields.get("user_id")?.as_str()?.to_owned();
    let name = fields
        .get("name")
        .and_then(|name| name.as_str())
        .and_then(|name| DisplayName::parse(name).ok());
    Some((user_id, name))
}
