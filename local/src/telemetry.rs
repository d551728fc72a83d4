//! Logs (human-readable, through `tracing`) and the Prometheus view of the
//! product's metrics served at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Human-readable logs, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_smithy_runtime=warn,aws_config=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
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
