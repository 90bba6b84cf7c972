//! Logs (`tracing`) and metrics (`metrics` + Prometheus exposition).
//!
//! Metric names live in [`metrics`] and nowhere else; each follows
//! `kafka_actors_<subsystem>_<name>_<unit>[_total]`.

pub mod metrics;

use std::io::IsTerminal;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::{LogConfig, LogFormat};

/// Installs the global `tracing` subscriber. `RUST_LOG`, when set, wins over
/// `log.level`. Logs go to stderr so stdout stays for command output.
/// Calling it twice is harmless (the second call keeps the first).
pub fn init_logging(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // Tansu logs every request at INFO and slows down with it on.
        .add_directive("tansu=warn".parse().expect("a valid static directive"))
        // rskafka logs every connection at INFO.
        .add_directive("rskafka=warn".parse().expect("a valid static directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr.with_max_level(tracing::Level::TRACE));
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Installs the global metrics recorder once and returns the handle that
/// renders the Prometheus text format. Every later call (several services
/// in one process, as in the tests) returns the same handle: the `metrics`
/// macros all record into the one global recorder.
pub fn init_metrics() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(metrics::DURATION_BUCKETS_SECONDS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if ::metrics::set_global_recorder(recorder).is_ok() {
                metrics::describe_all();
            } else {
                tracing::warn!(
                    "the program installed its own metrics recorder: /metrics stays empty"
                );
            }
            handle
        })
        .clone()
}
