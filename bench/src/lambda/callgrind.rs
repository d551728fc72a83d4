//! Instructions per delivered post: `sendmessage` under callgrind, fanning
//! out to N real WebSocket clients in one room, once with 1 invocation and
//! once with M; the difference is M-1 warm invocations, so start-up and
//! exit cancel out. Every delivery of both runs is counted.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::Plan;
use super::deliveries::{Deliveries, await_deliveries, await_welcome};
use super::env::Env;
use super::events;
use super::functions::Exercise;
use super::located::Located;
use super::process::{Running, Wrapper};
use super::runtime_api::Invocation;
use crate::client::{PROBE_PATIENCE, Swarm, TOKEN_PREFIX};

/// The fan-out's room.
const FANOUT_ROOM: &str = "lambda";
/// Longest wait for the invocations under callgrind.
const CALLGRIND_PATIENCE: Duration = Duration::from_secs(900);

#[derive(Debug, Serialize)]
pub struct Instructions {
    pub function: String,
    /// `callgrind`: instructions executed by the whole process, all threads.
    pub tool: String,
    pub recipients: usize,
    /// The process started, ran one invocation, and exited.
    pub instructions_one_invocation: u64,
    pub invocations: usize,
    /// The same with `invocations` invocations.
    pub instructions_all_invocations: u64,
    /// (I(invocations) - I(1)) / (invocations - 1): one warm invocation.
    pub per_invocation: f64,
    /// `per_invocation` / `recipients`.
    pub per_delivered_post: f64,
    /// Every chat message of both runs to every client.
    pub expected_deliveries: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
}

/// The two runs under callgrind, `plan.recipients` clients of chat-local
/// at `url` listening.
pub async fn count_instructions(
    sendmessage: &Located,
    env: &Env,
    url: &str,
    plan: &Plan,
    sequence: &AtomicU64,
) -> anyhow::Result<Instructions> {
    let mut swarm =
        Swarm::connect(&format!("{url}?room={FANOUT_ROOM}"), plan.recipients, 64).await?;
    swarm.settle(PROBE_PATIENCE, Duration::from_secs(1)).await?;
    let sender = await_welcome(&swarm, 0, Duration::from_secs(30))
        .await?
        .connection_id;
    eprintln!(
        "  sendmessage under callgrind, {} recipients: 1 invocation, then {}",
        plan.recipients, plan.invocations
    );
    let mut deliveries = Deliveries::default();
    let mut totals = Vec::new();
    for (round, invocations) in [1, plan.invocations].into_iter().enumerate() {
        let tokens: Vec<u64> = (0..invocations as u64)
            .map(|i| 1_000_000 * (round as u64 + 1) + i)
            .collect();
        let run = Run {
            sendmessage,
            env,
            sender: &sender,
            plan,
            sequence,
        };
        let (instructions, delivered) = run.profile(&mut swarm, &tokens).await?;
        eprintln!(
            "    {invocations:>3} invocation(s): {instructions} instructions, {} of {} deliveries{}",
            delivered.delivered,
            delivered.expected,
            if delivered.duplicated > 0 {
                format!(", {} duplicated", delivered.duplicated)
            } else {
                String::new()
            }
        );
        totals.push(instructions);
        deliveries.add(delivered);
    }
    Ok(Instructions::of(
        &sendmessage.function.name,
        &totals,
        plan.invocations,
        swarm.len(),
        deliveries,
    ))
}

impl Instructions {
    /// From the totals of the two runs, one invocation and `invocations`.
    fn of(
        function: &str,
        totals: &[u64],
        invocations: usize,
        recipients: usize,
        deliveries: Deliveries,
    ) -> Self {
        let (one, all) = (totals[0], totals[1]);
        let per_invocation = (all as f64 - one as f64) / (invocations - 1) as f64;
        Self {
            function: function.into(),
            tool: "callgrind".into(),
            recipients,
            instructions_one_invocation: one,
            invocations,
            instructions_all_invocations: all,
            per_invocation: per_invocation.round(),
            per_delivered_post: (per_invocation / recipients as f64).round(),
            expected_deliveries: deliveries.expected,
            delivered: deliveries.delivered,
            lost: deliveries.expected - deliveries.delivered,
            duplicated: deliveries.duplicated,
        }
    }
}

/// One process under callgrind: `sendmessage` from `sender` once per token.
struct Run<'a> {
    sendmessage: &'a Located,
    env: &'a Env,
    sender: &'a str,
    plan: &'a Plan,
    sequence: &'a AtomicU64,
}

impl Run<'_> {
    /// The instructions the process executed from start to exit, and the
    /// deliveries of `tokens`.
    async fn profile(
        &self,
        swarm: &mut Swarm,
        tokens: &[u64],
    ) -> anyhow::Result<(u64, Deliveries)> {
        let profile = self.profile_path(tokens.len());
        let _ = std::fs::remove_file(&profile);
        let invocations = self.invocations(tokens)?;
        swarm.drain();
        let mut out_file = OsString::from("--callgrind-out-file=");
        out_file.push(&profile);
        let wrapper = Wrapper {
            program: self.plan.valgrind.as_path(),
            args: vec![OsString::from("--tool=callgrind"), out_file],
        };
        let mut running =
            Running::start(self.sendmessage, self.env, invocations, Some(wrapper)).await?;
        running
            .until(tokens.len(), tokens.len() + 1, CALLGRIND_PATIENCE)
            .await?;
        for end in &running.ends {
            if let Err(problem) = end.answer.judged(Exercise::Sendmessage) {
                return Err(running.failure(format_args!(
                    "failed invocation {}: {problem:#}",
                    end.request_id
                )));
            }
        }
        let deliveries = await_deliveries(swarm, tokens, Duration::from_secs(30)).await;
        running.release(Duration::from_secs(300)).await?;
        let total = read_total(&profile)?;
        if self.plan.profiles_dir.is_some() {
            eprintln!("    profile: {}", profile.display());
        } else {
            let _ = std::fs::remove_file(&profile);
        }
        Ok((total, deliveries))
    }

    /// Where callgrind writes the profile of a run of `invocations`: in
    /// `--profiles-dir`, kept, or the temporary directory.
    fn profile_path(&self, invocations: usize) -> PathBuf {
        self.plan
            .profiles_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join(format!(
                "callgrind.out.chat-bench-{}-sendmessage-{invocations}",
                std::process::id(),
            ))
    }

    /// One `sendmessage` event per token.
    fn invocations(&self, tokens: &[u64]) -> anyhow::Result<Vec<Invocation>> {
        tokens
            .iter()
            .map(|token| {
                let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
                let body =
                    format!(r#"{{"action":"sendmessage","message":"{TOKEN_PREFIX}{token}"}}"#);
                Ok(Invocation {
                    request_id: events::request_id(),
                    body: events::message("sendmessage", self.sender, &body, sequence)?,
                })
            })
            .collect()
    }
}

/// The instruction total of the profile at `path`.
fn read_total(path: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("no callgrind profile at {}", path.display()))?;
    callgrind_total(&text).with_context(|| format!("no instruction total in {}", path.display()))
}

/// The `totals:` (or `summary:`) line of a callgrind profile: instructions
/// executed (`Ir`, the default and first event).
fn callgrind_total(profile: &str) -> Option<u64> {
    let find = |prefix: &str| {
        profile.lines().find_map(|line| {
            line.strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    };
    find("totals:").or_else(|| find("summary:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callgrind_totals_are_read() {
        let profile = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n\
                       summary: 123\nfl=(1) x\n0 5\ntotals: 456789\n";
        assert_eq!(callgrind_total(profile), Some(456_789));
        assert_eq!(callgrind_total("events: Ir\nsummary: 42\n"), Some(42));
        assert_eq!(callgrind_total("events: Ir\n"), None);
    }

    #[test]
    fn one_warm_invocation_is_the_difference_of_the_two_runs() {
        let deliveries = Deliveries {
            expected: 1200,
            delivered: 1199,
            duplicated: 1,
        };
        let count = Instructions::of(
            "sendmessage",
            &[38_900_000, 172_300_000],
            11,
            100,
            deliveries,
        );
        assert_eq!(count.per_invocation, 13_340_000.0);
        assert_eq!(count.per_delivered_post, 133_400.0);
        assert_eq!((count.lost, count.duplicated), (1, 1));
    }
}
