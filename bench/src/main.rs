//! `chat-bench`: measures chat-local against a bare broadcast server, with
//! the clients in this process and each server in its own. See
//! docs/performance.md for the commands and the figures.

mod abuse;
mod aws;
mod churn;
mod client;
mod connect;
mod fanout;
mod floor;
mod idle;
mod lambda;
mod report;
mod server;
mod smoke;
mod stats;
mod sustained;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use report::Report;
use server::{Binaries, Target};

#[derive(Parser)]
#[command(name = "chat-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The chat-local binary (default: the one beside this executable).
    #[arg(long, global = true)]
    chat_local: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Fan-out latency to N clients, per target.
    Fanout {
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
        clients: Vec<usize>,
        #[arg(long, default_value_t = 30)]
        rounds: usize,
        #[arg(long, value_delimiter = ',', default_value = "floor,chat,chat-serial")]
        targets: Vec<TargetName>,
        /// Delay chat-local adds to each Management API call, as AWS's
        /// PostToConnection round trip would.
        #[arg(long, default_value_t = 0)]
        management_delay_ms: u64,
    },
    /// Connection rate and, for the chat, the time to the last welcome.
    Connect {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        in_flight: usize,
        #[arg(long, value_delimiter = ',', default_value = "floor,chat")]
        targets: Vec<TargetName>,
    },
    /// N clients connect at once, then all leave at once (a share by TCP
    /// reset): every session must close and every row go, with no ERROR
    /// line; fails otherwise.
    Churn {
        #[arg(long, default_value_t = 2000)]
        clients: usize,
        /// Of every hundred clients, how many leave by TCP reset.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
        reset_percent: u8,
        /// Longest wait for the welcomes, and again for the departures.
        #[arg(long, default_value_t = 120)]
        patience_secs: u64,
    },
    /// What attackers on other addresses cost a user of chat-local with its
    /// defaults: floods of messages and history, handshakes never finished,
    /// a departed client's backlog, SIGTERM during a flood.
    Abuse(abuse::Plan),
    /// Checks a chat stage as a user would, with three clients: the stage at
    /// --url (e.g. wss://abc.execute-api.eu-west-1.amazonaws.com/prod, just
    /// deployed), or a local stack it starts. Prints ✔/✘ per check; fails
    /// on any ✘.
    Smoke {
        /// The stage's WebSocket URL (the WebSocketUrl output); none: a
        /// local stack.
        #[arg(long)]
        url: Option<String>,
        /// A sign-in token, when the stage has sign-in on.
        #[arg(long, env = "CHAT_SMOKE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The stage's Management API endpoint (the ManagementApiEndpoint
        /// output), to check GetConnection and its 410, with the AWS
        /// credentials of the environment.
        #[arg(long)]
        management_url: Option<String>,
        /// Longest wait for one expected frame.
        #[arg(long, default_value_t = 10)]
        patience_secs: u64,
    },
    /// Start-up time and memory with N idle connections.
    Idle {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, value_delimiter = ',', default_value = "floor,chat")]
        targets: Vec<TargetName>,
    },
    /// M senders at a steady total rate to N clients; fails on any lost or
    /// duplicated delivery. Long runs are the soak.
    Sustained {
        #[arg(long, default_value_t = 500)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Messages per second, all senders together.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[arg(long, default_value_t = 120)]
        duration_secs: u64,
        #[arg(long, default_value = "chat")]
        target: TargetName,
    },
    /// The Lambda functions' cold starts (on a Runtime API stub) and
    /// sendmessage's instructions per delivered post (callgrind), against
    /// chat-local's DynamoDB and Management API.
    Lambda(lambda::Plan),
    /// The chat at AWS's scale, simulated with the real code: sendmessage,
    /// the fan-out workers and the stream processor in this process, the
    /// embedded engine, and a Management API sink with API Gateway's round
    /// trip and account rate; rooms of planted rows, a join storm, and
    /// what it all costs (docs/scale.md, docs/cost.md).
    Aws(aws::Plan),
    /// The bare broadcast server (the bench starts it in its own process).
    Floor {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetName {
    /// The bare in-memory broadcast server.
    Floor,
    /// chat-local with its defaults.
    Chat,
    /// chat-local posting to one recipient at a time, as the tutorial does.
    ChatSerial,
}

impl TargetName {
    fn target(self, management_delay_ms: u64) -> Target {
        match self {
            Self::Floor => Target::Floor,
            Self::Chat => Target::Chat {
                fanout_concurrency: None,
                management_delay_ms,
            },
            Self::ChatSerial => Target::Chat {
                fanout_concurrency: Some(1),
                management_delay_ms,
            },
        }
    }
}

/// File descriptors a process needs besides one per connection.
const SPARE_FILES: u64 = 256;

/// Each client holds a socket here and one in the server, which inherits
/// this process's limit: raises the soft limit to the hard one, and says
/// exactly what to set when even that is too low for the run.
fn check_open_file_limit(command: &Command) -> anyhow::Result<()> {
    let clients = match command {
        Command::Fanout { clients, .. } => clients.iter().copied().max().unwrap_or(0),
        Command::Connect { clients, .. }
        | Command::Churn { clients, .. }
        | Command::Idle { clients, .. }
        | Command::Sustained { clients, .. } => *clients,
        Command::Abuse(plan) => {
            plan.handshake_sockets + plan.message_flooders + plan.history_flooders
        }
        Command::Lambda(_) | Command::Aws(_) | Command::Floor { .. } | Command::Smoke { .. } => 0,
    };
    let needed = clients as u64 + SPARE_FILES;
    let limit =
        rlimit::increase_nofile_limit(u64::MAX).context("cannot raise the open-file limit")?;
    if limit < needed {
        bail!(
            "{clients} clients need about {needed} open files per process, and this \
             process may have {limit}: raise the hard limit first (`ulimit -Hn {needed}` as \
             root, or `LimitNOFILE=` for a service), then run again"
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Floor { listen } = &cli.command {
        return match floor::serve(listen).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(problem) => {
                eprintln!("chat-bench floor: {problem}");
                ExitCode::FAILURE
            }
        };
    }
    match bench(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // What failed, then each of its causes.
            eprintln!("chat-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command and prints its summary (and writes its JSON); fails when
/// the run does, when the JSON cannot be written, or (after the summary)
/// when deliveries were lost or duplicated.
async fn bench(cli: Cli) -> anyhow::Result<()> {
    // A smoke test of a deployed stage starts no server.
    let binaries = if matches!(&cli.command, Command::Smoke { url: Some(_), .. }) {
        Binaries::without_server()?
    } else {
        Binaries::locate(cli.chat_local.clone())?
    };
    let mut report = Report::new();
    check_open_file_limit(&cli.command)?;
    run(cli.command, &binaries, &mut report).await?;
    println!("{}", report.summary());
    if let Some(path) = cli.json {
        report
            .write_json(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if report.lost_or_duplicated() {
        bail!("deliveries were lost or duplicated");
    }
    Ok(())
}

async fn run(command: Command, binaries: &Binaries, report: &mut Report) -> anyhow::Result<()> {
    match command {
        Command::Fanout {
            clients,
            rounds,
            targets,
            management_delay_ms,
        } => {
            let targets: Vec<Target> = targets
                .iter()
                .map(|name| name.target(management_delay_ms))
                .collect();
            fanout(&clients, rounds, &targets, binaries, report).await?;
        }
        Command::Connect {
            clients,
            in_flight,
            targets,
        } => {
            for target in targets.iter().map(|name| name.target(0)) {
                let outcome = connect::measure(&target, binaries, clients, in_flight).await?;
                report.connect.push(outcome);
            }
        }
        Command::Churn {
            clients,
            reset_percent,
            patience_secs,
        } => {
            let plan = churn::Plan {
                clients,
                reset_percent: usize::from(reset_percent),
                patience: Duration::from_secs(patience_secs),
            };
            churn(&plan, binaries, report).await?;
        }
        Command::Smoke {
            url,
            token,
            management_url,
            patience_secs,
        } => {
            let patience = Duration::from_secs(patience_secs);
            smoke(url, token, management_url, patience, binaries, report).await?;
        }
        Command::Idle { clients, targets } => {
            for target in targets.iter().map(|name| name.target(0)) {
                let outcome = idle::measure(&target, binaries, clients).await?;
                report.idle.push(outcome);
            }
        }
        Command::Sustained {
            clients,
            senders,
            rate,
            duration_secs,
            target,
        } => {
            let plan = sustained::Plan {
                clients,
                senders,
                rate,
                duration: Duration::from_secs(duration_secs),
                drain: Duration::from_secs(15),
            };
            sustained(&plan, target, binaries, report).await?;
        }
        Command::Abuse(plan) => {
            report.abuse.push(abuse::measure(binaries, &plan).await?);
        }
        Command::Lambda(plan) => {
            report.lambda.push(lambda::measure(&plan, binaries).await?);
        }
        Command::Aws(plan) => {
            report.aws.push(aws::measure(&plan).await?);
        }
        Command::Floor { .. } => {}
    }
    Ok(())
}

/// `fanout`: each number of clients, against each target.
async fn fanout(
    clients: &[usize],
    rounds: usize,
    targets: &[Target],
    binaries: &Binaries,
    report: &mut Report,
) -> anyhow::Result<()> {
    for &count in clients {
        let plan = fanout::Plan {
            clients: count,
            rounds,
            patience: Duration::from_secs(30),
        };
        for target in targets {
            report
                .fanout
                .push(fanout::measure(target, binaries, &plan).await?);
        }
    }
    Ok(())
}

/// `churn`, failing unless every session closed and every row went.
async fn churn(plan: &churn::Plan, binaries: &Binaries, report: &mut Report) -> anyhow::Result<()> {
    let outcome = churn::measure(&TargetName::Chat.target(0), binaries, plan).await?;
    let clean = outcome.clean();
    report.churn.push(outcome);
    if !clean {
        bail!("sessions left open, rows left behind, handshakes unanswered or ERROR lines (above)");
    }
    Ok(())
}

/// `smoke` of the stage at `url` (none: a local stack), failing on any
/// failed check.
async fn smoke(
    url: Option<String>,
    token: Option<String>,
    management_url: Option<String>,
    patience: Duration,
    binaries: &Binaries,
    report: &mut Report,
) -> anyhow::Result<()> {
    let plan = smoke::Plan {
        url,
        token,
        management_url,
        patience,
    };
    let outcome = smoke::run(&plan, binaries).await?;
    let passed = outcome.passed();
    report.smoke.push(outcome);
    if !passed {
        bail!("the smoke test failed (✘ above)");
    }
    Ok(())
}

/// `sustained` against `target`.
async fn sustained(
    plan: &sustained::Plan,
    target: TargetName,
    binaries: &Binaries,
    report: &mut Report,
) -> anyhow::Result<()> {
    if !(plan.rate.is_finite() && plan.rate > 0.0) {
        bail!("--rate must be a positive number of messages per second");
    }
    report
        .sustained
        .push(sustained::measure(&target.target(0), binaries, plan).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
