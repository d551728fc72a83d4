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

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// One request: faulted, or forwarded on a connection of its own.
async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let Some((head, body)) = read_request(&mut client).await else {
        return;
    };
    let target = header(&head, "x-amz-target").unwrap_or_default();
    let fault = shared
        .faults
        .lock()
        .expect("faults")
        .iter()
        .find(|(prefix, _)| target.starts_with(prefix.as_str()))
        .map(|(prefix, fault)| (prefix.clone(), *fault));
    if let Some((prefix, fault)) = fault {
        *shared
            .faulted
            .lock()
            .expect("counts")
            .entry(prefix)
            .or_default() += 1;
        match fault {
            Fault::Hang => std::future::pending::<()>().await,
            Fault::Error { status, code } => {
                let body = serde_json::json!({
                    "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
                    "message": "injected by the test's fault proxy",
                })
                .to_string();
                let answer = format!(
                    "HTTP/1.1 {status} Injected\r\nx-amzn-ErrorType: {code}\r\nx-amzn-RequestId: FAULTPROXY\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(answer.as_bytes()).await;
            }
        }
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(&shared.upstream).await else {
        return;
    };
    let mut forwarded: String = head
        .split("\r\n")
        .filter(|line| {
            !line.is_empty()
                && !line
                    .split(':')
                    .next()
                    .is_some_and(|name| name.trim().eq_ignore_ascii_case("connection"))
        })
        .map(|line| format!("{line}\r\n"))
        .collect();
    forwarded.push_str("connection: close\r\n\r\n");
    if upstream.write_all(forwarded.as_bytes()).await.is_err()
        || upstream.write_all(&body).await.is_err()
    {
        return;
    }
    let mut answer = Vec::new();
    if upstream.read_to_end(&mut answer).await.is_ok() {
        let _ = client.write_all(&answer).await;
    }
}

/// The request's head (without its blank line) and body; `None` when the
/// client went away. Bodies must have a `content-length` (the SDK's JSON
/// requests do).
async fn read_request(client: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0; 8192];
        let read = client.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..end].to_vec()).expect("an HTTP head");
    assert!(
        header(&head, "transfer-encoding").is_none(),
        "the proxy reads content-length bodies only: {head}"
    );
    let length: usize = header(&head, "content-length")
        .map(|value| value.parse().expect("a content-length"))
        .unwrap_or(0);
    let mut body = buffer[end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0; length - body.len()];
        let read = client.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some((head, body))
}

fn header(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}
