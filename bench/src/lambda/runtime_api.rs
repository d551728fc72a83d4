//! A minimal Lambda Runtime API on 127.0.0.1, as Lambda serves it to a
//! custom runtime (`provided.al2023`): `GET /2018-06-01/runtime/invocation/next`
//! hands out the queued events one by one with the `Lambda-Runtime-*`
//! headers, `POST …/invocation/{id}/response`, `…/invocation/{id}/error` and
//! `…/init/error` are recorded with the time they arrived. Once the queue is
//! empty, `next` is held open (the function waits for work, as on Lambda)
//! until [`RuntimeApi::release`] closes it, which makes the runtime exit.
//!
//! HTTP/1.1 with keep-alive, `Content-Length` and chunked bodies: what the
//! `lambda_runtime` crate's hyper client sends. Nothing else.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The API version in every path.
const PREFIX: &str = "/2018-06-01/runtime";
/// Largest request head and body accepted (Lambda's response limit is 6 MB).
const MAX_HEAD_BYTES: usize = 64 * 1024;
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
    release: watch::Receiver<bool>,
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
    ) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|problem| format!("the Runtime API stub cannot listen: {problem}"))?;
        let address = listener
            .local_addr()
            .map_err(|problem| format!("the Runtime API stub has no address: {problem}"))?;
        let (records_sender, records) = mpsc::unbounded_channel();
        let (release, released) = watch::channel(false);
        let shared = Arc::new(Shared {
            queue: Mutex::new(invocations.into()),
            function_arn,
            timeout,
            records: records_sender,
            release: released,
        });
        let server = tokio::spawn(accept(listener, shared));
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

    /// Closes the held `next` requests (and refuses new ones): the runtime
    /// sees its Runtime API gone and exits.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Accepts connections until aborted; aborting drops the set, which aborts
/// every connection's task.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&shared)));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A request's method, path, the headers this API reads, and body.
struct Request {
    method: String,
    path: String,
    error_type: Option<String>,
    body: Vec<u8>,
}

/// Serves one keep-alive connection.
async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let request = match read_request(&mut reader).await {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => return,
        };
        let at = Instant::now();
        let answer = match (request.method.as_str(), route(&request.path)) {
            ("GET", Some(Route::Next)) => {
                let _ = shared.records.send(Record::Next { at });
                let next = shared
                    .queue
                    .lock()
                    .ok()
                    .and_then(|mut queue| queue.pop_front());
                match next {
                    Some(invocation) => next_response(&shared, &invocation),
                    None => {
                        // Nothing more to do: hold the request, as Lambda
                        // does between invocations, until released.
                        let mut release = shared.release.clone();
                        let _ = release.wait_for(|released| *released).await;
                        return;
                    }
                }
            }
            ("POST", Some(Route::Response(request_id))) => {
                let _ = shared.records.send(Record::Response {
                    request_id,
                    at,
                    body: String::from_utf8_lossy(&request.body).into_owned(),
                });
                accepted()
            }
            ("POST", Some(Route::Error(request_id))) => {
                let _ = shared.records.send(Record::Error {
                    request_id,
                    at,
                    error_type: request.error_type,
                    body: String::from_utf8_lossy(&request.body).into_owned(),
                });
                accepted()
            }
            ("POST", Some(Route::InitError)) => {
                let _ = shared.records.send(Record::InitError {
                    at,
                    error_type: request.error_type,
                    body: String::from_utf8_lossy(&request.body).into_owned(),
                });
                accepted()
            }
            _ => response(
                "404 Not Found",
                &[],
                r#"{"errorMessage":"not served by the bench's Runtime API","errorType":"NotFound"}"#,
            ),
        };
        if write.write_all(&answer).await.is_err() || write.flush().await.is_err() {
            return;
        }
    }
}

enum Route {
    Next,
    Response(String),
    Error(String),
    InitError,
}

fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix(PREFIX)?;
    if rest == "/invocation/next" {
        return Some(Route::Next);
    }
    if rest == "/init/error" {
        return Some(Route::InitError);
    }
    let rest = rest.strip_prefix("/invocation/")?;
    if let Some(id) = rest.strip_suffix("/response") {
        return Some(Route::Response(id.to_owned()));
    }
    rest.strip_suffix("/error")
        .map(|id| Route::Error(id.to_owned()))
}

fn next_response(shared: &Shared, invocation: &Invocation) -> Vec<u8> {
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
    response(
        "200 OK",
        &[
            ("Lambda-Runtime-Aws-Request-Id", &invocation.request_id),
            ("Lambda-Runtime-Deadline-Ms", &deadline.to_string()),
            ("Lambda-Runtime-Invoked-Function-Arn", &shared.function_arn),
            ("Lambda-Runtime-Trace-Id", &trace),
        ],
        &invocation.body,
    )
}

fn accepted() -> Vec<u8> {
    response("202 Accepted", &[], r#"{"status":"OK"}"#)
}

fn response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// One request, or `None` when the client closed the connection between
/// requests.
async fn read_request(reader: &mut BufReader<OwnedReadHalf>) -> Result<Option<Request>, String> {
    let mut head_bytes = 0;
    let mut line = String::new();
    let request_line = loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .await
            .map_err(|problem| problem.to_string())?
            == 0
        {
            return Ok(None);
        }
        head_bytes += line.len();
        // Tolerate empty lines before a request (RFC 9112, 2.2).
        if !line.trim().is_empty() {
            break line.trim().to_owned();
        }
        if head_bytes > MAX_HEAD_BYTES {
            return Err("request head too long".into());
        }
    };
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(format!("not an HTTP request line: {request_line:?}"));
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut content_length = None;
    let mut chunked = false;
    let mut error_type = None;
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .await
            .map_err(|problem| problem.to_string())?
            == 0
        {
            return Err("connection closed inside a request head".into());
        }
        head_bytes += line.len();
        if head_bytes > MAX_HEAD_BYTES {
            return Err("request head too long".into());
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(format!("malformed header: {header:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length: {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("lambda-runtime-function-error-type") {
            error_type = Some(value.to_owned());
        }
    }
    let body = if chunked {
        read_chunked(reader).await?
    } else {
        let length = content_length.unwrap_or(0);
        if length > MAX_BODY_BYTES {
            return Err(format!("body of {length} bytes is too large"));
        }
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .await
            .map_err(|problem| problem.to_string())?;
        body
    };
    Ok(Some(Request {
        method,
        path,
        error_type,
        body,
    }))
}

async fn read_chunked(reader: &mut BufReader<OwnedReadHalf>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader
            .read_line(&mut line)
            .await
            .map_err(|problem| problem.to_string())?;
        let size = line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| format!("bad chunk size line: {line:?}"))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                let read = reader
                    .read_line(&mut line)
                    .await
                    .map_err(|problem| problem.to_string())?;
                if read == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err("chunked body too large".into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .await
            .map_err(|problem| problem.to_string())?;
        let mut crlf = [0; 2];
        reader
            .read_exact(&mut crlf)
            .await
            .map_err(|problem| problem.to_string())?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_runtime_apis() {
        assert!(matches!(
            route("/2018-06-01/runtime/invocation/next"),
            Some(Route::Next)
        ));
        assert!(matches!(
            route("/2018-06-01/runtime/invocation/abc-1/response"),
            Some(Route::Response(id)) if id == "abc-1"
        ));
        assert!(matches!(
            route("/2018-06-01/runtime/invocation/abc-1/error"),
            Some(Route::Error(id)) if id == "abc-1"
        ));
        assert!(matches!(
            route("/2018-06-01/runtime/init/error"),
            Some(Route::InitError)
        ));
        assert!(route("/2018-06-01/runtime/invocation/abc").is_none());
        assert!(route("/other").is_none());
    }

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
        assert!(next.contains("Lambda-Runtime-Aws-Request-Id: req-1\r\n"));
        assert!(next.contains("Lambda-Runtime-Deadline-Ms: "));
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
