//! A function process on its own Runtime API ([`Running`]): started with
//! its events queued (natively, or under a wrapper such as valgrind),
//! followed through what it asks for and answers, its output kept to
//! explain a failure and its WARN and ERROR lines counted.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt::Display;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::env::{self, Env};
use super::functions::{Exercise, Function};
use super::located::Located;
use super::runtime_api::{Invocation, Record, RuntimeApi};
use crate::server::proc_status_kib;

/// Lines of a function's output kept to explain a failure.
const OUTPUT_TAIL: usize = 25;

/// What a function printed: the last lines, and the WARN and ERROR ones
/// counted.
#[derive(Default)]
pub struct Output {
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

    pub fn warnings(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
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

/// What an invocation answered.
pub enum Answer {
    /// Its response body.
    Response(String),
    /// The error it posted instead.
    Error {
        error_type: Option<String>,
        body: String,
    },
}

impl Answer {
    /// What a successful answer says, or why it is a failure.
    pub fn judged(&self, exercise: Exercise) -> anyhow::Result<String> {
        match self {
            Self::Response(body) => exercise.judge(body),
            Self::Error { error_type, body } => Err(anyhow!(
                "{}: {body}",
                error_type.as_deref().unwrap_or_default()
            )),
        }
    }
}

/// How an invocation ended.
pub struct End {
    /// From executing the binary.
    pub after: Duration,
    pub request_id: String,
    pub answer: Answer,
}

/// A program the function runs under, and its arguments (valgrind's).
pub struct Wrapper<'a> {
    pub program: &'a Path,
    pub args: Vec<OsString>,
}

/// A function process on its own Runtime API. Killed when dropped.
pub struct Running {
    function: &'static Function,
    child: Child,
    api: RuntimeApi,
    started: Instant,
    pub output: Arc<Output>,
    /// From executing the binary to its first `next`.
    pub first_next: Option<Duration>,
    nexts: usize,
    pub ends: Vec<End>,
}

impl Running {
    /// Executes the binary (under `wrapper`, e.g. valgrind, if given) with
    /// `invocations` waiting for it.
    pub async fn start(
        located: &Located,
        env: &Env,
        invocations: Vec<Invocation>,
        wrapper: Option<Wrapper<'_>>,
    ) -> anyhow::Result<Self> {
        let function = located.function;
        let api =
            RuntimeApi::start(env::function_arn(function), function.timeout, invocations).await?;
        let mut command = match &wrapper {
            Some(wrapper) => {
                let mut command = Command::new(wrapper.program);
                command.args(&wrapper.args).arg(&located.binary);
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
        let mut child = command.spawn().with_context(|| {
            let under = wrapper.as_ref().map(|wrapper| {
                format!(
                    " under {} (install valgrind, or pass --recipients 0 to skip the count)",
                    wrapper.program.display()
                )
            });
            format!(
                "cannot execute {}{}",
                located.binary.display(),
                under.unwrap_or_default()
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
    pub async fn until(
        &mut self,
        ends: usize,
        nexts: usize,
        patience: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + patience;
        while self.ends.len() < ends || self.nexts < nexts {
            let record = tokio::select! {
                record = self.api.record_by(deadline) => record,
                status = self.child.wait() => {
                    let status = status.map_or_else(|problem| problem.to_string(), |status| status.to_string());
                    return Err(self.failure(format_args!("exited ({status})")));
                }
            };
            let Some(record) = record else {
                return Err(self.failure(format_args!(
                    "did not finish {ends} invocation(s) within {patience:?}"
                )));
            };
            self.note(record)?;
        }
        Ok(())
    }

    /// One thing the function did: a request for work, or an invocation's
    /// end; a failed initialisation is an error.
    fn note(&mut self, record: Record) -> anyhow::Result<()> {
        let started = self.started;
        let since_start = |at: Instant| at.saturating_duration_since(started);
        match record {
            Record::Next { at } => {
                self.nexts += 1;
                self.first_next.get_or_insert(since_start(at));
            }
            Record::Response {
                request_id,
                at,
                body,
            } => self.ends.push(End {
                after: since_start(at),
                request_id,
                answer: Answer::Response(body),
            }),
            Record::Error {
                request_id,
                at,
                error_type,
                body,
            } => self.ends.push(End {
                after: since_start(at),
                request_id,
                answer: Answer::Error { error_type, body },
            }),
            Record::InitError {
                at,
                error_type,
                body,
            } => {
                return Err(self.failure(format_args!(
                    "failed to initialise after {:?}: {} {body}",
                    since_start(at),
                    error_type.unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    /// The function failed in this way: `what`, with its last output.
    pub fn failure(&self, what: impl Display) -> anyhow::Error {
        anyhow!(
            "{} {what}; its last output:\n    {}",
            self.function.name,
            self.output.tail()
        )
    }

    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.child.id()?, "VmHWM:")
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Closes the held `next`, so the runtime exits by itself (under
    /// valgrind: so callgrind writes its profile), and waits for it.
    pub async fn release(mut self, patience: Duration) -> anyhow::Result<()> {
        self.api.release();
        match tokio::time::timeout(patience, self.child.wait()).await {
            Ok(exited) => exited.map(drop).context(self.function.name.clone()),
            Err(_) => {
                let failure = self.failure(format_args!("did not exit within {patience:?}"));
                let _ = self.child.kill().await;
                Err(failure)
            }
        }
    }
}
