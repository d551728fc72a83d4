//! The stage's route throttling, as API Gateway applies it: a token bucket
//! per route across every connection (`DefaultRouteSettings` for each route,
//! `RouteSettings` for `history` and `$connect`; infra/throttles.js deploys
//! the same numbers). A frame over its route's rate is answered by the
//! gateway and reaches no handler; a handshake over `$connect`'s is refused
//! with 429.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use handlers::limits::RouteThrottle;
use handlers::protocol::Route;

/// Tokens that refill at `rate` a second up to `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    /// Tokens left, as of the instant.
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(throttle: RouteThrottle) -> Self {
        let burst = f64::from(throttle.burst.max(1));
        Self {
            rate: f64::from(throttle.rate_per_second.max(1)),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&self) -> bool {
        self.take_at(Instant::now()).is_ok()
    }

    /// Takes a token, or says how long until there is one.
    pub fn take_or_wait(&self) -> Result<(), Duration> {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (tokens, since) = *state;
        let refilled = (tokens + now.saturating_duration_since(since).as_secs_f64() * self.rate)
            .min(self.burst);
        if refilled >= 1.0 {
            *state = (refilled - 1.0, now);
            Ok(())
        } else {
            *state = (refilled, now);
            Err(Duration::from_secs_f64(
                ((1.0 - refilled) / self.rate).max(0.001),
            ))
        }
    }
}

/// One token bucket per client address, shared by its connections: what
/// one address may send, every route together, so that many connections
/// each within its own allowance cannot starve everyone else. Buckets live
/// as long as a connection of their address does.
#[derive(Debug)]
pub struct AddressBudgets {
    throttle: RouteThrottle,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_address: HashMap<IpAddr, Weak<TokenBucket>>,
    /// At this many, buckets no connection holds are dropped; then twice
    /// what is left, so a connect costs O(1) however many addresses hold
    /// connections.
    prune_at: usize,
}

/// The fewest buckets worth pruning.
const PRUNE_FLOOR: usize = 1024;

impl AddressBudgets {
    pub fn new(throttle: RouteThrottle) -> Self {
        Self {
            throttle,
            buckets: Mutex::new(Buckets {
                by_address: HashMap::new(),
                prune_at: PRUNE_FLOOR,
            }),
        }
    }

    /// The bucket of `address`, for a connection to hold.
    pub fn of(&self, address: IpAddr) -> Arc<TokenBucket> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = buckets.by_address.get(&address).and_then(Weak::upgrade) {
            return bucket;
        }
        let bucket = Arc::new(TokenBucket::new(self.throttle));
        if buckets.by_address.len() >= buckets.prune_at {
            buckets
                .by_address
                .retain(|_, bucket| bucket.strong_count() > 0);
            buckets.prune_at = (buckets.by_address.len() * 2).max(PRUNE_FLOOR);
        }
        buckets.by_address.insert(address, Arc::downgrade(&bucket));
        bucket
    }

    pub fn throttle(&self) -> RouteThrottle {
        self.throttle
    }
}

/// The stage's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageThrottles {
    pub default: RouteThrottle,
    pub history: RouteThrottle,
    pub connect: RouteThrottle,
}

/// One bucket per route.
#[derive(Debug)]
pub struct Throttles {
    connect: TokenBucket,
    sendmessage: TokenBucket,
    history: TokenBucket,
    remove: TokenBucket,
    ban: TokenBucket,
    delete: TokenBucket,
    default: TokenBucket,
}

impl Throttles {
    pub fn new(stage: StageThrottles) -> Self {
        Self {
            connect: TokenBucket::new(stage.connect),
            sendmessage: TokenBucket::new(stage.default),
            history: TokenBucket::new(stage.history),
            remove: TokenBucket::new(stage.default),
            ban: TokenBucket::new(stage.default),
            delete: TokenBucket::new(stage.default),
            default: TokenBucket::new(stage.default),
        }
    }

    /// Whether a request of `route` may go now. `$disconnect` always may:
    /// it is API Gateway's own, not a client's request.
    pub fn admit(&self, route: Route) -> bool {
        match route {
            Route::Connect => self.connect.try_take(),
            Route::SendMessage => self.sendmessage.try_take(),
            Route::History => self.history.try_take(),
            Route::Remove => self.remove.try_take(),
            Route::Ban => self.ban.try_take(),
            Route::Delete => self.delete.try_take(),
            Route::Default => self.default.try_take(),
            Route::Disconnect => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let bucket = TokenBucket::new(RouteThrottle {
            rate_per_second: 10,
            burst: 3,
        });
        let start = Instant::now();
        let taken = (0..5).filter(|_| bucket.take_at(start).is_ok()).count();
        assert_eq!(taken, 3, "the burst");
        assert!(bucket.take_at(start + Duration::from_millis(50)).is_err());
        assert!(
            bucket.take_at(start + Duration::from_millis(100)).is_ok(),
            "one every 100 ms"
        );
        assert!(bucket.take_at(start + Duration::from_millis(150)).is_err());
        // A long quiet refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..5).filter(|_| bucket.take_at(later).is_ok()).count(), 3);
    }

    #[test]
    fn connections_of_one_address_share_its_budget_and_others_have_their_own() {
        let budgets = AddressBudgets::new(RouteThrottle {
            rate_per_second: 1,
            burst: 2,
        });
        let one: std::net::IpAddr = "203.0.113.7".parse().expect("an address");
        let other: std::net::IpAddr = "203.0.113.8".parse().expect("an address");
        let (first, second) = (budgets.of(one), budgets.of(one));
        assert!(first.take_or_wait().is_ok());
        assert!(second.take_or_wait().is_ok());
        let wait = first
            .take_or_wait()
            .expect_err("the address's burst is spent");
        assert!(wait > std::time::Duration::from_millis(900), "{wait:?}");
        assert!(budgets.of(other).take_or_wait().is_ok());
        drop((first, second));
        assert!(
            budgets.of(one).take_or_wait().is_ok(),
            "a new bucket once none is held"
        );
    }

    #[test]
    fn each_route_has_its_own_bucket_and_disconnect_none() {
        let one = RouteThrottle {
            rate_per_second: 1,
            burst: 1,
        };
        let throttles = Throttles::new(StageThrottles {
            default: one,
            history: one,
            connect: one,
        });
        for route in [
            Route::Connect,
            Route::SendMessage,
            Route::History,
            Route::Default,
        ] {
            assert!(throttles.admit(route), "{route:?}: its first");
            assert!(!throttles.admit(route), "{route:?}: its second");
        }
        assert!(throttles.admit(Route::Disconnect));
        assert!(throttles.admit(Route::Disconnect));
    }
}
