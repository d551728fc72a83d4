//! Fan-out latency: one client posts, every client (the sender included)
//! receives; per round, the time to the first, the median and the last
//! recipient.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Swarm;
use crate::server::{Binaries, Server, Target};
use crate::stats::Spread;

/// Concurrent handshakes while the clients connect.
const CONNECT_IN_FLIGHT: usize = 64;

#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    pub rounds: usize,
    /// Longest wait for one round's last recipient.
    pub patience: Duration,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub target: String,
    pub clients: usize,
    pub rounds: usize,
    /// Rounds in which some client never got the message.
    pub incomplete_rounds: usize,
    pub first: Spread,
    pub median: Spread,
    pub last: Spread,
    pub server_rss_kib: Option<u64>,
    /// Server CPU time (user + system) per round: what one message cost.
    pub server_cpu_ms_per_round: Option<f64>,
}

pub async fn measure(target: &Target, binaries: &Binaries, plan: &Plan) -> anyhow::Result<Outcome> {
    let server = Server::start(target, binaries).await?;
    let url = room_url(&server.url, target);
    let mut swarm = Swarm::connect(&url, plan.clients, CONNECT_IN_FLIGHT).await?;
    swarm.settle(plan.patience, Duration::from_secs(1)).await?;
    let (mut first, mut median, mut last) = (Vec::new(), Vec::new(), Vec::new());
    let mut incomplete_rounds = 0;
    let cpu_before = server.cpu_time();
    for round in 0..plan.rounds {
        let token = round as u64;
        let sent = Instant::now();
        // Senders take turns, so no one client's rate limit is in play.
        swarm.send_token(round % swarm.len(), token);
        let mut arrivals = swarm.await_deliveries(token, plan.patience).await;
        if arrivals.len() < swarm.len() {
            incomplete_rounds += 1;
        }
        arrivals.sort();
        if let (Some(earliest), Some(latest)) = (arrivals.first(), arrivals.last()) {
            first.push(*earliest - sent);
            median.push(arrivals[arrivals.len() / 2] - sent);
            last.push(*latest - sent);
        }
        // Rounds do not overlap: late frames of this one are dropped.
        tokio::time::sleep(Duration::from_millis(20)).await;
        swarm.drain();
    }
    let cpu_per_round = cpu_before
        .zip(server.cpu_time())
        .map(|(before, after)| (after - before).as_secs_f64() * 1e3 / plan.rounds.max(1) as f64);
    let outcome = Outcome {
        target: target.label(),
        clients: plan.clients,
        rounds: plan.rounds,
        incomplete_rounds,
        first: Spread::of(&first),
        median: Spread::of(&median),
        last: Spread::of(&last),
        server_rss_kib: server.rss_kib(),
        server_cpu_ms_per_round: cpu_per_round.map(|ms| (ms * 100.0).round() / 100.0),
    };
    eprintln!(
        "  {:<36} {:>5} clients  last p50 {:>8.1} ms  p99 {:>8.1} ms  server CPU/round {:?} ms  ({} incomplete)",
        outcome.target,
        outcome.clients,
        outcome.last.p50_ms,
        outcome.last.p99_ms,
        outcome.server_cpu_ms_per_round,
        outcome.incomplete_rounds
    );
    server.stop().await;
    Ok(outcome)
}

/// Chat clients join one room; the floor ignores the query.
pub fn room_url(base: &str, target: &Target) -> String {
    if target.is_chat() {
        format!("{base}?room=bench")
    } else {
        base.to_owned()
    }
}
