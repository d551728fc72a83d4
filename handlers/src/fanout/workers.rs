//! Fan-out workers: the `fanout` function, which `broadcast` hands the rest
//! of a large room's shard to as an asynchronous invocation
//! (`InvocationType: Event`). Lambda queues the event, runs as many
//! workers at once as the function's concurrency allows, and retries one
//! that fails (twice, by default); a worker fails only when its first read
//! fails, before it has posted anything, so a retry repeats nothing.
//! docs/architecture.md ("Fan-out workers") says why this and not a queue.

use std::sync::Arc;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument, warn};

use super::{FanoutReport, Start, deliver};
use crate::Chat;
use crate::error::AwsError;
use crate::management::Delivery;
use crate::metric::FanoutKind;
use crate::room::Room;
use crate::store::ShardCursor;

/// The largest event Lambda takes for an asynchronous invocation is
/// 256 KiB; a task is a frame (at most API Gateway's 128 KiB) and the
/// ids it leaves out (at most a stream batch's newcomers).
pub const MAX_TASK_BYTES: usize = 256 * 1024;

/// What one fan-out posts, and to whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fanout {
    pub room: Room,
    /// The frame to post, as JSON text.
    pub frame: String,
    pub kind: FanoutKind,
    /// Connections left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    /// The connection whose message it is: told when a part missed
    /// someone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

/// The rest of one shard of a room's fan-out, from where a page ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanoutTask {
    pub shard: u32,
    pub after: ShardCursor,
    #[serde(flatten)]
    pub fanout: Fanout,
}

/// Why a task could not be handed to a worker; the caller posts it itself.
#[derive(Debug, thiserror::Error)]
pub enum HandOffError {
    #[error("the task is {0} bytes, over the {MAX_TASK_BYTES} an asynchronous invocation takes")]
    TooLarge(usize),
    #[error("the task does not serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error(transparent)]
    Invoke(AwsError),
}

/// Where tasks go: the `fanout` function (`FANOUT_FUNCTION`), through the
/// Lambda API; the local stack serves that API in-process.
#[derive(Clone, Debug)]
pub struct Workers {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl Workers {
    pub fn new(client: aws_sdk_lambda::Client, function: String) -> Self {
        Self { client, function }
    }

    /// Queues `task` for a worker: Lambda answers 202 once it has the
    /// event.
    pub async fn hand_off(&self, task: &FanoutTask) -> Result<(), HandOffError> {
        let payload = serde_json::to_vec(task)?;
        if payload.len() > MAX_TASK_BYTES {
            return Err(HandOffError::TooLarge(payload.len()));
        }
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|error| HandOffError::Invoke(AwsError::new("Lambda", "Invoke", &error)))?;
        Ok(())
    }
}

/// Why a worker failed, before posting anything: Lambda retries it.
#[derive(Debug, thiserror::Error)]
#[error("could not read the shard's connections; nothing was posted")]
pub struct ShardUnreadable;

/// The `fanout` function: posts the task's frame to the rest of its shard
/// (handing on what lies past its own page), and tells the sender of a
/// message when its part missed someone.
#[instrument(name = "fanout", skip_all, fields(room = %task.fanout.room, shard = task.shard))]
pub async fn work(chat: &Chat, task: FanoutTask) -> Result<FanoutReport, ShardUnreadable> {
    let fanout = Arc::new(task.fanout);
    let report = deliver(chat, &fanout, Start::Shard(task.shard, task.after)).await;
    if report.incomplete && report.read == 0 {
        return Err(ShardUnreadable);
    }
    info!(
        recipients = report.recipients,
        delivered = report.delivered,
        pruned = report.pruned,
        failed = report.failed,
        handed_off = report.handed_off,
        "worker fanned out"
    );
    if let (Some(sender), Some(problem)) = (&fanout.sender, report.problem()) {
        match chat.management.post(sender, problem.to_json().into()).await {
            Delivery::Delivered | Delivery::Gone => {}
            Delivery::Failed(failure) => {
                warn!(error = %failure, "could not tell the sender of a partial delivery");
            }
        }
    }
    Ok(report)
}
