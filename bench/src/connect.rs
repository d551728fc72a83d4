//! Connect rate: N clients connect as fast as the server lets them; the
//! handshakes' rate, and for the chat, how long until the last newcomer has
//! its `welcome` (the stream processor's lag) and how many presence frames
//! the joins cost.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{Event, Swarm};
use crate::fanout::room_url;
use crate::server::{Binaries, Server, Target};
use crate::stats::ms;

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub target: String,
    pub clients: usize,
    pub in_flight: usize,
    /// Until every handshake (and so every `$connect`) completed.
    pub handshakes_ms: f64,
    pub connections_per_second: f64,
    /// Until the last `welcome` arrived (chat only).
    pub last_welcome_ms: Option<f64>,
    pub missing_welcomes: usize,
    /// Frames the clients received from the first handshake until the last
    /// welcome plus a quiet second: welcomes and presence.
    pub frames_received: u64,
    pub server_rss_kib: Option<u64>,
}

pub async fn measure(
    target: &Target,
    binaries: &Binaries,
    clients: usize,
    in_flight: usize,
) -> anyhow::Result<Outcome> {
    let server = Server::start(target, binaries).await?;
    let url = room_url(&server.url, target);
    let started = Instant::now();
    let mut swarm = Swarm::connect(&url, clients, in_flight).await?;
    let handshakes = started.elapsed();
    let mut welcomed = vec![false; clients];
    let mut last_welcome = None;
    let mut missing = if target.is_chat() { clients } else { 0 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while missing > 0 {
        match tokio::time::timeout_at(deadline, swarm.events.recv()).await {
            Ok(Some(Event::Welcome { client, at })) => {
                if !std::mem::replace(&mut welcomed[client], true) {
                    missing -= 1;
                    last_welcome = Some(at - started);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outcome = Outcome {
        target: target.label(),
        clients,
        in_flight,
        handshakes_ms: ms(handshakes),
        connections_per_second: (clients as f64 / handshakes.as_secs_f64()).round(),
        last_welcome_ms: last_welcome.map(ms),
        missing_welcomes: missing,
        frames_received: swarm.frames_received(),
        server_rss_kib: server.rss_kib(),
    };
    eprintln!(
        "  {:<36} {:>5} clients  {:>6} conn/s  last welcome {:?} ms  {} frames",
        outcome.target,
        clients,
        outcome.connections_per_second,
        outcome.last_welcome_ms,
        outcome.frames_received
    );
    server.stop().await;
    Ok(outcome)
}
