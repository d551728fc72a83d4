//! Cold starts: each function's binary executed afresh `runs` times, each
//! time with one event waiting, timed from executing it to its first
//! request for work (`GET …/invocation/next`) and to the end of that first
//! invocation; its peak RSS (`VmHWM`) read, and its answer judged
//! (sendmessage's message must also reach its one recipient, once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use tokio::process::Command;

use super::deliveries::{await_deliveries, await_welcome};
use super::env::{AUTH_SECRET, Env};
use super::events;
use super::functions::Exercise;
use super::located::Located;
use super::process::Running;
use super::runtime_api::Invocation;
use crate::client::{Swarm, TOKEN_PREFIX, Welcome};
use crate::server::Binaries;
use crate::stats::ms;

/// The cold-start client's room. The `$connect` runs join the fixture's
/// default room, `lobby`.
const COLD_ROOM: &str = "cold";
/// Longest wait for a natively running function's first invocation.
const COLD_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize)]
pub struct ColdStart {
    pub function: String,
    pub binary: String,
    pub binary_bytes: u64,
    /// cargo lambda's zip for this function, if there is one (its binary may
    /// be for another architecture than the one measured).
    pub zip: Option<String>,
    pub zip_bytes: Option<u64>,
    pub memory_mb: u32,
    pub runs: usize,
    /// From executing the binary to its first `GET …/invocation/next`.
    pub to_first_next: Times,
    /// From executing the binary to the end of its first invocation.
    pub to_first_response: Times,
    /// `VmHWM` after the first invocation, the largest over the runs.
    pub peak_rss_kib: Option<u64>,
    /// What the first invocation answered (the last run's).
    pub answer: String,
    /// Log lines at WARN and ERROR, all runs together.
    pub log_warnings: u64,
    pub log_errors: u64,
}

/// Milliseconds over the runs.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Times {
    pub min_ms: f64,
    pub p50_ms: f64,
    pub max_ms: f64,
}

impl Times {
    fn of(samples: impl Iterator<Item = Duration>) -> Self {
        let mut sorted: Vec<f64> = samples.map(ms).collect();
        sorted.sort_by(f64::total_cmp);
        Self {
            min_ms: sorted.first().copied().unwrap_or(0.0),
            p50_ms: crate::stats::percentile(&sorted, 0.5),
            max_ms: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// A signed-in user's token for the authorizer, from chat-local's
/// `mint-token` (beside chat-local).
pub async fn mint_token(binaries: &Binaries) -> anyhow::Result<String> {
    let mint = binaries.chat_local.with_file_name("mint-token");
    let output = Command::new(&mint)
        .args(["--secret", AUTH_SECRET])
        .args(["--sub", "bench-user", "--name", "Bench"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .map_err(|_| anyhow!("{} took too long", mint.display()))?
        .with_context(|| {
            format!(
                "cannot run {} for the authorizer's token: build it \
                 (cargo build --release -p chat-local) or leave authorizer out of --functions",
                mint.display()
            )
        })?;
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || token.is_empty() {
        bail!(
            "{} failed: {}",
            mint.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(token)
}

/// Each located function's cold starts, `runs` of each, in order; the
/// events are about one real client in [`COLD_ROOM`] of chat-local at
/// `url`.
pub async fn cold_starts(
    located: &[&Located],
    env: &Env,
    url: &str,
    token: Option<String>,
    sequence: &AtomicU64,
    runs: usize,
) -> anyhow::Result<Vec<ColdStart>> {
    let mut client = Swarm::connect(&format!("{url}?room={COLD_ROOM}"), 1, 1).await?;
    let me = await_welcome(&client, 0, Duration::from_secs(30)).await?;
    let context = ColdContext {
        me,
        token,
        sequence,
    };
    let mut cold_starts = Vec::new();
    for located in located {
        let mut measured = Vec::with_capacity(runs);
        for run in 0..runs {
            measured.push(cold_start(located, env, &context, &mut client, run).await?);
        }
        let cold = ColdStart::of(located, &measured);
        eprintln!(
            "  {:<18} to next p50 {:>7.1} ms  to end p50 {:>7.1} ms  peak RSS {} KiB  {}",
            cold.function,
            cold.to_first_next.p50_ms,
            cold.to_first_response.p50_ms,
            cold.peak_rss_kib
                .map_or_else(|| "-".into(), |kib| kib.to_string()),
            cold.answer
        );
        cold_starts.push(cold);
    }
    Ok(cold_starts)
}

/// What the cold-start events are about.
struct ColdContext<'a> {
    /// The one real client in [`COLD_ROOM`].
    me: Welcome,
    token: Option<String>,
    sequence: &'a AtomicU64,
}

impl ColdContext<'_> {
    /// The event of a function's `run`-th cold start.
    fn event(&self, exercise: Exercise, run: usize) -> anyhow::Result<String> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let me = &self.me.connection_id;
        // `$connect` opens, and `$disconnect` later closes, a session of a
        // connection that never existed (API Gateway has it; chat-local
        // does not), in the default room.
        let stranger = format!("BenchCold{run:05}=");
        match exercise {
            Exercise::Authorizer => {
                events::authorizer(self.token.as_deref().unwrap_or_default(), sequence)
            }
            Exercise::Default => events::message("$default", me, r#"{"action":"ping"}"#, sequence),
            Exercise::Connect => events::connect(&stranger, sequence),
            Exercise::Disconnect => events::disconnect(&stranger, sequence),
            Exercise::Sendmessage => {
                let frame = format!(
                    r#"{{"action":"sendmessage","message":"{TOKEN_PREFIX}{}"}}"#,
                    cold_token(run)
                );
                events::message("sendmessage", me, &frame, sequence)
            }
            Exercise::History => {
                events::message("history", me, r#"{"action":"history"}"#, sequence)
            }
            // No message has this id: refused with `not_found`, nothing
            // deleted.
            Exercise::Moderate => {
                let frame = format!(r#"{{"action":"delete","message_id":"bench-none-{run}"}}"#);
                events::message("delete", me, &frame, sequence)
            }
            Exercise::StreamProcessor => {
                events::session_opened(me, &self.me.connected_at, &self.me.room, sequence)
            }
        }
    }
}

/// The token of `sendmessage`'s `run`-th cold start.
fn cold_token(run: usize) -> u64 {
    500_000 + run as u64
}

/// One cold start, as measured.
struct Measured {
    to_next: Duration,
    to_response: Duration,
    peak_rss_kib: Option<u64>,
    answer: String,
    warnings: u64,
    errors: u64,
}

/// The function's `run`-th cold start: a fresh process, one invocation.
async fn cold_start(
    located: &Located,
    env: &Env,
    context: &ColdContext<'_>,
    cold_client: &mut Swarm,
    run: usize,
) -> anyhow::Result<Measured> {
    let function = located.function;
    let exercise = function
        .exercise
        .with_context(|| format!("the bench has no event for {}", function.name))?;
    let invocation = Invocation {
        request_id: events::request_id(),
        body: context.event(exercise, run)?,
    };
    let mut running = Running::start(located, env, vec![invocation], None).await?;
    running.until(1, 1, COLD_PATIENCE).await?;
    // Its next request for work says the invocation is over, metrics
    // flushed; its peak memory is then that of a cold invocation.
    let _ = running.until(1, 2, Duration::from_secs(2)).await;
    let peak_rss_kib = running.peak_rss_kib();
    let (Some(to_next), Some(end)) = (running.first_next, running.ends.first()) else {
        return Err(running.failure("ended no invocation"));
    };
    let answer = end.answer.judged(exercise).map_err(|problem| {
        running.failure(format_args!(
            "failed its invocation {}: {problem:#}",
            end.request_id
        ))
    })?;
    if exercise == Exercise::Sendmessage {
        let token = cold_token(run);
        let delivered = await_deliveries(cold_client, &[token], Duration::from_secs(10)).await;
        if delivered.delivered != 1 || delivered.duplicated > 0 {
            return Err(running.failure(format_args!(
                "delivered its message {} time(s) to its one recipient, not once",
                delivered.delivered + delivered.duplicated
            )));
        }
    }
    let measured = Measured {
        to_next,
        to_response: end.after,
        peak_rss_kib,
        answer,
        warnings: running.output.warnings(),
        errors: running.output.errors(),
    };
    running.kill().await;
    Ok(measured)
}

impl ColdStart {
    fn of(located: &Located, runs: &[Measured]) -> Self {
        let function = located.function;
        Self {
            function: function.name.clone(),
            binary: located.binary.display().to_string(),
            binary_bytes: located.binary_bytes,
            zip: located
                .zip
                .as_ref()
                .map(|(zip, _)| zip.display().to_string()),
            zip_bytes: located.zip.as_ref().map(|(_, bytes)| *bytes),
            memory_mb: function.memory_mb,
            runs: runs.len(),
            to_first_next: Times::of(runs.iter().map(|run| run.to_next)),
            to_first_response: Times::of(runs.iter().map(|run| run.to_response)),
            peak_rss_kib: runs.iter().filter_map(|run| run.peak_rss_kib).max(),
            answer: runs
                .last()
                .map(|run| run.answer.clone())
                .unwrap_or_default(),
            log_warnings: runs.iter().map(|run| run.warnings).sum(),
            log_errors: runs.iter().map(|run| run.errors).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_min_median_max() {
        let times = Times::of([30, 10, 20].into_iter().map(Duration::from_millis));
        assert_eq!(
            (times.min_ms, times.p50_ms, times.max_ms),
            (10.0, 20.0, 30.0)
        );
    }
}
