//! The health monitor actor.
//!
//! **What it does**: checks broker connectivity (connect, ApiVersions,
//! Metadata) at start and every `health.check_interval_ms`, then, when
//! topics are declared, verifies them against the cluster (seed 003's topic
//! health: missing topics, drift); keeps the last results, and answers
//! [`GetHealth`] with a [`HealthReport`].
//!
//! **Messages**: in: [`GetHealth`]; out: none (it publishes metrics).
//!
//! **Ordering**: one check at a time; a tick that finds a check still
//! running is skipped.
//!
//! **Supervision**: run under an actix `Supervisor`; a restart keeps the last
//! result and starts checking again.
//!
//! **Shutdown**: stops with the system; an in-flight check is dropped.
//!
//! **Metrics**: `kafka_actors_broker_up`, `kafka_actors_broker_count`,
//! `kafka_actors_broker_checks_total{outcome}`,
//! `kafka_actors_broker_check_duration_seconds`.

pub mod alerts;
pub mod heartbeat;
pub mod status;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;

use crate::config::Config;
use crate::kafka::cluster;
use crate::telemetry::metrics as m;
pub use status::{BrokerCheck, HealthReport, Status, TopicCheck, TopicsState};

use crate::topics::TopicManager;

/// Asks for the current health report.
#[derive(Debug, Message)]
#[rtype(result = "HealthReport")]
pub struct GetHealth;

/// The health monitor; see the module documentation.
#[derive(Debug)]
pub struct HealthMonitor {
    config: Arc<Config>,
    consuming: Arc<std::sync::atomic::AtomicBool>,
    last: Option<BrokerCheck>,
    checking: bool,
    /// Verifies the declared topics (shared with start-up, so its
    /// statistics count the topics created there); `None` without any.
    topics: Option<Arc<TopicManager>>,
    last_topics: Option<TopicCheck>,
    /// The actors' heartbeats, checked every interval.
    heartbeats: Option<Arc<heartbeat::Heartbeats>>,
}

impl HealthMonitor {
    /// A monitor for `config`; `consuming` is set while the pipeline runs;
    /// `topics` verifies the declared topics, if any.
    pub fn new(
        config: Arc<Config>,
        consuming: Arc<std::sync::atomic::AtomicBool>,
        topics: Option<Arc<TopicManager>>,
    ) -> Self {
        Self {
            config,
            consuming,
            last: None,
            checking: false,
            topics,
            last_topics: None,
            heartbeats: None,
        }
    }

    /// Watches `heartbeats` (see [`heartbeat`]).
    pub fn with_heartbeats(mut self, heartbeats: Arc<heartbeat::Heartbeats>) -> Self {
        self.heartbeats = Some(heartbeats);
        self
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        if self.checking {
            return;
        }
        self.checking = true;
        let config = Arc::clone(&self.config);
        let topics = self.topics.clone();
        let fut = async move {
            let started = Instant::now();
            let outcome = cluster::describe(&config.kafka).await;
            let took = started.elapsed();
            let topics = match (&topics, &outcome) {
                (Some(manager), Ok(_)) => Some(match manager.verify(&config).await {
                    Ok(report) => TopicCheck::Report(report),
                    Err(e) => TopicCheck::Failed {
                        error: e.to_string(),
                    },
                }),
                _ => None,
            };
            (took, outcome, topics)
        };
        ctx.spawn(fut.into_actor(self).map(|(took, outcome, topics), act, _| {
            act.checking = false;
            if topics.is_some() {
                act.last_topics = topics;
            }
            metrics::histogram!(m::BROKER_CHECK_DURATION_SECONDS).record(took.as_secs_f64());
            let outcome = match outcome {
                Ok(info) => {
                    metrics::counter!(m::BROKER_CHECKS_TOTAL, "outcome" => "ok").increment(1);
                    metrics::gauge!(m::BROKER_UP).set(1.0);
                    metrics::gauge!(m::BROKER_COUNT).set(info.brokers.len() as f64);
                    if act.last.as_ref().is_none_or(|c| c.outcome.is_err()) {
                        tracing::info!(
                            bootstrap = %info.bootstrap,
                            brokers = info.brokers.len(),
                            cluster_id = info.cluster_id.as_deref().unwrap_or("-"),
                            "connected to Kafka"
                        );
                    }
                    Ok(info)
                }
                Err(e) => {
                    metrics::counter!(m::BROKER_CHECKS_TOTAL, "outcome" => e.code()).increment(1);
                    metrics::gauge!(m::BROKER_UP).set(0.0);
                    tracing::warn!(error = %e, "broker check failed");
                    Err(e.to_string())
                }
            };
            act.last = Some(BrokerCheck {
                at: SystemTime::now(),
                outcome,
            });
        }));
    }
}

impl Actor for HealthMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.check(ctx);
        ctx.run_interval(self.config.health.check_interval(), |act, ctx| {
            act.check(ctx)
        });
        if let Some(beats) = &self.heartbeats {
            let beats = Arc::clone(beats);
            ctx.run_interval(beats.interval(), move |_, _| {
                beats.check();
            });
        }
    }
}

impl Supervised for HealthMonitor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Spawned futures were dropped with the old context.
        self.checking = false;
    }
}

impl Handler<GetHealth> for HealthMonitor {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _msg: GetHealth, _ctx: &mut Self::Context) -> Self::Result {
        let topics = TopicsState {
            check: self.last_topics.clone(),
            statistics: self.topics.as_ref().map(|m| m.statistics()),
        };
        let report = status::report(
            &self.config,
            self.last.as_ref(),
            &topics,
            self.consuming.load(std::sync::atomic::Ordering::SeqCst),
        );
        MessageResult(match &self.heartbeats {
            Some(beats) => report.with_actors(beats.actors()),
            None => report,
        })
    }
}
