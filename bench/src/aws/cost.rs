//! What the chat costs on AWS: the price list (us-east-1, on-demand,
//! arm64; every figure overridable) and the request units each counted
//! DynamoDB call is charged.

use serde::Serialize;

use super::calls::Tally;

/// When the default prices were last checked against AWS's pricing pages.
pub const PRICES_CHECKED: &str = "2026-12-07";

/// Bytes of one room-index entry the fan-out reads: `connection_id`
/// (13 + 16), `room_shard` (10 + about 12), `connected_at` (12 + 24) and
/// a display name (4 + up to 32; about 8 on average).
pub const ROOM_INDEX_ENTRY_BYTES: u64 = 100;

/// The price list, in US dollars.
#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct Prices {
    /// API Gateway WebSocket: per million messages (sent or received, in
    /// 32 KB units; the first billion a month).
    #[arg(long, default_value_t = 1.00)]
    pub api_messages_per_million: f64,
    /// API Gateway WebSocket: per million connection minutes.
    #[arg(long, default_value_t = 0.25)]
    pub api_connection_minutes_per_million: f64,
    /// Lambda: per million requests.
    #[arg(long, default_value_t = 0.20)]
    pub lambda_requests_per_million: f64,
    /// Lambda on arm64: per GB-second.
    #[arg(long, default_value_t = 0.000_013_333_4)]
    pub lambda_gb_second: f64,
    /// DynamoDB on demand: per million write request units.
    #[arg(long, default_value_t = 0.625)]
    pub dynamodb_writes_per_million: f64,
    /// DynamoDB on demand: per million read request units.
    #[arg(long, default_value_t = 0.125)]
    pub dynamodb_reads_per_million: f64,
}

/// What one thing (a message, an hour of a connection) uses.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Usage {
    pub api_messages: f64,
    pub connection_minutes: f64,
    pub lambda_requests: f64,
    pub gb_seconds: f64,
    pub read_units: f64,
    pub write_units: f64,
}

impl Usage {
    pub fn dollars(&self, prices: &Prices) -> f64 {
        (self.api_messages * prices.api_messages_per_million
            + self.connection_minutes * prices.api_connection_minutes_per_million
            + self.lambda_requests * prices.lambda_requests_per_million
            + self.read_units * prices.dynamodb_reads_per_million
            + self.write_units * prices.dynamodb_writes_per_million)
            / 1e6
            + self.gb_seconds * prices.lambda_gb_second
    }

    pub fn scaled(self, by: f64) -> Self {
        Self {
            api_messages: self.api_messages * by,
            connection_minutes: self.connection_minutes * by,
            lambda_requests: self.lambda_requests * by,
            gb_seconds: self.gb_seconds * by,
            read_units: self.read_units * by,
            write_units: self.write_units * by,
        }
    }
}

/// Read units of the counted calls: a strongly consistent GetItem of a
/// small row is 1; a Query of the room index half a unit per 4 KB of
/// entries (eventually consistent), at least half a unit a Query.
pub fn read_units(calls: &Tally) -> f64 {
    let queries = calls.count("Query", "room-shard-index") as f64;
    let entries: u64 = calls.read_per_key.values().sum();
    let by_size = (entries * ROOM_INDEX_ENTRY_BYTES).div_ceil(4096) as f64 * 0.5;
    let index = by_size.max(queries * 0.5);
    index + calls.operation("GetItem") as f64 + 2.0 * calls.operation("BatchGetItem") as f64
}

/// Write units of the counted calls, a row under 1 KB each, plus one for
/// each index entry the write adds, changes or removes: the message
/// (MessageHistory and its `room-time-index`), the rate mark (no index
/// holds it), a close (SessionHistory and its `open-sessions-index`), a
/// row deleted (ActiveConnections and its `room-shard-index`). Refused
/// conditional writes are charged too, and counted among them.
pub fn write_units(calls: &Tally) -> f64 {
    2.0 * calls.count("PutItem", "MessageHistory") as f64
        + calls.count("UpdateItem", "ActiveConnections") as f64
        + 2.0 * calls.count("UpdateItem", "SessionHistory") as f64
        + 2.0 * calls.count("DeleteItem", "ActiveConnections") as f64
}

/// One connection-hour of an idle client: 60 connection minutes, and the
/// page's heartbeat every `heartbeat_secs` (a frame in, a `pong` out, a
/// `sendmessage` invocation of about `heartbeat_ms` at `memory_mb`).
pub fn idle_hour(heartbeat_secs: u64, heartbeat_ms: f64, memory_mb: u32) -> Usage {
    let beats = 3600.0 / heartbeat_secs.max(1) as f64;
    Usage {
        api_messages: 2.0 * beats,
        connection_minutes: 60.0,
        lambda_requests: beats,
        gb_seconds: beats * heartbeat_ms / 1000.0 * f64::from(memory_mb) / 1024.0,
        read_units: 0.0,
        write_units: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> Prices {
        Prices {
            api_messages_per_million: 1.0,
            api_connection_minutes_per_million: 0.25,
            lambda_requests_per_million: 0.2,
            lambda_gb_second: 0.000_013_333_4,
            dynamodb_writes_per_million: 0.625,
            dynamodb_reads_per_million: 0.125,
        }
    }

    #[test]
    fn a_million_messages_to_ten_cost_what_eleven_million_api_messages_do() {
        let usage = Usage {
            api_messages: 11.0,
            ..Usage::default()
        };
        let dollars = usage.scaled(1e6).dollars(&prices());
        assert!((dollars - 11.0).abs() < 1e-9, "{dollars}");
    }

    #[test]
    fn an_idle_hour_is_sixty_minutes_and_twelve_heartbeats() {
        let hour = idle_hour(300, 2.0, 256);
        assert_eq!(hour.connection_minutes, 60.0);
        assert_eq!(hour.api_messages, 24.0);
        assert_eq!(hour.lambda_requests, 12.0);
        // 1,000 hours: 60,000 minutes ($0.015) and 24,000 messages ($0.024).
        let dollars = hour.scaled(1000.0).dollars(&prices());
        assert!((dollars - 0.0414).abs() < 0.001, "{dollars}");
    }

    #[test]
    fn a_query_costs_half_a_unit_per_4_kb_and_at_least_half_a_unit() {
        let mut calls = Tally::default();
        calls.calls.insert("Query room-shard-index".into(), 8);
        calls.read_per_key.insert("lobby#0".into(), 3);
        assert_eq!(read_units(&calls), 4.0, "8 small Queries");
        calls.read_per_key.insert("lobby#1".into(), 100_000);
        // 100,003 entries of 100 bytes: 2,442 blocks of 4 KB.
        assert_eq!(read_units(&calls), 1221.0);
    }
}
