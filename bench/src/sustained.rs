//! Sustained load (and, run long, the soak): some clients send at a steady
//! total rate while every client listens; each delivery is counted, so lost
//! and duplicated deliveries show, and the chat's stored messages are counted
//! back through the `history` route.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;
use serde_json::Value;

use crate::client::{Event, PROBE_PATIENCE, Swarm};
use crate::fanout::room_url;
use crate::server::{Binaries, Server, Target};
use crate::stats::Spread;

#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    pub senders: usize,
    /// Messages per second, all senders together.
    pub rate: f64,
    pub duration: Duration,
    /// How long deliveries may trail the last send.
    pub drain: Duration,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub target: String,
    pub clients: usize,
    pub senders: usize,
    pub rate_per_second: f64,
    pub duration_seconds: f64,
    pub sent: usize,
    pub expected_deliveries: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub deliveries_per_second: f64,
    pub latency: Spread,
    /// Sent messages found in the room's history afterwards (chat only).
    pub stored: Option<usize>,
    pub error_frames: usize,
    pub closed_connections: usize,
    pub server_rss_start_kib: Option<u64>,
    pub server_rss_end_kib: Option<u64>,
    pub server_peak_rss_kib: Option<u64>,
    pub server_warnings: u64,
    pub server_errors: u64,
}

pub async fn measure(target: &Target, binaries: &Binaries, plan: &Plan) -> anyhow::Result<Outcome> {
    let server = Server::start(target, binaries).await?;
    let mut swarm = Swarm::connect(&room_url(&server.url, target), plan.clients, 64).await?;
    swarm.settle(PROBE_PATIENCE, Duration::from_secs(1)).await?;
    let rss_start = server.rss_kib();
    let clients = swarm.len();
    let senders = plan.senders.clamp(1, clients);
    let tally = send_and_listen(&mut swarm, &server, plan, senders).await;
    let sent = tally.sent_at.len();
    let delivered = tally.received.iter().flatten().filter(|n| **n > 0).count();
    let duplicated = tally
        .received
        .iter()
        .flatten()
        .map(|n| usize::from(n.saturating_sub(1)))
        .sum();
    let stored = if target.is_chat() {
        Some(count_stored(&mut swarm, sent).await?)
    } else {
        None
    };
    let outcome = Outcome {
        target: target.label(),
        clients,
        senders,
        rate_per_second: plan.rate,
        duration_seconds: plan.duration.as_secs_f64(),
        sent,
        expected_deliveries: sent * clients,
        delivered,
        lost: sent * clients - delivered,
        duplicated,
        deliveries_per_second: (delivered as f64 / plan.duration.as_secs_f64()).round(),
        latency: Spread::of(&tally.latencies),
        stored,
        error_frames: tally.error_frames,
        closed_connections: tally.closed,
        server_rss_start_kib: rss_start,
        server_rss_end_kib: server.rss_kib(),
        server_peak_rss_kib: server.peak_rss_kib(),
        server_warnings: server.warnings(),
        server_errors: server.errors(),
    };
    server.stop().await;
    Ok(outcome)
}

/// What was sent and what came back: per message, when it was sent and how
/// many times each client received it.
#[derive(Default)]
struct Tally {
    sent_at: Vec<Instant>,
    received: Vec<Vec<u8>>,
    latencies: Vec<Duration>,
    error_frames: usize,
    closed: usize,
}

impl Tally {
    /// The next message, from the next of the `senders`.
    fn send(&mut self, swarm: &Swarm, senders: usize) {
        let token = self.sent_at.len();
        self.sent_at.push(Instant::now());
        self.received.push(vec![0; swarm.len()]);
        swarm.send_token(token % senders, token as u64);
    }

    /// Counts what a client saw; whether every message sent so far has now
    /// reached every client.
    fn note(&mut self, event: Event) -> bool {
        match event {
            Event::Delivered { client, token, at } => {
                let Some(counts) = usize::try_from(token)
                    .ok()
                    .and_then(|t| self.received.get_mut(t))
                else {
                    return false;
                };
                counts[client] = counts[client].saturating_add(1);
                if counts[client] == 1 {
                    self.latencies.push(at - self.sent_at[token as usize]);
                }
                self.latencies.len() == self.sent_at.len() * counts.len()
            }
            Event::Error { text, .. } => {
                self.error_frames += 1;
                eprintln!("  error frame: {text}");
                false
            }
            Event::Closed => {
                self.closed += 1;
                false
            }
            _ => false,
        }
    }
}

/// Sends at `plan.rate` for `plan.duration`, then listens for up to
/// `plan.drain` more (less, once everything came), reporting progress every
/// ten seconds.
async fn send_and_listen(swarm: &mut Swarm, server: &Server, plan: &Plan, senders: usize) -> Tally {
    let mut tally = Tally::default();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate));
    let started = Instant::now();
    let sending_until = tokio::time::Instant::now() + plan.duration;
    let mut drain_deadline = None;
    let mut last_report = Instant::now();
    loop {
        let sending = drain_deadline.is_none();
        tokio::select! {
            _ = tick.tick(), if sending => {
                if tokio::time::Instant::now() >= sending_until {
                    drain_deadline = Some(tokio::time::Instant::now() + plan.drain);
                    continue;
                }
                tally.send(swarm, senders);
            }
            () = sleep_until(drain_deadline) => break,
            event = swarm.events.recv() => match event {
                Some(event) => if tally.note(event) && !sending {
                    break;
                },
                None => break,
            }
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  {:>5.0} s: {} sent, server RSS {:?} KiB",
                started.elapsed().as_secs_f64(),
                tally.sent_at.len(),
                server.rss_kib()
            );
        }
    }
    tally
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Pages through the room's history from client 0 and counts the distinct
/// benchmark messages with a token below `sent`.
async fn count_stored(swarm: &mut Swarm, sent: usize) -> anyhow::Result<usize> {
    let mut found = vec![false; sent];
    let mut before: Option<String> = None;
    loop {
        let request = match &before {
            Some(cursor) => {
                serde_json::json!({"action": "history", "limit": 100, "before": cursor})
            }
            None => serde_json::json!({"action": "history", "limit": 100}),
        };
        swarm.send(0, request.to_string());
        let page = next_history_page(swarm).await?;
        for message in page["messages"].as_array().into_iter().flatten() {
            let token = message["text"].as_str().and_then(crate::client::token_in);
            if let Some(seen) = token.and_then(|t| found.get_mut(usize::try_from(t).ok()?)) {
                *seen = true;
            }
        }
        match page["cursor"].as_str() {
            Some(cursor) => before = Some(cursor.to_owned()),
            None => break,
        }
    }
    Ok(found.iter().filter(|seen| **seen).count())
}

async fn next_history_page(swarm: &mut Swarm) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, swarm.events.recv()).await {
            Ok(Some(Event::History { client: 0, text })) => {
                return Ok(serde_json::from_str(&text)?);
            }
            Ok(Some(Event::Error { client: 0, text })) => {
                bail!("history request refused: {text}");
            }
            Ok(Some(_)) => {}
            _ => bail!("no history page within 10 s"),
        }
    }
}
