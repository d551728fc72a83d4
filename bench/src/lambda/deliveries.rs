//! What the real WebSocket clients see of the functions' work: a client's
//! `welcome` (who it is), and every delivery of a set of tokens counted,
//! duplicates apart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::client::{Event, Swarm, Welcome};

/// Deliveries of a set of tokens to every client.
#[derive(Debug, Default, Clone, Copy)]
pub struct Deliveries {
    pub expected: usize,
    pub delivered: usize,
    pub duplicated: usize,
}

impl Deliveries {
    pub fn add(&mut self, other: Self) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.duplicated += other.duplicated;
    }
}

/// The `welcome` of one client of `swarm`, within `patience`.
pub async fn await_welcome(
    swarm: &Swarm,
    client: usize,
    patience: Duration,
) -> anyhow::Result<Welcome> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(welcome) = swarm.welcome(client) {
            return Ok(welcome);
        }
        if Instant::now() > deadline {
            bail!("client {client} got no welcome within {patience:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every client has every token, or `patience` runs out; then
/// half a second more for duplicates.
pub async fn await_deliveries(swarm: &mut Swarm, tokens: &[u64], patience: Duration) -> Deliveries {
    let clients = swarm.len();
    let mut seen: HashMap<u64, Vec<bool>> = tokens
        .iter()
        .map(|&token| (token, vec![false; clients]))
        .collect();
    let mut count = Deliveries {
        expected: tokens.len() * clients,
        ..Deliveries::default()
    };
    let deadline = tokio::time::Instant::now() + patience;
    let mut quiet_until = None;
    loop {
        let until = quiet_until.unwrap_or(deadline);
        let Ok(Some(event)) = tokio::time::timeout_at(until, swarm.events.recv()).await else {
            break;
        };
        if let Event::Delivered { client, token, .. } = event
            && let Some(slot) = seen.get_mut(&token).and_then(|row| row.get_mut(client))
        {
            if std::mem::replace(slot, true) {
                count.duplicated += 1;
            } else {
                count.delivered += 1;
            }
        }
        if count.delivered == count.expected && quiet_until.is_none() {
            quiet_until = Some(tokio::time::Instant::now() + Duration::from_millis(500));
        }
    }
    count
}
