//! Connecting and leaving at once: N clients open their connections all at
//! once and wait for their `welcome`, then all leave at once, a share of them
//! by TCP reset (no close frame) and the rest with a close frame. An observer
//! in the room from the start counts the departures it is told of (the
//! stream processor announces one only after the session is closed and
//! measured); a second observer, arriving after, is told who is still there
//! (the connection rows left). Every session must close and every row go,
//! no handshake may be refused without a reason, and the server must log no
//! ERROR line.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use futures::StreamExt;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, client_async_with_config};

use crate::client::{Socket, next_of_type};
use crate::server::{Binaries, Server, Target};
use crate::stats::ms;

/// The room the run happens in.
const ROOM: &str = "churn";

#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    /// Of every hundred clients, how many leave by TCP reset.
    pub reset_percent: usize,
    /// Longest wait for the welcomes, and again for the departures.
    pub patience: Duration,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub target: String,
    pub clients: usize,
    pub connected: usize,
    /// Handshakes the server refused, by status and the reason it gave.
    pub refused: BTreeMap<String, usize>,
    /// Handshakes that failed with no answer at all (timeouts, resets),
    /// and what the first of them was.
    pub unanswered: usize,
    pub first_unanswered: Option<String>,
    /// From the first handshake to the last `welcome`.
    pub last_welcome_ms: Option<f64>,
    pub missing_welcomes: usize,
    pub left_by_reset: usize,
    /// Departures the observer was told of, and when the last came (from
    /// the moment everyone left).
    pub departures_announced: usize,
    pub last_departure_ms: Option<f64>,
    /// Connections a newcomer is still told are in the room afterwards.
    pub still_listed: Option<u64>,
    pub server_errors: u64,
    pub server_warnings: u64,
    pub server_peak_rss_kib: Option<u64>,
}

impl Outcome {
    /// Whether every session closed, every row went, every refusal had a
    /// reason and the server logged no error.
    pub fn clean(&self) -> bool {
        self.unanswered == 0
            && self.missing_welcomes == 0
            && self.departures_announced == self.connected
            && self.still_listed == Some(0)
            && self.server_errors == 0
    }
}

pub async fn measure(target: &Target, binaries: &Binaries, plan: &Plan) -> anyhow::Result<Outcome> {
    let server = Server::start(target, binaries).await?;
    let url = format!("{}?room={ROOM}", server.url);
    let mut observer = handshake(&url, false)
        .await
        .map_err(|problem| anyhow!("the observer could not connect: {problem:?}"))?;
    next_of_type(&mut observer, "welcome", plan.patience).await?;
    let (leave, leave_now) = watch::channel(false);
    let joins = join_all(&url, plan, leave_now).await;
    // Everyone who joined leaves at the same moment.
    let _ = leave.send(true);
    let left_at = Instant::now();
    let (departures_announced, last_departure) =
        count_departures(&mut observer, joins.connected, plan.patience).await;
    let outcome = Outcome {
        target: target.label(),
        clients: plan.clients,
        connected: joins.connected,
        refused: joins.refused,
        unanswered: joins.unanswered,
        first_unanswered: joins.first_unanswered,
        last_welcome_ms: joins.last_welcome.map(ms),
        missing_welcomes: joins.missing_welcomes,
        left_by_reset: joins.left_by_reset,
        departures_announced,
        last_departure_ms: last_departure.map(|at: Instant| ms(at - left_at)),
        still_listed: still_listed(&url, plan.patience).await,
        server_errors: server.errors(),
        server_warnings: server.warnings(),
        server_peak_rss_kib: server.peak_rss_kib(),
    };
    outcome.print();
    server.stop().await;
    Ok(outcome)
}

impl Outcome {
    fn print(&self) {
        eprintln!(
            "  {:<12} {} clients: {} connected, {} refused, {} unanswered; last welcome {:?} ms, \
             {} without one; {} departures announced (last {:?} ms after leaving), {:?} still \
             listed; {} ERROR, {} WARN lines",
            self.target,
            self.clients,
            self.connected,
            self.refused.values().sum::<usize>(),
            self.unanswered,
            self.last_welcome_ms,
            self.missing_welcomes,
            self.departures_announced,
            self.last_departure_ms,
            self.still_listed,
            self.server_errors,
            self.server_warnings,
        );
    }
}

/// How the clients' joining went, all together.
#[derive(Default)]
struct Joins {
    connected: usize,
    refused: BTreeMap<String, usize>,
    unanswered: usize,
    first_unanswered: Option<String>,
    missing_welcomes: usize,
    left_by_reset: usize,
    /// From the first handshake to the last `welcome`.
    last_welcome: Option<Duration>,
}

/// Every client joins at once (each then waits for `leave`); how that went.
async fn join_all(url: &str, plan: &Plan, leave: watch::Receiver<bool>) -> Joins {
    let started = Instant::now();
    let (reports, mut outcomes) = mpsc::unbounded_channel();
    for client in 0..plan.clients {
        let reset = client % 100 < plan.reset_percent;
        tokio::spawn(member(
            url.to_owned(),
            reset,
            plan.patience,
            leave.clone(),
            reports.clone(),
        ));
    }
    drop(reports);
    let mut joins = Joins::default();
    for _ in 0..plan.clients {
        match outcomes.recv().await {
            Some(Joined::Welcomed { at, reset }) => {
                joins.connected += 1;
                joins.left_by_reset += usize::from(reset);
                joins.last_welcome = joins.last_welcome.max(Some(at - started));
            }
            Some(Joined::NoWelcome) => {
                joins.connected += 1;
                joins.missing_welcomes += 1;
            }
            Some(Joined::Refused(reason)) => *joins.refused.entry(reason).or_default() += 1,
            Some(Joined::Unanswered(problem)) => {
                joins.unanswered += 1;
                joins.first_unanswered.get_or_insert(problem);
            }
            None => joins.unanswered += 1,
        }
    }
    joins
}

/// Connections a newcomer is told are in the room, besides the two
/// observers.
async fn still_listed(url: &str, patience: Duration) -> Option<u64> {
    let mut newcomer = handshake(url, false).await.ok()?;
    next_of_type(&mut newcomer, "welcome", patience)
        .await
        .ok()
        .and_then(|welcome| welcome["online_count"].as_u64())
        .map(|count| count.saturating_sub(2))
}

/// How one client's joining went.
enum Joined {
    Welcomed {
        at: Instant,
        reset: bool,
    },
    /// Connected, but no `welcome` came in time.
    NoWelcome,
    /// The server refused the handshake: its status and reason.
    Refused(String),
    /// No answer: the handshake timed out or the socket broke.
    Unanswered(String),
}

/// One client: joins, reports, waits for everyone, then leaves (by reset,
/// or with a close frame).
async fn member(
    url: String,
    reset: bool,
    patience: Duration,
    mut leave: watch::Receiver<bool>,
    report: mpsc::UnboundedSender<Joined>,
) {
    let joined = tokio::time::timeout(patience, handshake(&url, reset)).await;
    let mut socket = match joined {
        Ok(Ok(socket)) => socket,
        Ok(Err(Refusal::Refused(reason))) => {
            let _ = report.send(Joined::Refused(reason));
            return;
        }
        Ok(Err(Refusal::Unanswered(problem))) => {
            let _ = report.send(Joined::Unanswered(problem));
            return;
        }
        Err(_) => {
            let _ = report.send(Joined::Unanswered(format!(
                "no handshake within {patience:?}"
            )));
            return;
        }
    };
    let welcome = next_of_type(&mut socket, "welcome", patience).await;
    let _ = report.send(match welcome {
        Ok(_) => Joined::Welcomed {
            at: Instant::now(),
            reset,
        },
        Err(_) => Joined::NoWelcome,
    });
    // Frames that keep coming meanwhile (others joining) are read and
    // dropped, as a client would.
    loop {
        tokio::select! {
            _ = leave.wait_for(|now| *now) => break,
            frame = socket.next() => if !matches!(frame, Some(Ok(_))) { return },
        }
    }
    if reset {
        // SO_LINGER 0 (set before the handshake): dropping the socket
        // sends a TCP reset, as a phone losing its network would.
        drop(socket);
    } else {
        let _ = socket.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
    }
}

#[derive(Debug)]
enum Refusal {
    Refused(String),
    Unanswered(String),
}

/// A WebSocket handshake over a TCP connection of our own, so a client that
/// is to leave by reset can have SO_LINGER 0.
async fn handshake(url: &str, reset: bool) -> Result<Socket, Refusal> {
    let address = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| Refusal::Unanswered(format!("not a ws:// URL: {url}")))?;
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|problem| Refusal::Unanswered(problem.to_string()))?;
    if reset {
        // Deprecated because a non-zero linger blocks the thread on drop; a
        // zero one does not: the kernel resets the connection at once.
        #[allow(deprecated)]
        tcp.set_linger(Some(Duration::ZERO))
            .map_err(|problem| Refusal::Unanswered(problem.to_string()))?;
    }
    let _ = tcp.set_nodelay(true);
    match client_async_with_config(url, MaybeTlsStream::Plain(tcp), Some(small_buffers())).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => Err(Refusal::Refused(crate::client::refusal(&response))),
        Err(problem) => Err(Refusal::Unanswered(problem.to_string())),
    }
}

/// Buffers sized for small chat frames: tungstenite's default 128 KiB read
/// buffer per connection would make ten thousand clients hold over a GiB.
fn small_buffers() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

/// Departures announced to the observer until `expected` of them came or
/// `patience` passed without a new one; and when the last came. A crowd's
/// presence frame lists a few of those who left and counts them all
/// (`left_count`), so departures are counted, not listed: a frame the
/// stream delivered twice would count twice, so the run also checks that
/// no connection row is left.
async fn count_departures(
    observer: &mut Socket,
    expected: usize,
    patience: Duration,
) -> (usize, Option<Instant>) {
    let mut left = 0;
    let mut last = None;
    while left < expected {
        let Ok(presence) = next_of_type(observer, "presence", patience).await else {
            break;
        };
        let listed = presence["left"].as_array().map_or(0, Vec::len);
        let counted = presence["left_count"]
            .as_u64()
            .map_or(listed, |count| count as usize);
        if counted > 0 {
            left += counted;
            last = Some(Instant::now());
        }
    }
    (left, last)
}
