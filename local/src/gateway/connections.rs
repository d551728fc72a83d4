//! The connections API Gateway keeps: who is connected, and a way to reach
//! each one's socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use handlers::auth::Identity;
use handlers::metric;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::throttle::TokenBucket;

/// Frames queued for one socket before the Management API answers 429, as
/// API Gateway does when a client's buffer is full.
pub const OUTBOX_CAPACITY: usize = 1024;

/// What the socket task is asked to do.
#[derive(Debug)]
pub enum Outbound {
    Frame(Message),
    /// Close from the server side (Management API DELETE).
    Close {
        code: u16,
        reason: String,
    },
}

/// One WebSocket connection.
#[derive(Debug)]
pub struct Connection {
    pub id: String,
    pub connected_at_ms: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
    /// Who the `$connect` authorizer let in, when sign-in is on.
    pub identity: Option<Identity>,
    /// What its address may still send (shared by that address's
    /// connections).
    pub budget: Arc<TokenBucket>,
    /// False while `$connect` runs (API Gateway answers 410 until then)
    /// and once the socket has closed.
    open: AtomicBool,
    last_active_ms: AtomicI64,
    outbox: mpsc::Sender<Outbound>,
}

/// Why a frame could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    Gone,
    Full,
}

impl Connection {
    pub fn new(
        id: String,
        connected_at_ms: i64,
        source_ip: String,
        user_agent: Option<String>,
        identity: Option<Identity>,
        budget: Arc<TokenBucket>,
    ) -> (Arc<Self>, mpsc::Receiver<Outbound>) {
        let (outbox, receiver) = mpsc::channel(OUTBOX_CAPACITY);
        let connection = Arc::new(Self {
            id,
            connected_at_ms,
            source_ip,
            user_agent,
            identity,
            budget,
            open: AtomicBool::new(false),
            last_active_ms: AtomicI64::new(connected_at_ms),
            outbox,
        });
        (connection, receiver)
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Release);
    }

    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    pub fn touch(&self, at_ms: i64) {
        self.last_active_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    /// Queues a message or close for the socket, without waiting.
    pub fn send(&self, outbound: Outbound) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Gone);
        }
        self.outbox.try_send(outbound).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Gone,
        })
    }
}

/// Every connection, from the start of its `$connect` to its close.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Connections>,
}

#[derive(Debug, Default)]
struct Connections {
    by_id: HashMap<String, Arc<Connection>>,
    /// How many of them each address holds (none: absent).
    per_address: HashMap<String, usize>,
}

impl Registry {
    /// Adds `connection` unless its address already has `per_address`
    /// connections (counted under the same lock, so a burst cannot slip
    /// past the cap); whether it was added.
    pub fn insert_within(&self, connection: Arc<Connection>, per_address: usize) -> bool {
        let mut connections = self.lock();
        let from_there = connections
            .per_address
            .entry(connection.source_ip.clone())
            .or_insert(0);
        if *from_there >= per_address {
            return false;
        }
        *from_there += 1;
        connections.by_id.insert(connection.id.clone(), connection);
        record_open(connections.by_id.len());
        true
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Connection>> {
        let mut connections = self.lock();
        let removed = connections.by_id.remove(id);
        if let Some(removed) = &removed
            && let Some(count) = connections.per_address.get_mut(&removed.source_ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                connections.per_address.remove(&removed.source_ip);
            }
        }
        record_open(connections.by_id.len());
        removed
    }

    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.lock().by_id.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        // The maps stay consistent even if a holder panicked: every
        // operation on them completes without a call that could.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The local stand-in for what API Gateway's connect and disconnect counts
/// tell on AWS: connections open now.
fn record_open(count: usize) {
    metrics::gauge!(metric::CONNECTIONS_OPEN).set(count as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(id: &str, source_ip: &str) -> Arc<Connection> {
        let budget = Arc::new(TokenBucket::new(crate::config::DEFAULT_ADDRESS_BUDGET));
        Connection::new(id.into(), 0, source_ip.into(), None, None, budget).0
    }

    #[test]
    fn each_address_is_capped_and_gets_its_places_back_as_connections_close() {
        let registry = Registry::default();
        assert!(registry.insert_within(connection("a", "203.0.113.7"), 2));
        assert!(registry.insert_within(connection("b", "203.0.113.7"), 2));
        assert!(!registry.insert_within(connection("c", "203.0.113.7"), 2));
        assert!(registry.insert_within(connection("d", "203.0.113.8"), 2));
        assert!(registry.remove("a").is_some());
        assert!(registry.remove("a").is_none(), "removed once");
        assert!(registry.insert_within(connection("e", "203.0.113.7"), 2));
        assert!(!registry.insert_within(connection("f", "203.0.113.7"), 2));
        assert_eq!(registry.len(), 3);
    }
}
