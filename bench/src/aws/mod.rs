//! `chat-bench aws`: the chat at AWS's scale, simulated with the real code.
//! The real `sendmessage`, fan-out workers and stream processor run in this
//! process against the embedded DynamoDB engine (every call counted on its
//! way: [`calls`]), the fan-out workers through the real Lambda client and
//! the local stack's Lambda API (at most `--lambda-concurrency` at once),
//! and posts go to a Management API sink with API Gateway's round trip and
//! account-level rate ([`sink`]). Recipients are planted rows, no sockets.
//! docs/scale.md states the assumptions and the figures; docs/cost.md the
//! prices ([`cost`]).

mod calls;
mod cost;
mod sink;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_smithy_runtime_api::client::http::{
    HttpConnectorSettings, SharedHttpConnector, http_client_fn,
};
use chat_local::in_process::InProcess;
use chat_local::lambda_api::{FANOUT_FUNCTION, LambdaApi};
use chat_local::plain_http::PlainHttp;
use futures::{StreamExt, TryStreamExt, stream};
use handlers::fanout::Workers;
use handlers::records::ActiveConnection;
use handlers::time::Timestamp;
use handlers::{Chat, ChatLimits, Management, Room, Store, Tables};
use serde::Serialize;

use crate::lambda::{events, functions};
use crate::stats::percentile;

pub use cost::Prices;

#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct Plan {
    /// Rooms to send into, by size: each gets --messages messages.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100,1000,10000,100000"
    )]
    pub rooms: Vec<usize>,
    /// Messages into each room; the figures are per message.
    #[arg(long, default_value_t = 3)]
    pub messages: usize,
    /// A PostToConnection's round trip inside a region.
    #[arg(long, default_value_t = 20)]
    pub post_latency_ms: u64,
    /// API Gateway's account-level throttle, shared by every request of the
    /// account in the region: requests a second, and at once.
    #[arg(long, default_value_t = 10_000)]
    pub account_rate: u32,
    #[arg(long, default_value_t = 5_000)]
    pub account_burst: u32,
    /// Fan-out workers Lambda runs at once (the account's concurrency, or
    /// the function's reserved concurrency).
    #[arg(long, default_value_t = 1000)]
    pub lambda_concurrency: usize,
    /// The join storm: this many join a room of --storm-room members, at
    /// --storm-rate a second (API Gateway's default for new connections).
    #[arg(long, default_value_t = 1000)]
    pub storm_joins: usize,
    #[arg(long, default_value_t = 1000)]
    pub storm_room: usize,
    #[arg(long, default_value_t = 500)]
    pub storm_rate: usize,
    /// The page's heartbeat, for the cost of an idle connection-hour.
    #[arg(long, default_value_t = handlers::limits::HEARTBEAT_INTERVAL.as_secs())]
    pub heartbeat_secs: u64,
    #[command(flatten)]
    pub prices: Prices,
}

/// One message into a room, averaged over the run's messages.
#[derive(Clone, Debug, Serialize)]
pub struct MessageRun {
    pub room: usize,
    /// From the `sendmessage` invocation's start to the last post answered.
    pub last_post: Duration,
    /// `sendmessage`'s own duration.
    pub handler: Duration,
    /// Chat frames each member got: the least and the most.
    pub posts_per_member: (u32, u32),
    /// Posts API Gateway throttled (429), tried again or not.
    pub throttled: usize,
    /// Members that never got it.
    pub missed: usize,
    pub workers: usize,
    pub worker_p50: Duration,
    pub worker_max: Duration,
    pub calls: calls::Tally,
    /// The most room-index entries one shard key gave up.
    pub max_read_per_key: u64,
    pub usage: cost::Usage,
}

/// The join storm.
#[derive(Clone, Debug, Serialize)]
pub struct StormRun {
    pub joins: usize,
    pub room: usize,
    pub took: Duration,
    pub batches: usize,
    /// Presence frames a member already there got: the most.
    pub most_frames: usize,
    /// The shortest time between two of one member's presence frames.
    pub closest: Option<Duration>,
    pub welcomes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub plan: Plan,
    pub messages: Vec<MessageRun>,
    pub storm: StormRun,
    /// One idle connection-hour.
    pub idle_hour: cost::Usage,
}

impl Outcome {
    pub fn lost_or_duplicated(&self) -> bool {
        self.messages
            .iter()
            .any(|run| run.missed > 0 || run.posts_per_member.1 > 1)
    }
}

const PREFIX: &str = "sim-";

struct World {
    _engine: chat_local::EmbeddedDynamo,
    seeder: aws_sdk_dynamodb::Client,
    tables: Tables,
    chat: Chat,
    counting: calls::Counting,
    sink: sink::Sink,
    lambda: LambdaApi,
    transport: InProcess,
}

impl Drop for World {
    fn drop(&mut self) {
        self.transport.stop();
    }
}

async fn world(plan: &Plan) -> anyhow::Result<World> {
    let engine = chat_local::EmbeddedDynamo::start(None, "127.0.0.1:0".parse()?)
        .await
        .context("the embedded DynamoDB")?;
    let sdk = chat_local::aws::local_sdk_config();
    let tables = Tables::with_prefix(PREFIX);
    let seeder = chat_local::aws::dynamodb_client(&sdk, &engine.endpoint);
    chat_local::tables::ensure(&seeder, &tables)
        .await
        .context("creating the tables")?;
    let counting = calls::Counting::new(
        PlainHttp.connector(&HttpConnectorSettings::default()),
        PREFIX,
    );
    let counted = SharedHttpConnector::new(counting.clone());
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        handlers::store::dynamodb_config(&sdk)
            .endpoint_url(&engine.endpoint)
            .http_client(http_client_fn(move |_, _| counted.clone()))
            .build(),
    );
    let transport = InProcess::default();
    let in_process = SharedHttpConnector::new(transport.clone());
    let chat = Chat {
        store: Store::new(dynamo, tables.clone()),
        management: Management::with_connector(
            &sdk,
            &"http://127.0.0.1:9/sim".parse()?,
            in_process.clone(),
        ),
        limits: ChatLimits {
            message_rate: None,
            ..ChatLimits::default()
        },
        retention: handlers::Retention::default(),
        access: handlers::access::RoomAccess::default(),
        workers: Some(Workers::new(
            chat_local::aws::lambda_client(&sdk, "http://127.0.0.1:9", in_process),
            FANOUT_FUNCTION.to_owned(),
        )),
    };
    let lambda = LambdaApi::new(chat.clone(), plan.lambda_concurrency).recording_durations();
    let sink = sink::Sink::new(
        Duration::from_millis(plan.post_latency_ms),
        plan.account_rate,
        plan.account_burst,
    );
    transport.serve(sink.router().merge(lambda.router()));
    Ok(World {
        _engine: engine,
        seeder,
        tables,
        chat,
        counting,
        sink,
        lambda,
        transport,
    })
}

/// Writes `count` connection rows into `room` (25 a call, 8 calls at
/// once), uncounted; their ids.
async fn plant(world: &World, room: &Room, count: usize, tag: &str) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = (0..count).map(|i| format!("{tag}{i:07}AAA=")).collect();
    let table = &world.tables.active_connections;
    stream::iter(ids.chunks(25))
        .map(|chunk| async move {
            let writes = chunk
                .iter()
                .map(|id| {
                    let row = ActiveConnection::new(id.clone(), Timestamp::now(), room.clone());
                    let put = PutRequest::builder()
                        .set_item(Some(serde_dynamo::to_item(row)?))
                        .build()?;
                    anyhow::Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut pending = writes;
            while !pending.is_empty() {
                let output = world
                    .seeder
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await?;
                pending = output
                    .unprocessed_items
                    .and_then(|mut items| items.remove(table))
                    .unwrap_or_default();
            }
            anyhow::Ok(())
        })
        .buffer_unordered(8)
        .try_collect::<()>()
        .await
        .context("planting the room")?;
    Ok(ids)
}

pub async fn measure(plan: &Plan) -> anyhow::Result<Outcome> {
    if plan.rooms.is_empty() || plan.messages == 0 {
        bail!("--rooms and --messages must name at least one room and one message");
    }
    let world = world(plan).await?;
    let mut messages = Vec::new();
    for &size in &plan.rooms {
        eprintln!("aws: a room of {size}");
        messages.push(message_run(&world, size, plan.messages).await?);
    }
    eprintln!(
        "aws: {} joining a room of {}",
        plan.storm_joins, plan.storm_room
    );
    let storm = storm(&world, plan).await?;
    let heartbeat_ms = messages
        .first()
        .map_or(2.0, |run| run.handler.as_secs_f64() * 1000.0);
    let memory = functions::named("sendmessage")?.memory_mb;
    Ok(Outcome {
        plan: plan.clone(),
        messages,
        storm,
        idle_hour: cost::idle_hour(plan.heartbeat_secs, heartbeat_ms.min(5.0), memory),
    })
}

/// `sendmessage` from the room's first member, `messages` times.
async fn message_run(world: &World, size: usize, messages: usize) -> anyhow::Result<MessageRun> {
    let room = Room::parse(&format!("room{size}"))?;
    let ids = plant(world, &room, size, &format!("r{size}m")).await?;
    let sender_memory = f64::from(functions::named("sendmessage")?.memory_mb) / 1024.0;
    let worker_memory = f64::from(functions::named("fanout")?.memory_mb) / 1024.0;
    world.counting.take();
    world.sink.take();
    world.lambda.take_durations();
    let invoked_before = world.lambda.invocations();
    let mut counts: HashMap<String, u32> = HashMap::new();
    let (mut last_post, mut handler, mut throttled, mut posts) =
        (Duration::ZERO, Duration::ZERO, 0, 0);
    let mut durations = Vec::new();
    for sequence in 0..messages {
        let event: ApiGatewayWebsocketProxyRequest = serde_json::from_str(&events::message(
            "sendmessage",
            &ids[0],
            r#"{"action":"sendmessage","message":"hello, everyone"}"#,
            sequence as u64,
        )?)?;
        let started = Instant::now();
        handlers::sendmessage(&world.chat, event)
            .await
            .map_err(|error| anyhow::anyhow!("sendmessage failed: {error}"))?;
        handler += started.elapsed();
        world.lambda.idle().await;
        let tally = world.sink.take();
        last_post += tally.last.map_or(Duration::ZERO, |at| at - started);
        throttled += tally.throttled;
        posts += tally.messages.values().sum::<u32>() as usize + tally.other;
        for (id, got) in tally.messages {
            *counts.entry(id).or_default() += got;
        }
        durations.extend(world.lambda.take_durations());
    }
    let per_member: Vec<u32> = ids
        .iter()
        .map(|id| counts.get(id).copied().unwrap_or(0))
        .collect();
    let missed = per_member
        .iter()
        .filter(|&&got| (got as usize) < messages)
        .count();
    let least = per_member.iter().copied().min().unwrap_or(0);
    let most = per_member.iter().copied().max().unwrap_or(0);
    let calls = world.counting.take();
    let workers = world.lambda.invocations() - invoked_before;
    let n = messages as f64;
    let worker_seconds: f64 = durations.iter().map(Duration::as_secs_f64).sum();
    let usage = cost::Usage {
        api_messages: 1.0 + posts as f64 / n,
        connection_minutes: 0.0,
        lambda_requests: 1.0 + workers as f64 / n,
        gb_seconds: (handler.as_secs_f64() * sender_memory + worker_seconds * worker_memory) / n,
        read_units: cost::read_units(&calls) / n,
        write_units: cost::write_units(&calls) / n,
    };
    let mut sorted: Vec<f64> = durations.iter().map(Duration::as_secs_f64).collect();
    sorted.sort_by(f64::total_cmp);
    Ok(MessageRun {
        room: size,
        last_post: last_post / messages as u32,
        handler: handler / messages as u32,
        posts_per_member: (least / messages as u32, most.div_ceil(messages as u32)),
        throttled: throttled / messages,
        missed,
        workers: workers / messages,
        worker_p50: Duration::from_secs_f64(percentile(&sorted, 0.5)),
        worker_max: Duration::from_secs_f64(sorted.last().copied().unwrap_or(0.0)),
        max_read_per_key: calls.read_per_key.values().copied().max().unwrap_or(0) / messages as u64,
        calls,
        usage,
    })
}

/// The stream mapping's polls of one shard: about four a second.
const POLL: Duration = Duration::from_millis(250);

/// `storm_joins` newcomers join a room of `storm_room` at `storm_rate` a
/// second; the SessionHistory stream's records reach the real stream
/// processor as the mapping would deliver them (one shard, a poll every
/// 250 ms, up to 1000 records a batch, batches in turn).
async fn storm(world: &World, plan: &Plan) -> anyhow::Result<StormRun> {
    let room = Room::parse("storm")?;
    let members = plant(world, &room, plan.storm_room, "stormm").await?;
    let newcomers: Vec<String> = (0..plan.storm_joins)
        .map(|i| format!("stormj{i:07}AAA="))
        .collect();
    world.sink.take();
    let processor = stream_processor::Processor::new(world.chat.clone());
    let started = Instant::now();
    let per_join = Duration::from_secs_f64(1.0 / plan.storm_rate.max(1) as f64);
    let mut joined = 0;
    let mut batches = 0;
    let mut pending: Vec<EventRecord> = Vec::new();
    let mut next_poll = started;
    while joined < newcomers.len() || !pending.is_empty() {
        // The joins API Gateway admitted by now: their rows, their records.
        let due = ((started.elapsed().as_secs_f64() / per_join.as_secs_f64()) as usize + 1)
            .min(newcomers.len());
        if due > joined {
            let admitted = &newcomers[joined..due];
            plant_ids(world, &room, admitted).await?;
            for (offset, id) in admitted.iter().enumerate() {
                pending.push(opened(id, &room, (joined + offset) as u64)?);
            }
            joined = due;
        }
        tokio::time::sleep_until(next_poll.into()).await;
        next_poll = Instant::now() + POLL;
        if pending.is_empty() {
            continue;
        }
        let batch: Vec<EventRecord> = pending.drain(..pending.len().min(1000)).collect();
        let mut event = Event::default();
        event.records = batch;
        processor.handle(event).await;
        batches += 1;
    }
    let took = started.elapsed();
    let tally = world.sink.take();
    let frames = |id: &String| tally.presence.get(id).map_or(0, Vec::len);
    let closest = members
        .iter()
        .filter_map(|id| tally.presence.get(id))
        .flat_map(|times| times.windows(2).map(|pair| pair[1] - pair[0]))
        .min();
    Ok(StormRun {
        joins: plan.storm_joins,
        room: plan.storm_room,
        took,
        batches,
        most_frames: members.iter().map(frames).max().unwrap_or(0),
        closest,
        welcomes: tally.other,
    })
}

/// Rows for these ids, as their `$connect`s write them.
async fn plant_ids(world: &World, room: &Room, ids: &[String]) -> anyhow::Result<()> {
    for id in ids {
        let row = ActiveConnection::new(id.clone(), Timestamp::now(), room.clone());
        world
            .seeder
            .put_item()
            .table_name(&world.tables.active_connections)
            .set_item(Some(serde_dynamo::to_item(row)?))
            .send()
            .await?;
    }
    Ok(())
}

/// The INSERT of a session that just opened.
fn opened(id: &str, room: &Room, sequence: u64) -> anyhow::Result<EventRecord> {
    let connected_at = Timestamp::now().to_string();
    let batch: Event = serde_json::from_str(&events::session_opened(
        id,
        &connected_at,
        room.as_str(),
        sequence,
    )?)?;
    batch.records.into_iter().next().context("an INSERT record")
}

/// The summary: a table of the messages, the storm, and the costs.
pub fn render(out: &mut String, run: &Outcome) {
    let plan = &run.plan;
    out.push_str(&format!(
        "\nAWS simulation: posts {} ms, account {} requests/s (burst {}), Lambda concurrency {}\n",
        plan.post_latency_ms, plan.account_rate, plan.account_burst, plan.lambda_concurrency
    ));
    out.push_str("room      last post  sendmessage  posts/member  missed  429s     workers  worker p50/max     Queries  max entries/key  RRU     WRU\n");
    for m in &run.messages {
        out.push_str(&format!(
            "{:<9} {:>7.0} ms {:>8.0} ms  {}..{}          {:<7} {:<8} {:<8} {:>5.0}/{:<5.0} ms  {:<8} {:<16} {:<7.1} {:.1}\n",
            m.room,
            m.last_post.as_secs_f64() * 1000.0,
            m.handler.as_secs_f64() * 1000.0,
            m.posts_per_member.0,
            m.posts_per_member.1,
            m.missed,
            m.throttled,
            m.workers,
            m.worker_p50.as_secs_f64() * 1000.0,
            m.worker_max.as_secs_f64() * 1000.0,
            m.calls.count("Query", "room-shard-index") / plan.messages as u64,
            m.max_read_per_key,
            m.usage.read_units,
            m.usage.write_units,
        ));
    }
    let s = &run.storm;
    out.push_str(&format!(
        "join storm: {} into a room of {} in {:.1} s, {} batches: {} welcomes; a member got at most {} presence frames, never closer than {}\n",
        s.joins,
        s.room,
        s.took.as_secs_f64(),
        s.batches,
        s.welcomes,
        s.most_frames,
        s.closest
            .map_or("-".to_owned(), |gap| format!("{:.2} s apart", gap.as_secs_f64())),
    ));
    out.push_str(&format!(
        "cost (prices of {}, us-east-1, overridable), USD per 1,000,000 messages:\nroom      API Gateway  Lambda    DynamoDB  total\n",
        cost::PRICES_CHECKED
    ));
    for m in &run.messages {
        let million = m.usage.scaled(1e6);
        let api = cost::Usage {
            api_messages: million.api_messages,
            ..cost::Usage::default()
        };
        let lambda = cost::Usage {
            lambda_requests: million.lambda_requests,
            gb_seconds: million.gb_seconds,
            ..cost::Usage::default()
        };
        let dynamo = cost::Usage {
            read_units: million.read_units,
            write_units: million.write_units,
            ..cost::Usage::default()
        };
        out.push_str(&format!(
            "{:<9} {:>11.2}  {:>8.2}  {:>8.2}  {:>9.2}\n",
            m.room,
            api.dollars(&plan.prices),
            lambda.dollars(&plan.prices),
            dynamo.dollars(&plan.prices),
            million.dollars(&plan.prices),
        ));
    }
    out.push_str(&format!(
        "idle connections, USD per 1,000 connection-hours (heartbeat every {} s): {:.4}\n",
        plan.heartbeat_secs,
        run.idle_hour.scaled(1000.0).dollars(&plan.prices)
    ));
}
