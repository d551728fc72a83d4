//! The stream poller: what Lambda's event-source mapping does for the
//! SessionHistory stream. It reads shards through the real
//! `aws-sdk-dynamodbstreams` client, turns records into `aws_lambda_events`
//! DynamoDB events, drops what the filter patterns exclude, and invokes the
//! stream processor in-process. A batch with failures is retried from its
//! lowest failed sequence number, a bounded number of times, then the
//! failing records are skipped with an error log.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord, StreamViewType, UserIdentity};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use chrono::{DateTime, Utc};
use handlers::Chat;
use lambda_runtime::{Context, LambdaEvent};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::StreamConfig;
use crate::error::StartError;
use crate::filter::Filter;

/// How many empty polls in a row mean the stream is drained at shutdown.
const DRAIN_ROUNDS: usize = 3;

/// Where a shard is read from next.
#[derive(Debug, Default)]
struct Shard {
    parent: Option<String>,
    iterator: Option<String>,
    last_sequence: Option<String>,
    finished: bool,
}

/// The last processed sequence number of each shard, kept in the data
/// directory so a restart resumes where it stopped.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    stream_arn: String,
    shards: HashMap<String, String>,
}

pub struct Poller {
    client: Client,
    stream_arn: String,
    region: String,
    chat: Chat,
    config: StreamConfig,
    filter: Filter,
    checkpoint_path: Option<PathBuf>,
    shards: BTreeMap<String, Shard>,
}

impl Poller {
    pub fn new(
        client: Client,
        stream_arn: String,
        chat: Chat,
        config: StreamConfig,
        checkpoint_path: Option<PathBuf>,
    ) -> Result<Self, StartError> {
        let filter = Filter::stream_default().map_err(StartError::Stream)?;
        let mut shards = BTreeMap::new();
        if let Some(checkpoint) = checkpoint_path
            .as_deref()
            .and_then(load_checkpoint)
            .filter(|checkpoint| checkpoint.stream_arn == stream_arn)
        {
            for (id, sequence) in checkpoint.shards {
                let shard = Shard {
                    last_sequence: Some(sequence),
                    ..Shard::default()
                };
                shards.insert(id, shard);
            }
        }
        Ok(Self {
            client,
            stream_arn,
            region: handlers::offline::LOCAL_REGION.to_owned(),
            chat,
            config,
            filter,
            checkpoint_path,
            shards,
        })
    }

    /// Polls until `stop` is cancelled, then drains what is left.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let seen = self.poll_logged().await;
            if seen == 0 {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(self.config.poll_interval) => {}
                }
            } else if stop.is_cancelled() {
                break;
            }
        }
        // Sessions closed during shutdown still get their durations.
        let mut empty_rounds = 0;
        while empty_rounds < DRAIN_ROUNDS {
            if self.poll_logged().await == 0 {
                empty_rounds += 1;
            } else {
                empty_rounds = 0;
            }
        }
        debug!("stream poller stopped");
    }

    async fn poll_logged(&mut self) -> usize {
        match self.poll_once().await {
            Ok(seen) => seen,
            Err(failure) => {
                warn!(error = %failure, "stream poll failed");
                0
            }
        }
    }

    /// Reads one batch from every readable shard; returns the records read.
    pub async fn poll_once(&mut self) -> Result<usize, String> {
        self.refresh_shards().await?;
        let mut seen = 0;
        let ready: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, shard)| !shard.finished)
            .filter(|(_, shard)| {
                // Children wait until their parent shard is read to the end.
                shard
                    .parent
                    .as_ref()
                    .and_then(|parent| self.shards.get(parent))
                    .is_none_or(|parent| parent.finished)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for shard_id in ready {
            seen += self.read_shard(&shard_id).await?;
        }
        Ok(seen)
    }

    async fn refresh_shards(&mut self) -> Result<(), String> {
        let mut start = None;
        loop {
            let output = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|error| {
                    format!(
                        "DescribeStream: {}",
                        aws_sdk_dynamodbstreams::Error::from(error)
                    )
                })?;
            let Some(description) = output.stream_description else {
                return Ok(());
            };
            for shard in description.shards.unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                let entry = self.shards.entry(id).or_default();
                entry.parent = shard.parent_shard_id;
            }
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return Ok(()),
            }
        }
    }

    async fn read_shard(&mut self, shard_id: &str) -> Result<usize, String> {
        let iterator = match self
            .shards
            .get(shard_id)
            .and_then(|shard| shard.iterator.clone())
        {
            Some(iterator) => iterator,
            None => self.new_iterator(shard_id).await?,
        };
        let output = match self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(self.config.batch_size)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error)
                if error.as_service_error().is_some_and(|e| {
                    e.is_expired_iterator_exception() || e.is_trimmed_data_access_exception()
                }) =>
            {
                // Start again from the last processed record.
                if let Some(shard) = self.shards.get_mut(shard_id) {
                    shard.iterator = None;
                }
                return Ok(0);
            }
            Err(error) => {
                return Err(format!(
                    "GetRecords: {}",
                    aws_sdk_dynamodbstreams::Error::from(error)
                ));
            }
        };
        let records = output.records.unwrap_or_default();
        let count = records.len();
        if !records.is_empty() {
            self.deliver(&records).await;
        }
        let last_sequence = records
            .iter()
            .filter_map(|record| record.dynamodb.as_ref()?.sequence_number.clone())
            .next_back();
        if let Some(shard) = self.shards.get_mut(shard_id) {
            if last_sequence.is_some() {
                shard.last_sequence = last_sequence;
            }
            shard.finished = output.next_shard_iterator.is_none();
            shard.iterator = output.next_shard_iterator;
        }
        if count > 0 {
            self.save_checkpoint();
        }
        Ok(count)
    }

    async fn new_iterator(&self, shard_id: &str) -> Result<String, String> {
        let last = self
            .shards
            .get(shard_id)
            .and_then(|shard| shard.last_sequence.clone());
        let request = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id);
        let request = match last {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let output = request.send().await.map_err(|error| {
            format!(
                "GetShardIterator: {}",
                aws_sdk_dynamodbstreams::Error::from(error)
            )
        })?;
        output
            .shard_iterator
            .ok_or_else(|| format!("GetShardIterator gave no iterator for {shard_id}"))
    }

    /// Invokes the stream processor with the records the filter lets
    /// through, retrying failures as the event-source mapping does.
    async fn deliver(&self, records: &[Record]) {
        let mut pending: Vec<EventRecord> = records
            .iter()
            .map(|record| to_event_record(record, &self.stream_arn, &self.region))
            .filter(|record| {
                serde_json::to_value(record).is_ok_and(|json| self.filter.matches(&json))
            })
            .collect();
        let mut retries = 0;
        while !pending.is_empty() {
            let mut event = Event::default();
            event.records = pending.clone();
            let mut context = Context::default();
            context.request_id = uuid::Uuid::new_v4().to_string();
            let failures = match stream_processor::handle(
                &self.chat,
                LambdaEvent::new(event, context),
            )
            .await
            {
                Ok(response) => response
                    .batch_item_failures
                    .into_iter()
                    .map(|failure| failure.item_identifier)
                    .collect::<Vec<_>>(),
                Err(failure) => {
                    error!(error = %failure, "stream processor failed the whole batch");
                    vec![None]
                }
            };
            if failures.is_empty() {
                return;
            }
            // As on Lambda: retry from the lowest failed sequence number; an
            // identifier that is missing or unknown fails the whole batch.
            let from = failures
                .iter()
                .map(|failure| {
                    failure.as_deref().and_then(|sequence| {
                        pending.iter().position(|record| {
                            record.change.sequence_number.as_deref() == Some(sequence)
                        })
                    })
                })
                .try_fold(usize::MAX, |lowest, index| {
                    index.map(|index| lowest.min(index))
                })
                .unwrap_or(0);
            if retries >= self.config.max_retries {
                let skipped: Vec<&str> = failures
                    .iter()
                    .filter_map(|failure| failure.as_deref())
                    .collect();
                error!(
                    retries,
                    skipped = ?skipped,
                    "giving up on stream records after bounded retries"
                );
                return;
            }
            retries += 1;
            info!(
                retries,
                from_record = from,
                "retrying stream batch from its first failure"
            );
            pending.drain(..from.min(pending.len()));
            tokio::time::sleep(self.config.poll_interval.min(Duration::from_millis(500))).await;
        }
    }

    fn save_checkpoint(&self) {
        let Some(path) = &self.checkpoint_path else {
            return;
        };
        let checkpoint = Checkpoint {
            stream_arn: self.stream_arn.clone(),
            shards: self
                .shards
                .iter()
                .filter_map(|(id, shard)| Some((id.clone(), shard.last_sequence.clone()?)))
                .collect(),
        };
        let write = || -> std::io::Result<()> {
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, serde_json::to_vec_pretty(&checkpoint)?)?;
            std::fs::rename(&temporary, path)
        };
        if let Err(failure) = write() {
            warn!(path = %path.display(), error = %failure, "could not save the stream checkpoint");
        }
    }
}

fn load_checkpoint(path: &std::path::Path) -> Option<Checkpoint> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text)
        .map_err(|failure| warn!(path = %path.display(), error = %failure, "ignoring an unreadable stream checkpoint"))
        .ok()
}

/// The record as Lambda delivers it.
pub fn to_event_record(record: &Record, stream_arn: &str, region: &str) -> EventRecord {
    let mut change = StreamRecord::default();
    if let Some(stream) = &record.dynamodb {
        if let Some(time) = &stream.approximate_creation_date_time {
            change.approximate_creation_date_time =
                DateTime::<Utc>::from_timestamp(time.secs(), time.subsec_nanos())
                    .unwrap_or_default();
        }
        change.keys = stream.keys.clone().unwrap_or_default().into();
        change.new_image = stream.new_image.clone().unwrap_or_default().into();
        change.old_image = stream.old_image.clone().unwrap_or_default().into();
        change.sequence_number = stream.sequence_number.clone();
        change.size_bytes = stream.size_bytes.unwrap_or_default();
        change.stream_view_type =
            stream
                .stream_view_type
                .as_ref()
                .map(|view| match view.as_str() {
                    "KEYS_ONLY" => StreamViewType::KeysOnly,
                    "NEW_IMAGE" => StreamViewType::NewImage,
                    "OLD_IMAGE" => StreamViewType::OldImage,
                    _ => StreamViewType::NewAndOldImages,
                });
    }
    let mut event = EventRecord::default();
    event.aws_region = record
        .aws_region
        .clone()
        .unwrap_or_else(|| region.to_owned());
    event.change = change;
    event.event_id = record.event_id.clone().unwrap_or_default();
    event.event_name = record
        .event_name
        .as_ref()
        .map(|name| name.as_str().to_owned())
        .unwrap_or_default();
    event.event_source = Some(
        record
            .event_source
            .clone()
            .unwrap_or_else(|| "aws:dynamodb".to_owned()),
    );
    event.event_version = Some(
        record
            .event_version
            .clone()
            .unwrap_or_else(|| "1.1".to_owned()),
    );
    event.event_source_arn = Some(stream_arn.to_owned());
    event.user_identity = record.user_identity.as_ref().map(|identity| {
        let mut user = UserIdentity::default();
        user.type_ = identity.r#type.clone().unwrap_or_default();
        user.principal_id = identity.principal_id.clone().unwrap_or_default();
        user
    });
    event
}
