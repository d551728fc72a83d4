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
mod sendmessage;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;

pub use authorize::{AuthorizerEvent, UNAUTHORIZED, authorize, context_of};
pub use connect::connect;
pub use default::default;
pub use disconnect::disconnect;
pub use history::history;
pub use sendmessage::sendmessage;

use crate::error::Error;
use crate::protocol::ServerFrame;

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

/// The connection id for a route's log span, before it is validated.
fn span_id(event: &WebSocketEvent) -> &str {
    event
        .request_context
        .connection_id
        .as_deref()
        .unwrap_or("-")
}
