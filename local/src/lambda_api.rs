//! The Lambda API's asynchronous `Invoke`, for the one function the chat
//! invokes itself: the fan-out workers. The chat's real `aws-sdk-lambda`
//! client reaches it in-process, as its Management API calls do. Each
//! accepted event runs `handlers::fanout::work` in a task of its own, at
//! most `concurrency` at once (the function's reserved concurrency on
//! AWS); one that fails is tried again, as Lambda retries an asynchronous
//! event twice (here after 1 and 2 seconds, not 1 and 2 minutes).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use handlers::Chat;
use handlers::fanout::{FanoutTask, work};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

/// The fan-out workers' function name, as the chat's clients invoke it.
pub const FANOUT_FUNCTION: &str = "fanout";

/// Lambda's retries of an asynchronous event that failed.
const RETRIES: u32 = 2;

/// The in-process Lambda API: where the fan-out workers run.
#[derive(Clone, Debug)]
pub struct LambdaApi {
    chat: Chat,
    permits: Arc<Semaphore>,
    tasks: TaskTracker,
    accepted: Arc<AtomicUsize>,
    /// How long each finished invocation ran, when recorded (the bench's
    /// GB-seconds; [`LambdaApi::recording_durations`]).
    durations: Option<Arc<Mutex<Vec<Duration>>>>,
}

impl LambdaApi {
    pub fn new(chat: Chat, concurrency: usize) -> Self {
        Self {
            chat,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            tasks: TaskTracker::new(),
            accepted: Arc::default(),
            durations: None,
        }
    }

    /// Records how long each invocation runs, from the moment it has a
    /// permit (as Lambda bills: the handler's start to its end).
    pub fn recording_durations(mut self) -> Self {
        self.durations = Some(Arc::default());
        self
    }

    /// The durations recorded since the last call.
    pub fn take_durations(&self) -> Vec<Duration> {
        self.durations.as_ref().map_or_else(Vec::new, |durations| {
            std::mem::take(&mut *durations.lock().unwrap_or_else(PoisonError::into_inner))
        })
    }

    /// Events accepted so far: the fan-out workers invoked.
    pub fn invocations(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/2015-03-31/functions/{function}/invocations", post(invoke))
            .with_state(self.clone())
    }

    /// Waits until no worker runs or waits for its turn: a shutdown's last
    /// step before the engine stops, and a test's before it counts posts.
    /// A worker hands on its shard's rest before it ends, so a chain of
    /// workers is waited for to its end.
    pub async fn idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }
}

async fn invoke(
    State(api): State<LambdaApi>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if function != FANOUT_FUNCTION {
        return refusal(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {function}"),
        );
    }
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|value| value.to_str().ok());
    if invocation_type != Some("Event") {
        return refusal(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            "the local stack runs the fan-out workers asynchronously only (InvocationType Event)",
        );
    }
    let task: FanoutTask = match serde_json::from_slice(&body) {
        Ok(task) => task,
        Err(problem) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                &format!("not a fan-out task: {problem}"),
            );
        }
    };
    api.accepted.fetch_add(1, Ordering::Relaxed);
    let run = api.clone();
    api.tasks.spawn(async move {
        // The semaphore is never closed, so a permit always comes.
        let _permit = run.permits.acquire().await.ok();
        for attempt in 0..=RETRIES {
            let started = Instant::now();
            let outcome = work(&run.chat, task.clone()).await;
            if let Some(durations) = &run.durations {
                durations
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(started.elapsed());
            }
            match outcome {
                Ok(_) => return,
                Err(failure) if attempt < RETRIES => {
                    warn!(%failure, attempt, "fan-out worker failed; Lambda tries the event again");
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt) + 1)).await;
                }
                Err(failure) => {
                    error!(%failure, room = %task.fanout.room, shard = task.shard, "fan-out worker failed on every try; the event is dropped");
                }
            }
        }
    });
    StatusCode::ACCEPTED.into_response()
}

/// An error as the Lambda API answers one: its type in `x-amzn-ErrorType`
/// and the body.
fn refusal(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    (
        status,
        [("x-amzn-ErrorType", error_type)],
        axum::Json(serde_json::json!({ "Type": "User", "message": message })),
    )
        .into_response()
}
