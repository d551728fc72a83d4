//! Every limit of the product, in one place. API Gateway's own limits are
//! facts of the service (the local gateway enforces them as AWS does); the
//! chat's limits are settings with defaults and allowed ranges.

use std::time::Duration;

use crate::rate::Rate;

// ---- API Gateway WebSocket APIs (AWS quotas; not configurable on AWS)

/// Largest WebSocket frame a client may send: 32 KB.
pub const GATEWAY_MAX_FRAME_BYTES: usize = 32 * 1024;
/// Largest WebSocket message a client may send (frames reassembled), and
/// largest PostToConnection payload: 128 KB.
pub const GATEWAY_MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// API Gateway closes a connection idle this long.
pub const GATEWAY_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long a client may stay quiet before it sends a heartbeat
/// (`{"action":"ping"}`): half of [`GATEWAY_IDLE_TIMEOUT`], so a heartbeat
/// run a minute late by a background tab still comes in time. Each costs
/// two API Gateway messages and a Lambda invocation, so a client sends one
/// only when it has sent nothing else for this long. The web client reads
/// it from the local stack's `/config.json`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// API Gateway closes every connection after this long, busy or not.
pub const GATEWAY_MAX_CONNECTION_DURATION: Duration = Duration::from_secs(2 * 60 * 60);
/// The longest API Gateway waits for an integration (`$connect` included),
/// counted from the request's arrival (a handshake's `connectedAt`): 29 s.
pub const GATEWAY_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);

// ---- Stage throttling (API Gateway route settings; the local gateway the same)

/// A route's stage-wide throttle, as API Gateway applies it (a token bucket
/// across every connection): requests per second, and the burst above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteThrottle {
    pub rate_per_second: u32,
    pub burst: u32,
}

/// Every route's throttle unless a route has its own (`routeRateLimit`,
/// `routeBurstLimit` in infra/serverless.yml): a tenth of the account's
/// 10,000 requests a second, which the Management API's posts share, so no
/// one route can take them all.
pub const DEFAULT_ROUTE_THROTTLE: RouteThrottle = RouteThrottle {
    rate_per_second: 1000,
    burst: 2000,
};
/// `history`'s (`historyRateLimit`, `historyBurstLimit`): each page reads up
/// to 101 messages (about 100 read units) and answers up to 128 KB.
pub const HISTORY_ROUTE_THROTTLE: RouteThrottle = RouteThrottle {
    rate_per_second: 200,
    burst: 400,
};
/// `$connect`'s, at the account's level: connects are bounded by the
/// account's new-connection quota (500 a second by default) instead, and a
/// throttled handshake would send every client of a reconnect wave round
/// again.
pub const CONNECT_ROUTE_THROTTLE: RouteThrottle = RouteThrottle {
    rate_per_second: 10_000,
    burst: 5000,
};

// ---- The chat's data

/// The longest one DynamoDB call may take, retries included. Below every
/// function's timeout (10 s at the least for those that use DynamoDB), so a
/// stalled table ends in the function's own error handling (an `error` frame,
/// a refused handshake, a reported stream record) instead of a Lambda
/// timeout; the local stack uses it too. A call that timed out is not tried
/// again: a write whose outcome is unknown is not sent twice.
pub const DYNAMODB_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// An ActiveConnections row outlives its connection's 2-hour limit by this
/// much before DynamoDB's TTL may delete it, so a live row is never expired.
pub const CONNECTION_TTL_MARGIN: Duration = Duration::from_secs(15 * 60);
/// A connection that answers 410 this soon after connecting may still be
/// completing its `$connect` (API Gateway answers 410 until it returns): it is
/// not pruned, and its `welcome` is retried. A `$connect` can return that
/// late after the handshake arrived (its session's `connected_at`): it may
/// wait for a cold start, or, locally, for a free invocation behind a
/// crowd; API Gateway gives up on it at [`GATEWAY_INTEGRATION_TIMEOUT`], so
/// a 410 later than this is a connection that is gone.
pub const CONNECT_GRACE: Duration = Duration::from_secs(30);
/// SessionHistory's open sessions are indexed under this many keys
/// (`open_shard`, from the connection id), so connects and closes spread
/// over that many index partitions instead of one (a partition takes about
/// 1,000 writes a second; API Gateway admits 500 new connections a second
/// per region by default, each written twice: open, close).
pub const OPEN_SESSION_SHARDS: u32 = 16;
/// A room's connections are indexed under this many keys (`room_shard`:
/// the room and a shard from the connection id), so a fan-out reads a
/// large room from that many index partitions at once instead of one hot
/// one, and a worker takes one shard's rest. A small room costs that many
/// Queries a message (each at least half a read unit): docs/scale.md.
pub const ROOM_SHARDS: u32 = 8;
/// The first page of each shard a fan-out reads and posts itself; a shard
/// with more goes to a fan-out worker. `sendmessage` delivers a room of up
/// to about `ROOM_SHARDS` times this itself, and hands on the rest.
pub const FANOUT_FIRST_PAGE: i32 = 128;
/// Each fan-out worker's page: it hands on the rest of its shard first,
/// then posts these, `FANOUT_CONCURRENCY` at a time: at 20 ms a post and
/// 64 in flight, about 0.3 s, far inside its timeout (infra/functions.json).
pub const FANOUT_WORKER_PAGE: i32 = 1000;
/// How long a fan-out keeps trying a post API Gateway throttles (429) once
/// the client's own tries are spent: within every fan-out function's
/// timeout, with room for its other work. A throttled post waits
/// [`FANOUT_THROTTLE_BACKOFF`] at first, doubling up to
/// [`FANOUT_THROTTLE_MAX_BACKOFF`] (jittered).
pub const FANOUT_THROTTLE_PATIENCE: Duration = Duration::from_secs(20);
pub const FANOUT_THROTTLE_BACKOFF: Duration = Duration::from_millis(50);
pub const FANOUT_THROTTLE_MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often the repair of sessions left open runs: the deployed schedule
/// (infra/serverless.yml, checked) and the local stack's default.
pub const REPAIR_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// An open session older than API Gateway's connection limit plus this is
/// closed by the repair without asking API Gateway: its connection is gone.
/// Covers clock differences between API Gateway and the function.
pub const REPAIR_MARGIN: Duration = Duration::from_secs(60);
/// How long the repair waits between finding a connection gone and closing
/// its session, so a `$disconnect` on its way closes it first, with its own
/// close code and time.
pub const REPAIR_SETTLE: Duration = Duration::from_secs(3);
/// `GetConnection` calls the repair has in flight at once.
pub const REPAIR_CONCURRENCY: usize = 32;
/// A PostToConnection that hangs must not hold up a whole fan-out.
pub const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting to the Management API may take (as the SDK's
/// default); a post's whole budget is [`POST_TIMEOUT`].
pub const MANAGEMENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Tries of one post that is throttled (429) or fails on the server (5xx).
pub const POST_ATTEMPTS: u32 = 3;
/// A process's budget of Management API retries, as the AWS SDKs' standard
/// retry mode keeps one: a retry after a 429 or 5xx costs [`RETRY_COST`],
/// after a timeout or broken connection [`RETRY_TIMEOUT_COST`], a success
/// refunds [`RETRY_REFUND`]; spent, failures are final at once
/// ([`crate::retry_budget`]).
pub const RETRY_BUDGET_TOKENS: u32 = 500;
pub const RETRY_COST: u32 = 5;
pub const RETRY_TIMEOUT_COST: u32 = 10;
pub const RETRY_REFUND: u32 = 1;
/// The first retry's backoff (jittered, doubling) and the longest.
pub const POST_RETRY_BACKOFF: Duration = Duration::from_millis(25);
pub const POST_RETRY_MAX_BACKOFF: Duration = Duration::from_millis(400);
/// How many times, and how far apart (growing linearly), a `welcome` is
/// tried while the newcomer's connection still answers 410.
pub const WELCOME_ATTEMPTS: u32 = 6;
pub const WELCOME_RETRY_STEP: Duration = Duration::from_millis(150);
/// How much of an unknown `action` an error frame echoes back.
pub const MAX_ECHOED_ACTION_CHARS: usize = 40;

// ---- Sign-in

/// Clock skew allowed when checking a token's `exp` and `nbf`.
pub const AUTH_CLOCK_SKEW: Duration = Duration::from_secs(30);
/// The shortest HS256 secret accepted: 256 bits, the hash's size (RFC 7518
/// asks for at least that); a shorter one is brute-forced offline from a
/// single token.
pub const MIN_SECRET_BYTES: usize = 32;
/// `AUTH_MAX_TOKEN_LIFETIME_SECS`: the longest a token may be valid, when set.
pub const TOKEN_LIFETIME_SECS_RANGE: std::ops::RangeInclusive<usize> = 60..=31_536_000;
/// The longest token accepted; longer ones are refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// A JWKS URL is asked again, when a token names a key no key has, at most
/// this often: tokens with made-up `kid`s cannot make every handshake call
/// the identity provider.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// How long fetching the JWKS URL may take.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest JWKS document read; a provider's holds a few keys.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// The most entries a token's rooms claim (or `MEMBERS_ONLY_ROOMS`) may
/// hold: the authorizer passes them on to every route in its context.
pub const MAX_ROOM_PATTERNS: usize = 100;

// ---- Moderation

/// Longest `reason` a moderator may give for a removal or a ban, in
/// characters: it is shown to the room and to the person removed.
pub const MAX_MODERATION_REASON_CHARS: usize = 200;
/// `minutes` of a ban: a minute to a year.
pub const BAN_MINUTES_RANGE: std::ops::RangeInclusive<u64> = 1..=525_600;
/// The longest id (connection, user or message) a moderation frame may name.
pub const MAX_TARGET_ID_CHARS: usize = 256;
/// Calls of `$connect`'s BatchGetItem (a ban and a room's mark) while
/// DynamoDB leaves keys unprocessed.
pub const BATCH_GET_ATTEMPTS: usize = 3;
/// A ban's row outlives its end by this much before DynamoDB's TTL may
/// delete it (`$connect` compares `until` itself: TTL deletes late).
pub const BAN_TTL_MARGIN: Duration = Duration::from_secs(24 * 60 * 60);

// ---- Rooms and history

/// Length of a display name once trimmed, in characters.
pub const DISPLAY_NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=32;
/// Length of a room name, in characters (ASCII letters, digits, `-`, `_`).
pub const ROOM_NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=64;
/// The most members a `welcome` lists by name (`online_count` says how
/// many there are), so a crowded room's welcome stays one small message.
pub const WELCOME_MAX_LISTED: usize = 200;
/// Above this many members, a room's `presence` frames stop naming every
/// arrival and departure ([`crate::protocol::frames::is_crowd`]).
pub const PRESENCE_CROWD_SIZE: usize = 100;
/// The most members a crowd's `presence` frame names in each of `joined`,
/// `left` and `online`: it goes to every member once per presence window,
/// so it stays a few KiB.
pub const PRESENCE_MAX_LISTED: usize = 50;
/// Messages in a `history` page when the client names no `limit`.
pub const HISTORY_DEFAULT_LIMIT: usize = 50;
/// The most messages one `history` page holds; a larger `limit` is capped.
pub const HISTORY_MAX_LIMIT: usize = 100;
/// A `history` frame stays within what API Gateway delivers in one message;
/// a page that would not fit ends early (its cursor continues from there).
pub const HISTORY_FRAME_BYTES: usize = GATEWAY_MAX_MESSAGE_BYTES;
/// The longest `before` cursor a client may send.
pub const MAX_CURSOR_CHARS: usize = 512;

// ---- Settings (environment variables on Lambda, flags locally)

/// `MAX_MESSAGE_BYTES`: longest chat message, in bytes of UTF-8.
pub const DEFAULT_CHAT_MESSAGE_BYTES: usize = 8 * 1024;
/// A chat message must fit in one API Gateway frame with its JSON envelope.
pub const CHAT_MESSAGE_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1..=GATEWAY_MAX_FRAME_BYTES;
/// `FANOUT_CONCURRENCY`: Management API posts in flight during one fan-out.
pub const DEFAULT_FANOUT_CONCURRENCY: usize = 64;
pub const FANOUT_CONCURRENCY_RANGE: std::ops::RangeInclusive<usize> = 1..=1024;

/// `PRESENCE_WINDOW_MS`: a room's `presence` frames are at least this far
/// apart, so a member gets about one a second however fast people come and
/// go; the stream mapping's batch window is the same second
/// (infra/stream-mapping.json). 0 announces every batch at once.
pub const DEFAULT_PRESENCE_WINDOW_MS: usize = 1000;
pub const PRESENCE_WINDOW_MS_RANGE: std::ops::RangeInclusive<usize> = 0..=60_000;

/// Each connection's `history` pages: a page load asks for one, a reconnect
/// for up to four more to close its gap, scrolling back one at a time.
pub const HISTORY_RATE: Rate = Rate {
    per_second: 2,
    burst: 10,
};

/// `MESSAGE_RATE_PER_SECOND`: a connection's sustained chat messages per
/// second; 0 turns the rate limit off.
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 5;
pub const MESSAGES_PER_SECOND_RANGE: std::ops::RangeInclusive<usize> = 0..=1000;
/// `MESSAGE_RATE_BURST`: messages a quiet connection may send at once.
pub const DEFAULT_MESSAGE_BURST: u32 = 20;
pub const MESSAGE_BURST_RANGE: std::ops::RangeInclusive<usize> = 1..=1000;

/// `MESSAGE_RETENTION_DAYS`, `SESSION_RETENTION_DAYS`: unset keeps for ever.
pub const RETENTION_DAYS_RANGE: std::ops::RangeInclusive<usize> = 1..=36_500;

/// The limits a deployment may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatLimits {
    /// Longest accepted chat message, in bytes of UTF-8
    /// ([`CHAT_MESSAGE_BYTES_RANGE`]).
    pub max_chat_message_bytes: usize,
    /// Management API posts in flight during one fan-out
    /// ([`FANOUT_CONCURRENCY_RANGE`]).
    pub fanout_concurrency: usize,
    /// Each connection's chat message rate; `None`: unlimited.
    pub message_rate: Option<Rate>,
    /// The least time between two `presence` frames of a room
    /// ([`PRESENCE_WINDOW_MS_RANGE`], in ms).
    pub presence_window: Duration,
}

impl Default for ChatLimits {
    fn default() -> Self {
        Self {
            max_chat_message_bytes: DEFAULT_CHAT_MESSAGE_BYTES,
            fanout_concurrency: DEFAULT_FANOUT_CONCURRENCY,
            message_rate: Some(Rate {
                per_second: DEFAULT_MESSAGES_PER_SECOND,
                burst: DEFAULT_MESSAGE_BURST,
            }),
            presence_window: Duration::from_millis(DEFAULT_PRESENCE_WINDOW_MS as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_limits_fit_inside_api_gateways() {
        assert!(CHAT_MESSAGE_BYTES_RANGE.contains(&DEFAULT_CHAT_MESSAGE_BYTES));
        assert!(*CHAT_MESSAGE_BYTES_RANGE.end() <= GATEWAY_MAX_FRAME_BYTES);
        assert!(FANOUT_CONCURRENCY_RANGE.contains(&DEFAULT_FANOUT_CONCURRENCY));
        assert!(CONNECT_GRACE < GATEWAY_IDLE_TIMEOUT);
        assert!(CONNECT_GRACE > GATEWAY_INTEGRATION_TIMEOUT);
        // A heartbeat a minute late (a background tab) still comes in time.
        assert!(HEARTBEAT_INTERVAL + Duration::from_secs(60) < GATEWAY_IDLE_TIMEOUT);
    }

    /// docs/protocol.md's limits table says what these constants say: each
    /// row, found by its first cell, holds every figure listed for it.
    #[test]
    fn the_documented_limits_are_these() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))
                .expect("docs/protocol.md");
        let table: Vec<&str> = doc
            .lines()
            .skip_while(|line| !line.starts_with("| limit | default | setting |"))
            .take_while(|line| line.starts_with('|'))
            .collect();
        assert!(table.len() > 2, "docs/protocol.md has no limits table");
        let range = |range: &std::ops::RangeInclusive<usize>| {
            format!("{}..={}", range.start(), range.end())
        };
        let rows: [(&str, Vec<String>); 12] = [
            (
                "| message length",
                vec![
                    DEFAULT_CHAT_MESSAGE_BYTES.to_string(),
                    range(&CHAT_MESSAGE_BYTES_RANGE),
                ],
            ),
            (
                "| chat messages per connection",
                vec![
                    format!(
                        "{DEFAULT_MESSAGE_BURST} at once, then {DEFAULT_MESSAGES_PER_SECOND} a second"
                    ),
                    range(&MESSAGE_BURST_RANGE),
                    range(&MESSAGES_PER_SECOND_RANGE),
                ],
            ),
            (
                "| `history` requests per connection",
                vec![format!(
                    "{} at once, then {} a second",
                    HISTORY_RATE.burst, HISTORY_RATE.per_second
                )],
            ),
            (
                "| requests a second to one route",
                vec![
                    format!(
                        "{}, burst {}",
                        DEFAULT_ROUTE_THROTTLE.rate_per_second, DEFAULT_ROUTE_THROTTLE.burst
                    ),
                    format!(
                        "`history` {}, burst {}",
                        HISTORY_ROUTE_THROTTLE.rate_per_second, HISTORY_ROUTE_THROTTLE.burst
                    ),
                    format!(
                        "`$connect` {}, burst {}",
                        CONNECT_ROUTE_THROTTLE.rate_per_second, CONNECT_ROUTE_THROTTLE.burst
                    ),
                ],
            ),
            (
                "| messages in a `history` page",
                vec![
                    format!("{HISTORY_DEFAULT_LIMIT} when no `limit`"),
                    format!("capped at {HISTORY_MAX_LIMIT}"),
                ],
            ),
            (
                "| bytes in a `history` frame",
                vec![format!("{} KB", HISTORY_FRAME_BYTES / 1024)],
            ),
            (
                "| `before` cursor",
                vec![format!("at most {MAX_CURSOR_CHARS} characters")],
            ),
            (
                "| a moderator's `reason`",
                vec![format!("at most {MAX_MODERATION_REASON_CHARS} characters")],
            ),
            (
                "| a ban's `minutes`",
                vec![format!(
                    "from {} to {}",
                    BAN_MINUTES_RANGE.start(),
                    BAN_MINUTES_RANGE.end()
                )],
            ),
            (
                "| `connection_id`, `user_id`, `message_id`",
                vec![format!("at most {MAX_TARGET_ID_CHARS} characters")],
            ),
            (
                "| entries of a rooms claim",
                vec![format!("at most {MAX_ROOM_PATTERNS}")],
            ),
            ("| message must contain", vec![]),
        ];
        for (start, figures) in rows {
            let row = table
                .iter()
                .find(|line| line.starts_with(start))
                .unwrap_or_else(|| panic!("docs/protocol.md's limits table has no row {start}"));
            for figure in figures {
                assert!(row.contains(&figure), "{start}: no {figure} in {row}");
            }
        }
    }
}
