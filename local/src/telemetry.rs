//! Logs (human-readable, through `tracing`) and the Prometheus view of the
//! product's metrics served at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log filter unless `RUST_LOG` says otherwise.
const DEFAULT_LOG_FILTER: &str = "info,aws_smithy_runtime=warn,aws_config=warn";

/// Targets kept at this level whatever `RUST_LOG` says, unless it names
/// them: the embedded engine logs every error answer at WARN, conditional
/// writes that are meant to fail sometimes among them (a prune of a
/// connection still in its `$connect`, a replayed close: one per client of
/// a crowd joining), burying real warnings. The chat's store reports every
/// failure that matters itself, saying what it means.
const PINNED_TARGETS: [(&str, tracing::Level); 1] = [("dynoxide", tracing::Level::ERROR)];

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
    let filter = with_pinned_targets(filter);
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

/// `filter` with each of [`PINNED_TARGETS`] it does not name.
fn with_pinned_targets(filter: Targets) -> Targets {
    PINNED_TARGETS
        .iter()
        .fold(filter, |filter, &(target, level)| {
            let named = filter
                .iter()
                .any(|(named, _)| target.starts_with(named) || named.starts_with(target));
            if named {
                filter
            } else {
                filter.with_target(target, level)
            }
        })
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
    fn the_engines_error_answers_stay_quiet_unless_asked_for() {
        use tracing::Level;
        let quiet = with_pinned_targets("warn".parse().expect("a filter"));
        assert!(!quiet.would_enable("dynoxide::server", &Level::WARN));
        assert!(quiet.would_enable("dynoxide::server", &Level::ERROR));
        assert!(quiet.would_enable("handlers::fanout", &Level::WARN));
        let asked = with_pinned_targets("warn,dynoxide=debug".parse().expect("a filter"));
        assert!(asked.would_enable("dynoxide::server", &Level::DEBUG));
    }

    #[test]
    fn the_default_log_filter_parses() {
        let filter: Targets = DEFAULT_LOG_FILTER.parse().expect("a valid filter");
        assert_eq!(filter.default_level(), Some(tracing::Level::INFO.into()));
    }
}
