//! Glue for the Lambda binaries: logs through `lambda_runtime`'s subscriber
//! (it honours Lambda's `AWS_LAMBDA_LOG_LEVEL` and `AWS_LAMBDA_LOG_FORMAT`),
//! CloudWatch EMF metrics flushed after every invocation, and clients built
//! once at cold start.

use std::future::Future;

use lambda_runtime::{LambdaEvent, service_fn};
use metrics_cloudwatch_embedded::Collector;
use serde::{Serialize, de::DeserializeOwned};

use crate::config::env_value;
use crate::{Chat, Settings};

/// CloudWatch namespace of the product's metrics, unless `METRICS_NAMESPACE`
/// says otherwise.
pub const DEFAULT_METRICS_NAMESPACE: &str = "ServerlessChat";

/// Where the product's metrics go in CloudWatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    pub namespace: String,
    /// Value of the one dimension, `Stage`: low cardinality by design.
    pub stage: String,
}

impl MetricsSettings {
    /// `METRICS_NAMESPACE` (default [`DEFAULT_METRICS_NAMESPACE`]) and
    /// `STAGE` (default `dev`).
    pub fn from_env() -> Self {
        Self {
            namespace: env_value("METRICS_NAMESPACE")
                .unwrap_or(DEFAULT_METRICS_NAMESPACE.to_owned()),
            stage: env_value("STAGE").unwrap_or("dev".to_owned()),
        }
    }
}

/// Installs the CloudWatch EMF recorder as the process's global metrics
/// recorder. Call once per process; [`run`] does.
pub fn init_metrics(
    settings: &MetricsSettings,
) -> Result<&'static Collector, lambda_runtime::Error> {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(settings.namespace.clone())
        .with_dimension("Stage", settings.stage.clone())
        .init()
        .map_err(|error| format!("metrics: {error}"))?;
    crate::metric::describe();
    Ok(collector)
}

/// Lambda's deadline (epoch milliseconds) as an instant of this process.
fn deadline_of(deadline_epoch_ms: u64) -> tokio::time::Instant {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let left = u64::try_from(now_ms)
        .map(|now| deadline_epoch_ms.saturating_sub(now))
        .unwrap_or_default();
    tokio::time::Instant::now() + std::time::Duration::from_millis(left)
}

/// Logs and the shared context of a function that uses the tables and the
/// Management API.
pub async fn start() -> Result<Chat, lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = Settings::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok(Chat::from_sdk_config(&sdk, settings))
}

/// Runs `handler` on every invocation's payload, flushing EMF metrics (with
/// the invocation's request id) after each.
pub async fn run<E, R, F, Fut, Err>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(E) -> Fut + Send,
    Fut: Future<Output = Result<R, Err>> + Send,
    Err: Into<lambda_runtime::Error> + std::fmt::Debug,
{
    run_until_deadline(move |payload, _| handler(payload)).await
}

/// [`run`], telling `handler` when the invocation's time is up.
pub async fn run_until_deadline<E, R, F, Fut, Err>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(E, tokio::time::Instant) -> Fut + Send,
    Fut: Future<Output = Result<R, Err>> + Send,
    Err: Into<lambda_runtime::Error> + std::fmt::Debug,
{
    let collector = init_metrics(&MetricsSettings::from_env())?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<E>| {
        let LambdaEvent { payload, context } = event;
        let request_id = context.request_id;
        let outcome = handler(payload, deadline_of(context.deadline));
        async move {
            let outcome = outcome.await.map_err(Into::into);
            if let Err(error) = collector
                .set_property("RequestId", request_id)
                .flush(std::io::stdout())
            {
                tracing::warn!(%error, "could not write metrics");
            }
            outcome
        }
    }))
    .await
}
