//! Counts the chat's DynamoDB calls on their way to the engine: by
//! operation and table (or index), and, for the room index, the entries
//! each shard key gave up, from the answers' `ScannedCount`. The price of
//! each in request units is [`super::cost`]'s.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally {
    /// Calls of each kind.
    pub calls: BTreeMap<String, u64>,
    /// Index entries read through the room index, per shard key.
    pub read_per_key: BTreeMap<String, u64>,
    /// Conditional writes refused (they are charged all the same).
    pub refused: u64,
}

impl Tally {
    pub fn count(&self, operation: &str, target: &str) -> u64 {
        self.calls
            .get(&format!("{operation} {target}"))
            .copied()
            .unwrap_or(0)
    }

    /// Every call of `operation`, whatever its table.
    pub fn operation(&self, operation: &str) -> u64 {
        self.calls
            .iter()
            .filter(|(kind, _)| kind.split(' ').next() == Some(operation))
            .map(|(_, calls)| calls)
            .sum()
    }
}

#[derive(Clone, Debug)]
pub struct Counting {
    inner: SharedHttpConnector,
    tally: Arc<Mutex<Tally>>,
    /// Table names without their prefix: `sim-ActiveConnections` is
    /// `ActiveConnections`.
    prefix: String,
}

impl Counting {
    pub fn new(inner: SharedHttpConnector, prefix: &str) -> Self {
        Self {
            inner,
            tally: Arc::default(),
            prefix: prefix.to_owned(),
        }
    }

    /// What was called since the last call.
    pub fn take(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The operation, the table or index, and the shard key a Query names.
fn describe(request: &HttpRequest, prefix: &str) -> (String, String, Option<String>) {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|target| target.split('.').nth(1))
        .unwrap_or("?")
        .to_owned();
    let body: Value = request
        .body()
        .bytes()
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or(Value::Null);
    let table = body["TableName"]
        .as_str()
        .map(|name| name.strip_prefix(prefix).unwrap_or(name).to_owned());
    let target = match (body["IndexName"].as_str(), table) {
        (Some(index), _) => index.to_owned(),
        (None, Some(table)) => table,
        // BatchWriteItem, TransactWriteItems: the first table they name.
        (None, None) => body["RequestItems"]
            .as_object()
            .and_then(|items| items.keys().next().cloned())
            .or_else(|| {
                body["TransactItems"][0]
                    .as_object()
                    .and_then(|item| item.values().next())
                    .and_then(|write| write["TableName"].as_str())
                    .map(str::to_owned)
            })
            .map(|name| name.strip_prefix(prefix).unwrap_or(&name).to_owned())
            .unwrap_or_else(|| "?".into()),
    };
    let shard = body["ExpressionAttributeValues"][":shard"]["S"]
        .as_str()
        .map(str::to_owned);
    (operation, target, shard)
}

impl HttpConnector for Counting {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (operation, target, shard) = describe(&request, &self.prefix);
        *self
            .lock()
            .calls
            .entry(format!("{operation} {target}"))
            .or_default() += 1;
        let answer = self.inner.call(request);
        let counting = self.clone();
        HttpConnectorFuture::new(async move {
            let response = answer.await?;
            let status = response.status().as_u16();
            let response = response
                .try_into_http1x()
                .map_err(|problem| ConnectorError::other(problem.into(), None))?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(ConnectorError::io)?.to_bytes();
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            {
                let mut tally = counting.lock();
                if let (Some(shard), Some(read)) = (shard, answer["ScannedCount"].as_u64()) {
                    *tally.read_per_key.entry(shard).or_default() += read;
                }
                if status == 400
                    && answer["__type"]
                        .as_str()
                        .is_some_and(|kind| kind.ends_with("ConditionalCheckFailedException"))
                {
                    tally.refused += 1;
                }
            }
            HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from(bytes)))
                .map_err(|problem| ConnectorError::other(problem.into(), None))
        })
    }
}
