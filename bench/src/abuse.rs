//! What an attacker on other addresses costs a user, against chat-local
//! with its defaults (`--max-connections-per-ip` aside, it is what anyone
//! running the stack gets). A victim on 127.0.0.1 measures its echo (say a
//! message, wait for it to come back) alone, then during each attack:
//!
//! 1. **messages**: connections on 127.0.0.2 in a room of their own, each
//!    sending at its own message allowance;
//! 2. **history**: connections on 127.0.0.2 asking for `history` as fast
//!    as they are answered;
//! 3. **handshakes**: more sockets than the server may open files, from
//!    many 127.0.1.x addresses, that never finish their handshake (half
//!    silent, half sending an upgrade a byte a second), each opened again
//!    whenever the server closes it.
//!
//! Throughout, the victim also opens fresh connections and loads the page.
//!
//! Then a departed client's backlog: a connection on 127.0.0.3 writes
//! 100,000 `history` requests and leaves; an observer in its room times
//! its `left` presence. Last, SIGTERM while such a flood is in progress:
//! the time until the process exits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, client_async};
use tokio_util::sync::CancellationToken;

use crate::client::{Socket, next_of_type};
use crate::server::{Binaries, Server, Target};
use crate::stats::{Spread, ms};

const VICTIM: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const LEAVER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

#[derive(Debug, Clone, clap::Args)]
pub struct Plan {
    /// Connections sending messages at their allowance.
    #[arg(long, default_value_t = 200)]
    pub message_flooders: usize,
    /// Their rate each, per second (the default allowance).
    #[arg(long, default_value_t = 5.0)]
    pub message_rate: f64,
    /// Connections asking for history as fast as they are answered.
    #[arg(long, default_value_t = 50)]
    pub history_flooders: usize,
    /// Sockets held without a finished handshake.
    #[arg(long, default_value_t = 18_000)]
    pub handshake_sockets: usize,
    /// The addresses they come from (127.0.1.1 onwards).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u16).range(1..=250))]
    pub handshake_addresses: u16,
    /// Requests the departing client leaves behind.
    #[arg(long, default_value_t = 100_000)]
    pub backlog_frames: usize,
    /// The server's open-file limit (hard and soft), below the attack's
    /// sockets as a busy server's would be.
    #[arg(long, default_value_t = 10_000)]
    pub server_open_files: u64,
    /// How long each attack lasts while the victim measures.
    #[arg(long, default_value_t = 10)]
    pub attack_secs: u64,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub target: String,
    /// With no attack, then during each.
    pub phases: Vec<Phase>,
    /// From the leaver's last write to its `left` presence.
    pub backlog_left_after_ms: Option<f64>,
    /// From SIGTERM during a flood to the process's exit.
    pub sigterm_exit_ms: Option<f64>,
    pub server_errors: u64,
    pub server_peak_rss_kib: Option<u64>,
}

/// What a user saw during one phase, and what the attacker was told.
#[derive(Debug, Default, Serialize)]
pub struct Phase {
    pub name: String,
    /// The victim's echo.
    pub echo: Spread,
    /// Probes that got no echo within 5 s.
    pub echoes_lost: usize,
    /// The victim's fresh connections: served, and their time to `welcome`
    /// (the stream processor sends it: a stream poll included).
    pub fresh_connections: usize,
    pub fresh_served: usize,
    pub fresh_welcome: Spread,
    /// `GET /`: answered 200.
    pub page_loads: usize,
    pub page_served: usize,
    pub attacker_frames_sent: u64,
    /// Answered `rate_limited` (or the stage's "Too Many Requests").
    pub attacker_frames_refused: u64,
    /// Attacker sockets the server closed (then opened again).
    pub attacker_sockets_closed: u64,
    /// The server's CPU time over the phase, in percent of one core.
    pub server_cpu_percent: Option<f64>,
}

/// How long the bench waits for the server to exit after SIGTERM.
const SIGTERM_PATIENCE: Duration = Duration::from_secs(60);

/// How long one echo may take before it counts as lost.
const ECHO_PATIENCE: Duration = Duration::from_secs(5);
/// The victim says something this often (within its own allowance).
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

pub async fn measure(binaries: &Binaries, plan: &Plan) -> anyhow::Result<Outcome> {
    let target = Target::ChatDefaults {
        open_files: plan.server_open_files,
    };
    let server = Server::start(&target, binaries).await?;
    let address = server_address(&server.url)?;
    let during = Duration::from_secs(plan.attack_secs);
    let mut victim = Victim::join(&server.url, address).await?;
    let alone = victim
        .measure("alone", &server, during, &Counts::default())
        .await;
    let phases = vec![
        alone,
        flood_of_messages(&mut victim, &server, address, plan).await?,
        flood_of_history(&mut victim, &server, address, plan).await?,
        handshakes_never_finished(&mut victim, &server, address, plan).await,
    ];
    for phase in &phases {
        eprintln!("  {phase:?}");
    }
    let backlog_left_after = leave_a_backlog(&server.url, address, plan.backlog_frames).await?;
    eprintln!("  backlog: left after {backlog_left_after:?}");

    let server_errors = server.errors();
    let server_peak_rss_kib = server.peak_rss_kib();
    let sigterm_exit = sigterm_during_a_flood(server, address).await?;
    eprintln!("  SIGTERM: exited after {sigterm_exit:?}");

    Ok(Outcome {
        target: target.label(),
        phases,
        backlog_left_after_ms: backlog_left_after.map(ms),
        sigterm_exit_ms: sigterm_exit.map(ms),
        server_errors,
        server_peak_rss_kib,
    })
}

/// Attack 1: connections on 127.0.0.2 in a room of their own, each sending
/// at its own message allowance.
async fn flood_of_messages(
    victim: &mut Victim,
    server: &Server,
    address: SocketAddr,
    plan: &Plan,
) -> anyhow::Result<Phase> {
    let counts = Counts::default();
    let stop = CancellationToken::new();
    let flooders = open_many(
        &server.url,
        address,
        ATTACKER,
        "flood",
        plan.message_flooders,
    )
    .await?;
    for socket in flooders {
        tokio::spawn(flood_messages(
            socket,
            plan.message_rate,
            counts.clone(),
            stop.clone(),
        ));
    }
    let during = Duration::from_secs(plan.attack_secs);
    let name = "messages at each one's allowance";
    Ok(victim
        .under_attack(name, server, during, &counts, &stop)
        .await)
}

/// Attack 2: connections on 127.0.0.2 asking for `history` as fast as they
/// are answered.
async fn flood_of_history(
    victim: &mut Victim,
    server: &Server,
    address: SocketAddr,
    plan: &Plan,
) -> anyhow::Result<Phase> {
    let counts = Counts::default();
    let stop = CancellationToken::new();
    let flooders = open_many(
        &server.url,
        address,
        ATTACKER,
        "history",
        plan.history_flooders,
    )
    .await?;
    for socket in flooders {
        tokio::spawn(flood_history(socket, counts.clone(), stop.clone()));
    }
    let during = Duration::from_secs(plan.attack_secs);
    let name = "history as fast as answered";
    Ok(victim
        .under_attack(name, server, during, &counts, &stop)
        .await)
}

/// Attack 3: more sockets than the server may open files, from many
/// 127.0.1.x addresses, that never finish their handshake.
async fn handshakes_never_finished(
    victim: &mut Victim,
    server: &Server,
    address: SocketAddr,
    plan: &Plan,
) -> Phase {
    let counts = Counts::default();
    let stop = CancellationToken::new();
    for socket in 0..plan.handshake_sockets {
        let last = 1 + (socket % usize::from(plan.handshake_addresses)) as u8;
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, last));
        tokio::spawn(hold_unfinished(
            address,
            from,
            socket % 2 == 1,
            counts.clone(),
            stop.clone(),
        ));
    }
    // Let them take their places first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = Duration::from_secs(plan.attack_secs);
    let name = "handshakes never finished";
    victim
        .under_attack(name, server, during, &counts, &stop)
        .await
}

/// SIGTERM while a flood of history requests is in progress: how long the
/// server took to exit, if it did.
async fn sigterm_during_a_flood(
    server: Server,
    address: SocketAddr,
) -> anyhow::Result<Option<Duration>> {
    let mut flood = connect_from(&server.url, address, LEAVER, "sigterm").await?;
    let flooding = tokio::spawn(async move {
        let request = Message::text(r#"{"action":"history"}"#);
        while flood.send(request.clone()).await.is_ok() {}
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sigterm_exit = server.terminate(SIGTERM_PATIENCE).await;
    flooding.abort();
    Ok(sigterm_exit)
}

fn server_address(url: &str) -> anyhow::Result<SocketAddr> {
    url.strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|host| host.parse().ok())
        .with_context(|| format!("not a ws://IP:PORT URL: {url}"))
}

/// A WebSocket connection from `local` to the room `room`.
async fn connect_from(
    url: &str,
    server: SocketAddr,
    local: IpAddr,
    room: &str,
) -> anyhow::Result<Socket> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(local, 0))
        .with_context(|| format!("cannot bind {local}"))?;
    let tcp = socket.connect(server).await?;
    let _ = tcp.set_nodelay(true);
    let (socket, _) = client_async(format!("{url}?room={room}"), MaybeTlsStream::Plain(tcp))
        .await
        .with_context(|| format!("handshake from {local}"))?;
    Ok(socket)
}

/// `count` connections from `local`, a few handshakes at a time.
async fn open_many(
    url: &str,
    server: SocketAddr,
    local: IpAddr,
    room: &str,
    count: usize,
) -> anyhow::Result<Vec<Socket>> {
    let mut sockets = Vec::with_capacity(count);
    let opening = futures::stream::iter(0..count)
        .map(|_| connect_from(url, server, local, room))
        .buffer_unordered(16);
    tokio::pin!(opening);
    while let Some(socket) = opening.next().await {
        sockets.push(socket?);
    }
    Ok(sockets)
}

/// What the attacker's connections sent, were refused, and had closed.
#[derive(Clone, Default)]
struct Counts {
    sent: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
}

impl Counts {
    fn note(&self, text: &str) {
        if text.contains("rate_limited") || text.contains("Too Many Requests") {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> [u64; 3] {
        [&self.sent, &self.refused, &self.closed].map(|count| count.load(Ordering::Relaxed))
    }
}

/// Sends messages at `rate` a second, reading whatever comes back.
async fn flood_messages(socket: Socket, rate: f64, counts: Counts, stop: CancellationToken) {
    let (mut sink, mut stream) = socket.split();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let frame = Message::text(r#"{"action":"sendmessage","message":"flood"}"#);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                if sink.send(frame.clone()).await.is_err() { break; }
                counts.sent.fetch_add(1, Ordering::Relaxed);
            }
            read = stream.next() => match read {
                Some(Ok(Message::Text(text))) => counts.note(text.as_str()),
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    let _ = sink.close().await;
}

/// Asks for history, again as soon as anything comes back.
async fn flood_history(mut socket: Socket, counts: Counts, stop: CancellationToken) {
    let request = Message::text(r#"{"action":"history"}"#);
    while !stop.is_cancelled() {
        if socket.send(request.clone()).await.is_err() {
            break;
        }
        counts.sent.fetch_add(1, Ordering::Relaxed);
        // Presence and other frames may come first; the answer is a
        // `history` page or an error.
        loop {
            match tokio::time::timeout(ECHO_PATIENCE, socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let text = text.as_str();
                    if text.contains(r#""type":"history""#) {
                        break;
                    }
                    if text.contains("error") || text.contains("Too Many Requests") {
                        counts.note(text);
                        break;
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => return,
            }
        }
    }
    let _ = socket.close(None).await;
}

/// One socket that never finishes its handshake (silent, or trickling an
/// upgrade a byte a second), opened again whenever the server closes it.
async fn hold_unfinished(
    server: SocketAddr,
    local: IpAddr,
    trickle: bool,
    counts: Counts,
    stop: CancellationToken,
) {
    let closed = &counts.closed;
    let head = format!(
        "GET /dev HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    while !stop.is_cancelled() {
        let Ok(socket) = TcpSocket::new_v4() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let connected = match socket.bind(SocketAddr::new(local, 0)) {
            Ok(()) => socket.connect(server).await,
            Err(problem) => Err(problem),
        };
        let Ok(mut tcp) = connected else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut byte = head.bytes();
        let mut seen = [0_u8; 512];
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                read = tcp.read(&mut seen) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                () = tokio::time::sleep(Duration::from_secs(1)), if trickle => {
                    if let Some(next) = byte.next()
                        && tcp.write_all(&[next]).await.is_err()
                    {
                        closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
        // Back at once, as an attacker would be; a pause keeps the loop
        // from spinning when the server refuses outright.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fresh connections and page loads from the victim's address, one every
/// half second, for `during`.
async fn fresh_visits(url: String, server: SocketAddr, during: Duration) -> Phase {
    let mut phase = Phase::default();
    let mut welcomes = Vec::new();
    let until = Instant::now() + during;
    while Instant::now() < until {
        phase.fresh_connections += 1;
        let started = Instant::now();
        let visit = tokio::time::timeout(ECHO_PATIENCE, async {
            let mut socket = connect_from(&url, server, VICTIM, "fresh").await.ok()?;
            let welcome = next_of_type(&mut socket, "welcome", ECHO_PATIENCE)
                .await
                .ok();
            let _ = socket.close(None).await;
            welcome
        });
        if let Ok(Some(_)) = visit.await {
            phase.fresh_served += 1;
            welcomes.push(started.elapsed());
        }
        phase.page_loads += 1;
        if let Ok(Ok(true)) = tokio::time::timeout(ECHO_PATIENCE, page_loads(server)).await {
            phase.page_served += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    phase.fresh_welcome = Spread::of(&welcomes);
    phase
}

/// Whether `GET /` is answered 200.
async fn page_loads(server: SocketAddr) -> std::io::Result<bool> {
    let mut tcp = TcpStream::connect(server).await?;
    let request = format!("GET / HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut status = [0_u8; 12];
    tcp.read_exact(&mut status).await?;
    Ok(&status == b"HTTP/1.1 200")
}

/// A connection from 127.0.0.3 writes `frames` history requests and
/// leaves; how long until an observer in its room is told it left.
async fn leave_a_backlog(
    url: &str,
    server: SocketAddr,
    frames: usize,
) -> anyhow::Result<Option<Duration>> {
    let mut observer = connect_from(url, server, VICTIM, "backlog").await?;
    next_of_type(&mut observer, "welcome", ECHO_PATIENCE).await?;
    let mut leaver = connect_from(url, server, LEAVER, "backlog").await?;
    let id = next_of_type(&mut leaver, "welcome", ECHO_PATIENCE)
        .await
        .ok()
        .and_then(|welcome| welcome["connection_id"].as_str().map(str::to_owned))
        .context("the leaver had no welcome")?;
    let request = Message::text(r#"{"action":"history"}"#);
    for _ in 0..frames {
        leaver.feed(request.clone()).await?;
    }
    leaver.flush().await?;
    drop(leaver);
    let left = Instant::now();
    let patience = Duration::from_secs(600);
    while left.elapsed() < patience {
        let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(patience, observer.next()).await
        else {
            return Ok(None);
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let gone = frame["left"].as_array().is_some_and(|left| {
            left.iter()
                .any(|member| member["connection_id"] == id.as_str())
        });
        if gone {
            return Ok(Some(left.elapsed()));
        }
    }
    Ok(None)
}

/// The victim: one connection in a quiet room of its own.
struct Victim {
    socket: Socket,
    sequence: u64,
    url: String,
    server: SocketAddr,
}

impl Victim {
    async fn join(url: &str, server: SocketAddr) -> anyhow::Result<Self> {
        let mut socket = connect_from(url, server, VICTIM, "quiet").await?;
        next_of_type(&mut socket, "welcome", ECHO_PATIENCE)
            .await
            .context("the victim had no welcome")?;
        Ok(Self {
            socket,
            sequence: 0,
            url: url.to_owned(),
            server,
        })
    }

    /// [`Self::measure`], then stops the attack and lets the server finish
    /// what it left before the next.
    async fn under_attack(
        &mut self,
        name: &str,
        server: &Server,
        during: Duration,
        counts: &Counts,
        attack: &CancellationToken,
    ) -> Phase {
        let phase = self.measure(name, server, during, counts).await;
        attack.cancel();
        tokio::time::sleep(Duration::from_secs(3)).await;
        phase
    }

    /// One phase: echoes and fresh visits for `during`, with what the
    /// attacker's `counts` and the server's CPU time did meanwhile.
    async fn measure(
        &mut self,
        name: &str,
        server: &Server,
        during: Duration,
        counts: &Counts,
    ) -> Phase {
        let url = self.url.clone();
        let address = self.server;
        let fresh = tokio::spawn(fresh_visits(url, address, during));
        let [sent, refused, closed] = counts.snapshot();
        let cpu = server.cpu_time();
        let started = Instant::now();
        let (echo, echoes_lost) = self.probe_for(during).await;
        let mut phase = fresh.await.unwrap_or_default();
        let elapsed = started.elapsed();
        let [sent_after, refused_after, closed_after] = counts.snapshot();
        phase.name = name.to_owned();
        phase.echo = echo;
        phase.echoes_lost = echoes_lost;
        phase.attacker_frames_sent = sent_after - sent;
        phase.attacker_frames_refused = refused_after - refused;
        phase.attacker_sockets_closed = closed_after - closed;
        phase.server_cpu_percent = cpu
            .zip(server.cpu_time())
            .map(|(before, after)| 100.0 * (after - before).as_secs_f64() / elapsed.as_secs_f64());
        eprintln!("  {name}: echo {echo:?}");
        phase
    }

    /// Says a numbered message every [`PROBE_INTERVAL`] for `during`,
    /// timing each until it comes back.
    async fn probe_for(&mut self, during: Duration) -> (Spread, usize) {
        let mut echoes = Vec::new();
        let mut lost = 0;
        let until = Instant::now() + during;
        while Instant::now() < until {
            self.sequence += 1;
            let text = format!("probe {}", self.sequence);
            let frame = serde_json::json!({"action": "sendmessage", "message": text}).to_string();
            let sent = Instant::now();
            if self.socket.send(Message::text(frame)).await.is_err() {
                lost += 1;
                break;
            }
            if self.echo_of(&text).await {
                echoes.push(sent.elapsed());
            } else {
                lost += 1;
            }
            tokio::time::sleep(PROBE_INTERVAL.saturating_sub(sent.elapsed())).await;
        }
        (Spread::of(&echoes), lost)
    }

    async fn echo_of(&mut self, text: &str) -> bool {
        let deadline = tokio::time::Instant::now() + ECHO_PATIENCE;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, self.socket.next()).await
        {
            if let Message::Text(frame) = frame
                && let Ok(frame) = serde_json::from_str::<Value>(frame.as_str())
                && frame["type"] == "message"
                && frame["text"] == text
            {
                return true;
            }
        }
        false
    }
}
