//! A Management API sink, as API Gateway's would answer the chat's posts at
//! scale: each `PostToConnection` answered after a round trip
//! (`--post-latency-ms`), within the account's request rate (a token
//! bucket: `--account-rate` a second, `--account-burst` at once; a post
//! beyond it is answered 429 `LimitExceededException` at once, as API
//! Gateway throttles). It counts each connection's chat frames, and when
//! the last post was answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// The rate API Gateway admits, as a token bucket.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Default)]
pub struct Tally {
    /// Chat frames (`"type":"message"`) per connection.
    pub messages: HashMap<String, u32>,
    /// `presence` frames per connection, with when each was answered.
    pub presence: HashMap<String, Vec<Instant>>,
    /// Every other frame (welcomes, errors).
    pub other: usize,
    /// Posts answered 429.
    pub throttled: usize,
    /// When the last post was answered 200.
    pub last: Option<Instant>,
}

#[derive(Clone, Debug)]
pub struct Sink {
    latency: Duration,
    bucket: Arc<Mutex<Bucket>>,
    tally: Arc<Mutex<Tally>>,
}

impl Sink {
    pub fn new(latency: Duration, rate: u32, burst: u32) -> Self {
        Self {
            latency,
            bucket: Arc::new(Mutex::new(Bucket {
                rate: f64::from(rate),
                burst: f64::from(burst),
                tokens: f64::from(burst),
                at: Instant::now(),
            })),
            tally: Arc::default(),
        }
    }

    /// `POST /{stage}/@connections/{id}`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{stage}/@connections/{id}", post(answer))
            .with_state(self.clone())
    }

    /// What was posted since the last call.
    pub fn take(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

async fn answer(
    State(sink): State<Sink>,
    Path((_stage, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let admitted = sink
        .bucket
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if !admitted {
        sink.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .throttled += 1;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("x-amzn-ErrorType", "LimitExceededException")],
            r#"{"message":"Too Many Requests"}"#,
        )
            .into_response();
    }
    tokio::time::sleep(sink.latency).await;
    let mut tally = sink.tally.lock().unwrap_or_else(PoisonError::into_inner);
    if body.starts_with(br#"{"type":"message""#) {
        *tally.messages.entry(id).or_default() += 1;
    } else if body.starts_with(br#"{"type":"presence""#) {
        tally.presence.entry(id).or_default().push(Instant::now());
    } else {
        tally.other += 1;
    }
    tally.last = Some(Instant::now());
    StatusCode::OK.into_response()
}
