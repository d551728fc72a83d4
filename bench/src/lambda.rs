//! The Lambda path, measured on this machine with the real function
//! binaries (`bootstrap`s), their real SDK clients, and chat-local as their
//! DynamoDB and Management API:
//!
//! - each function's cold start: from executing the binary to its first
//!   request for work (`GET …/invocation/next`) and to the end of its first
//!   invocation (the response POSTed), on a minimal Lambda Runtime API
//!   served by the bench ([`runtime_api`]); its peak RSS (`VmHWM`); the size
//!   of its zip (cargo lambda's `target/lambda/<function>/bootstrap.zip`)
//!   or, without one, of the binary;
//! - CPU per delivered post: `sendmessage` to N real WebSocket clients in one
//!   room, under callgrind, once with 1 invocation and once with M; the
//!   difference is M-1 warm invocations, so start-up and exit cancel out.
//!   Every delivery is counted.

mod events;
mod runtime_api;

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::client::{Event, PROBE_PATIENCE, Swarm, TOKEN_PREFIX, Welcome};
use crate::server::{Binaries, Server, Target, proc_status_kib};
use crate::stats::ms;
use runtime_api::{Invocation, Record, RuntimeApi};

/// The cold-start client's room; the fan-out's is [`FANOUT_ROOM`]. The
/// `$connect` runs join the fixture's default room, `lobby`.
const COLD_ROOM: &str = "cold";
const FANOUT_ROOM: &str = "lambda";
/// The stage in function names, ARNs and `STAGE`.
const STAGE: &str = "bench";
/// The HS256 secret the authorizer verifies `mint-token`'s token with.
const AUTH_SECRET: &str = "chat-bench-authorizer-secret-32b";
/// Longest wait for a natively running function's first invocation.
const COLD_PATIENCE: Duration = Duration::from_secs(30);
/// Longest wait for the invocations under callgrind.
const CALLGRIND_PATIENCE: Duration = Duration::from_secs(900);
/// Lines of a function's output kept to explain a failure.
const OUTPUT_TAIL: usize = 25;

/// The Lambda functions (the binaries' names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Function {
    Authorizer,
    Default,
    Connect,
    Disconnect,
    Sendmessage,
    History,
    StreamProcessor,
}

impl Function {
    /// The binary, and cargo lambda's directory under `target/lambda`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authorizer => "authorizer",
            Self::Default => "default",
            Self::Connect => "connect",
            Self::Disconnect => "disconnect",
            Self::Sendmessage => "sendmessage",
            Self::History => "history",
            Self::StreamProcessor => "stream-processor",
        }
    }

    /// `memorySize` in infra/serverless.yml (and infra/auth.js).
    fn memory_mb(self) -> u32 {
        match self {
            Self::Sendmessage | Self::History | Self::StreamProcessor => 256,
            Self::Authorizer | Self::Default | Self::Connect | Self::Disconnect => 128,
        }
    }

    /// `timeout` in infra/serverless.yml (and infra/auth.js).
    fn timeout(self) -> Duration {
        Duration::from_secs(match self {
            Self::Sendmessage => 29,
            Self::StreamProcessor => 60,
            Self::Authorizer | Self::Default => 5,
            Self::Connect | Self::Disconnect | Self::History => 10,
        })
    }

    fn function_name(self) -> String {
        format!("serverless-chat-{STAGE}-{}", self.name())
    }

    /// What a successful first invocation answers, or why it is a failure.
    fn judge(self, body: &str) -> Result<String, String> {
        let answer: serde_json::Value = serde_json::from_str(body)
            .map_err(|problem| format!("answer is not JSON ({problem}): {body}"))?;
        match self {
            Self::Authorizer => {
                let effect = answer
                    .pointer("/policyDocument/Statement/0/Effect")
                    .and_then(serde_json::Value::as_str);
                match effect {
                    Some("Allow") => Ok("Allow".into()),
                    _ => Err(format!("the authorizer did not allow: {body}")),
                }
            }
            Self::StreamProcessor => {
                let failures = answer
                    .get("batchItemFailures")
                    .and_then(serde_json::Value::as_array)
                    .map_or(0, Vec::len);
                if failures == 0 {
                    Ok("no batch item failures".into())
                } else {
                    Err(format!("{failures} batch item failures: {body}"))
                }
            }
            _ => {
                let Some(code @ 200..=299) =
                    answer.get("statusCode").and_then(serde_json::Value::as_i64)
                else {
                    return Err(format!("not a 2xx proxy response: {body}"));
                };
                // The two-way routes answer with a frame: its type.
                let frame = answer
                    .get("body")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|frame| serde_json::from_str::<serde_json::Value>(frame).ok());
                let kind = frame
                    .as_ref()
                    .and_then(|frame| frame.get("type"))
                    .and_then(serde_json::Value::as_str);
                let expected = match self {
                    Self::Default => Some("pong"),
                    Self::History => Some("history"),
                    _ => None,
                };
                match (expected, kind) {
                    (None, _) => Ok(format!("statusCode {code}")),
                    (Some(expected), Some(kind)) if kind == expected => {
                        Ok(format!("statusCode {code}, {kind}"))
                    }
                    (Some(expected), _) => Err(format!("not a {expected} frame: {body}")),
                }
            }
        }
    }
}

/// The default `--functions`: every deployed function.
pub const ALL_FUNCTIONS: &str =
    "authorizer,default,connect,disconnect,sendmessage,history,stream-processor";

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
    #[arg(long, value_delimiter = ',', default_value = ALL_FUNCTIONS)]
    pub functions: Vec<Function>,
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
    fn of(samples: &[Duration]) -> Self {
        let mut sorted: Vec<f64> = samples.iter().copied().map(ms).collect();
        sorted.sort_by(f64::total_cmp);
        Self {
            min_ms: sorted.first().copied().unwrap_or(0.0),
            p50_ms: crate::stats::percentile(&sorted, 0.5),
            max_ms: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

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

impl Outcome {
    pub fn lost_or_duplicated(&self) -> bool {
        self.instructions
            .as_ref()
            .is_some_and(|count| count.lost > 0 || count.duplicated > 0)
    }
}

pub async fn measure(plan: &Plan, binaries: &Binaries) -> Result<Outcome, String> {
    if plan.recipients > 0 && plan.invocations < 2 {
        return Err("--invocations must be at least 2".into());
    }
    let functions_dir = match &plan.functions_dir {
        Some(dir) => dir.clone(),
        None => binaries
            .bench
            .parent()
            .map(Path::to_path_buf)
            .ok_or("cannot tell this executable's directory; pass --functions-dir")?,
    };
    let zips_dir = plan
        .zips_dir
        .clone()
        .or_else(|| functions_dir.parent().map(|target| target.join("lambda")));
    let mut wanted = plan.functions.clone();
    if plan.recipients > 0 && !wanted.contains(&Function::Sendmessage) {
        wanted.push(Function::Sendmessage);
    }
    let located = wanted
        .iter()
        .map(|&function| Located::find(function, &functions_dir, zips_dir.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    let token = if plan.functions.contains(&Function::Authorizer) {
        Some(mint_token(binaries).await?)
    } else {
        None
    };

    let server = Server::start(
        &Target::Chat {
            fanout_concurrency: None,
            management_delay_ms: 0,
        },
        binaries,
    )
    .await?;
    let env = Env {
        management_endpoint: server
            .management_endpoint
            .clone()
            .ok_or("chat-local's banner has no Management API")?,
        dynamodb_endpoint: server
            .dynamodb_endpoint
            .clone()
            .ok_or("chat-local's banner has no DynamoDB endpoint")?,
    };
    eprintln!(
        "  chat-local: DynamoDB {}, Management API {}",
        env.dynamodb_endpoint, env.management_endpoint
    );
    let sequence = AtomicU64::new(1);

    let mut cold_starts = Vec::new();
    if !plan.functions.is_empty() && plan.runs > 0 {
        let cold_url = format!("{}?room={COLD_ROOM}", server.url);
        let mut cold_client = Swarm::connect(&cold_url, 1, 1).await?;
        let me = await_welcome(&cold_client, 0, Duration::from_secs(30)).await?;
        let context = ColdContext {
            me,
            token,
            sequence: &sequence,
        };
        for located in located
            .iter()
            .filter(|located| plan.functions.contains(&located.function))
        {
            let cold = cold_start(located, &env, &context, &mut cold_client, plan.runs).await?;
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
    }

    let instructions = match located
        .iter()
        .find(|located| located.function == Function::Sendmessage)
    {
        Some(sendmessage) if plan.recipients > 0 => {
            Some(count_instructions(sendmessage, &env, &server.url, plan, &sequence).await?)
        }
        _ => None,
    };
    server.stop().await;
    Ok(Outcome {
        functions_dir: functions_dir.display().to_string(),
        cold_starts,
        instructions,
    })
}

/// A function's binary, and its zip if cargo lambda made one.
#[derive(Debug)]
struct Located {
    function: Function,
    binary: PathBuf,
    binary_bytes: u64,
    zip: Option<(PathBuf, u64)>,
}

impl Located {
    fn find(function: Function, dir: &Path, zips: Option<&Path>) -> Result<Self, String> {
        let name = function.name();
        let binary = [dir.join(name), dir.join(name).join("bootstrap")]
            .into_iter()
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                format!(
                    "no {name} binary in {} (neither {name} nor {name}/bootstrap): build the \
                     functions first (cargo build --release -p chat-handlers -p chat-stream-processor) \
                     or pass --functions-dir",
                    dir.display()
                )
            })?;
        check_architecture(&binary)?;
        let binary_bytes = std::fs::metadata(&binary)
            .map_err(|problem| format!("{}: {problem}", binary.display()))?
            .len();
        let zip = [Some(dir), zips]
            .into_iter()
            .flatten()
            .map(|dir| dir.join(name).join("bootstrap.zip"))
            .find_map(|zip| {
                let bytes = std::fs::metadata(&zip).ok()?.len();
                Some((zip, bytes))
            });
        Ok(Self {
            function,
            binary,
            binary_bytes,
            zip,
        })
    }
}

/// Refuses an ELF binary built for another machine (cargo lambda's arm64
/// builds on an x86_64 host) with a message saying so.
fn check_architecture(binary: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut header = [0u8; 20];
    let read = std::fs::File::open(binary).and_then(|mut file| file.read_exact(&mut header));
    if read.is_err() || &header[..4] != b"\x7fELF" {
        return Ok(());
    }
    let machine = u16::from_le_bytes([header[18], header[19]]);
    let built_for = match machine {
        62 => "x86_64",
        183 => "aarch64",
        _ => return Ok(()),
    };
    if built_for == std::env::consts::ARCH {
        Ok(())
    } else {
        Err(format!(
            "{} is built for {built_for}, and this machine runs {}: point --functions-dir at \
             binaries built for this machine (its zip is still reported with --zips-dir)",
            binary.display(),
            std::env::consts::ARCH
        ))
    }
}

/// A signed-in user's token for the authorizer, from chat-local's
/// `mint-token` (beside chat-local).
async fn mint_token(binaries: &Binaries) -> Result<String, String> {
    let mint = binaries.chat_local.with_file_name("mint-token");
    let output = Command::new(&mint)
        .args([
            "--secret",
            AUTH_SECRET,
            "--sub",
            "bench-user",
            "--name",
            "Bench",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .map_err(|_| format!("{} took too long", mint.display()))?
        .map_err(|problem| {
            format!(
                "cannot run {} for the authorizer's token ({problem}): build it \
                 (cargo build --release -p chat-local) or leave authorizer out of --functions",
                mint.display()
            )
        })?;
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || token.is_empty() {
        return Err(format!(
            "{} failed: {}",
            mint.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(token)
}

async fn await_welcome(
    swarm: &Swarm,
    client: usize,
    patience: Duration,
) -> Result<Welcome, String> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(welcome) = swarm.welcome(client) {
            return Ok(welcome);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "client {client} got no welcome within {patience:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Where the functions find their AWS services: chat-local's.
struct Env {
    management_endpoint: String,
    dynamodb_endpoint: String,
}

impl Env {
    /// The variables Lambda sets for a `provided.al2023` function, with
    /// placeholder credentials, and those infra/serverless.yml sets; the one
    /// offline addition is `AWS_ENDPOINT_URL_DYNAMODB`.
    fn variables(&self, function: Function, runtime_api: SocketAddr) -> Vec<(String, String)> {
        let name = function.function_name();
        let pairs = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                function.memory_mb().to_string(),
            ),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef".into(),
            ),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "ASIABENCHBENCHBENCH0".into()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "bench/secret/access/key/placeholder00000".into(),
            ),
            (
                "AWS_SESSION_TOKEN",
                "bench-session-token-placeholder".into(),
            ),
            ("_HANDLER", "bootstrap".into()),
            ("LAMBDA_TASK_ROOT", "/var/task".into()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
            ("TZ", ":UTC".into()),
            ("LANG", "en_US.UTF-8".into()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
            // infra/serverless.yml's provider.environment.
            ("ACTIVE_CONNECTIONS_TABLE", "ActiveConnections".into()),
            ("SESSION_HISTORY_TABLE", "SessionHistory".into()),
            ("MESSAGE_HISTORY_TABLE", "MessageHistory".into()),
            ("MODERATION_TABLE", "Moderation".into()),
            ("ROOM_ACCESS", "open".into()),
            ("MEMBERS_ONLY_ROOMS", String::new()),
            ("METRICS_NAMESPACE", "ServerlessChat".into()),
            ("STAGE", STAGE.into()),
            ("MANAGEMENT_API_ENDPOINT", self.management_endpoint.clone()),
            ("MESSAGE_RETENTION_DAYS", String::new()),
            ("SESSION_RETENTION_DAYS", String::new()),
            // infra/auth.js's, for the authorizer (HS256).
            ("AUTH_JWT_SECRET", AUTH_SECRET.into()),
            // Offline only: DynamoDB is chat-local's.
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_endpoint.clone()),
        ];
        pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }
}

/// What a function printed: the last lines, and the WARN and ERROR ones
/// counted.
#[derive(Default)]
struct Output {
    tail: Mutex<VecDeque<String>>,
    warnings: AtomicU64,
    errors: AtomicU64,
}

impl Output {
    fn tail(&self) -> String {
        self.tail
            .lock()
            .map(|tail| tail.iter().cloned().collect::<Vec<_>>().join("\n    "))
            .unwrap_or_default()
    }
}

async fn collect_output(stream: impl AsyncRead + Unpin, output: Arc<Output>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains(r#""level":"ERROR""#) || line.contains(" ERROR ") {
            output.errors.fetch_add(1, Ordering::Relaxed);
        } else if line.contains(r#""level":"WARN""#) || line.contains(" WARN ") {
            output.warnings.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut tail) = output.tail.lock() {
            if tail.len() == OUTPUT_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

/// How an invocation ended.
struct End {
    /// From executing the binary.
    after: Duration,
    request_id: String,
    /// The response body, or why it failed.
    answer: Result<String, String>,
}

/// A function process on its own Runtime API. Killed when dropped.
struct Running {
    function: Function,
    child: Child,
    api: RuntimeApi,
    started: Instant,
    output: Arc<Output>,
    /// From executing the binary to its first `next`.
    first_next: Option<Duration>,
    nexts: usize,
    ends: Vec<End>,
}

impl Running {
    /// Executes `binary` (under `wrapper`, e.g. valgrind, if given) with
    /// `invocations` waiting for it.
    async fn start(
        located: &Located,
        env: &Env,
        invocations: Vec<Invocation>,
        wrapper: Option<(&Path, Vec<OsString>)>,
    ) -> Result<Self, String> {
        let function = located.function;
        let arn = format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            function.function_name()
        );
        let api = RuntimeApi::start(arn, function.timeout(), invocations).await?;
        let mut command = match &wrapper {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&located.binary);
                command
            }
            None => Command::new(&located.binary),
        };
        command
            .env_clear()
            .envs(env.variables(function, api.address))
            .current_dir(located.binary.parent().unwrap_or(Path::new("/")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command.spawn().map_err(|problem| {
            format!(
                "cannot execute {}{}: {problem}",
                located.binary.display(),
                wrapper
                    .as_ref()
                    .map(|(program, _)| format!(
                        " under {} (install valgrind, or pass --recipients 0 to skip the count)",
                        program.display()
                    ))
                    .unwrap_or_default()
            )
        })?;
        let output = Arc::new(Output::default());
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(collect_output(stdout, Arc::clone(&output)));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect_output(stderr, Arc::clone(&output)));
        }
        Ok(Self {
            function,
            child,
            api,
            started,
            output,
            first_next: None,
            nexts: 0,
            ends: Vec::new(),
        })
    }

    /// Follows the function until `ends` invocations ended and it asked for
    /// work `nexts` times, or `patience` ran out (an error).
    async fn until(&mut self, ends: usize, nexts: usize, patience: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + patience;
        while self.ends.len() < ends || self.nexts < nexts {
            let record = tokio::select! {
                record = self.api.record_by(deadline) => record,
                status = self.child.wait() => {
                    let status = status.map_or_else(|problem| problem.to_string(), |status| status.to_string());
                    return Err(self.failure(&format!("exited ({status})")));
                }
            };
            match record {
                None => {
                    return Err(self.failure(&format!(
                        "did not finish {ends} invocation(s) within {patience:?}"
                    )));
                }
                Some(Record::Next { at }) => {
                    self.nexts += 1;
                    self.first_next
                        .get_or_insert_with(|| at.saturating_duration_since(self.started));
                }
                Some(Record::Response {
                    request_id,
                    at,
                    body,
                }) => self.ends.push(End {
                    after: at.saturating_duration_since(self.started),
                    request_id,
                    answer: Ok(body),
                }),
                Some(Record::Error {
                    request_id,
                    at,
                    error_type,
                    body,
                }) => self.ends.push(End {
                    after: at.saturating_duration_since(self.started),
                    request_id,
                    answer: Err(format!("{}: {body}", error_type.unwrap_or_default())),
                }),
                Some(Record::InitError {
                    at,
                    error_type,
                    body,
                }) => {
                    return Err(self.failure(&format!(
                        "failed to initialise after {:?}: {} {body}",
                        at.saturating_duration_since(self.started),
                        error_type.unwrap_or_default()
                    )));
                }
            }
        }
        Ok(())
    }

    fn failure(&self, what: &str) -> String {
        format!(
            "{} {what}; its last output:\n    {}",
            self.function.name(),
            self.output.tail()
        )
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.child.id()?, "VmHWM:")
    }

    async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Closes the held `next`, so the runtime exits by itself (under
    /// valgrind: so callgrind writes its profile), and waits for it.
    async fn release(mut self, patience: Duration) -> Result<(), String> {
        self.api.release();
        match tokio::time::timeout(patience, self.child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(problem)) => Err(format!("{}: {problem}", self.function.name())),
            Err(_) => {
                let failure = self.failure(&format!("did not exit within {patience:?}"));
                let _ = self.child.kill().await;
                Err(failure)
            }
        }
    }
}

/// What the cold-start events are about.
struct ColdContext<'a> {
    /// The one real client in [`COLD_ROOM`].
    me: Welcome,
    token: Option<String>,
    sequence: &'a AtomicU64,
}

impl ColdContext<'_> {
    /// The event of `function`'s `run`-th cold start.
    fn event(&self, function: Function, run: usize) -> Result<String, String> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let me = &self.me.connection_id;
        // `$connect` opens, and `$disconnect` later closes, a session of a
        // connection that never existed (API Gateway has it; chat-local
        // does not), in the default room.
        let stranger = format!("BenchCold{run:05}=");
        match function {
            Function::Authorizer => {
                events::authorizer(self.token.as_deref().unwrap_or_default(), sequence)
            }
            Function::Default => events::message("$default", me, r#"{"action":"ping"}"#, sequence),
            Function::Connect => events::connect(&stranger, sequence),
            Function::Disconnect => events::disconnect(&stranger, sequence),
            Function::Sendmessage => events::message(
                "sendmessage",
                me,
                &format!(
                    r#"{{"action":"sendmessage","message":"{TOKEN_PREFIX}{}"}}"#,
                    cold_token(run)
                ),
                sequence,
            ),
            Function::History => {
                events::message("history", me, r#"{"action":"history"}"#, sequence)
            }
            Function::StreamProcessor => {
                events::session_opened(me, &self.me.connected_at, &self.me.room, sequence)
            }
        }
    }
}

/// The token of `sendmessage`'s `run`-th cold start.
fn cold_token(run: usize) -> u64 {
    500_000 + run as u64
}

async fn cold_start(
    located: &Located,
    env: &Env,
    context: &ColdContext<'_>,
    cold_client: &mut Swarm,
    runs: usize,
) -> Result<ColdStart, String> {
    let function = located.function;
    let (mut to_next, mut to_response) = (Vec::new(), Vec::new());
    let mut peak_rss_kib: Option<u64> = None;
    let mut answer = String::new();
    let (mut warnings, mut errors) = (0, 0);
    for run in 0..runs {
        let invocation = Invocation {
            request_id: events::request_id(context.sequence.fetch_add(1, Ordering::Relaxed)),
            body: context.event(function, run)?,
        };
        let mut running = Running::start(located, env, vec![invocation], None).await?;
        running.until(1, 1, COLD_PATIENCE).await?;
        // Its next request for work says the invocation is over, metrics
        // flushed; its peak memory is then that of a cold invocation.
        let _ = running.until(1, 2, Duration::from_secs(2)).await;
        let peak = running.peak_rss_kib();
        let (first_next, end) = (running.first_next, running.ends.first());
        let (Some(first_next), Some(end)) = (first_next, end) else {
            return Err(running.failure("ended no invocation"));
        };
        let judged = end
            .answer
            .clone()
            .and_then(|body| function.judge(&body))
            .map_err(|problem| {
                running.failure(&format!(
                    "failed its invocation {}: {problem}",
                    end.request_id
                ))
            })?;
        if function == Function::Sendmessage {
            let token = cold_token(run);
            let delivered = await_deliveries(cold_client, &[token], Duration::from_secs(10)).await;
            if delivered.delivered != 1 || delivered.duplicated > 0 {
                return Err(running.failure(&format!(
                    "delivered its message {} time(s) to its one recipient, not once",
                    delivered.delivered + delivered.duplicated
                )));
            }
        }
        to_next.push(first_next);
        to_response.push(end.after);
        peak_rss_kib = peak_rss_kib.max(peak);
        answer = judged;
        warnings += running.output.warnings.load(Ordering::Relaxed);
        errors += running.output.errors.load(Ordering::Relaxed);
        running.kill().await;
    }
    Ok(ColdStart {
        function: function.name().into(),
        binary: located.binary.display().to_string(),
        binary_bytes: located.binary_bytes,
        zip: located
            .zip
            .as_ref()
            .map(|(zip, _)| zip.display().to_string()),
        zip_bytes: located.zip.as_ref().map(|(_, bytes)| *bytes),
        memory_mb: function.memory_mb(),
        runs,
        to_first_next: Times::of(&to_next),
        to_first_response: Times::of(&to_response),
        peak_rss_kib,
        answer,
        log_warnings: warnings,
        log_errors: errors,
    })
}

/// Deliveries of a set of tokens to every client.
#[derive(Debug, Default, Clone, Copy)]
struct Deliveries {
    expected: usize,
    delivered: usize,
    duplicated: usize,
}

async fn count_instructions(
    sendmessage: &Located,
    env: &Env,
    url: &str,
    plan: &Plan,
    sequence: &AtomicU64,
) -> Result<Instructions, String> {
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
        let (instructions, delivered) = callgrind_run(
            sendmessage,
            env,
            &mut swarm,
            &sender,
            &tokens,
            plan,
            sequence,
        )
        .await?;
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
        deliveries.expected += delivered.expected;
        deliveries.delivered += delivered.delivered;
        deliveries.duplicated += delivered.duplicated;
    }
    let (one, all) = (totals[0], totals[1]);
    let per_invocation = (all as f64 - one as f64) / (plan.invocations - 1) as f64;
    Ok(Instructions {
        function: Function::Sendmessage.name().into(),
        tool: "callgrind".into(),
        recipients: swarm.len(),
        instructions_one_invocation: one,
        invocations: plan.invocations,
        instructions_all_invocations: all,
        per_invocation: per_invocation.round(),
        per_delivered_post: (per_invocation / swarm.len() as f64).round(),
        expected_deliveries: deliveries.expected,
        delivered: deliveries.delivered,
        lost: deliveries.expected - deliveries.delivered,
        duplicated: deliveries.duplicated,
    })
}

/// One process under callgrind: `sendmessage` from `sender` once per token;
/// the instructions it executed from start to exit, and the deliveries.
async fn callgrind_run(
    sendmessage: &Located,
    env: &Env,
    swarm: &mut Swarm,
    sender: &str,
    tokens: &[u64],
    plan: &Plan,
    sequence: &AtomicU64,
) -> Result<(u64, Deliveries), String> {
    let keep = plan.profiles_dir.is_some();
    let profile = plan
        .profiles_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!(
            "callgrind.out.chat-bench-{}-sendmessage-{}",
            std::process::id(),
            tokens.len()
        ));
    let _ = std::fs::remove_file(&profile);
    let invocations = tokens
        .iter()
        .map(|token| {
            let sequence = sequence.fetch_add(1, Ordering::Relaxed);
            let body = format!(r#"{{"action":"sendmessage","message":"{TOKEN_PREFIX}{token}"}}"#);
            Ok(Invocation {
                request_id: events::request_id(sequence),
                body: events::message("sendmessage", sender, &body, sequence)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    swarm.drain();
    let mut out_file = OsString::from("--callgrind-out-file=");
    out_file.push(&profile);
    let args = vec![OsString::from("--tool=callgrind"), out_file];
    let mut running = Running::start(
        sendmessage,
        env,
        invocations,
        Some((plan.valgrind.as_path(), args)),
    )
    .await?;
    running
        .until(tokens.len(), tokens.len() + 1, CALLGRIND_PATIENCE)
        .await?;
    for end in &running.ends {
        if let Err(problem) = end
            .answer
            .clone()
            .and_then(|body| Function::Sendmessage.judge(&body))
        {
            return Err(
                running.failure(&format!("failed invocation {}: {problem}", end.request_id))
            );
        }
    }
    let deliveries = await_deliveries(swarm, tokens, Duration::from_secs(30)).await;
    running.release(Duration::from_secs(300)).await?;
    let text = std::fs::read_to_string(&profile)
        .map_err(|problem| format!("no callgrind profile at {}: {problem}", profile.display()))?;
    let total = callgrind_total(&text)
        .ok_or_else(|| format!("no instruction total in {}", profile.display()))?;
    if keep {
        eprintln!("    profile: {}", profile.display());
    } else {
        let _ = std::fs::remove_file(&profile);
    }
    Ok((total, deliveries))
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

/// Waits until every client has every token, or `patience` runs out; then
/// half a second more for duplicates.
async fn await_deliveries(swarm: &mut Swarm, tokens: &[u64], patience: Duration) -> Deliveries {
    let clients = swarm.len();
    let mut seen: HashMap<u64, Vec<bool>> = tokens
        .iter()
        .map(|&token| (token, vec![false; clients]))
        .collect();
    let mut count = Deliveries {
        expected: tokens.len() * clients,
        ..Deliveries::default()
    };
    let deadline = tokio::time::Instant::now() + patience;
    let mut quiet_until = None;
    loop {
        let until = quiet_until.unwrap_or(deadline);
        let Ok(Some(event)) = tokio::time::timeout_at(until, swarm.events.recv()).await else {
            break;
        };
        if let Event::Delivered { client, token, .. } = event
            && let Some(slot) = seen.get_mut(&token).and_then(|row| row.get_mut(client))
        {
            if std::mem::replace(slot, true) {
                count.duplicated += 1;
            } else {
                count.delivered += 1;
            }
        }
        if count.delivered == count.expected && quiet_until.is_none() {
            quiet_until = Some(tokio::time::Instant::now() + Duration::from_millis(500));
        }
    }
    count
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
    fn answers_are_judged_per_function() {
        assert!(Function::Connect.judge(r#"{"statusCode":200}"#).is_ok());
        assert!(Function::Connect.judge(r#"{"statusCode":500}"#).is_err());
        assert!(Function::Connect.judge("not json").is_err());
        let pong = r#"{"statusCode":200,"body":"{\"type\":\"pong\",\"message\":\"pong\"}"}"#;
        assert!(Function::Default.judge(pong).is_ok());
        assert!(Function::History.judge(pong).is_err());
        assert!(Function::Default.judge(r#"{"statusCode":200}"#).is_err());
        let allow = r#"{"principalId":"u","policyDocument":{"Version":"2012-10-17","Statement":[{"Action":["execute-api:Invoke"],"Effect":"Allow","Resource":["arn"]}]}}"#;
        assert!(Function::Authorizer.judge(allow).is_ok());
        assert!(
            Function::Authorizer
                .judge(&allow.replace("Allow", "Deny"))
                .is_err()
        );
        assert!(
            Function::StreamProcessor
                .judge(r#"{"batchItemFailures":[]}"#)
                .is_ok()
        );
        assert!(
            Function::StreamProcessor
                .judge(r#"{"batchItemFailures":[{"itemIdentifier":"1"}]}"#)
                .is_err()
        );
    }

    #[test]
    fn times_are_min_median_max() {
        let times = Times::of(&[
            Duration::from_millis(30),
            Duration::from_millis(10),
            Duration::from_millis(20),
        ]);
        assert_eq!(
            (times.min_ms, times.p50_ms, times.max_ms),
            (10.0, 20.0, 30.0)
        );
    }
}
