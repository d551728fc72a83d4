//! Glue for the Lambda binaries: logs through `lambda_runtime`'s subscriber
//! (it honours Lambda's `AWS_LAMBDA_LOG_LEVEL` and `AWS_LAMBDA_LOG_FORMAT`),
//! CloudWatch EMF metrics flushed after every invocation, and clients built
//! once at cold start.

use std::future::Future;

use lambda_runtime::tracing::subscriber::filter::{LevelFilter, Targets};
use lambda_runtime::{LambdaEvent, service_fn};
use metrics_cloudwatch_embedded::Collector;
use serde::{Serialize, de::DeserializeOwned};

use crate::config::{env_value, var};
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
            namespace: env_value(var::METRICS_NAMESPACE)
                .unwrap_or(DEFAULT_METRICS_NAMESPACE.to_owned()),
            stage: env_value(var::STAGE).unwrap_or("dev".to_owned()),
        }
    }
}

/// The crates whose logs follow the function's log level. Every other
/// target (the Lambda runtime, the AWS SDK, HTTP and TLS) logs at INFO at
/// most, whatever the level: at TRACE `lambda_runtime` logs each raw event,
/// `$connect`'s `?token=`, every chat message and `sourceIp` among them.
const OWN_TARGETS: [&str; 2] = ["handlers", "stream_processor"];

/// The most verbose level any log line is written at: our own code logs
/// nothing below DEBUG, and nothing at DEBUG that a token, a message text
/// or an address could be read from.
const MOST_VERBOSE: LevelFilter = LevelFilter::DEBUG;

/// The log filter for a function at Lambda's `AWS_LAMBDA_LOG_LEVEL`
/// (`level`; INFO when unset or not a level): our crates at that level,
/// never above [`MOST_VERBOSE`], everything else at INFO at most.
pub fn log_filter(level: Option<&str>) -> Targets {
    let requested = level
        .and_then(|level| level.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let own = requested.min(MOST_VERBOSE);
    OWN_TARGETS.iter().fold(
        Targets::new().with_default(own.min(LevelFilter::INFO)),
        |filter, target| filter.with_target(*target, own),
    )
}

/// JSON lines to stdout when Lambda asks for JSON (`AWS_LAMBDA_LOG_FORMAT`),
/// filtered by [`log_filter`]; Lambda drops lines below the function's
/// level itself as well.
pub fn init_logging() {
    use lambda_runtime::tracing::subscriber::layer::SubscriberExt;
    use lambda_runtime::tracing::subscriber::util::SubscriberInitExt;
    let filter = log_filter(env_value(var::AWS_LAMBDA_LOG_LEVEL).as_deref());
    let json = env_value(var::AWS_LAMBDA_LOG_FORMAT)
        .is_some_and(|format| format.eq_ignore_ascii_case("json"));
    let lines = lambda_runtime::tracing::subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let registry = lambda_runtime::tracing::subscriber::registry().with(filter);
    let _ = if json {
        registry.with(lines.json()).try_init()
    } else {
        registry.with(lines).try_init()
    };
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

/// The functions' HTTPS client (rustls with AWS-LC) for what they call
/// beyond the SDK's clients: the Management API, a JWKS URL.
pub fn https_connector() -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
    let connector = aws_smithy_http_client::Connector::builder()
        .connector_settings(
            aws_smithy_runtime_api::client::http::HttpConnectorSettings::builder()
                .connect_timeout(crate::limits::MANAGEMENT_CONNECT_TIMEOUT)
                .build(),
        )
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build();
    aws_smithy_runtime_api::client::http::SharedHttpConnector::new(connector)
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
    init_logging();
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn no_level_lets_the_runtime_or_the_sdk_log_below_info() {
        for level in [
            Some("TRACE"),
            Some("DEBUG"),
            Some("INFO"),
            Some("loud"),
            None,
        ] {
            let filter = log_filter(level);
            for target in [
                "lambda_runtime::layers::api_response",
                "lambda_runtime_api_client",
                "aws_smithy_runtime::client::orchestrator",
                "hyper_util::client",
            ] {
                assert!(
                    !filter.would_enable(target, &Level::DEBUG),
                    "{target} at {level:?}"
                );
                assert!(
                    filter.would_enable(target, &Level::INFO),
                    "{target} at {level:?}"
                );
            }
            assert!(
                !filter.would_enable("handlers::fanout", &Level::TRACE),
                "{level:?}"
            );
        }
    }

    #[test]
    fn our_code_follows_the_level_up_to_debug() {
        assert!(log_filter(Some("DEBUG")).would_enable("handlers::fanout", &Level::DEBUG));
        assert!(log_filter(Some("trace")).would_enable("stream_processor", &Level::DEBUG));
        assert!(!log_filter(Some("INFO")).would_enable("handlers::fanout", &Level::DEBUG));
        assert!(!log_filter(None).would_enable("handlers::fanout", &Level::DEBUG));
        let quiet = log_filter(Some("WARN"));
        assert!(!quiet.would_enable("handlers::fanout", &Level::INFO));
        assert!(!quiet.would_enable("lambda_runtime", &Level::INFO));
        assert!(quiet.would_enable("lambda_runtime", &Level::WARN));
    }
}
