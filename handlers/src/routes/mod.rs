//! One function per API Gateway route ([`crate::protocol::Route`]). Each
//! takes the event API Gateway sends and returns the proxy response it
//! expects. A client's mistake is answered with an `error` frame and status
//! 200 (API Gateway counts any 4xx or 5xx from a function as an
//! `IntegrationError`, which alarms); 500 means the server failed; only
//! `$connect` refuses with 4xx, because that is how a handshake is refused.
//! A body reaches the caller only on two-way routes
//! ([`crate::protocol::Route::is_two_way`]); other answers go by post.

mod authorize;
mod connect;
mod default;
mod disconnect;
mod history;
mod moderate;
mod sendmessage;

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;

pub use authorize::{AuthorizerEvent, UNAUTHORIZED, authorize, context_of};
pub use default::default;

use crate::Chat;
use crate::error::Error;
use crate::protocol::ServerFrame;

/// The answer of a route that reaches AWS, to come. Boxed here, where the
/// route is defined, so its state machine and the SDK calls inside it are
/// compiled with this crate, not again in each crate that awaits it (the
/// local stack, last in a build; docs/performance.md, "Build time").
pub type RouteFuture<'a> = Pin<Box<dyn Future<Output = RouteResult> + Send + 'a>>;

/// What a route answers API Gateway: a proxy response, or a failure of the
/// event itself (a field API Gateway always sends, missing).
pub type RouteResult = Result<ApiGatewayProxyResponse, Error>;

/// `$connect` (routes/connect.rs).
pub fn connect(chat: &Chat, event: WebSocketEvent) -> RouteFuture<'_> {
    Box::pin(connect::connect(chat, event))
}

/// `$disconnect` (routes/disconnect.rs).
pub fn disconnect(chat: &Chat, event: WebSocketEvent) -> RouteFuture<'_> {
    Box::pin(disconnect::disconnect(chat, event))
}

/// `sendmessage` (routes/sendmessage.rs).
pub fn sendmessage(chat: &Chat, event: WebSocketEvent) -> RouteFuture<'_> {
    Box::pin(sendmessage::sendmessage(chat, event))
}

/// `history` (routes/history.rs).
pub fn history(chat: &Chat, event: WebSocketEvent) -> RouteFuture<'_> {
    Box::pin(history::history(chat, event))
}

/// `remove`, `ban` and `delete` (routes/moderate.rs).
pub fn moderate(chat: &Chat, event: WebSocketEvent) -> RouteFuture<'_> {
    Box::pin(moderate::moderate(chat, event))
}

/// What API Gateway hands a route handler (the Lambda invocation's payload).
pub type WebSocketEvent = ApiGatewayWebsocketProxyRequest;

/// A proxy response with an optional frame for the caller.
pub fn reply(status_code: i64, frame: Option<&ServerFrame>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status_code;
    response.body = frame.map(|frame| Body::Text(frame.to_json()));
    response
}

/// The caller's connection id, which API Gateway always sends.
fn connection_id(event: &WebSocketEvent) -> Result<&str, Error> {
    event
        .request_context
        .connection_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or(Error::MissingField("requestContext.connectionId"))
}

/// The user the `$connect` authorizer let in, as API Gateway passes them to
/// every route of the connection (`requestContext.authorizer`, set by API
/// Gateway, never by the client).
struct SignedIn {
    user_id: String,
    /// The name from their token, when it is a valid display name.
    name: Option<crate::name::DisplayName>,
    grants: crate::access::Grants,
}

/// The signed-in user of a connection; `None` without sign-in.
fn signed_in(event: &WebSocketEvent) -> Option<SignedIn> {
    let fields = &event.request_context.authorizer.fields;
    let user_id = fields.get("user_id")?.as_str()?.to_owned();
    let name = fields
        .get("name")
        .and_then(|name| name.as_str())
        .and_then(|name| crate::name::DisplayName::parse(name).ok());
    Some(SignedIn {
        user_id,
        name,
        grants: crate::access::Grants::from_context(fields),
    })
}

/// Logs a failed DynamoDB call at ERROR with its AWS code and request id:
/// `what` could not be done.
fn log_failure(failure: &crate::error::StoreError, what: &str) {
    tracing::error!(
        error.code = failure.code(),
        error.request_id = failure.request_id(),
        error = %failure,
        "{what}"
    );
}

/// The connection id for a route's log span, before it is validated.
fn span_id(event: &WebSocketEvent) -> &str {
    event
        .request_context
        .connection_id
        .as_deref()
        .unwrap_or("-")
}
