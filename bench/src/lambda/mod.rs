//! `chat-bench lambda`: the Lambda path, measured on this machine with the
//! real function binaries (`bootstrap`s), their real SDK clients, and
//! chat-local as their DynamoDB and Management API:
//!
//! - each function's cold start ([`cold`]): from executing the binary to its
//!   first request for work and to the end of its first invocation, on a
//!   minimal Lambda Runtime API served by the bench ([`runtime_api`]); its
//!   peak RSS; the size of its zip (cargo lambda's
//!   `target/lambda/<function>/bootstrap.zip`) or, without one, of the
//!   binary;
//! - CPU per delivered post ([`callgrind`]): `sendmessage` to N real
//!   WebSocket clients in one room, under callgrind.
//!
//! This module holds the command's flags, its results and the order of
//! the run; the functions it knows and their sizes are infra/functions.json's
//! ([`functions`]).

mod callgrind;
mod cold;
mod deliveries;
mod env;
pub(crate) mod events;
pub(crate) mod functions;
mod located;
mod process;
mod runtime_api;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use anyhow::bail;
use serde::Serialize;

use crate::server::{Binaries, Server, Target};
use callgrind::Instructions;
use cold::ColdStart;
use env::Env;
use functions::Function;
use located::{Dirs, Located};

/// What `chat-bench lambda` measures (its flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Plan {
    /// The function binaries, `<dir>/<function>` or
    /// `<dir>/<function>/bootstrap` (default: beside this executable).
    #[arg(long)]
    pub functions_dir: Option<PathBuf>,
    /// cargo lambda's zips, `<dir>/<function>/bootstrap.zip` (default: the
    /// `lambda` directory beside the functions').
    #[arg(long)]
    pub zips_dir: Option<PathBuf>,
    /// The functions to cold-start, as infra/functions.json names them
    /// (with their memory and timeout from there).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = functions::exercised(),
        value_parser = functions::parser()
    )]
    pub functions: Vec<&'static Function>,
    /// Cold starts per function, each a fresh process.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Clients sendmessage fans out to under callgrind (0: no count).
    #[arg(long, default_value_t = 100)]
    pub recipients: usize,
    /// Invocations of the longer callgrind run (the shorter has one).
    #[arg(long, default_value_t = 11)]
    pub invocations: usize,
    #[arg(long, default_value = "valgrind")]
    pub valgrind: PathBuf,
    /// Keep the callgrind profiles in this directory (for
    /// callgrind_annotate); by default they are deleted.
    #[arg(long)]
    pub profiles_dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub functions_dir: String,
    pub cold_starts: Vec<ColdStart>,
    pub instructions: Option<Instructions>,
}

impl Outcome {
    pub fn lost_or_duplicated(&self) -> bool {
        self.instructions
            .as_ref()
            .is_some_and(|count| count.lost > 0 || count.duplicated > 0)
    }
}

pub async fn measure(plan: &Plan, binaries: &Binaries) -> anyhow::Result<Outcome> {
    if plan.recipients > 0 && plan.invocations < 2 {
        bail!("--invocations must be at least 2");
    }
    let dirs = Dirs::of(plan, binaries)?;
    let located = wanted(plan)?
        .into_iter()
        .map(|function| Located::find(function, &dirs))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let token = if plan
        .functions
        .iter()
        .any(|function| function.name == "authorizer")
    {
        Some(cold::mint_token(binaries).await?)
    } else {
        None
    };
    let chat = Target::Chat {
        fanout_concurrency: None,
        management_delay_ms: 0,
    };
    let server = Server::start(&chat, binaries).await?;
    let env = Env::of(&server)?;
    eprintln!(
        "  chat-local: DynamoDB {}, Management API {}",
        env.dynamodb_endpoint, env.management_endpoint
    );
    let sequence = AtomicU64::new(1);
    let cold: Vec<&Located> = located
        .iter()
        .filter(|located| plan.functions.contains(&located.function))
        .collect();
    let cold_starts = if cold.is_empty() || plan.runs == 0 {
        Vec::new()
    } else {
        cold::cold_starts(&cold, &env, &server.url, token, &sequence, plan.runs).await?
    };
    let sendmessage = located
        .iter()
        .find(|located| located.function.name == "sendmessage");
    let instructions = match sendmessage {
        Some(sendmessage) if plan.recipients > 0 => Some(
            callgrind::count_instructions(sendmessage, &env, &server.url, plan, &sequence).await?,
        ),
        _ => None,
    };
    server.stop().await;
    Ok(Outcome {
        functions_dir: dirs.functions.display().to_string(),
        cold_starts,
        instructions,
    })
}

/// The functions to find: `--functions`, and sendmessage for the
/// instruction count.
fn wanted(plan: &Plan) -> anyhow::Result<Vec<&'static Function>> {
    let mut wanted = plan.functions.clone();
    if plan.recipients > 0 && !wanted.iter().any(|function| function.name == "sendmessage") {
        wanted.push(functions::named("sendmessage")?);
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        plan: Plan,
    }

    fn names(flags: &[&str]) -> Result<Vec<&'static str>, clap::Error> {
        let parsed = Flags::try_parse_from(std::iter::once("lambda").chain(flags.iter().copied()))?;
        Ok(parsed
            .plan
            .functions
            .iter()
            .map(|function| function.name.as_str())
            .collect())
    }

    #[test]
    fn functions_are_infra_functions_json_s() {
        let every = names(&[]).unwrap_or_else(|problem| panic!("{problem}"));
        assert_eq!(every.len(), 8, "{every:?}");
        assert!(every.contains(&"moderate") && every.contains(&"stream-processor"));
        let some = names(&["--functions", "stream-processor,connect"]);
        assert_eq!(some.ok(), Some(vec!["stream-processor", "connect"]));
        let reconcile = names(&["--functions", "reconcile"]).map_err(|problem| problem.to_string());
        assert!(
            reconcile
                .as_ref()
                .is_err_and(|problem| problem.contains("no event for reconcile")),
            "{reconcile:?}"
        );
        assert!(names(&["--functions", "nope"]).is_err());
        let sendmessage = functions::named("sendmessage").ok();
        let parsed = Flags::try_parse_from(["lambda", "--functions", "sendmessage"]).ok();
        assert_eq!(
            parsed.map(|flags| flags.plan.functions),
            sendmessage.map(|function| vec![function])
        );
    }
}
