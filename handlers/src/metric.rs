//! Metric names and units, recorded through the `metrics` facade. On Lambda
//! they become CloudWatch Embedded Metric Format; locally, Prometheus text.
//! docs/operations.md lists each one and what it means.

use metrics::{Unit, describe_counter, describe_histogram};

/// Label (an EMF dimension) on the fan-out metrics: `message` or `presence`.
pub const KIND: &str = "kind";

/// Chat messages accepted, stored and fanned out.
pub const MESSAGES_SENT: &str = "messages_sent";
/// `sendmessage` frames refused by validation.
pub const MESSAGES_REJECTED: &str = "messages_rejected";
/// Connections a fan-out posted to.
pub const FANOUT_RECIPIENTS: &str = "fanout_recipients";
/// Wall time of one fan-out, from the first Scan page to the last post.
pub const FANOUT_LATENCY: &str = "fanout_latency";
/// Posts that failed for a reason other than 410 Gone.
pub const FANOUT_FAILURES: &str = "fanout_failures";
/// Stale ActiveConnections rows deleted after a 410 Gone.
pub const CONNECTIONS_PRUNED: &str = "connections_pruned";
/// Sessions started (stream INSERTs).
pub const CONNECTS: &str = "connects";
/// Sessions ended and measured (stream MODIFYs setting `disconnected_at`).
pub const DISCONNECTS: &str = "disconnects";
/// How long sessions lasted.
pub const SESSION_DURATION: &str = "session_duration";
/// `welcome`, `joined` and `left` frames delivered.
pub const PRESENCE_FRAMES_SENT: &str = "presence_frames_sent";
/// Stream records reported as batch item failures.
pub const STREAM_RECORDS_FAILED: &str = "stream_records_failed";

/// Registers units and descriptions with whichever recorder is installed.
pub fn describe() {
    describe_counter!(
        MESSAGES_SENT,
        Unit::Count,
        "Chat messages accepted and stored"
    );
    describe_counter!(
        MESSAGES_REJECTED,
        Unit::Count,
        "sendmessage frames refused by validation"
    );
    describe_histogram!(
        FANOUT_RECIPIENTS,
        Unit::Count,
        "Connections one fan-out posted to"
    );
    describe_histogram!(
        FANOUT_LATENCY,
        Unit::Milliseconds,
        "Wall time of one fan-out"
    );
    describe_counter!(
        FANOUT_FAILURES,
        Unit::Count,
        "Posts that failed other than with 410 Gone"
    );
    describe_counter!(
        CONNECTIONS_PRUNED,
        Unit::Count,
        "Stale connections deleted after 410 Gone"
    );
    describe_counter!(CONNECTS, Unit::Count, "Sessions started");
    describe_counter!(DISCONNECTS, Unit::Count, "Sessions ended and measured");
    describe_histogram!(SESSION_DURATION, Unit::Seconds, "Session duration");
    describe_counter!(
        PRESENCE_FRAMES_SENT,
        Unit::Count,
        "welcome, joined and left frames delivered"
    );
    describe_counter!(
        STREAM_RECORDS_FAILED,
        Unit::Count,
        "Stream records reported as failed"
    );
}
