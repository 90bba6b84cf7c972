//! Builds and supervises the actor tree; owns start-up and shutdown order.
//!
//! Start-up: metrics recorder -> HTTP bind -> declared topics created and
//! verified ([`crate::topics`]) -> health monitor (supervised) -> pipeline
//! (when routes are configured: router, producer, offset committer,
//! partition consumers; see [`pipeline`]) -> HTTP listener.
//! Shutdown (on the future passed to [`run`]): drain the pipeline (finish
//! batches in flight, publish, commit) within `shutdown.drain_timeout_ms`,
//! stop accepting HTTP, then stop the actors.
//!
//! Must run inside an actix `System` (see `main.rs`).

pub mod pipeline;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::{Actor, Supervisor};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::config::GroupProtocol;
use crate::group::{GroupMember, Leave};
use crate::handler::router::Router;
use crate::health::HealthMonitor;
use crate::telemetry::{self, metrics as m};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The routes could not be built (an unknown handler).
    #[error(transparent)]
    Router(#[from] crate::handler::router::RouterError),
    /// The brokers refused or could not be reached while starting the
    /// pipeline.
    #[error("starting the pipeline: {0}")]
    Kafka(String),
    /// The configuration asks for something the brokers do not support.
    #[error("{0}")]
    Unsupported(String),
    /// Declared topics could not be created or verified.
    #[error("topics: {0}")]
    Topics(#[from] crate::topics::TopicError),
    /// A `stop` failure action shut the service down (cleanly: what was
    /// handled is committed, the failed record is not).
    #[error("stopped by a failure action: {0}")]
    Stopped(String),
    /// A broker refused the SASL credentials or mechanism.
    #[error(transparent)]
    Authentication(crate::kafka::KafkaError),
    /// A broker refused the credentials after start-up (a password rotated
    /// on the broker, a user deleted): the service stopped cleanly.
    #[error("stopped: {0}")]
    CredentialsRefused(String),
    /// TLS to a broker failed after start-up: the service stopped cleanly.
    #[error("stopped: {0}")]
    TlsFailed(String),
    /// TLS to the brokers failed (see [`crate::kafka::KafkaError::Tls`]).
    #[error(transparent)]
    Tls(crate::kafka::KafkaError),
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

/// How the pipeline gets its partitions.
enum Consuming {
    /// Every partition (`consumer.group_protocol = "none"`).
    All(Box<pipeline::Pipeline>),
    /// A group membership actor (classic or KIP-848) assigns them.
    Group(actix::Recipient<Leave>),
}

/// A one-off replay (`kafka-actors replay --group`): the routes handle
/// these partitions from the replay group's committed offsets up to their
/// ends, outside any group membership, their outputs carrying
/// [`crate::handler::router::REPLAY_HEADER`].
#[derive(Debug, Clone)]
pub struct Replay {
    /// The replay's id (its group id).
    pub id: String,
    /// Each partition to replay, and the offset it stops before.
    pub ends: std::collections::BTreeMap<crate::kafka::TopicPartition, i64>,
    /// At most this many records per second, over all the partitions.
    pub rate: Option<f64>,
}

/// Runs the service until `shutdown` resolves, then stops it in order.
/// `started`, when given, receives the bound addresses once everything is up.
pub async fn run(
    config: Config,
    handlers: crate::handler::router::HandlerRegistry,
    shutdown: impl Future<Output = ()>,
    started: Option<oneshot::Sender<Started>>,
) -> Result<(), RuntimeError> {
    run_with(config, handlers, shutdown, started, None).await
}

/// Runs `replay` with the routes of `config` until `shutdown` resolves
/// (the caller watches the replay group's committed offsets), then stops
/// in order.
pub async fn replay(
    config: Config,
    handlers: crate::handler::router::HandlerRegistry,
    replay: Replay,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    run_with(config, handlers, shutdown, None, Some(replay)).await
}

async fn run_with(
    config: Config,
    handlers: crate::handler::router::HandlerRegistry,
    shutdown: impl Future<Output = ()>,
    started: Option<oneshot::Sender<Started>>,
    replay: Option<Replay>,
) -> Result<(), RuntimeError> {
    let config = Arc::new(config);
    // Routes first: a route naming an unknown handler or a bad jq program
    // fails start-up before anything touches the broker.
    let router = if config.routes.is_empty() {
        None
    } else {
        Some(Arc::new(
            Router::build(&config, &handlers)?.with_replay(replay.as_ref().map(|r| r.id.clone())),
        ))
    };
    drop(handlers);
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

    // Connect once before anything else: refused credentials and failed
    // TLS (an untrusted certificate, TLS on one side only) stop start-up at
    // once; rskafka would retry them until its deadline, as if the broker
    // were unreachable. Unreachable brokers do not stop it: the service
    // starts and reports itself not ready.
    match crate::kafka::cluster::connect_any(&config.kafka).await {
        Err(e @ crate::kafka::KafkaError::Authentication { .. }) => {
            return Err(RuntimeError::Authentication(e));
        }
        Err(e @ crate::kafka::KafkaError::Tls { .. }) => return Err(RuntimeError::Tls(e)),
        Ok(conn) => {
            let security = crate::kafka::cluster::Security::of(&config.kafka, &conn);
            if security.tls_hostname_checked == Some(false) {
                tracing::warn!(
                    broker = %conn.addr(),
                    "TLS without the host name check (kafka.security.ssl.check_hostname = \
                     false): any certificate the CA signed is accepted for any broker; for \
                     testing only"
                );
            }
            tracing::info!(broker = %conn.addr(), security = %security, "connected");
        }
        Err(e) => tracing::warn!(error = %e, "brokers not reachable yet"),
    }
    let consuming = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let heartbeats = crate::health::heartbeat::Heartbeats::new(
        std::time::Duration::from_millis(config.health.heartbeat_interval_ms),
        config.health.heartbeat_stale_after,
    );
    let monitor_heartbeats = Arc::clone(&heartbeats);
    let registration = |name: &str| {
        Some(crate::health::heartbeat::Registration {
            beats: Arc::clone(&heartbeats),
            name: name.to_owned(),
            grace: std::time::Duration::ZERO,
        })
    };
    let monitor_config = Arc::clone(&config);
    let monitor_consuming = Arc::clone(&consuming);
    let topic_manager =
        (!config.topics.is_empty()).then(|| Arc::new(crate::topics::TopicManager::new()));
    let monitor_topics = topic_manager.clone();

    // Seed 003's start-up step: create the declared topics that are missing
    // (skipped when topic_manager.auto_create is off), then verify them.
    if let Some(manager) = &topic_manager {
        let report = manager.ensure(&config).await?;
        tracing::info!(
            required = report.required_topics.len(),
            created = report.created_topics.len(),
            status = ?report.status,
            "declared topics checked"
        );
    }
    // Started after the topics step, so that its first verification does not
    // report topics that are still being created.
    let health = Supervisor::start(move |_| {
        HealthMonitor::new(monitor_config, monitor_consuming, monitor_topics)
            .with_heartbeats(Arc::clone(&monitor_heartbeats))
    });

    let stopper = router.clone();
    let mut directory = pipeline::Directory::default();
    let pipeline = match router {
        None => None,
        Some(router) => {
            let mut pipeline =
                pipeline::start(&config, router, Some(Arc::clone(&heartbeats))).await?;
            directory = pipeline.directory();
            match (&replay, config.consumer.group_protocol) {
                (Some(replay), _) => {
                    pipeline.limit(replay.ends.clone(), replay.rate);
                    let partitions: Vec<_> = replay.ends.keys().cloned().collect();
                    pipeline.assign(&partitions).await?;
                    tracing::info!(
                        replay = %replay.id,
                        partitions = partitions.len(),
                        rate = ?replay.rate,
                        "replay started"
                    );
                    consuming.store(true, std::sync::atomic::Ordering::SeqCst);
                    Some(Consuming::All(Box::new(pipeline)))
                }
                (None, GroupProtocol::None) => {
                    let all = pipeline.all_partitions().to_vec();
                    pipeline.assign(&all).await?;
                    tracing::info!(
                        partitions = pipeline.partitions(),
                        "pipeline started (no group membership: every partition)"
                    );
                    consuming.store(true, std::sync::atomic::Ordering::SeqCst);
                    Some(Consuming::All(Box::new(pipeline)))
                }
                (None, GroupProtocol::Classic) => {
                    tracing::info!(
                        group = %config.consumer.group_id,
                        "pipeline started; joining the consumer group"
                    );
                    // The bound port: `http.bind` may ask for any.
                    let advert = listener.as_ref().and_then(|l| {
                        config
                            .http
                            .advertised_url
                            .clone()
                            .or_else(|| l.local_addr().ok().map(|a| format!(":{}", a.port())))
                    });
                    let member =
                        GroupMember::new(Arc::clone(&config), pipeline, Arc::clone(&consuming))
                            .with_admin_advert(advert)
                            .with_heartbeats(registration(&config.consumer.group_id))
                            .start();
                    Some(Consuming::Group(member.recipient()))
                }
                (None, GroupProtocol::Consumer) => {
                    crate::group::consumer::check_support(&config)
                        .await
                        .map_err(RuntimeError::Unsupported)?;
                    tracing::info!(
                        group = %config.consumer.group_id,
                        "pipeline started; joining the consumer group (KIP-848)"
                    );
                    let member = crate::group::ConsumerMember::new(
                        Arc::clone(&config),
                        pipeline,
                        Arc::clone(&consuming),
                    )
                    .start();
                    Some(Consuming::Group(member.recipient()))
                }
            }
        }
    };

    // After the listener is bound (an early return drops no running actor).
    let alerts = crate::health::alerts::AlertManager::new(&config, prometheus.clone())
        .with_heartbeats(registration("alerts"))
        .start();
    let http = match listener {
        Some(listener) => {
            if config
                .http
                .admin_token
                .as_ref()
                .is_none_or(|t| t.is_empty())
            {
                tracing::warn!(
                    "no http.admin_token is configured: the admin API refuses every mutating request (reads are allowed)"
                );
            }
            let admin = crate::http::admin::Admin::new(
                &config,
                directory,
                health.clone(),
                alerts.clone(),
                prometheus.clone(),
            );
            let service = crate::http::start(
                listener,
                health.clone(),
                prometheus,
                admin,
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

    // Until the signal, or a `stop` failure action.
    let stopped = match &stopper {
        Some(router) => tokio::select! {
            () = shutdown => None,
            reason = router.stopped() => Some(reason),
        },
        None => {
            shutdown.await;
            None
        }
    };
    drop(stopper);
    tracing::info!("shutting down");
    consuming.store(false, std::sync::atomic::Ordering::SeqCst);
    match pipeline {
        None => {}
        Some(Consuming::All(pipeline)) => pipeline.drain(config.shutdown.drain_timeout()).await,
        Some(Consuming::Group(member)) => {
            let timeout = config.shutdown.drain_timeout();
            // Leave drains within `timeout`; the margin covers LeaveGroup,
            // or a rebalance that must finish first.
            let leave = member.send(Leave { timeout });
            if tokio::time::timeout(timeout * 2, leave).await.is_err() {
                tracing::warn!(?timeout, "leaving the group did not finish in time");
            }
        }
    }
    if let Some(http) = http {
        // Graceful: stops accepting, waits for in-flight requests up to the
        // server's shutdown timeout.
        http.handle.stop(true).await;
    }
    drop(health);
    tracing::info!("stopped");
    match stopped {
        Some(crate::handler::router::Stop::Action(reason)) => Err(RuntimeError::Stopped(reason)),
        Some(crate::handler::router::Stop::Refused(reason)) => {
            Err(RuntimeError::CredentialsRefused(reason))
        }
        Some(crate::handler::router::Stop::Tls(reason)) => Err(RuntimeError::TlsFailed(reason)),
        None => Ok(()),
    }
}
