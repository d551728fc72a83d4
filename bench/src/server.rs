//! The servers under test, each in its own process: the floor (this binary's
//! `floor` subcommand) and chat-local with the flags a run asks for.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// How long a server may take to print its WebSocket URL.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// What to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The bare broadcast server.
    Floor,
    /// chat-local, in memory, with its defaults unless set here.
    Chat {
        fanout_concurrency: Option<usize>,
        management_delay_ms: u64,
    },
    /// chat-local with every default, its limits on one address among
    /// them (the other targets lift those: their clients all come from
    /// 127.0.0.1), with this hard limit on open files.
    ChatDefaults { open_files: u64 },
}

impl Target {
    pub fn label(&self) -> String {
        match self {
            Self::Floor => "floor".into(),
            Self::Chat {
                fanout_concurrency,
                management_delay_ms,
            } => {
                let mut label = String::from("chat-local");
                if let Some(concurrency) = fanout_concurrency {
                    label.push_str(&format!(" concurrency={concurrency}"));
                }
                if *management_delay_ms > 0 {
                    label.push_str(&format!(" delay={management_delay_ms}ms"));
                }
                label
            }
            Self::ChatDefaults { open_files } => {
                format!("chat-local defaults, {open_files} open files")
            }
        }
    }

    pub fn is_chat(&self) -> bool {
        matches!(self, Self::Chat { .. } | Self::ChatDefaults { .. })
    }
}

/// Where the server binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub bench: PathBuf,
    pub chat_local: PathBuf,
}

impl Binaries {
    /// This executable alone (a run against a server started elsewhere).
    pub fn without_server() -> anyhow::Result<Self> {
        let bench = std::env::current_exe().context("cannot find this executable")?;
        Ok(Self {
            chat_local: PathBuf::new(),
            bench,
        })
    }

    /// This executable, and chat-local beside it unless given.
    pub fn locate(chat_local: Option<PathBuf>) -> anyhow::Result<Self> {
        let bench = std::env::current_exe().context("cannot find this executable")?;
        let chat_local = match chat_local {
            Some(path) => path,
            None => bench.with_file_name("chat-local"),
        };
        if !chat_local.is_file() {
            bail!(
                "no chat-local binary at {}: build it first \
                 (cargo build --release -p chat-local -p chat-bench) or pass --chat-local",
                chat_local.display()
            );
        }
        Ok(Self { bench, chat_local })
    }
}

/// A running server. Killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    /// chat-local's Management API endpoint (`http://…/dev`), from its banner.
    pub management_endpoint: Option<String>,
    /// chat-local's DynamoDB endpoint, from its banner.
    pub dynamodb_endpoint: Option<String>,
    /// From spawning the process to its printing the WebSocket URL.
    pub ready_after: Duration,
    log: Arc<LogCounts>,
}

/// Lines the server logged at WARN and ERROR.
#[derive(Debug, Default)]
pub struct LogCounts {
    warnings: AtomicU64,
    errors: AtomicU64,
}

impl Server {
    pub async fn start(target: &Target, binaries: &Binaries) -> anyhow::Result<Self> {
        let mut command = command(target, binaries);
        let started = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", target.label()))?;
        let log = Arc::new(LogCounts::default());
        let (banner_sender, banner) = oneshot::channel();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(watch_banner(stdout, target.is_chat(), banner_sender));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(count_log_levels(stderr, Arc::clone(&log)));
        }
        let banner = match tokio::time::timeout(START_PATIENCE, banner).await {
            Ok(Ok(banner)) => banner,
            _ => bail!(
                "{} did not print its WebSocket URL{}",
                target.label(),
                if target.is_chat() {
                    ", Management API and DynamoDB endpoint"
                } else {
                    ""
                }
            ),
        };
        Ok(Self {
            child,
            url: banner.url,
            management_endpoint: banner.management_endpoint,
            dynamodb_endpoint: banner.dynamodb_endpoint,
            ready_after: started.elapsed(),
            log,
        })
    }

    /// Resident memory now, in KiB (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_field("VmRSS:")
    }

    /// Peak resident memory so far, in KiB (Linux).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_field("VmHWM:")
    }

    fn status_field(&self, field: &str) -> Option<u64> {
        proc_status_kib(self.child.id()?, field)
    }

    /// CPU time the server has used so far, user and system (Linux).
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()?)).ok()?;
        // Fields after the command name (which may hold spaces); utime and
        // stime are the 14th and 15th fields, in clock ticks of 1/100 s.
        let after_name = &stat[stat.rfind(')')? + 2..];
        let mut fields = after_name.split_whitespace().skip(11);
        let user: u64 = fields.next()?.parse().ok()?;
        let system: u64 = fields.next()?.parse().ok()?;
        Some(Duration::from_millis((user + system) * 10))
    }

    pub fn warnings(&self) -> u64 {
        self.log.warnings.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.log.errors.load(Ordering::Relaxed)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends SIGTERM (with `kill`, as a service manager would) and waits
    /// up to `patience` for the process to exit; how long it took.
    pub async fn terminate(mut self, patience: Duration) -> Option<Duration> {
        let pid = self.child.id()?.to_string();
        let sent = Instant::now();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .is_ok_and(|status| status.success());
        if !signalled {
            return None;
        }
        match tokio::time::timeout(patience, self.child.wait()).await {
            Ok(_) => Some(sent.elapsed()),
            Err(_) => None,
        }
    }
}

/// The command that starts `target`.
fn command(target: &Target, binaries: &Binaries) -> Command {
    match target {
        Target::Floor => {
            let mut command = Command::new(&binaries.bench);
            command.args(["floor", "--listen", "127.0.0.1:0"]);
            command
        }
        Target::Chat {
            fanout_concurrency,
            management_delay_ms,
        } => {
            let mut command = chat_command(&binaries.chat_local);
            // The bench's clients all come from 127.0.0.1.
            command
                .args(["--max-connections-per-ip", "100000"])
                .args(["--max-pending-handshakes", "100000"])
                .args(["--max-pending-handshakes-per-ip", "100000"])
                .args(["--address-rate-limit", "100000"])
                .args(["--address-burst-limit", "100000"])
                .args([
                    "--management-api-delay-ms",
                    &management_delay_ms.to_string(),
                ]);
            if let Some(concurrency) = fanout_concurrency {
                command.args(["--fanout-concurrency", &concurrency.to_string()]);
            }
            command
        }
        Target::ChatDefaults { open_files } => {
            // util-linux's prlimit sets the limit and execs chat-local
            // (same process), so an attack can outnumber its files.
            let mut command = Command::new("prlimit");
            command
                .arg(format!("--nofile={open_files}:{open_files}"))
                .arg("--")
                .arg(&binaries.chat_local)
                .args(["--in-memory", "--listen", "127.0.0.1:0"])
                .args(["--dynamodb-listen", "127.0.0.1:0"])
                // Its victim and attackers hold more than 4,096 between them.
                .args(["--max-connections-per-ip", "100000"])
                .env("RUST_LOG", "warn");
            command
        }
    }
}

/// A `kB` field of `/proc/<pid>/status` (Linux), e.g. `VmHWM:`.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

fn chat_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["--in-memory", "--listen", "127.0.0.1:0"])
        .args(["--dynamodb-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    command
}

/// What a server's banner says: the floor prints its WebSocket URL,
/// chat-local its Management API and DynamoDB endpoint too.
#[derive(Debug, Default)]
struct Banner {
    url: String,
    management_endpoint: Option<String>,
    dynamodb_endpoint: Option<String>,
}

/// Reads the banner, and sends it once it has the WebSocket URL and, with
/// `endpoints`, chat-local's two endpoints (printed after the URL).
async fn watch_banner(
    stdout: tokio::process::ChildStdout,
    endpoints: bool,
    banner: oneshot::Sender<Banner>,
) {
    let mut sender = Some(banner);
    let mut seen = Banner::default();
    let mut url = None;
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        if let Some(found) = line.strip_prefix("WebSocket URL") {
            url.get_or_insert_with(|| found.trim().to_owned());
        } else if let Some(found) = line.strip_prefix("Management API") {
            // `http://127.0.0.1:8080/dev/@connections/{id}`
            let found = found.trim();
            let endpoint = found.split("/@connections").next().unwrap_or(found);
            seen.management_endpoint
                .get_or_insert_with(|| endpoint.to_owned());
        } else if let Some(found) = line.strip_prefix("DynamoDB") {
            seen.dynamodb_endpoint
                .get_or_insert_with(|| found.trim().to_owned());
        }
        let complete =
            !endpoints || (seen.management_endpoint.is_some() && seen.dynamodb_endpoint.is_some());
        if complete
            && let Some(url) = url.take()
            && let Some(sender) = sender.take()
        {
            let _ = sender.send(Banner {
                url,
                management_endpoint: seen.management_endpoint.take(),
                dynamodb_endpoint: seen.dynamodb_endpoint.take(),
            });
        }
    }
}

async fn count_log_levels(stderr: tokio::process::ChildStderr, log: Arc<LogCounts>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains(" ERROR ") {
            log.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("server: {line}");
        } else if line.contains(" WARN ") {
            log.warnings.fetch_add(1, Ordering::Relaxed);
            eprintln!("server: {line}");
        }
    }
}
