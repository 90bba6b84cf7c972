//! Builds and supervises the actor tree; owns start-up and shutdown order.
//!
//! Start-up: metrics recorder -> health monitor (supervised) -> HTTP
//! listener. Shutdown (on the future passed to [`run`]): stop accepting
//! HTTP, let in-flight requests finish within `shutdown.drain_timeout_ms`,
//! then stop the actors.
//!
//! Must run inside an actix `System` (see `main.rs`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::Supervisor;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::health::HealthMonitor;
use crate::telemetry::{self, metrics as m};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The HTTP listener could not bind.
    #[error("cannot listen on {bind} (http.bind): {source}")]
    HttpBind {
        /// The address.
        bind: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What a running service reports once it has started.
#[derive(Debug, Clone)]
pub struct Started {
    /// The HTTP listener's address, if enabled.
    pub http_addr: Option<SocketAddr>,
}

/// Runs the service until `shutdown` resolves, then stops it in order.
/// `started`, when given, receives the bound addresses once everything is up.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    started: Option<oneshot::Sender<Started>>,
) -> Result<(), RuntimeError> {
    let config = Arc::new(config);
    let prometheus = telemetry::init_metrics();
    metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);

    // Bind before any actor starts: a busy port is a start-up error, and an
    // early return must not drop running actors.
    let listener = if config.http.enabled {
        let listener = std::net::TcpListener::bind(&config.http.bind).map_err(|source| {
            RuntimeError::HttpBind {
                bind: config.http.bind.clone(),
                source,
            }
        })?;
        Some(listener)
    } else {
        None
    };

    let monitor_config = Arc::clone(&config);
    let health = Supervisor::start(move |_| HealthMonitor::new(monitor_config));

    let http = match listener {
        Some(listener) => {
            let service = crate::http::start(
                listener,
                health.clone(),
                prometheus,
                config.shutdown.drain_timeout(),
            )
            .map_err(|source| RuntimeError::HttpBind {
                bind: config.http.bind.clone(),
                source,
            })?;
            tracing::info!(addr = %service.addr, "serving /health and /metrics");
            Some(service)
        }
        None => None,
    };

    tracing::info!(
        bootstrap = %config.kafka.bootstrap_servers.join(","),
        group = %config.consumer.group_id,
        "kafka-actors started"
    );
    if let Some(tx) = started {
        let _ = tx.send(Started {
            http_addr: http.as_ref().map(|h| h.addr),
        });
    }

    shutdown.await;
    tracing::info!("shutting down");
    if let Some(http) = http {
        // Graceful: stops accepting, waits for in-flight requests up to the
        // server's shutdown timeout.
        http.handle.stop(true).await;
    }
    drop(health);
    tracing::info!("stopped");
    Ok(())
}
