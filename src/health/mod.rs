//! The health monitor actor.
//!
//! **What it does**: checks broker connectivity (connect, ApiVersions,
//! Metadata) at start and every `health.check_interval_ms`, keeps the last
//! result, and answers [`GetHealth`] with a [`HealthReport`].
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

pub mod status;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;

use crate::config::Config;
use crate::kafka::cluster;
use crate::telemetry::metrics as m;
pub use status::{BrokerCheck, HealthReport, Status};

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
}

impl HealthMonitor {
    /// A monitor for `config`; `consuming` is set while the pipeline runs.
    pub fn new(config: Arc<Config>, consuming: Arc<std::sync::atomic::AtomicBool>) -> Self {
        Self {
            config,
            consuming,
            last: None,
            checking: false,
        }
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        if self.checking {
            return;
        }
        self.checking = true;
        let config = Arc::clone(&self.config);
        let fut = async move {
            let started = Instant::now();
            let outcome = cluster::describe(&config.kafka).await;
            (started.elapsed(), outcome)
        };
        ctx.spawn(fut.into_actor(self).map(|(took, outcome), act, _| {
            act.checking = false;
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
        MessageResult(status::report(
            &self.config,
            self.last.as_ref(),
            self.consuming.load(std::sync::atomic::Ordering::SeqCst),
        ))
    }
}
