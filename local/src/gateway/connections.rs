//! The connections API Gateway keeps: who is connected, and a way to reach
//! each one's socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Message;
use handlers::auth::Identity;
use handlers::metric;
use tokio::sync::mpsc;

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
    /// False while `$connect` runs; API Gateway answers 410 until then.
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
    connections: Mutex<HashMap<String, Arc<Connection>>>,
}

impl Registry {
    /// Adds `connection` unless its address already has `per_address`
    /// connections (counted under the same lock, so a burst cannot slip
    /// past the cap); whether it was added.
    pub fn insert_within(&self, connection: Arc<Connection>, per_address: usize) -> bool {
        let mut connections = self.lock();
        let from_there = connections
            .values()
            .filter(|other| other.source_ip == connection.source_ip)
            .count();
        if from_there >= per_address {
            return false;
        }
        connections.insert(connection.id.clone(), connection);
        record_open(connections.len());
        true
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Connection>> {
        let mut connections = self.lock();
        let removed = connections.remove(id);
        record_open(connections.len());
        removed
    }

    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.lock().get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Connection>>> {
        // The map stays consistent even if a holder panicked: every
        // operation on it is a single insert, remove or lookup.
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The local stand-in for what API Gateway's connect and disconnect counts
/// tell on AWS: connections open now.
fn record_open(count: usize) {
    metrics::gauge!(metric::CONNECTIONS_OPEN).set(count as f64);
}
