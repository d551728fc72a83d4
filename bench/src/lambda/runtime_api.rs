//! A minimal Lambda Runtime API on 127.0.0.1, as Lambda serves it to a
//! custom runtime (`provided.al2023`): `GET /2018-06-01/runtime/invocation/next`
//! hands out the queued events one by one with the `Lambda-Runtime-*`
//! headers, `POST …/invocation/{id}/response`, `…/invocation/{id}/error` and
//! `…/init/error` are recorded with the time they arrived. Once the queue is
//! empty, `next` is held open (the function waits for work, as on Lambda)
//! until [`RuntimeApi::release`] closes it, which makes the runtime exit.
//!
//! axum's router on hyper's HTTP/1.1 connections (keep-alive, chunked
//! bodies: what the `lambda_runtime` crate's client sends), each served in a
//! task of ours, so releasing or dropping the API closes them unanswered,
//! which `axum::serve` cannot do.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The API version in every path.
const PREFIX: &str = "/2018-06-01/runtime";
/// Largest request body accepted (Lambda's response limit is 6 MB).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// One event for the function.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub body: String,
}

/// What the function did, in the order the API saw it.
#[derive(Debug)]
pub enum Record {
    /// It asked for work.
    Next { at: Instant },
    /// It finished an invocation.
    Response {
        request_id: String,
        at: Instant,
        body: String,
    },
    /// An invocation failed.
    Error {
        request_id: String,
        at: Instant,
        error_type: Option<String>,
        body: String,
    },
    /// Its initialisation failed.
    InitError {
        at: Instant,
        error_type: Option<String>,
        body: String,
    },
}

struct Shared {
    queue: Mutex<VecDeque<Invocation>>,
    /// `arn:aws:lambda:…:function:<name>`
    function_arn: String,
    /// How long each invocation may run, for `Lambda-Runtime-Deadline-Ms`.
    timeout: Duration,
    records: mpsc::UnboundedSender<Record>,
}

/// A running Runtime API. Stops serving (and closes every connection) when
/// dropped.
pub struct RuntimeApi {
    pub address: SocketAddr,
    records: mpsc::UnboundedReceiver<Record>,
    release: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves `invocations`, in order, to whoever asks.
    pub async fn start(
        function_arn: String,
        timeout: Duration,
        invocations: Vec<Invocation>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("the Runtime API stub cannot listen")?;
        let address = listener
            .local_addr()
            .context("the Runtime API stub has no address")?;
        let (records_sender, records) = mpsc::unbounded_channel();
        let (release, released) = watch::channel(false);
        let shared = Arc::new(Shared {
            queue: Mutex::new(invocations.into()),
            function_arn,
            timeout,
            records: records_sender,
        });
        let router = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .fallback(not_found)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(shared);
        let server = tokio::spawn(accept(listener, router, released));
        Ok(Self {
            address,
            records,
            release,
            server,
        })
    }

    /// The next thing the function did, unless it did nothing more by
    /// `deadline`.
    pub async fn record_by(&mut self, deadline: tokio::time::Instant) -> Option<Record> {
        tokio::time::timeout_at(deadline, self.records.recv())
            .await
            .ok()
            .flatten()
    }

    /// Closes every connection (the held `next` requests unanswered) and the
    /// port: the runtime sees its Runtime API gone and exits.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves each connection in a task of its own until released (or
/// aborted): then the listener and every connection are dropped.
async fn accept(listener: TcpListener, router: Router, mut released: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(router.clone());
                    connections.spawn(async move {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            changed = released.changed() => {
                if changed.is_err() || *released.borrow() {
                    return;
                }
            }
        }
    }
}

/// The next invocation; with none left, held (as Lambda holds it between
/// invocations) until the API is released, which closes it unanswered.
async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let _ = shared.records.send(Record::Next { at: Instant::now() });
    let next = shared
        .queue
        .lock()
        .ok()
        .and_then(|mut queue| queue.pop_front());
    let Some(invocation) = next else {
        return std::future::pending().await;
    };
    let deadline = SystemTime::now()
        .checked_add(shared.timeout)
        .and_then(|deadline| deadline.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_millis());
    let digits: String = invocation
        .request_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(24)
        .collect();
    let trace = format!(
        "Root=1-{:08x}-{digits:0>24};Parent={:016x};Sampled=0",
        deadline / 1000,
        deadline
    );
    (
        [
            (header::CONTENT_TYPE.as_str(), "application/json".to_owned()),
            ("lambda-runtime-aws-request-id", invocation.request_id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                shared.function_arn.clone(),
            ),
            ("lambda-runtime-trace-id", trace),
        ],
        invocation.body,
    )
        .into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let _ = shared.records.send(Record::Response {
        request_id,
        at: Instant::now(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    accepted()
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _ = shared.records.send(Record::Error {
        request_id,
        at: Instant::now(),
        error_type: error_type(&headers),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    accepted()
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _ = shared.records.send(Record::InitError {
        at: Instant::now(),
        error_type: error_type(&headers),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    accepted()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"errorMessage":"not served by the bench's Runtime API","errorType":"NotFound"}"#,
    )
        .into_response()
}

fn error_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn exchange(stream: &mut TcpStream, request: &str) -> String {
        stream
            .write_all(request.as_bytes())
            .await
            .unwrap_or_else(|problem| panic!("write: {problem}"));
        let mut buffer = vec![0; 4096];
        let read = stream
            .read(&mut buffer)
            .await
            .unwrap_or_else(|problem| panic!("read: {problem}"));
        String::from_utf8_lossy(&buffer[..read]).into_owned()
    }

    #[tokio::test]
    async fn hands_out_events_records_answers_and_holds_next_until_released() {
        let api = RuntimeApi::start(
            "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            Duration::from_secs(3),
            vec![Invocation {
                request_id: "req-1".into(),
                body: r#"{"hello":1}"#.into(),
            }],
        )
        .await;
        let Ok(mut api) = api else {
            panic!("stub did not start")
        };
        let connected = TcpStream::connect(api.address).await;
        let Ok(mut stream) = connected else {
            panic!("cannot connect")
        };
        let next = exchange(
            &mut stream,
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n",
        )
        .await;
        assert!(next.starts_with("HTTP/1.1 200 OK\r\n"), "{next}");
        // Header names are case-insensitive; hyper writes them in lower case.
        let head = next.to_ascii_lowercase();
        assert!(
            head.contains("lambda-runtime-aws-request-id: req-1\r\n"),
            "{next}"
        );
        assert!(head.contains("lambda-runtime-deadline-ms: "), "{next}");
        assert!(next.ends_with("\r\n\r\n{\"hello\":1}"), "{next}");
        let posted = exchange(
            &mut stream,
            "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\n\
             transfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":2}\r\n0\r\n\r\n",
        )
        .await;
        assert!(posted.starts_with("HTTP/1.1 202 Accepted"), "{posted}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        assert!(matches!(
            api.record_by(deadline).await,
            Some(Record::Next { .. })
        ));
        assert!(matches!(
            api.record_by(deadline).await,
            Some(Record::Response { request_id, body, .. }) if request_id == "req-1" && body == r#"{"a":2}"#
        ));
        stream
            .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n")
            .await
            .unwrap_or_else(|problem| panic!("write: {problem}"));
        assert!(matches!(
            api.record_by(deadline).await,
            Some(Record::Next { .. })
        ));
        api.release();
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(0))),
            "released: the held request is closed unanswered"
        );
    }
}
