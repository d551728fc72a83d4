//! The HTTP client of the local stack's SDK clients: HTTP/1.1 over TCP with
//! kept-alive connections, for the `http://` endpoints the local stack calls
//! (the embedded engine, or DynamoDB Local with `--dynamodb-endpoint`). The
//! SDK's own client adds TLS, HTTP/2 and proxies, which nothing local uses,
//! and a minute to a first build (docs/performance.md, "Build time"). The
//! SDK clients themselves are unchanged: same serialization, signing,
//! retries and error mapping.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::{BodyExt, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;
use tracing::debug;

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
    #[error("tcp connect to {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP/1.1 exchange with {endpoint}")]
    Exchange {
        endpoint: String,
        #[source]
        source: hyper::Error,
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

type Sender = SendRequest<SdkBody>;

/// Kept-alive connections, by endpoint (`host:port`).
type Idle = Arc<Mutex<HashMap<String, Vec<Sender>>>>;

/// Give it to an SDK config as its HTTP client.
#[derive(Clone, Debug, Default)]
pub struct PlainHttp {
    idle: Idle,
}

impl PlainHttp {
    /// A connector over these connections with the timeouts of `settings`,
    /// for code that sends requests itself (the Management API adapter).
    pub fn connector(&self, settings: &HttpConnectorSettings) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            idle: Arc::clone(&self.idle),
            connect_timeout: settings.connect_timeout(),
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

/// One client's connections and the timeouts of its SDK config.
#[derive(Debug)]
struct Connector {
    idle: Idle,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let idle = Arc::clone(&self.idle);
        let (connect_timeout, read_timeout) = (self.connect_timeout, self.read_timeout);
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|problem| ConnectorError::other(problem.into(), None))?;
            let (endpoint, request) = origin_form(request)?;
            let answer = async {
                let (sender, response) = send(&idle, &endpoint, request, connect_timeout).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|source| {
                        let endpoint = endpoint.clone();
                        Failure::Body { endpoint, source }.io()
                    })?
                    .to_bytes();
                // The whole answer is read, so the connection is free again.
                keep(&idle, &endpoint, sender);
                Ok(hyper::Response::from_parts(parts, SdkBody::from(body)))
            };
            let response = within(read_timeout, answer).await??;
            HttpResponse::try_from(response)
                .map_err(|problem| ConnectorError::other(problem.into(), None))
        })
    }
}

/// The endpoint (`host:port`) of an `http://` request, and the request with
/// its target in origin form (`/path?query`) and a `Host` header, as
/// HTTP/1.1 sends it.
fn origin_form(request: Request<SdkBody>) -> Result<(String, Request<SdkBody>), ConnectorError> {
    let (mut parts, body) = request.into_parts();
    let not_plain = || ConnectorError::other(Failure::NotPlainHttp(parts.uri.clone()).into(), None);
    if parts.uri.scheme_str() != Some("http") {
        return Err(not_plain());
    }
    let Some(authority) = parts.uri.authority().cloned() else {
        return Err(not_plain());
    };
    let endpoint = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    if !parts.headers.contains_key(HOST) {
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|problem| ConnectorError::other(problem.into(), None))?;
        parts.headers.insert(HOST, host);
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    parts.uri =
        Uri::try_from(target).map_err(|problem| ConnectorError::other(problem.into(), None))?;
    Ok((endpoint, Request::from_parts(parts, body)))
}

/// Sends `request` on a kept-alive connection, or a new one. A kept-alive
/// connection the server closed meanwhile hands the request back unsent; it
/// then goes on a new connection. Any other failure is an I/O error, which
/// the SDK's retry policy retries.
async fn send(
    idle: &Idle,
    endpoint: &str,
    mut request: Request<SdkBody>,
    connect_timeout: Option<Duration>,
) -> Result<(Sender, hyper::Response<hyper::body::Incoming>), ConnectorError> {
    loop {
        let (mut sender, reused) = match reuse(idle, endpoint).await {
            Some(sender) => (sender, true),
            None => (connect(endpoint, connect_timeout).await?, false),
        };
        match sender.try_send_request(request).await {
            Ok(response) => return Ok((sender, response)),
            Err(mut failed) => match failed.take_message() {
                Some(unsent) if reused => request = unsent,
                _ => {
                    let source = failed.into_error();
                    let endpoint = endpoint.to_owned();
                    return Err(Failure::Exchange { endpoint, source }.io());
                }
            },
        }
    }
}

/// A kept-alive connection to `endpoint` that is still open.
async fn reuse(idle: &Idle, endpoint: &str) -> Option<Sender> {
    loop {
        let mut sender = idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(endpoint)?
            .pop()?;
        // Ready once the connection has finished its last exchange; an error
        // means the server closed it.
        if !sender.is_closed() && sender.ready().await.is_ok() {
            return Some(sender);
        }
    }
}

fn keep(idle: &Idle, endpoint: &str, sender: Sender) {
    let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
    let senders = idle.entry(endpoint.to_owned()).or_default();
    if senders.len() < MAX_IDLE_PER_ENDPOINT {
        senders.push(sender);
    }
}

async fn connect(endpoint: &str, timeout: Option<Duration>) -> Result<Sender, ConnectorError> {
    let failed = |source| {
        let endpoint = endpoint.to_owned();
        Failure::Connect { endpoint, source }.io()
    };
    let stream = within(timeout, TcpStream::connect(endpoint))
        .await?
        .map_err(failed)?;
    // Requests are small and each waits for its answer: send them at once.
    stream.set_nodelay(true).map_err(failed)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| {
            let endpoint = endpoint.to_owned();
            Failure::Exchange { endpoint, source }.io()
        })?;
    let endpoint = endpoint.to_owned();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            debug!(%error, %endpoint, "an HTTP connection of an SDK client ended");
        }
    });
    Ok(sender)
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

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

    /// A raw HTTP/1.1 server on 127.0.0.1 counting the connections it
    /// accepted; it stops with the test's runtime.
    async fn server(serve: Serve) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    while read_request(&mut socket).await {
                        let body_len = match serve {
                            Serve::Silent => return std::future::pending().await,
                            Serve::Oversized => MAX_RESPONSE_BYTES + 1,
                            Serve::KeepAlive | Serve::OneThenClose => 2,
                        };
                        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\n\r\n");
                        if socket.write_all(head.as_bytes()).await.is_err()
                            || socket.write_all(&vec![b'{'; body_len]).await.is_err()
                            || matches!(serve, Serve::OneThenClose)
                        {
                            return;
                        }
                    }
                });
            }
        });
        (endpoint, accepted)
    }

    /// Reads one request with a `content-length` body; false at the end of
    /// the connection.
    async fn read_request(socket: &mut TcpStream) -> bool {
        let mut seen = Vec::new();
        let mut byte = [0_u8];
        while !seen.ends_with(b"\r\n\r\n") {
            if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                return false;
            }
            seen.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&seen).to_ascii_lowercase();
        let body_len = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |len| len.trim().parse().expect("a length"));
        let mut body = vec![0; body_len];
        socket.read_exact(&mut body).await.is_ok()
    }

    fn connector(read_timeout: Option<Duration>) -> SharedHttpConnector {
        let mut settings = HttpConnectorSettings::builder();
        settings.set_read_timeout(read_timeout);
        PlainHttp::default().connector(&settings.build())
    }

    fn post(url: &str) -> HttpRequest {
        let request = hyper::Request::post(url)
            .body(SdkBody::from("{}"))
            .expect("a request");
        HttpRequest::try_from(request).expect("an SDK request")
    }

    #[tokio::test]
    async fn requests_share_a_kept_alive_connection() {
        let (endpoint, accepted) = server(Serve::KeepAlive).await;
        let http = connector(None);
        for _ in 0..3 {
            let response = http.call(post(&endpoint)).await.expect("an answer");
            assert_eq!(response.status().as_u16(), 200);
            assert_eq!(response.body().bytes(), Some(&b"{{"[..]));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        let (endpoint, accepted) = server(Serve::OneThenClose).await;
        let http = connector(None);
        for _ in 0..3 {
            let response = http.call(post(&endpoint)).await.expect("an answer");
            assert_eq!(response.status().as_u16(), 200);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
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
