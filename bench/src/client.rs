//! The clients: one real WebSocket connection each, all in this process,
//! reporting what they receive to one collector with the time it arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures::{SinkExt, StreamExt, stream};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// A refused handshake as one line: `HTTP 429: <the body>`.
pub fn refusal(
    response: &tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>>,
) -> String {
    let body = response
        .body()
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    format!("HTTP {}: {}", response.status().as_u16(), body.trim())
}

/// Marks a benchmark message; the number after it identifies the message.
pub const TOKEN_PREFIX: &str = "bench:";

/// What a client saw.
#[derive(Debug)]
pub enum Event {
    /// A chat message (or, from the floor, a broadcast frame) with a token.
    Delivered {
        client: usize,
        token: u64,
        at: Instant,
    },
    /// The chat's `welcome` frame.
    Welcome { client: usize, at: Instant },
    /// A `history` page, as text.
    History { client: usize, text: String },
    /// An `error` frame, as text.
    Error { client: usize, text: String },
    /// The connection ended.
    Closed,
}

/// N connected clients.
pub struct Swarm {
    writers: Vec<mpsc::UnboundedSender<Message>>,
    pub events: mpsc::UnboundedReceiver<Event>,
    /// Every frame any client received, whatever it was.
    frames: Arc<AtomicU64>,
    /// Each client's `welcome`, once it came.
    welcomes: Welcomes,
}

/// Who the chat said a client is, in its `welcome` frame.
#[derive(Debug, Clone, Deserialize)]
pub struct Welcome {
    pub connection_id: String,
    /// RFC 3339, as the chat wrote it.
    pub connected_at: String,
    pub room: String,
}

type Welcomes = Arc<Mutex<Vec<Option<Welcome>>>>;

impl Swarm {
    /// Opens `clients` connections, at most `in_flight` handshakes at a time.
    pub async fn connect(url: &str, clients: usize, in_flight: usize) -> anyhow::Result<Self> {
        let (events, receiver) = mpsc::unbounded_channel();
        let frames = Arc::new(AtomicU64::new(0));
        let welcomes: Welcomes = Arc::new(Mutex::new(vec![None; clients]));
        let opened: Vec<_> = stream::iter(0..clients)
            .map(|client| {
                let events = events.clone();
                let frames = Arc::clone(&frames);
                let welcomes = Arc::clone(&welcomes);
                async move { (client, open(url, client, events, frames, welcomes).await) }
            })
            .buffer_unordered(in_flight.max(1))
            .collect()
            .await;
        let mut writers = vec![None; clients];
        let mut failures = Vec::new();
        for (client, result) in opened {
            match result {
                Ok(writer) => writers[client] = Some(writer),
                Err(problem) => failures.push(problem),
            }
        }
        let failed = failures.len();
        if let Some(first) = failures.into_iter().next() {
            return Err(first.context(format!(
                "{failed} of {clients} connections failed, the first"
            )));
        }
        Ok(Self {
            writers: writers.into_iter().flatten().collect(),
            events: receiver,
            frames,
            welcomes,
        })
    }

    /// The client's `welcome`, if it has come.
    pub fn welcome(&self, client: usize) -> Option<Welcome> {
        self.welcomes
            .lock()
            .ok()
            .and_then(|welcomes| welcomes.get(client).cloned().flatten())
    }

    pub fn len(&self) -> usize {
        self.writers.len()
    }

    /// Queues a text frame on one client's connection.
    pub fn send(&self, client: usize, text: String) -> bool {
        self.writers
            .get(client)
            .is_some_and(|writer| writer.send(Message::Text(text.into())).is_ok())
    }

    /// A `sendmessage` frame carrying `token`.
    pub fn send_token(&self, client: usize, token: u64) -> bool {
        self.send(
            client,
            format!(r#"{{"action":"sendmessage","message":"{TOKEN_PREFIX}{token}"}}"#),
        )
    }

    pub fn frames_received(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Waits until one message reaches every client within `per_probe`,
    /// retrying with a fresh token (joins take a moment to become visible to
    /// the chat's fan-out) for up to [`SETTLE_PATIENCE`], then lets in-flight
    /// presence settle for `quiet`.
    pub async fn settle(&mut self, per_probe: Duration, quiet: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + SETTLE_PATIENCE;
        let mut token = SETTLE_TOKENS;
        while Instant::now() < deadline {
            token += 1;
            self.send_token(0, token);
            let reached = self.await_deliveries(token, per_probe).await.len();
            if reached == self.len() {
                tokio::time::sleep(quiet).await;
                self.drain();
                return Ok(());
            }
        }
        bail!(
            "a message never reached all {} clients within {SETTLE_PATIENCE:?}",
            self.len()
        )
    }

    /// The arrival times of `token`'s deliveries, one per client at most,
    /// until every client has it or `patience` runs out. Other events are
    /// dropped.
    pub async fn await_deliveries(&mut self, token: u64, patience: Duration) -> Vec<Instant> {
        let mut seen = vec![false; self.len()];
        let mut arrivals = Vec::with_capacity(self.len());
        let deadline = tokio::time::Instant::now() + patience;
        while arrivals.len() < self.len() {
            let event = tokio::time::timeout_at(deadline, self.events.recv()).await;
            let Ok(Some(event)) = event else { break };
            if let Event::Delivered {
                client,
                token: got,
                at,
            } = event
                && got == token
                && !std::mem::replace(&mut seen[client], true)
            {
                arrivals.push(at);
            }
        }
        arrivals
    }

    /// Drops the events queued so far.
    pub fn drain(&mut self) {
        while self.events.try_recv().is_ok() {}
    }
}

/// The longest [`Swarm::settle`] waits for the clients to be reachable.
const SETTLE_PATIENCE: Duration = Duration::from_secs(120);
/// How long one settle probe waits for every client, unless a run says.
pub const PROBE_PATIENCE: Duration = Duration::from_secs(10);

/// Tokens at or above this are the settle probes'.
const SETTLE_TOKENS: u64 = u64::MAX / 2;

async fn open(
    url: &str,
    client: usize,
    events: mpsc::UnboundedSender<Event>,
    frames: Arc<AtomicU64>,
    welcomes: Welcomes,
) -> anyhow::Result<mpsc::UnboundedSender<Message>> {
    // Small frames go out at once, as a browser's do.
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    let (mut sink, mut source) = socket.split();
    let (writer, mut queued) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(frame) = queued.recv().await {
            if sink.send(frame).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        while let Some(Ok(frame)) = source.next().await {
            let at = Instant::now();
            frames.fetch_add(1, Ordering::Relaxed);
            if let Message::Text(text) = &frame
                && text.starts_with(WELCOME_PREFIX)
                && let Ok(welcome) = serde_json::from_str::<Welcome>(text.as_str())
                && let Ok(mut welcomes) = welcomes.lock()
                && let Some(slot) = welcomes.get_mut(client)
            {
                *slot = Some(welcome);
            }
            if let Message::Text(text) = frame
                && let Some(event) = classify(client, text.as_str(), at)
                && events.send(event).is_err()
            {
                break;
            }
        }
        let _ = events.send(Event::Closed);
    });
    Ok(writer)
}

/// How the chat's `welcome` frames begin.
const WELCOME_PREFIX: &str = r#"{"type":"welcome""#;

fn classify(client: usize, text: &str, at: Instant) -> Option<Event> {
    if text.starts_with(WELCOME_PREFIX) {
        return Some(Event::Welcome { client, at });
    }
    if text.starts_with(r#"{"type":"history""#) {
        return Some(Event::History {
            client,
            text: text.to_owned(),
        });
    }
    if text.starts_with(r#"{"type":"error""#) {
        return Some(Event::Error {
            client,
            text: text.to_owned(),
        });
    }
    token_in(text).map(|token| Event::Delivered { client, token, at })
}

/// The number after the first [`TOKEN_PREFIX`].
pub fn token_in(text: &str) -> Option<u64> {
    let start = text.find(TOKEN_PREFIX)? + TOKEN_PREFIX.len();
    let digits = &text[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// A client's WebSocket over TCP (TLS too, for `smoke` against a stage).
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON frame of `frame_type` within `patience`; frames of other
/// types are read and dropped.
pub async fn next_of_type(
    socket: &mut Socket,
    frame_type: &str,
    patience: Duration,
) -> anyhow::Result<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| anyhow!("no {frame_type} frame within {patience:?}"))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(text.as_str())
                    && value["type"] == frame_type
                {
                    return Ok(value);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(problem)) => return Err(problem.into()),
            None => bail!("the connection closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_in_chat_frames_and_floor_frames() {
        let chat = r#"{"type":"message","message":"[t] id: bench:42","text":"bench:42"}"#;
        assert_eq!(token_in(chat), Some(42));
        let floor = r#"{"action":"sendmessage","message":"bench:7"}"#;
        assert_eq!(token_in(floor), Some(7));
        assert_eq!(token_in(r#"{"type":"presence"}"#), None);
        assert_eq!(token_in("bench:"), None);
    }
}
