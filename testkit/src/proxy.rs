//! A real HTTP proxy in front of a DynamoDB endpoint that breaks it on
//! demand, so the local stack can be run against a DynamoDB that fails:
//! operations picked by their `X-Amz-Target` (`DynamoDB_20120810.PutItem`,
//! or every `DynamoDBStreams_20120810.` call) get an AWS error answer or no
//! answer at all, and [`FaultProxy::refuse_connections`] closes the port, so
//! connecting is refused by the kernel. Each request is forwarded on a
//! connection of its own (`connection: close`), so a new fault applies to
//! the very next request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The target prefix of every DynamoDB Streams operation.
pub const STREAMS: &str = "DynamoDBStreams_20120810.";

/// The target of one DynamoDB operation, e.g. `dynamodb("PutItem")`.
pub fn dynamodb(operation: &str) -> String {
    format!("DynamoDB_20120810.{operation}")
}

/// What a matching request gets instead of DynamoDB's answer.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// This status and AWS error code, as the service would answer.
    Error { status: u16, code: &'static str },
    /// Nothing: the request is held until the client gives up.
    Hang,
}

impl Fault {
    pub const INTERNAL_ERROR: Self = Self::Error {
        status: 500,
        code: "InternalServerError",
    };
}

pub struct FaultProxy {
    /// The endpoint to give the client or the stack instead of DynamoDB's.
    pub endpoint: String,
    shared: Arc<Shared>,
    refusing: watch::Sender<bool>,
    /// Whether the port is closed now, as the accept loop reports it.
    closed: watch::Receiver<bool>,
    server: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: String,
    /// (target prefix, fault); the first match applies.
    faults: Mutex<Vec<(String, Fault)>>,
    /// Requests that met a fault, by the prefix that matched.
    faulted: Mutex<HashMap<String, usize>>,
}

impl FaultProxy {
    /// Proxies to `upstream` (`http://host:port`), passing everything.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let address = listener.local_addr().expect("its address");
        let upstream = upstream
            .strip_prefix("http://")
            .expect("an http:// upstream")
            .trim_end_matches('/')
            .to_owned();
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::default(),
            faulted: Mutex::default(),
        });
        let (refusing, refused) = watch::channel(false);
        let (report, closed) = watch::channel(false);
        let server = tokio::spawn(accept(
            listener,
            address,
            Arc::clone(&shared),
            refused,
            report,
        ));
        Self {
            endpoint: format!("http://{address}"),
            shared,
            refusing,
            closed,
            server,
        }
    }

    /// Requests whose target starts with `target` get `fault` from now on.
    pub fn fail(&self, target: &str, fault: Fault) {
        self.shared
            .faults
            .lock()
            .expect("faults")
            .push((target.to_owned(), fault));
    }

    /// While `refuse`, the port is closed: connecting is refused, and open
    /// connections are dropped unanswered. Returns once it is so.
    pub async fn refuse_connections(&self, refuse: bool) {
        self.refusing.send_replace(refuse);
        let mut closed = self.closed.clone();
        closed
            .wait_for(|closed| *closed == refuse)
            .await
            .expect("the proxy is running");
    }

    /// Everything passes again.
    pub async fn heal(&self) {
        self.shared.faults.lock().expect("faults").clear();
        self.refuse_connections(false).await;
    }

    /// Requests that met the fault for `target` so far.
    pub fn faulted(&self, target: &str) -> usize {
        self.shared
            .faulted
            .lock()
            .expect("counts")
            .get(target)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Accepts connections (each served on a task that ends with the proxy),
/// closing the port while refusing.
async fn accept(
    listener: TcpListener,
    address: SocketAddr,
    shared: Arc<Shared>,
    mut refusing: watch::Receiver<bool>,
    closed: watch::Sender<bool>,
) {
    let mut connections = JoinSet::new();
    let mut listener = Some(listener);
    loop {
        while connections.try_join_next().is_some() {}
        if *refusing.borrow_and_update() {
            // No listener, no connections: the kernel refuses.
            listener = None;
            connections.abort_all();
        } else if listener.is_none() {
            listener = Some(rebind(address).await);
        }
        closed.send_replace(listener.is_none());
        let Some(open) = &listener else {
            if refusing.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            accepted = open.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve(stream, Arc::clone(&shared)));
                }
            }
            changed = refusing.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Listens on the same port again.
async fn rebind(address: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(address)
        .expect("the proxy's port is still free");
    socket.listen(128).expect("listens")
}

/// Why a request got no answer: the client's connection is then closed
/// unanswered, as a broken DynamoDB would leave it.
type Unanswered = std::io::Error;

/// Serves one request on the client's connection (hyper answers it with
/// `connection: close`), so a fault set now applies to the very next one.
async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { answer(shared, request).await }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(client), service)
        .await;
}

/// The request's fault, or DynamoDB's answer.
async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Unanswered> {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let fault = shared
        .faults
        .lock()
        .expect("faults")
        .iter()
        .find(|(prefix, _)| target.starts_with(prefix.as_str()))
        .map(|(prefix, fault)| (prefix.clone(), *fault));
    let Some((prefix, fault)) = fault else {
        return forward(&shared.upstream, request).await;
    };
    *shared
        .faulted
        .lock()
        .expect("counts")
        .entry(prefix)
        .or_default() += 1;
    match fault {
        Fault::Hang => std::future::pending().await,
        Fault::Error { status, code } => {
            let body = serde_json::json!({
                "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
                "message": "injected by the test's fault proxy",
            });
            Ok(Response::builder()
                .status(status)
                .header("x-amzn-ErrorType", code)
                .header("x-amzn-RequestId", "FAULTPROXY")
                .header("content-type", "application/x-amz-json-1.0")
                .body(Full::new(Bytes::from(body.to_string())))
                .map_err(Unanswered::other)?)
        }
    }
}

/// Forwards the request to DynamoDB on a connection of its own; its
/// answer, read whole.
async fn forward(
    upstream: &str,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Unanswered> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Unanswered::other)?;
    tokio::spawn(connection);
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(Unanswered::other)?.to_bytes();
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(Unanswered::other)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(Unanswered::other)?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
