//! The HTTP client of the local stack's SDK clients: HTTP/1.1 over TCP with
//! kept-alive connections, for the `http://` endpoints the local stack calls
//! (the embedded engine, or DynamoDB Local with `--dynamodb-endpoint`):
//! hyper-util's client (its pool; a request a closed idle connection never
//! sent goes again on a new one), HTTP/1 only. The SDK's own client adds
//! TLS, HTTP/2 and proxies, which nothing local uses, and a minute to a
//! first build (docs/performance.md, "Build time"). The SDK clients
//! themselves are unchanged: same serialization, signing, retries and error
//! mapping.

use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::{BodyExt, Limited};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;
use thiserror::Error;

/// Idle connections kept per endpoint; a connection finishing beyond that is
/// closed.
pub const MAX_IDLE_PER_ENDPOINT: usize = 64;

/// The largest response body read: twice DynamoDB's largest answer
/// (BatchGetItem, 16 MB).
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Why a request could not be sent or answered.
#[derive(Debug, Error)]
enum Failure {
    #[error("the local stack speaks plain HTTP only, not to {0}")]
    NotPlainHttp(Uri),
    #[error("HTTP/1.1 exchange with {endpoint}")]
    Exchange {
        endpoint: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading the answer of {endpoint}")]
    Body {
        endpoint: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Failure {
    /// As the SDK takes it: a failure of the connection, which its retry
    /// policy retries.
    fn io(self) -> ConnectorError {
        ConnectorError::io(self.into())
    }
}

/// Give it to an SDK config as its HTTP client.
#[derive(Clone, Debug, Default)]
pub struct PlainHttp;

impl PlainHttp {
    /// A connector with the timeouts of `settings` (and a pool of its own),
    /// for code that sends requests itself (the Management API adapter).
    pub fn connector(&self, settings: &HttpConnectorSettings) -> SharedHttpConnector {
        let mut tcp = TcpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(settings.connect_timeout());
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_ENDPOINT)
            .build(tcp);
        SharedHttpConnector::new(Connector {
            client,
            read_timeout: settings.read_timeout(),
        })
    }
}

impl HttpClient for PlainHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector(settings)
    }
}

/// One client's pool and the read timeout of its SDK config.
#[derive(Debug)]
struct Connector {
    client: Client<TcpConnector, SdkBody>,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|problem| ConnectorError::other(problem.into(), None))?;
            if request.uri().scheme_str() != Some("http") {
                let uri = request.uri().clone();
                return Err(ConnectorError::other(
                    Failure::NotPlainHttp(uri).into(),
                    None,
                ));
            }
            let endpoint = request
                .uri()
                .authority()
                .map(ToString::to_string)
                .unwrap_or_default();
            let answer = async {
                let response = client.request(request).await.map_err(|source| {
                    let endpoint = endpoint.clone();
                    if source.is_connect() {
                        ConnectorError::io(Failure::Exchange { endpoint, source }.into())
                    } else {
                        Failure::Exchange { endpoint, source }.io()
                    }
                })?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|source| {
                        let endpoint = endpoint.clone();
                        Failure::Body { endpoint, source }.io()
                    })?
                    .to_bytes();
                Ok(hyper::Response::from_parts(parts, SdkBody::from(body)))
            };
            let response = within(read_timeout, answer).await??;
            HttpResponse::try_from(response)
                .map_err(|problem| ConnectorError::other(problem.into(), None))
        })
    }
}

/// `work`, or a timeout error once `limit` has passed.
async fn within<T>(
    limit: Option<Duration>,
    work: impl Future<Output = T>,
) -> Result<T, ConnectorError> {
    match limit {
        None => Ok(work.await),
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .map_err(|elapsed| ConnectorError::timeout(elapsed.into())),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// How a test server treats each connection.
    #[derive(Clone, Copy)]
    enum Serve {
        /// Answers every request on it, keeping it open.
        KeepAlive,
        /// Answers one request, then closes it without saying so.
        OneThenClose,
        /// Reads the request and never answers.
        Silent,
        /// Answers with a body one byte over [`MAX_RESPONSE_BYTES`].
        Oversized,
    }

    /// An HTTP/1.1 server (hyper's) on 127.0.0.1 counting the connections
    /// it accepted; it stops with the test's runtime.
    async fn server(serve: Serve) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer(socket, serve));
            }
        });
        (endpoint, accepted)
    }

    /// Serves one connection as `serve` says. `OneThenClose` stops keeping
    /// it alive once its first answer is on its way, so hyper closes it
    /// after that answer without a `connection: close` (the head is
    /// already written): the client learns of it only by the closed socket.
    async fn answer(socket: TcpStream, serve: Serve) {
        let answered = Arc::new(tokio::sync::Notify::new());
        let told = Arc::clone(&answered);
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            let told = Arc::clone(&told);
            async move {
                let _ = request.into_body().collect().await;
                let length = match serve {
                    Serve::Silent => return std::future::pending().await,
                    Serve::Oversized => MAX_RESPONSE_BYTES + 1,
                    Serve::KeepAlive | Serve::OneThenClose => 2,
                };
                told.notify_one();
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(vec![
                    b'{';
                    length
                ]))))
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(socket), service);
        tokio::pin!(connection);
        if matches!(serve, Serve::OneThenClose) {
            tokio::select! {
                _ = connection.as_mut() => return,
                () = answered.notified() => connection.as_mut().graceful_shutdown(),
            }
        }
        let _ = connection.await;
    }

    fn connector(read_timeout: Option<Duration>) -> SharedHttpConnector {
        let mut settings = HttpConnectorSettings::builder();
        settings.set_read_timeout(read_timeout);
        PlainHttp.connector(&settings.build())
    }

    fn post(url: &str) -> HttpRequest {
        let request = hyper::Request::post(url)
            .body(SdkBody::from("{}"))
            .expect("a request");
        HttpRequest::try_from(request).expect("an SDK request")
    }

    /// Three posts, one after the other, each answered `{{` with nothing
    /// said of closing; the connections the server accepted for them.
    async fn three_posts(serve: Serve) -> usize {
        let (endpoint, accepted) = server(serve).await;
        let http = connector(None);
        for _ in 0..3 {
            let response = http.call(post(&endpoint)).await.expect("an answer");
            assert_eq!(response.status().as_u16(), 200);
            assert_eq!(response.body().bytes(), Some(&b"{{"[..]));
            assert_eq!(response.headers().get("connection"), None);
        }
        accepted.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn requests_share_a_kept_alive_connection() {
        assert_eq!(three_posts(Serve::KeepAlive).await, 1);
    }

    /// Closed without saying so, the client finds out by the socket.
    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        assert_eq!(three_posts(Serve::OneThenClose).await, 3);
    }

    #[tokio::test]
    async fn an_unanswered_request_times_out() {
        let (endpoint, _) = server(Serve::Silent).await;
        let http = connector(Some(Duration::from_millis(100)));
        let error = http.call(post(&endpoint)).await.expect_err("no answer");
        assert!(error.is_timeout(), "{error:?}");
    }

    #[tokio::test]
    async fn an_answer_over_the_limit_is_refused() {
        let (endpoint, _) = server(Serve::Oversized).await;
        let error = connector(None)
            .call(post(&endpoint))
            .await
            .expect_err("too long");
        assert!(error.is_io(), "{error:?}");
        let text = handlers::error::causes(&error);
        assert!(text.contains("length limit exceeded"), "{text}");
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_endpoint() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port")
            .local_addr()
            .expect("an address")
            .port();
        let error = connector(None)
            .call(post(&format!("http://127.0.0.1:{port}/")))
            .await
            .expect_err("nothing listens");
        assert!(error.is_io(), "{error:?}");
        let text = handlers::error::causes(&error);
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.contains("Connection refused"), "{text}");
    }

    #[tokio::test]
    async fn https_is_refused_before_connecting() {
        let error = connector(None)
            .call(post("https://dynamodb.us-east-1.amazonaws.com/"))
            .await
            .expect_err("not plain HTTP");
        assert!(error.is_other(), "{error:?}");
        let text = handlers::error::causes(&error);
        assert!(text.contains("plain HTTP only"), "{text}");
    }
}
