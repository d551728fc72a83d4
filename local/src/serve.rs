//! The public listener: accepts TCP connections and serves them with hyper
//! (HTTP/1.1, upgraded to WebSockets), within bounds a client cannot
//! stretch:
//!
//! - a request head must arrive within [`Limits::head_timeout`]: a silent
//!   socket, or one sending its upgrade a byte a second, is closed;
//! - sockets still sending their first request head are capped per
//!   address (a new one past the cap is answered 429 and closed) and in
//!   all: past that cap a socket from an address with fewer waiting than
//!   the heaviest takes the place of the heaviest's longest-waiting one,
//!   and one from among the heaviest is answered 503 (a real client's
//!   address has none waiting, or one; a hostile one holds many);
//! - sockets of every kind are capped below the open-file limit (a new one
//!   past it is answered 503), so the stack keeps descriptors for its own
//!   work: its database, its log, its calls to DynamoDB;
//! - an accept that fails all the same (out of file descriptors) pauses
//!   the loop instead of spinning, with one warning every few seconds;
//! - on stop, sockets without a request head are dropped at once, the
//!   others finish the request they are serving.
//!
//! Upgraded connections are also bounded per address, by the gateway
//! (`--max-connections-per-ip`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

/// The listener's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a socket may take to send a complete request head.
    pub head_timeout: Duration,
    /// Sockets without a complete first request head yet, in all.
    pub pending_total: usize,
    /// The same, per client address.
    pub pending_per_address: usize,
    /// Sockets open at once, of every kind.
    pub sockets_total: usize,
}

/// File descriptors kept for the stack's own work when sockets are capped
/// by the open-file limit: a quarter of the limit, at most this many.
pub const DESCRIPTOR_RESERVE: u64 = 1024;

/// Sockets the listener may hold with an open-file limit of `limit`.
pub fn sockets_within(limit: u64) -> usize {
    let reserve = DESCRIPTOR_RESERVE.min(limit / 4);
    usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX)
}

/// Why a new socket was not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// Its address has too many sockets without a request head.
    Address,
    /// As many sockets wait for a head as may, and its address has as
    /// many of them as any.
    Crowded,
    /// The listener holds as many sockets as it may.
    Full,
}

impl Refusal {
    /// Sent before closing, so a real client reads why.
    fn response(self) -> &'static [u8] {
        match self {
            Self::Address => {
                b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            }
            Self::Crowded | Self::Full => {
                b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            }
        }
    }
}

/// Sockets still sending their first request head, by address.
#[derive(Debug, Default)]
struct Pending {
    /// Each address's waiting sockets, oldest first: their eviction signals.
    by_address: HashMap<IpAddr, BTreeMap<u64, CancellationToken>>,
    /// Addresses by how many sockets they have waiting, the most last, and
    /// among as many, the one with the longest-waiting socket last.
    weights: BTreeSet<Weight>,
    total: usize,
    next: u64,
}

/// An address's sockets waiting, its longest-waiting one's arrival.
type Weight = (usize, Reverse<u64>, IpAddr);

impl Pending {
    fn waiting_from(&self, address: IpAddr) -> usize {
        self.by_address.get(&address).map_or(0, BTreeMap::len)
    }

    fn weight(&self, address: IpAddr) -> Option<Weight> {
        let waiting = self.by_address.get(&address)?;
        let oldest = *waiting.keys().next()?;
        Some((waiting.len(), Reverse(oldest), address))
    }

    fn reweigh(&mut self, address: IpAddr, before: Option<Weight>) {
        if let Some(before) = before {
            self.weights.remove(&before);
        }
        match self.weight(address) {
            Some(now) => {
                self.weights.insert(now);
            }
            None => {
                self.by_address.remove(&address);
            }
        }
    }

    fn insert(&mut self, address: IpAddr) -> (u64, CancellationToken) {
        let before = self.weight(address);
        let id = self.next;
        self.next += 1;
        let evicted = CancellationToken::new();
        self.by_address
            .entry(address)
            .or_default()
            .insert(id, evicted.clone());
        self.total += 1;
        self.reweigh(address, before);
        (id, evicted)
    }

    /// Removes one socket; its signal if it was still there.
    fn forget(&mut self, address: IpAddr, id: u64) -> Option<CancellationToken> {
        let before = self.weight(address);
        let evicted = self.by_address.get_mut(&address)?.remove(&id)?;
        self.total -= 1;
        self.reweigh(address, before);
        Some(evicted)
    }

    /// Closes the longest-waiting socket of the address with the most.
    fn evict_from_heaviest(&mut self) {
        let Some(&(_, _, address)) = self.weights.last() else {
            return;
        };
        let oldest = self
            .by_address
            .get(&address)
            .and_then(|waiting| waiting.keys().next().copied());
        if let Some(evicted) = oldest.and_then(|id| self.forget(address, id)) {
            evicted.cancel();
        }
    }
}

/// One socket's place among the pending, given back on drop (or taken for
/// a newer socket: then `evicted` fires).
struct Ticket {
    pending: Arc<Mutex<Pending>>,
    address: IpAddr,
    id: u64,
    evicted: CancellationToken,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.pending).forget(self.address, self.id);
    }
}

fn lock(pending: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A ticket for a new socket from `address`. Past the total cap, an address
/// waiting on fewer sockets than the heaviest takes the place of the
/// heaviest's longest-waiting one (a real client's address has none or
/// one; a hostile one holds many), and one among the heaviest is refused:
/// hostile sockets cannot push each other out in an endless churn.
fn admit(
    pending: &Arc<Mutex<Pending>>,
    address: IpAddr,
    limits: Limits,
) -> Result<Ticket, Refusal> {
    let mut state = lock(pending);
    let waiting = state.waiting_from(address);
    if waiting >= limits.pending_per_address {
        return Err(Refusal::Address);
    }
    if state.total >= limits.pending_total {
        let heaviest = state.weights.last().map_or(0, |&(count, _, _)| count);
        if waiting >= heaviest {
            return Err(Refusal::Crowded);
        }
        state.evict_from_heaviest();
    }
    let (id, evicted) = state.insert(address);
    Ok(Ticket {
        pending: Arc::clone(pending),
        address,
        id,
        evicted,
    })
}

/// A socket counted among the listener's while it is open, upgraded or not.
struct Counted {
    tcp: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// How long to wait after an accept failed (out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// At most one warning about refused or failed accepts this often.
const REFUSAL_REPORT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop`; every connection's task is on
/// `tasks`.
pub fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
    tasks: &TaskTracker,
) {
    let pending = Arc::new(Mutex::new(Pending::default()));
    let open = Arc::new(AtomicUsize::new(0));
    let connections = tasks.clone();
    tasks.spawn(async move {
        let mut last_report: Option<tokio::time::Instant> = None;
        let mut report_due = || {
            let due = last_report.is_none_or(|at| at.elapsed() >= REFUSAL_REPORT);
            if due {
                last_report = Some(tokio::time::Instant::now());
            }
            due
        };
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if report_due() {
                        warn!(%error, "cannot accept connections; waiting for some to close");
                    }
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let refusal = if open.load(Ordering::Relaxed) >= limits.sockets_total {
                Err(Refusal::Full)
            } else {
                admit(&pending, peer.ip().to_canonical(), limits)
            };
            let ticket = match refusal {
                Ok(ticket) => ticket,
                Err(refusal) => {
                    // Best effort: a client that sent its request at once
                    // reads why; the descriptor is free again either way.
                    let _ = tcp.try_write(refusal.response());
                    if refusal == Refusal::Full && report_due() {
                        warn!(open = limits.sockets_total, "refusing connections: as many sockets open as the open-file limit allows");
                    } else {
                        debug!(%peer, ?refusal, "refused a socket");
                    }
                    continue;
                }
            };
            // Chat frames are small and must not wait for Nagle's algorithm.
            let _ = tcp.set_nodelay(true);
            open.fetch_add(1, Ordering::Relaxed);
            let socket = Counted {
                tcp,
                open: Arc::clone(&open),
            };
            connections.spawn(serve_connection(
                socket,
                peer,
                app.clone(),
                ticket,
                limits,
                stop.clone(),
            ));
        }
    });
}

/// One connection: HTTP/1.1 with upgrades, each request head within the
/// deadline; its pending ticket given back once its first head arrived.
async fn serve_connection(
    socket: Counted,
    peer: SocketAddr,
    app: Router,
    ticket: Ticket,
    limits: Limits,
    stop: CancellationToken,
) {
    let evicted = ticket.evicted.clone();
    let ticket = Arc::new(Mutex::new(Some(ticket)));
    let head_arrived = Arc::clone(&ticket);
    let service = app.map_request(
        move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            drop(
                head_arrived
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take(),
            );
            request.extensions_mut().insert(ConnectInfo(peer));
            request.map(axum::body::Body::new)
        },
    );
    let service = TowerToHyperService::new(service.map_err(|error: Infallible| match error {}));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(socket), service)
        .with_upgrades();
    tokio::pin!(connection);
    let still_pending = || {
        ticket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some()
    };
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                debug!(%peer, %error, "connection ended with an error");
            }
            return;
        }
        () = evicted.cancelled() => {
            debug!(%peer, "closed a socket without a request head to make room");
            return;
        }
        () = stop.cancelled() => {
            if still_pending() {
                return;
            }
            connection.as_mut().graceful_shutdown();
        }
    }
    let _ = connection.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pending_total: usize, pending_per_address: usize) -> Limits {
        Limits {
            head_timeout: Duration::from_secs(10),
            pending_total,
            pending_per_address,
            sockets_total: 100,
        }
    }

    #[test]
    fn an_address_past_its_cap_is_refused_and_gets_its_place_back() {
        let limits = limits(10, 2);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let one: IpAddr = "203.0.113.7".parse().expect("an address");
        let other: IpAddr = "203.0.113.8".parse().expect("an address");
        let first = admit(&pending, one, limits).expect("room");
        let _second = admit(&pending, one, limits).expect("room");
        assert_eq!(admit(&pending, one, limits).err(), Some(Refusal::Address));
        assert!(admit(&pending, other, limits).is_ok(), "another address");
        drop(first);
        assert!(admit(&pending, one, limits).is_ok(), "a place given back");
    }

    #[test]
    fn past_the_total_cap_the_heaviest_address_makes_room_and_is_refused_itself() {
        let limits = limits(4, 4);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let address = |last: u8| IpAddr::from([203, 0, 113, last]);
        let oldest = admit(&pending, address(1), limits).expect("room");
        let older = admit(&pending, address(1), limits).expect("room");
        let _lone = admit(&pending, address(2), limits).expect("room");
        let _newest = admit(&pending, address(1), limits).expect("room");
        // Full: a new address takes the heaviest's longest-waiting place.
        let newcomer = admit(&pending, address(3), limits).expect("room made");
        assert!(oldest.evicted.is_cancelled());
        assert!(!older.evicted.is_cancelled() && !newcomer.evicted.is_cancelled());
        // The evicted socket's place is not given back twice.
        drop(oldest);
        assert_eq!(lock(&pending).total, 4);
        // The heaviest address itself is refused rather than churning.
        assert_eq!(
            admit(&pending, address(1), limits).err(),
            Some(Refusal::Crowded)
        );
        assert_eq!(lock(&pending).waiting_from(address(1)), 2);
        // As is any address as heavy as the heaviest.
        let _second = admit(&pending, address(2), limits).expect("room made");
        assert!(older.evicted.is_cancelled());
        assert_eq!(
            admit(&pending, address(2), limits).err(),
            Some(Refusal::Crowded)
        );
    }

    #[test]
    fn sockets_keep_a_reserve_of_descriptors() {
        assert_eq!(sockets_within(20_000), 18_976);
        assert_eq!(sockets_within(1_024), 768);
        assert_eq!(sockets_within(0), 0);
    }
}
