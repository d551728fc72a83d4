//! The stream poller: what Lambda's event-source mapping does for the
//! SessionHistory stream. It reads shards through the real
//! `aws-sdk-dynamodbstreams` client, turns records into `aws_lambda_events`
//! DynamoDB events, drops what the filter patterns exclude, and invokes the
//! stream processor in-process. A batch with failures is retried from its
//! lowest failed sequence number, a bounded number of times, then the
//! failing records are skipped with an error log.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord, StreamViewType, UserIdentity};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use chrono::{DateTime, Utc};
use handlers::Chat;
use handlers::metric;
use serde::{Deserialize, Serialize};
use stream_processor::Processor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use handlers::error::AwsError;

use crate::aws::LOCAL_REGION;
use crate::config::StreamConfig;
use crate::error::StartError;
use crate::filter::Filter;

const STREAMS: &str = "DynamoDB Streams";

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

/// The deployed event-source mapping's batch settings, the one home of
/// both its template (infra/serverless.yml) and this poller's defaults, so
/// a local run batches, and so announces presence, as AWS would.
pub const STREAM_MAPPING: &str = include_str!("../../infra/stream-mapping.json");

/// How records are gathered into one invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamMapping {
    /// Lambda's `BatchSize`: the most records per invocation.
    pub batch_size: i32,
    /// Lambda's `MaximumBatchingWindowInSeconds`: how long records are
    /// gathered before a batch that is not full is delivered.
    pub batch_window: Duration,
}

impl StreamMapping {
    /// infra/stream-mapping.json, with `config`'s overrides.
    pub fn of(config: &StreamConfig) -> Result<Self, String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Deployed {
            batch_size: i32,
            batch_window: u64,
        }
        let deployed: Deployed = serde_json::from_str(STREAM_MAPPING)
            .map_err(|error| format!("infra/stream-mapping.json: {error}"))?;
        Ok(Self {
            batch_size: config.batch_size.unwrap_or(deployed.batch_size),
            batch_window: config
                .batch_window
                .unwrap_or(Duration::from_secs(deployed.batch_window)),
        })
    }
}

pub struct Poller {
    client: Client,
    stream_arn: String,
    processor: Processor,
    config: StreamConfig,
    mapping: StreamMapping,
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
        let mapping = StreamMapping::of(&config).map_err(StartError::Stream)?;
        let shards = checkpoint_path
            .as_deref()
            .map(|path| Checkpoint::resume(path, &stream_arn))
            .unwrap_or_default();
        Ok(Self {
            client,
            stream_arn,
            processor: Processor::new(chat),
            config,
            mapping,
            filter,
            checkpoint_path,
            shards,
        })
    }

    /// Polls until `stop` is cancelled, then drains what is left. While the
    /// stream cannot be read, polls further and further apart (see
    /// [`pause_after_failures`]); a failed poll consumes nothing, so the
    /// next good one resumes where the stream was left.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut failures = 0;
        loop {
            let pause = match self.poll_once().await {
                Ok(0) => {
                    failures = 0;
                    self.config.poll_interval
                }
                Ok(_) => {
                    failures = 0;
                    Duration::ZERO
                }
                Err(failure) => {
                    failures += 1;
                    let pause = pause_after_failures(self.config.poll_interval, failures);
                    warn!(
                        error = %failure,
                        failures,
                        next_poll_ms = pause.as_millis() as u64,
                        "stream poll failed"
                    );
                    pause
                }
            };
            if pause.is_zero() {
                if stop.is_cancelled() {
                    break;
                }
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
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
        for shard_id in ready_shards(&self.shards) {
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
                .map_err(|error| AwsError::new(STREAMS, "DescribeStream", &error).to_string())?;
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

    /// Reads a batch from a shard, as the event-source mapping gathers one
    /// (up to the batch size, for up to the batch window), and delivers it.
    async fn read_shard(&mut self, shard_id: &str) -> Result<usize, String> {
        let iterator = match self
            .shards
            .get(shard_id)
            .and_then(|shard| shard.iterator.clone())
        {
            Some(iterator) => iterator,
            None => self.new_iterator(shard_id).await?,
        };
        let gathering = tokio::time::Instant::now();
        let mut records: Vec<Record> = Vec::new();
        let mut next = Some(iterator);
        while let Some(iterator) = next.take() {
            let room_left = self.mapping.batch_size - records.len() as i32;
            let output = match self
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(room_left)
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
                    return Err(AwsError::new(STREAMS, "GetRecords", &error).to_string());
                }
            };
            records.extend(output.records.unwrap_or_default());
            next = output.next_shard_iterator;
            let window_left = self
                .mapping
                .batch_window
                .saturating_sub(gathering.elapsed());
            if records.is_empty()
                || records.len() as i32 >= self.mapping.batch_size
                || window_left.is_zero()
                || next.is_none()
            {
                break;
            }
            tokio::time::sleep(self.config.poll_interval.min(window_left)).await;
        }
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
            shard.finished = next.is_none();
            shard.iterator = next;
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
        let output = request
            .send()
            .await
            .map_err(|error| AwsError::new(STREAMS, "GetShardIterator", &error).to_string())?;
        output
            .shard_iterator
            .ok_or_else(|| format!("GetShardIterator gave no iterator for {shard_id}"))
    }

    /// Invokes the stream processor with the records the filter lets
    /// through, retrying failures as the event-source mapping does.
    async fn deliver(&self, records: &[Record]) {
        let pending: Vec<EventRecord> = records
            .iter()
            .map(|record| to_event_record(record, &self.stream_arn, LOCAL_REGION))
            .filter(|record| {
                serde_json::to_value(record).is_ok_and(|json| self.filter.matches(&json))
            })
            .collect();
        if let Some(newest) = pending.last() {
            let age = Utc::now() - newest.change.approximate_creation_date_time;
            metrics::gauge!(metric::STREAM_ITERATOR_AGE).set(age.num_milliseconds().max(0) as f64);
        }
        let pause = self.config.poll_interval.min(Duration::from_millis(500));
        let outcome = deliver_with_retries(pending, self.config.max_retries, pause, |batch| {
            invoke(&self.processor, batch)
        })
        .await;
        if let Delivered::Skipping { retries, skipped } = outcome {
            error!(
                retries,
                skipped = ?skipped,
                "gave up on stream records after bounded retries; the records after them were delivered"
            );
        }
    }

    fn save_checkpoint(&self) {
        if let Some(path) = &self.checkpoint_path {
            Checkpoint::of(&self.stream_arn, &self.shards).save(path);
        }
    }
}

/// The longest pause between polls of a stream that cannot be read.
const MAX_FAILURE_PAUSE: Duration = Duration::from_secs(5);

/// The pause after `failures` failed polls in a row: the poll interval,
/// doubled for each failure, at most [`MAX_FAILURE_PAUSE`] (or the poll
/// interval, if longer), so an endpoint that is down is not hammered. Each
/// call of a poll is already retried by the SDK, with jittered backoff.
fn pause_after_failures(poll_interval: Duration, failures: u32) -> Duration {
    poll_interval
        .saturating_mul(2_u32.saturating_pow(failures))
        .min(MAX_FAILURE_PAUSE)
        .max(poll_interval)
}

/// Shards to read now, in id order: unfinished ones whose parent (if it is
/// still known) has been read to the end, so a key's records stay in order.
fn ready_shards(shards: &BTreeMap<String, Shard>) -> Vec<String> {
    shards
        .iter()
        .filter(|(_, shard)| !shard.finished)
        .filter(|(_, shard)| {
            shard
                .parent
                .as_ref()
                .and_then(|parent| shards.get(parent))
                .is_none_or(|parent| parent.finished)
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// One stream-processor invocation, as Lambda makes it; the sequence numbers
/// it reported as failed (`None`: an unidentified failure, which fails the
/// whole batch).
async fn invoke(processor: &Processor, records: Vec<EventRecord>) -> Vec<Option<String>> {
    let mut event = Event::default();
    event.records = records;
    processor
        .handle(event)
        .await
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier)
        .collect()
}

/// How a batch ended.
#[derive(Debug, PartialEq, Eq)]
enum Delivered {
    /// Every record was processed, after this many retries in all.
    All { retries: u32 },
    /// These records still failed after the bounded retries each and were
    /// skipped; every other record was processed.
    Skipping { retries: u32, skipped: Vec<String> },
}

/// Invokes `invoke` with `pending` until no record fails, each retry starting
/// from the lowest failed sequence number. A record that still fails after
/// `max_retries` retries is skipped, and the records after it go on (as
/// Lambda's bisecting isolates a poison record), so one bad record delays
/// the others by its retries and never drops them.
async fn deliver_with_retries<F, Fut>(
    mut pending: Vec<EventRecord>,
    max_retries: u32,
    pause: Duration,
    mut invoke: F,
) -> Delivered
where
    F: FnMut(Vec<EventRecord>) -> Fut,
    Fut: Future<Output = Vec<Option<String>>>,
{
    let mut total = 0;
    let mut retries = 0;
    let mut skipped = Vec::new();
    while !pending.is_empty() {
        let failures = invoke(pending.clone()).await;
        if failures.is_empty() {
            break;
        }
        let from = retry_from(&pending, &failures);
        if retries >= max_retries {
            // Give up on the first failing record only.
            let poison = pending.drain(..=from.min(pending.len() - 1)).next_back();
            skipped.extend(poison.and_then(|record| record.change.sequence_number));
            retries = 0;
            continue;
        }
        retries += 1;
        total += 1;
        info!(
            retries,
            from_record = from,
            "retrying stream batch from its first failure"
        );
        pending.drain(..from);
        tokio::time::sleep(pause).await;
    }
    if skipped.is_empty() {
        Delivered::All { retries: total }
    } else {
        Delivered::Skipping {
            retries: total,
            skipped,
        }
    }
}

/// Where Lambda resumes a batch with failures: the position of the lowest
/// failed sequence number; a missing or unknown identifier fails the whole
/// batch (position 0).
fn retry_from(pending: &[EventRecord], failures: &[Option<String>]) -> usize {
    failures
        .iter()
        .map(|failure| {
            failure.as_deref().and_then(|sequence| {
                pending
                    .iter()
                    .position(|record| record.change.sequence_number.as_deref() == Some(sequence))
            })
        })
        .try_fold(usize::MAX, |lowest, index| {
            index.map(|index| lowest.min(index))
        })
        .unwrap_or(0)
        .min(pending.len())
}

impl Checkpoint {
    fn of(stream_arn: &str, shards: &BTreeMap<String, Shard>) -> Self {
        Self {
            stream_arn: stream_arn.to_owned(),
            shards: shards
                .iter()
                .filter_map(|(id, shard)| Some((id.clone(), shard.last_sequence.clone()?)))
                .collect(),
        }
    }

    /// Written to a temporary file first, so a crash never leaves half a
    /// checkpoint.
    fn save(&self, path: &Path) {
        let write = || -> std::io::Result<()> {
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, serde_json::to_vec_pretty(self)?)?;
            std::fs::rename(&temporary, path)
        };
        if let Err(failure) = write() {
            warn!(path = %path.display(), error = %failure, "could not save the stream checkpoint");
        }
    }

    /// The shards to resume, each after its last processed record; nothing
    /// when there is no checkpoint, it is unreadable, or it is of another
    /// stream (the table was re-created).
    fn resume(path: &Path, stream_arn: &str) -> BTreeMap<String, Shard> {
        let Ok(bytes) = std::fs::read(path) else {
            return BTreeMap::new();
        };
        match serde_json::from_slice::<Self>(&bytes) {
            Ok(checkpoint) if checkpoint.stream_arn == stream_arn => checkpoint
                .shards
                .into_iter()
                .map(|(id, sequence)| {
                    let shard = Shard {
                        last_sequence: Some(sequence),
                        ..Shard::default()
                    };
                    (id, shard)
                })
                .collect(),
            Ok(_) => BTreeMap::new(),
            Err(failure) => {
                warn!(path = %path.display(), error = %failure, "ignoring an unreadable stream checkpoint");
                BTreeMap::new()
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn records(count: usize) -> Vec<EventRecord> {
        (0..count)
            .map(|index| {
                let mut record = EventRecord::default();
                record.change.sequence_number = Some(format!("{}", 100 + index));
                record
            })
            .collect()
    }

    fn sequences(batch: &[EventRecord]) -> Vec<String> {
        batch
            .iter()
            .filter_map(|record| record.change.sequence_number.clone())
            .collect()
    }

    #[test]
    fn retries_start_at_the_lowest_failed_sequence_number() {
        let pending = records(5);
        let failed = |numbers: &[&str]| -> Vec<Option<String>> {
            numbers.iter().map(|n| Some((*n).to_owned())).collect()
        };
        assert_eq!(retry_from(&pending, &failed(&["103", "101"])), 1);
        assert_eq!(retry_from(&pending, &failed(&["104"])), 4);
        assert_eq!(retry_from(&pending, &failed(&["999"])), 0, "unknown: all");
        assert_eq!(retry_from(&pending, &[None]), 0, "missing: all");
        assert_eq!(retry_from(&pending, &[Some("102".into()), None]), 0);
    }

    #[tokio::test]
    async fn a_batch_is_retried_from_its_first_failure_until_it_passes() {
        let calls = RefCell::new(Vec::new());
        let outcome = deliver_with_retries(records(4), 3, Duration::ZERO, |batch| {
            calls.borrow_mut().push(sequences(&batch));
            let failures = if calls.borrow().len() == 1 {
                vec![Some("102".to_owned())]
            } else {
                vec![]
            };
            async move { failures }
        })
        .await;
        assert_eq!(outcome, Delivered::All { retries: 1 });
        assert_eq!(
            calls.into_inner(),
            [vec!["100", "101", "102", "103"], vec!["102", "103"]]
        );
    }

    #[tokio::test]
    async fn a_record_that_keeps_failing_is_skipped_after_the_bounded_retries_and_the_rest_go_on() {
        let calls = std::cell::RefCell::new(Vec::new());
        let outcome = deliver_with_retries(records(4), 2, Duration::ZERO, |batch| {
            let seen = sequences(&batch);
            calls.borrow_mut().push(seen.clone());
            // 101 never decodes; the processor stops there.
            let failures = if seen.contains(&"101".to_owned()) {
                vec![Some("101".to_owned())]
            } else {
                vec![]
            };
            async move { failures }
        })
        .await;
        assert_eq!(
            outcome,
            Delivered::Skipping {
                retries: 2,
                skipped: vec!["101".to_owned()]
            }
        );
        assert_eq!(
            calls.into_inner(),
            [
                vec!["100", "101", "102", "103"],
                vec!["101", "102", "103"],
                vec!["101", "102", "103"],
                vec!["102", "103"],
            ],
            "the first try, two retries from 101, then the rest without it"
        );
    }

    #[test]
    fn failed_polls_back_off_doubling_up_to_a_bound() {
        let interval = Duration::from_millis(250);
        let pauses: Vec<u128> = (1..=6)
            .map(|failures| pause_after_failures(interval, failures).as_millis())
            .collect();
        assert_eq!(pauses, [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(
            pause_after_failures(interval, u32::MAX),
            MAX_FAILURE_PAUSE,
            "no overflow"
        );
        let slow = Duration::from_secs(30);
        assert_eq!(
            pause_after_failures(slow, 3),
            slow,
            "never below the interval"
        );
    }

    #[test]
    fn a_child_shard_waits_until_its_parent_is_read_to_the_end() {
        let mut shards = BTreeMap::new();
        shards.insert("shard-a-parent".to_owned(), Shard::default());
        shards.insert(
            "shard-b-child".to_owned(),
            Shard {
                parent: Some("shard-a-parent".to_owned()),
                ..Shard::default()
            },
        );
        shards.insert(
            "shard-c-orphan".to_owned(),
            Shard {
                parent: Some("trimmed-long-ago".to_owned()),
                ..Shard::default()
            },
        );
        assert_eq!(ready_shards(&shards), ["shard-a-parent", "shard-c-orphan"]);
        if let Some(parent) = shards.get_mut("shard-a-parent") {
            parent.finished = true;
        }
        assert_eq!(ready_shards(&shards), ["shard-b-child", "shard-c-orphan"]);
    }

    #[test]
    fn a_checkpoint_resumes_each_shard_after_its_last_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("checkpoint.json");
        let mut shards = BTreeMap::new();
        shards.insert(
            "shard-1".to_owned(),
            Shard {
                last_sequence: Some("105".to_owned()),
                finished: true,
                ..Shard::default()
            },
        );
        shards.insert("shard-2".to_owned(), Shard::default());
        Checkpoint::of("arn:stream/1", &shards).save(&path);

        let resumed = Checkpoint::resume(&path, "arn:stream/1");
        assert_eq!(
            resumed.len(),
            1,
            "a shard with nothing read has no checkpoint"
        );
        assert_eq!(resumed["shard-1"].last_sequence.as_deref(), Some("105"));
        assert!(
            !resumed["shard-1"].finished,
            "read again from the checkpoint"
        );

        assert!(
            Checkpoint::resume(&path, "arn:stream/2").is_empty(),
            "another stream"
        );
        std::fs::write(&path, "{not json").expect("write");
        assert!(
            Checkpoint::resume(&path, "arn:stream/1").is_empty(),
            "unreadable"
        );
        assert!(Checkpoint::resume(&dir.path().join("none"), "arn:stream/1").is_empty());
    }
}
