//! A stand-in for Lambda's Runtime API (an axum router on 127.0.0.1 port
//! 0), so a function's real binary can be run as Lambda runs it: each `next`
//! hands it the next of the given events, with the headers Lambda sends;
//! what it answers (a response, an invocation error or an init error) is
//! recorded. Once every event is handed out, `next` waits, as Lambda's does
//! between invocations.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use handlers::config::var;

use crate::{FakeManagementApi, PATIENCE, TestDynamo, eventually};

/// What the function answered to one invocation (or at its start).
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    Response { request_id: String, body: Value },
    Error { request_id: String, body: Value },
    InitError(Value),
}

#[derive(Default)]
struct Invocations {
    pending: VecDeque<Value>,
    handed_out: usize,
    answers: Vec<Invocation>,
}

type Shared = Arc<Mutex<Invocations>>;

pub struct RuntimeApi {
    /// What `AWS_LAMBDA_RUNTIME_API` is set to.
    pub address: SocketAddr,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves `events`, one per invocation, in order.
    pub async fn start(events: Vec<Value>) -> Self {
        let shared: Shared = Arc::new(Mutex::new(Invocations {
            pending: events.into(),
            ..Invocations::default()
        }));
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/{outcome}",
                post(answered),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&shared));
        let (address, server) = crate::serve_locally(app, "the Runtime API").await;
        Self {
            address,
            shared,
            server,
        }
    }

    /// The answers, once there are `count` of them (panics after
    /// [`PATIENCE`]).
    pub async fn answers(&self, count: usize) -> Vec<Invocation> {
        eventually(&format!("{count} answers from the function"), || async {
            let answers = lock(&self.shared).answers.clone();
            (answers.len() >= count).then_some(answers)
        })
        .await
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Invocations> {
    shared.lock().expect("the Runtime API's state")
}

async fn next(State(shared): State<Shared>) -> Response {
    let event = {
        let mut invocations = lock(&shared);
        let event = invocations.pending.pop_front();
        if event.is_some() {
            invocations.handed_out += 1;
        }
        event.map(|event| (invocations.handed_out, event))
    };
    let Some((number, event)) = event else {
        // Nothing more to invoke: wait, as Lambda does until the next event.
        std::future::pending::<()>().await;
        return StatusCode::NO_CONTENT.into_response();
    };
    let deadline = chrono::Utc::now().timestamp_millis() + PATIENCE.as_millis() as i64 * 6;
    (
        [
            ("lambda-runtime-aws-request-id", format!("request-{number}")),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:under-test".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-6747b6f0-1a2b3c4d5e6f7a8b9c0d1e2f;Sampled=0".to_owned(),
            ),
            ("content-type", "application/json".to_owned()),
        ],
        event.to_string(),
    )
        .into_response()
}

fn record(shared: &Shared, answer: Invocation) -> Response {
    lock(shared).answers.push(answer);
    StatusCode::ACCEPTED.into_response()
}

fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// `…/invocation/{id}/response` and `…/invocation/{id}/error`.
async fn answered(
    State(shared): State<Shared>,
    Path((request_id, outcome)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body = json(&body);
    match outcome.as_str() {
        "response" => record(&shared, Invocation::Response { request_id, body }),
        "error" => record(&shared, Invocation::Error { request_id, body }),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn init_error(State(shared): State<Shared>, body: Bytes) -> Response {
    record(&shared, Invocation::InitError(json(&body)))
}

/// A function binary, run as Lambda runs it on `events` with `env` on top
/// of the variables Lambda itself sets: what it answered, once it has
/// answered every event, and everything it printed (stdout and stderr).
pub async fn invoke_binary(
    binary: &str,
    events: Vec<Value>,
    env: &[(&str, String)],
) -> (Vec<Invocation>, String) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let count = events.len();
    let api = RuntimeApi::start(events).await;
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "under-test")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/under-test")
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/12/07/[$LATEST]0123456789abcdef0123456789abcdef",
        )
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
        .env("TZ", ":UTC")
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{binary} does not start: {error}"));
    // Read as it is written, so a chatty function never blocks on a pipe.
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|out| Box::new(out) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|err| Box::new(err) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    })
    .collect();
    let answers = api.answers(count).await;
    let _ = child.kill();
    let _ = child.wait();
    let output = readers
        .into_iter()
        .map(|reader| reader.join().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    (answers, output)
}

/// The variables infra/serverless.yml gives every function, with JSON logs
/// at Lambda's `log_level`, pointed at this machine's DynamoDB and
/// Management API with the local stack's placeholder credentials.
pub fn function_variables(
    db: &TestDynamo,
    api: &FakeManagementApi,
    log_level: &str,
) -> Vec<(&'static str, String)> {
    vec![
        (var::AWS_LAMBDA_LOG_LEVEL, log_level.to_owned()),
        (var::AWS_LAMBDA_LOG_FORMAT, "JSON".to_owned()),
        ("AWS_REGION", chat_local::aws::LOCAL_REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", db.endpoint.clone()),
        (var::MANAGEMENT_API_ENDPOINT, api.endpoint.clone()),
        (var::STAGE, "dev".to_owned()),
    ]
    .into_iter()
    .chain(
        db.tables
            .variables()
            .map(|(variable, table)| (variable, table.to_owned())),
    )
    .collect()
}
