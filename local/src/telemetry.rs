//! Logs (human-readable, through `tracing`) and the Prometheus view of the
//! product's metrics served at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log filter unless `RUST_LOG` says otherwise.
const DEFAULT_LOG_FILTER: &str = "info,aws_smithy_runtime=warn,aws_config=warn";

/// Human-readable logs, filtered by `RUST_LOG`: comma-separated `level` and
/// `target=level` directives (default `info`). A filter by target needs no
/// regular expressions, which EnvFilter's span and field directives would
/// add to every build.
pub fn init_logging() {
    let requested = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty());
    let parsed = requested.as_deref().map(str::parse::<Targets>);
    let filter = match &parsed {
        Some(Ok(filter)) => filter.clone(),
        None | Some(Err(_)) => DEFAULT_LOG_FILTER.parse().unwrap_or_default(),
    };
    let installed = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
        .with(filter)
        .try_init();
    if let (Ok(()), Some(Err(error))) = (installed, parsed) {
        tracing::warn!(
            rust_log = requested.as_deref().unwrap_or_default(),
            %error,
            "RUST_LOG is not a list of level or target=level directives; using {DEFAULT_LOG_FILTER}"
        );
    }
}

/// Renders the metrics recorded so far.
#[derive(Clone)]
pub struct Metrics(PrometheusHandle);

impl Metrics {
    pub fn render(&self) -> String {
        self.0.render()
    }
}

/// Installs the process-wide Prometheus recorder the first time; later
/// stacks in the same process (tests) share it. `None` when another recorder
/// was installed first.
pub fn metrics() -> Option<Metrics> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            handlers::metric::describe();
            Some(handle)
        })
        .clone()
        .map(Metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_log_filter_parses() {
        let filter: Targets = DEFAULT_LOG_FILTER.parse().expect("a valid filter");
        assert_eq!(filter.default_level(), Some(tracing::Level::INFO.into()));
    }
}
