//! Start-up and memory: how long the server takes to be ready, its RSS then,
//! and its RSS with N idle connections (so the cost of one connection).

use std::time::Duration;

use serde::Serialize;

use crate::client::{PROBE_PATIENCE, Swarm};
use crate::fanout::room_url;
use crate::server::{Binaries, Server, Target};
use crate::stats::ms;

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub target: String,
    /// From spawning the process to its printing the WebSocket URL.
    pub ready_ms: f64,
    pub rss_ready_kib: Option<u64>,
    pub clients: usize,
    pub rss_connected_kib: Option<u64>,
    pub kib_per_connection: Option<f64>,
}

pub async fn measure(
    target: &Target,
    binaries: &Binaries,
    clients: usize,
) -> anyhow::Result<Outcome> {
    let server = Server::start(target, binaries).await?;
    // What the process holds once it has settled, before anyone connects.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_ready = server.rss_kib();
    let mut swarm = Swarm::connect(&room_url(&server.url, target), clients, 64).await?;
    swarm.settle(PROBE_PATIENCE, Duration::from_secs(2)).await?;
    let rss_connected = server.rss_kib();
    let per_connection = rss_ready.zip(rss_connected).map(|(ready, connected)| {
        (connected.saturating_sub(ready) as f64 / clients as f64 * 10.0).round() / 10.0
    });
    let outcome = Outcome {
        target: target.label(),
        ready_ms: ms(server.ready_after),
        rss_ready_kib: rss_ready,
        clients,
        rss_connected_kib: rss_connected,
        kib_per_connection: per_connection,
    };
    eprintln!(
        "  {:<36} ready in {} ms, RSS {:?} KiB, with {clients} idle {:?} KiB ({:?} KiB each)",
        outcome.target, outcome.ready_ms, rss_ready, rss_connected, per_connection
    );
    drop(swarm);
    server.stop().await;
    Ok(outcome)
}
