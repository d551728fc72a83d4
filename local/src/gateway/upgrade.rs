//! The WebSocket opening handshake (RFC 6455 section 4.2), answered here
//! rather than by axum's extractor so that the socket handed over is
//! tungstenite's own stream: the connection's writer can then send a long
//! message as fragments ([`super::socket`]), which axum's `Message` cannot
//! express.

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// An upgraded connection.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// The only WebSocket version there is (RFC 6455).
const VERSION: &str = "13";

/// A request to open a WebSocket, not yet answered.
pub struct Upgrade {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket upgrade.
#[derive(Debug, thiserror::Error)]
pub enum NotAnUpgrade {
    #[error("a WebSocket upgrade is a GET request")]
    NotGet,
    #[error("the Connection header does not include 'upgrade'")]
    NoConnectionUpgrade,
    #[error("the Upgrade header is not 'websocket'")]
    NotWebSocket,
    #[error("Sec-WebSocket-Version must be 13")]
    WrongVersion,
    #[error("the Sec-WebSocket-Key header is missing")]
    NoKey,
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for NotAnUpgrade {
    fn into_response(self) -> Response {
        let status = match self {
            Self::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            // RFC 6455 4.2.2: name the version this server speaks.
            Self::WrongVersion => {
                let version = [(header::SEC_WEBSOCKET_VERSION, VERSION)];
                return (StatusCode::UPGRADE_REQUIRED, version, self.to_string()).into_response();
            }
            Self::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            Self::NoConnectionUpgrade | Self::NotWebSocket | Self::NoKey => StatusCode::BAD_REQUEST,
        };
        (status, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = NotAnUpgrade;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, NotAnUpgrade> {
        if parts.method != Method::GET {
            return Err(NotAnUpgrade::NotGet);
        }
        let headers = &parts.headers;
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(NotAnUpgrade::NoConnectionUpgrade);
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return Err(NotAnUpgrade::NotWebSocket);
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(VERSION.as_bytes())
        {
            return Err(NotAnUpgrade::WrongVersion);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(NotAnUpgrade::NoKey)?;
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| NotAnUpgrade::NoKey)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(NotAnUpgrade::NotUpgradable)?;
        Ok(Self { accept, on_upgrade })
    }
}

impl Upgrade {
    /// Answers 101 and, once the client has the answer, runs `connected`
    /// with the socket (or `failed`, if the upgrade did not complete).
    pub fn accept<Connected, Run>(
        self,
        config: WebSocketConfig,
        failed: impl FnOnce(hyper::Error) + Send + 'static,
        connected: Connected,
    ) -> Response
    where
        Connected: FnOnce(Socket) -> Run + Send + 'static,
        Run: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    connected(
                        WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await,
                    )
                    .await;
                }
                Err(error) => failed(error),
            }
        });
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_ACCEPT, self.accept),
            ],
        )
            .into_response()
    }
}

/// Whether the comma-separated `name` header holds `token` (any case).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    header::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn tokens_are_found_in_lists_in_any_case() {
        let h = headers(&[("connection", "keep-alive, Upgrade")]);
        assert!(has_token(&h, header::CONNECTION, "upgrade"));
        assert!(!has_token(&h, header::CONNECTION, "close"));
        assert!(!has_token(&h, header::UPGRADE, "websocket"));
    }

    #[test]
    fn a_wrong_version_is_answered_426_with_the_version_spoken() {
        let response = NotAnUpgrade::WrongVersion.into_response();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(
            NotAnUpgrade::NoKey.into_response().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
