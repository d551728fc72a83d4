//! An HTTP connector that hands each request to an axum router in this
//! process. The chat's own Management API calls (its signed
//! `PostToConnection` and `GetConnection`) still reach the real Management
//! API handlers as HTTP requests, without a TCP round trip and HTTP parsing on
//! both sides for every post of a fan-out. Other programs reach the same API
//! over HTTP as before.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorFuture};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use tower::ServiceExt;

/// The Management API's largest answer is a GetConnection document; this
/// bounds what the transport buffers.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Calls `router` in place of the network. Built before the router exists
/// (the chat's clients come before the gateway that serves them), so the
/// router is set with [`InProcess::serve`], and taken away again with
/// [`InProcess::stop`]: the router holds the gateway, which holds the chat's
/// clients, which hold this transport, a cycle only `stop` breaks.
#[derive(Clone, Debug, Default)]
pub struct InProcess {
    router: Arc<RwLock<Option<Router>>>,
}

impl InProcess {
    /// Routes requests to `router` from now on.
    pub fn serve(&self, router: Router) {
        *self.router.write().unwrap_or_else(PoisonError::into_inner) = Some(router);
    }

    /// Refuses requests from now on, as a closed port would.
    pub fn stop(&self) {
        *self.router.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl HttpConnector for InProcess {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let router = self
            .router
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        HttpConnectorFuture::new(async move {
            let router = router.ok_or_else(|| {
                ConnectorError::io("the in-process Management API is not serving".into())
            })?;
            let request = request
                .try_into_http1x()
                .map_err(|problem| ConnectorError::other(problem.into(), None))?;
            let (mut parts, body) = request.into_parts();
            let body = body
                .bytes()
                .map(bytes::Bytes::copy_from_slice)
                .ok_or_else(|| {
                    ConnectorError::other(
                        "the in-process transport takes in-memory bodies only".into(),
                        None,
                    )
                })?;
            // The caller is this machine, as a loopback TCP peer would be.
            parts
                .extensions
                .insert(ConnectInfo(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))));
            let response = router
                .oneshot(axum::http::Request::from_parts(parts, Body::from(body)))
                .await
                .map_err(|never| match never {})?;
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, MAX_RESPONSE_BYTES)
                .await
                .map_err(|problem| ConnectorError::io(problem.into()))?;
            HttpResponse::try_from(axum::http::Response::from_parts(parts, SdkBody::from(body)))
                .map_err(|problem| ConnectorError::other(problem.into(), None))
        })
    }
}
