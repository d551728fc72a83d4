//! The product's metrics: one table, [`ALL`], that [`describe`] registers and
//! that docs/operations.md, infra/dashboard.js and infra/tests are checked
//! against. Recorded through the `metrics` facade: on Lambda they become
//! CloudWatch Embedded Metric Format, locally Prometheus text at `/metrics`.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Label (an EMF dimension) on the fan-out metrics.
pub const KIND: &str = "kind";
/// Label on `tokens_refused`: why ([`crate::auth::Denial::as_str`]); on
/// `rooms_refused`: `not_a_member` or `banned`.
pub const REASON: &str = "reason";
/// Label on `moderation_actions`: `remove`, `ban` or `delete`.
pub const ACTION: &str = "action";

/// What a fan-out carries: the value of the [`KIND`] label, so chat traffic
/// and presence traffic can be told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanoutKind {
    /// A chat message (`sendmessage`).
    Message,
    /// `joined` / `left` (the stream processor).
    Presence,
}

impl FanoutKind {
    pub const ALL: [Self; 2] = [Self::Message, Self::Presence];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Presence => "presence",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Histogram,
    Gauge,
}

/// One metric: its name, kind, unit and meaning.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: MetricKind,
    pub unit: Unit,
    /// The label it is recorded with, if any: [`KIND`] (the fan-out
    /// metrics) or [`REASON`]; an EMF dimension next to `Stage`.
    pub label: Option<&'static str>,
    pub description: &'static str,
}

pub const MESSAGES_SENT: &str = "messages_sent";
pub const MESSAGES_REJECTED: &str = "messages_rejected";
pub const FANOUT_RECIPIENTS: &str = "fanout_recipients";
pub const FANOUT_LATENCY: &str = "fanout_latency";
pub const FANOUT_FAILURES: &str = "fanout_failures";
pub const FANOUT_THROTTLED: &str = "fanout_throttled";
pub const FANOUT_HANDOFFS: &str = "fanout_handoffs";
pub const FANOUT_HANDOFF_FAILURES: &str = "fanout_handoff_failures";
pub const CONNECTIONS_PRUNED: &str = "connections_pruned";
pub const CONNECTS: &str = "connects";
pub const DISCONNECTS: &str = "disconnects";
pub const SESSION_DURATION: &str = "session_duration";
pub const PRESENCE_FRAMES_SENT: &str = "presence_frames_sent";
pub const STREAM_RECORDS_FAILED: &str = "stream_records_failed";
pub const CONNECTIONS_OPEN: &str = "connections_open";
pub const STREAM_ITERATOR_AGE: &str = "stream_iterator_age";
pub const SESSIONS_REPAIRED: &str = "sessions_repaired";
pub const HANDSHAKES_REFUSED: &str = "handshakes_refused";
pub const TOKENS_REFUSED: &str = "tokens_refused";
pub const ROOMS_REFUSED: &str = "rooms_refused";
pub const MODERATION_ACTIONS: &str = "moderation_actions";

/// Every metric the product records. The last two exist only in the local
/// stack, standing in for what AWS measures itself (API Gateway's
/// connections, Lambda's IteratorAge).
pub const ALL: [Metric; 21] = [
    Metric {
        name: MESSAGES_SENT,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: None,
        description: "Chat messages accepted and stored",
    },
    Metric {
        name: MESSAGES_REJECTED,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: None,
        description: "sendmessage frames refused by validation",
    },
    Metric {
        name: FANOUT_RECIPIENTS,
        kind: MetricKind::Histogram,
        unit: Unit::Count,
        label: Some(KIND),
        description: "Connections one fan-out posted to",
    },
    Metric {
        name: FANOUT_LATENCY,
        kind: MetricKind::Histogram,
        unit: Unit::Milliseconds,
        label: Some(KIND),
        description: "Wall time of one fan-out, from the first page of connections to the last post",
    },
    Metric {
        name: FANOUT_FAILURES,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: Some(KIND),
        description: "Posts that failed other than with 410 Gone",
    },
    Metric {
        name: FANOUT_THROTTLED,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: Some(KIND),
        description: "Of the failed posts, those API Gateway throttled (429) on every try, or once the retry budget was spent",
    },
    Metric {
        name: FANOUT_HANDOFFS,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: Some(KIND),
        description: "Shards of a room whose rest a fan-out handed to a fan-out worker",
    },
    Metric {
        name: FANOUT_HANDOFF_FAILURES,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: Some(KIND),
        description: "Hand-offs to a fan-out worker that failed; that part was posted by the caller",
    },
    Metric {
        name: CONNECTIONS_PRUNED,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: Some(KIND),
        description: "Stale connections whose session was closed and row deleted after 410 Gone",
    },
    Metric {
        name: HANDSHAKES_REFUSED,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: None,
        description: "Handshakes $connect refused for the client's own mistake (4XX): API Gateway counts each as an IntegrationError",
    },
    Metric {
        name: TOKENS_REFUSED,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: Some(REASON),
        description: "Handshakes the sign-in authorizer refused, by reason (unknown_key: a key rotation it has not caught up with)",
    },
    Metric {
        name: ROOMS_REFUSED,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: Some(REASON),
        description: "Signed-in handshakes $connect refused a room, by reason: not_a_member (a members-only room their token does not name) or banned",
    },
    Metric {
        name: MODERATION_ACTIONS,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: Some(ACTION),
        description: "Moderation actions carried out, by action: remove, ban, delete (a member deleting their own message counts too)",
    },
    Metric {
        name: SESSIONS_REPAIRED,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: None,
        description: "Sessions left open (no $disconnect, or a failed close) that the repair closed",
    },
    Metric {
        name: CONNECTS,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: None,
        description: "Sessions started (stream INSERTs)",
    },
    Metric {
        name: DISCONNECTS,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: None,
        description: "Sessions ended and measured (stream MODIFYs setting disconnected_at)",
    },
    Metric {
        name: SESSION_DURATION,
        kind: MetricKind::Histogram,
        unit: Unit::Seconds,
        label: None,
        description: "How long sessions lasted",
    },
    Metric {
        name: PRESENCE_FRAMES_SENT,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: None,
        description: "welcome and presence frames delivered",
    },
    Metric {
        name: STREAM_RECORDS_FAILED,
        kind: MetricKind::Counter,
        unit: Unit::Count,
        label: None,
        description: "Stream records reported as batch item failures",
    },
    Metric {
        name: CONNECTIONS_OPEN,
        kind: MetricKind::Gauge,
        unit: Unit::Count,
        label: None,
        description: "Open WebSocket connections (local stack only)",
    },
    Metric {
        name: STREAM_ITERATOR_AGE,
        kind: MetricKind::Gauge,
        unit: Unit::Milliseconds,
        label: None,
        description: "Age of the newest stream record handed to the stream processor (local stack only)",
    },
];

/// Registers units and descriptions with whichever recorder is installed.
pub fn describe() {
    for metric in ALL {
        match metric.kind {
            MetricKind::Counter => describe_counter!(metric.name, metric.unit, metric.description),
            MetricKind::Histogram => {
                describe_histogram!(metric.name, metric.unit, metric.description)
            }
            MetricKind::Gauge => describe_gauge!(metric.name, metric.unit, metric.description),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(relative: &str) -> String {
        let path = format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    #[test]
    fn names_are_unique_and_prometheus_safe() {
        let mut names: Vec<_> = ALL.iter().map(|metric| metric.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for name in names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
    }

    /// docs/operations.md has a row for every metric, with its unit.
    #[test]
    fn every_metric_is_documented_with_its_unit() {
        let doc = read("docs/operations.md");
        for metric in ALL {
            let row = doc
                .lines()
                .find(|line| line.starts_with(&format!("| `{}` ", metric.name)))
                .unwrap_or_else(|| panic!("docs/operations.md has no row for {}", metric.name));
            let unit = match metric.unit {
                Unit::Count => "Count",
                Unit::Milliseconds => "Milliseconds",
                Unit::Seconds => "Seconds",
                other => panic!("{}: document the CloudWatch name of {other:?}", metric.name),
            };
            assert!(
                row.contains(&format!("| {unit} |")),
                "{} row names no unit {unit}: {row}",
                metric.name
            );
        }
    }

    /// The CloudWatch dashboard draws the product's metrics and no others;
    /// the local dashboard draws every one, the local-only gauges included.
    #[test]
    fn the_dashboards_draw_every_metric() {
        let cloudwatch = read("infra/dashboard.js");
        let local = read("web/dashboard.js");
        for metric in ALL {
            let local_only = metric.kind == MetricKind::Gauge;
            let drawn = cloudwatch.contains(&format!("'{}'", metric.name));
            assert_eq!(drawn, !local_only, "{} in infra/dashboard.js", metric.name);
            assert!(
                local.contains(&format!("'{}'", metric.name)),
                "{} in web/dashboard.js",
                metric.name
            );
        }
    }
}
