//! Starts the pipeline: router, producer, offset committer, and one
//! supervised partition consumer per partition of every routed topic,
//! spread over one arbiter (thread) per core. Stops it in order.
//!
//! Every partition of the routed topics is consumed by this instance
//! (static assignment); group membership will start and stop partition
//! consumers on assignment changes instead.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, Supervisor};
use rskafka::client::partition::OffsetAt;

use super::RuntimeError;
use crate::config::{Config, OffsetReset};
use crate::consumer::commit::{Flush, OffsetCommitter};
use crate::consumer::partition::{Drain, PartitionConsumer, Settings};
use crate::handler::router::{HandlerRegistry, Router};
use crate::kafka::GroupCoordinator;
use crate::producer::Producer;

/// A running pipeline.
pub struct Pipeline {
    consumers: Vec<Addr<PartitionConsumer>>,
    committer: Addr<OffsetCommitter>,
    arbiters: Vec<Arbiter>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("partitions", &self.consumers.len())
            .field("arbiters", &self.arbiters.len())
            .finish_non_exhaustive()
    }
}

fn kafka_error(what: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Kafka(what.to_string())
}

/// Starts consuming every partition of every routed topic.
pub async fn start(config: &Config, registry: &HandlerRegistry) -> Result<Pipeline, RuntimeError> {
    let router = Arc::new(Router::build(config, registry)?);
    let producer = Arc::new(
        Producer::connect(&config.kafka, config.producer.compression_type)
            .await
            .map_err(kafka_error)?,
    );
    let group = config.consumer.group_id.clone();

    let mut partitions = Vec::new();
    for topic in router.topics() {
        let n = producer.partitions(&topic).await.map_err(|e| {
            RuntimeError::Kafka(format!(
                "{e} (it is the input topic of a route; create it first)"
            ))
        })?;
        partitions.extend((0..n).map(|p| (topic.clone(), p)));
    }
    // Output topics named in the configuration must exist: a missing one
    // would stop its partitions at the first record that needs it.
    for route in config.routes.keys() {
        let Some(spec) = config.routes.get(route) else {
            continue;
        };
        let input = router.topics().into_iter().find(|t| {
            router
                .route(t, spec.event_type.as_deref())
                .is_some_and(|r| &r.name == route)
        });
        let dlq = spec
            .dlq_topic
            .clone()
            .or_else(|| input.map(|t| crate::handler::dead_letter::default_topic(&t)));
        for (what, topic) in [
            ("reply_topic", spec.reply_topic.clone()),
            ("forward_to", spec.forward_to.clone()),
            ("dlq_topic", dlq),
        ] {
            let Some(topic) = topic else { continue };
            producer.partitions(&topic).await.map_err(|e| {
                RuntimeError::Kafka(format!("routes.{route}.{what}: {e} (create it first)"))
            })?;
        }
    }
    let mut coordinator = GroupCoordinator::connect(&config.kafka, &group)
        .await
        .map_err(kafka_error)?;
    let committed = coordinator.fetch(&partitions).await.map_err(kafka_error)?;
    drop(coordinator);

    let committer = OffsetCommitter::new(
        config.kafka.clone(),
        group.clone(),
        config
            .consumer
            .enable_auto_commit
            .then(|| config.consumer.auto_commit_interval()),
    )
    .start();
    let settings = Arc::new(Settings {
        consumer: config.consumer.clone(),
        produce_attempts: config.pipeline.produce_attempts,
        retry_backoff: Duration::from_millis(config.producer.retry_backoff_ms),
    });
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();

    let mut consumers = Vec::with_capacity(partitions.len());
    for (i, (topic, partition)) in partitions.into_iter().enumerate() {
        let client = producer
            .partition_client(&topic, partition)
            .await
            .map_err(kafka_error)?;
        let start = match committed
            .get(&(topic.clone(), partition))
            .copied()
            .flatten()
        {
            Some(offset) => offset,
            None => {
                let at = match config.consumer.auto_offset_reset {
                    OffsetReset::Earliest => OffsetAt::Earliest,
                    OffsetReset::Latest => OffsetAt::Latest,
                };
                client.get_offset(at).await.map_err(|e| {
                    RuntimeError::Kafka(format!("{topic}/{partition}: start offset: {e}"))
                })?
            }
        };
        tracing::info!(topic = %topic, partition, start, group = %group, "consuming");
        let (router, producer, committer, settings) = (
            Arc::clone(&router),
            Arc::clone(&producer),
            committer.clone(),
            Arc::clone(&settings),
        );
        let arbiter = &arbiters[i % arbiters.len()];
        consumers.push(Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
            PartitionConsumer::new(
                topic, partition, start, client, router, producer, committer, settings,
            )
        }));
    }
    Ok(Pipeline {
        consumers,
        committer,
        arbiters,
    })
}

impl Pipeline {
    /// Partitions consumed.
    pub fn partitions(&self) -> usize {
        self.consumers.len()
    }

    /// Stops fetching, lets every partition finish its batch in flight and
    /// commit, within `timeout`; then flushes the committer and stops the
    /// arbiters.
    pub async fn drain(self, timeout: Duration) {
        let drains = self.consumers.iter().map(|c| c.send(Drain));
        if tokio::time::timeout(timeout, futures_util::future::join_all(drains))
            .await
            .is_err()
        {
            tracing::warn!(
                ?timeout,
                "partitions did not drain in time; their in-flight records will be handled again after restart"
            );
        }
        match self.committer.send(Flush).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "final commit failed"),
            Err(e) => tracing::warn!(error = %e, "committer gone"),
            Ok(Ok(())) => {}
        }
        drop(self.consumers);
        for arbiter in self.arbiters {
            arbiter.stop();
        }
        tracing::debug!("pipeline stopped");
    }
}
