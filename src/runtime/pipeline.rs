//! Starts the pipeline: router, offset committer, and on each of one
//! arbiter (thread) per core a producer pool. Partition consumers (each
//! with its handler workers) are started for the partitions this instance
//! is assigned ([`Pipeline::assign`]) and drained when they are taken away
//! ([`Pipeline::revoke`]): by the group membership actor
//! ([`crate::group`]), or for every partition of the routed topics when
//! `consumer.group_protocol = "none"`. Stops it in order.
//!
//! A retry topic that keeps key order is not assigned on its own: its
//! partition `p` is consumed beside partition `p` of its input topic, by
//! the same instance, after the keys waiting in it were read
//! ([`crate::handler::key_waits`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, Supervisor};
use rskafka::client::partition::OffsetAt;

use super::RuntimeError;
use crate::config::{Config, OffsetReset};
use crate::consumer::commit::{Flush, OffsetCommitter};
use crate::consumer::partition::{Drain, PartitionConsumer, Settings, Side};
use crate::handler::router::Router;
use crate::kafka::{GroupCoordinator, TopicPartition};
use crate::producer::{self, PoolSettings, Producer, ProducerPool};

/// The partition consumers running now, for the admin API.
pub type Directory = Arc<std::sync::RwLock<BTreeMap<TopicPartition, Addr<PartitionConsumer>>>>;

/// A running pipeline.
pub struct Pipeline {
    kafka: crate::config::KafkaConfig,
    group: String,
    auto_offset_reset: OffsetReset,
    router: Arc<Router>,
    settings: Arc<Settings>,
    /// Every partition of the routed topics at start-up.
    partitions: Vec<TopicPartition>,
    consumers: BTreeMap<TopicPartition, Addr<PartitionConsumer>>,
    /// The retry partitions consumed beside input partitions (key order),
    /// by input partition.
    companions: BTreeMap<TopicPartition, (TopicPartition, Addr<PartitionConsumer>)>,
    /// A copy of `consumers` and `companions` the HTTP listener reads.
    directory: Directory,
    committer: Addr<OffsetCommitter>,
    pools: Vec<Addr<ProducerPool>>,
    arbiters: Vec<Arbiter>,
    /// Where the next partition consumer goes (round robin over arbiters).
    next_slot: usize,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("partitions", &self.consumers.len())
            .field("arbiters", &self.arbiters.len())
            .finish_non_exhaustive()
    }
}

/// Where an actor named `name` registers its heart, if heartbeats are on.
fn registration(
    heartbeats: &Option<Arc<crate::health::heartbeat::Heartbeats>>,
    name: &str,
    grace: Duration,
) -> Option<crate::health::heartbeat::Registration> {
    heartbeats
        .clone()
        .map(|beats| crate::health::heartbeat::Registration {
            beats,
            name: name.to_owned(),
            grace,
        })
}

fn kafka_error(what: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Kafka(what.to_string())
}

/// Starts the pipeline's shared actors, after checking that every input and
/// output topic exists. No partition is consumed until [`Pipeline::assign`].
pub async fn start(
    config: &Config,
    router: Arc<Router>,
    heartbeats: Option<Arc<crate::health::heartbeat::Heartbeats>>,
) -> Result<Pipeline, RuntimeError> {
    let producer = Arc::new(
        Producer::connect(&config.kafka, config.producer.compression_type)
            .await
            .map_err(kafka_error)?,
    );
    let group = config.consumer.group_id.clone();

    let mut partitions = Vec::new();
    for topic in router.topics() {
        let n = producer.partitions(&topic).await.map_err(|e| {
            let what = if router.is_retry_topic(&topic) {
                "the retry topic of a route with retry.mode = \"topic\""
            } else {
                "the input topic of a route"
            };
            RuntimeError::Kafka(format!("{e} (it is {what}; create it first)"))
        })?;
        if let Some(retry) = router.companion(&topic) {
            let m = producer.partitions(retry).await.map_err(|e| {
                RuntimeError::Kafka(format!(
                    "{e} (it is the retry topic of a route with ordering = \"key\"; create it \
                     first, with as many partitions as {topic})"
                ))
            })?;
            if m < n {
                return Err(RuntimeError::Kafka(format!(
                    "the retry topic {retry} has {m} partition(s) and its input topic {topic} \
                     has {n}: a route with ordering = \"key\" keeps each input partition's \
                     waiting records in the retry partition of the same number, so it needs at \
                     least as many"
                )));
            }
        }
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
            .as_deref()
            .map(|t| config.topic_name(t))
            .or_else(|| input.map(|t| crate::handler::dead_letter::default_topic(&t)));
        for (what, topic) in [
            (
                "reply_topic",
                spec.reply_topic.as_deref().map(|t| config.topic_name(t)),
            ),
            (
                "forward_to",
                spec.forward_to.as_deref().map(|t| config.topic_name(t)),
            ),
            ("dlq_topic", dlq),
        ] {
            let Some(topic) = topic else { continue };
            producer.partitions(&topic).await.map_err(|e| {
                RuntimeError::Kafka(format!("routes.{route}.{what}: {e} (create it first)"))
            })?;
        }
    }
    let committer = OffsetCommitter::new(
        config.kafka.clone(),
        group.clone(),
        config
            .consumer
            .enable_auto_commit
            .then(|| config.consumer.auto_commit_interval()),
    )
    .with_companions(
        router
            .topics()
            .into_iter()
            .filter_map(|t| router.companion(&t).map(|r| (t.clone(), r.to_owned())))
            .collect(),
    )
    .with_heartbeats(registration(&heartbeats, &group, Duration::ZERO))
    .start();
    let settings = Arc::new(Settings {
        consumer: config.consumer.clone(),
        max_in_flight_records: config.pipeline.max_in_flight_records as usize,
        max_in_flight_bytes: usize::try_from(config.pipeline.max_in_flight_bytes)
            .unwrap_or(usize::MAX),
        pause: std::time::Duration::from_millis(config.pipeline.pause_ms),
        stall_timeout: (config.health.stall_timeout_ms > 0)
            .then(|| std::time::Duration::from_millis(config.health.stall_timeout_ms)),
        heartbeats: heartbeats.clone(),
        ends: BTreeMap::new(),
        pacer: None,
    });
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();
    // One pool per arbiter, each with its own connections: compression and
    // produce calls run on every core, and produce requests never queue
    // behind a fetch's wait on a shared connection.
    let pool_settings = PoolSettings::from_config(config);
    let mut pools: Vec<Addr<ProducerPool>> = Vec::with_capacity(arbiters.len());
    // The first pool takes the producer that resolved the topics above.
    let mut first = Some(producer);
    // A topic's metadata may take the client's own retries to arrive.
    let resolving = config.kafka.request_timeout() * 2 + config.kafka.connect_timeout();
    for (slot, arbiter) in arbiters.iter().enumerate() {
        let beats = registration(&heartbeats, &format!("pool-{slot}"), resolving);
        let producer = match first.take() {
            Some(producer) => producer,
            None => Arc::new(
                Producer::connect(&config.kafka, config.producer.compression_type)
                    .await
                    .map_err(kafka_error)?,
            ),
        };
        let settings = pool_settings.clone();
        pools.push(ProducerPool::start_in_arbiter(
            &arbiter.handle(),
            move |_| ProducerPool::new(producer, settings).with_heartbeats(beats),
        ));
    }

    Ok(Pipeline {
        kafka: config.kafka.clone(),
        group,
        auto_offset_reset: config.consumer.auto_offset_reset,
        router,
        settings,
        partitions,
        consumers: BTreeMap::new(),
        companions: BTreeMap::new(),
        directory: Directory::default(),
        committer,
        pools,
        arbiters,
        next_slot: 0,
    })
}

impl Pipeline {
    /// The router the partition consumers hand records to.
    pub fn router(&self) -> Arc<Router> {
        Arc::clone(&self.router)
    }

    /// Partitions consumed now.
    pub fn partitions(&self) -> usize {
        self.consumers.len()
    }

    /// The partitions consumed now.
    pub fn owned(&self) -> BTreeSet<TopicPartition> {
        self.consumers.keys().cloned().collect()
    }

    /// Every partition of the routed topics (at start-up).
    pub fn all_partitions(&self) -> &[TopicPartition] {
        &self.partitions
    }

    /// The routed (input) topics.
    pub fn topics(&self) -> Vec<String> {
        self.router.topics()
    }

    /// The offset committer.
    pub fn committer(&self) -> &Addr<OffsetCommitter> {
        &self.committer
    }

    /// Limits a one-off replay, before any partition is assigned: each
    /// partition stops at its end in `ends`; all together hand out at most
    /// `rate` records per second.
    pub fn limit(&mut self, ends: BTreeMap<TopicPartition, i64>, rate: Option<f64>) {
        let mut settings = (*self.settings).clone();
        settings.ends = ends;
        settings.pacer = rate.map(|r| Arc::new(crate::consumer::partition::Pacer::new(r)));
        self.settings = Arc::new(settings);
    }

    /// Starts consuming `partitions` (those not consumed yet), each from
    /// the group's committed offset, else from `consumer.auto_offset_reset`.
    pub async fn assign(&mut self, partitions: &[TopicPartition]) -> Result<(), RuntimeError> {
        let new: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| !self.consumers.contains_key(*tp))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut coordinator = GroupCoordinator::connect(&self.kafka, &self.group)
            .await
            .map_err(kafka_error)?;
        // With their retry partitions that keep key order.
        let mut wanted = new.clone();
        wanted.extend(new.iter().filter_map(|(topic, partition)| {
            self.router
                .companion(topic)
                .map(|retry| (retry.to_owned(), *partition))
        }));
        let committed = coordinator.fetch(&wanted).await.map_err(kafka_error)?;
        drop(coordinator);
        for (topic, partition) in new {
            let slot = self.next_slot;
            self.next_slot += 1;
            let (client, start) = self
                .start_offset(&committed, &topic, partition, self.auto_offset_reset)
                .await?;
            let mut consumer = self.consumer_of((topic.clone(), partition), slot, (client, start));
            if let Some(retry) = self.router.companion(&topic).map(str::to_owned) {
                // Never committed: from the earliest record, whatever
                // auto_offset_reset says (its records are work this
                // service wrote for itself).
                let (retry_client, retry_start) = self
                    .start_offset(&committed, &retry, partition, OffsetReset::Earliest)
                    .await?;
                // Before either side starts: the keys waiting in the retry
                // partition from where its consumer starts.
                let waits = Arc::new(
                    crate::consumer::partition::waiting_keys(
                        &retry_client,
                        &self.router,
                        (&retry, partition),
                        retry_start,
                    )
                    .await
                    .map_err(|e| {
                        RuntimeError::Kafka(format!(
                            "{retry}/{partition}: reading the keys waiting from offset {retry_start}: {e}"
                        ))
                    })?,
                );
                tracing::info!(
                    topic = %retry, partition, start = retry_start, input = %topic,
                    keys_waiting = waits.keys(), group = %self.group,
                    "consuming the retry partition that keeps key order"
                );
                let companion = self.consumer_of(
                    (retry.clone(), partition),
                    slot,
                    (retry_client, retry_start),
                );
                let retry_side = Arc::clone(&waits);
                let retry_addr = self.spawn(slot, companion.with_waits(retry_side, Side::Retry));
                self.companions
                    .insert((topic.clone(), partition), ((retry, partition), retry_addr));
                consumer = consumer.with_waits(waits, Side::Input);
            }
            tracing::info!(topic = %topic, partition, start, group = %self.group, "consuming");
            let addr = self.spawn(slot, consumer);
            self.consumers.insert((topic, partition), addr);
        }
        self.publish_directory();
        Ok(())
    }

    /// A client of `topic`/`partition` and where to start: the group's
    /// committed offset, else `reset`.
    async fn start_offset(
        &self,
        committed: &BTreeMap<TopicPartition, Option<i64>>,
        topic: &str,
        partition: i32,
        reset: OffsetReset,
    ) -> Result<(Arc<rskafka::client::partition::PartitionClient>, i64), RuntimeError> {
        let client = crate::consumer::partition::connect(&self.kafka, topic, partition)
            .await
            .map_err(|e| {
                if crate::producer::client::refused_credentials(&e) {
                    // Connecting again would be refused the same way.
                    self.router.stop_refused(format!(
                        "the broker refused the credentials for {topic}/{partition}: {e}"
                    ));
                }
                RuntimeError::Kafka(format!("{topic}/{partition}: {e}"))
            })?;
        let start = match committed
            .get(&(topic.to_owned(), partition))
            .copied()
            .flatten()
        {
            Some(offset) => offset,
            None => {
                let at = match reset {
                    OffsetReset::Earliest => OffsetAt::Earliest,
                    OffsetReset::Latest => OffsetAt::Latest,
                };
                client.get_offset(at).await.map_err(|e| {
                    RuntimeError::Kafka(format!("{topic}/{partition}: start offset: {e}"))
                })?
            }
        };
        Ok((client, start))
    }

    /// A partition consumer of `topic`/`partition`, from `start`, with the
    /// pool of `slot`.
    fn consumer_of(
        &self,
        (topic, partition): TopicPartition,
        slot: usize,
        (client, start): (Arc<rskafka::client::partition::PartitionClient>, i64),
    ) -> PartitionConsumer {
        PartitionConsumer::new(
            topic,
            partition,
            start,
            client,
            Arc::clone(&self.router),
            self.pools[slot % self.pools.len()].clone(),
            self.committer.clone(),
            Arc::clone(&self.settings),
        )
    }

    /// Starts `consumer` under a supervisor on the arbiter of `slot`.
    fn spawn(&self, slot: usize, consumer: PartitionConsumer) -> Addr<PartitionConsumer> {
        let arbiter = &self.arbiters[slot % self.arbiters.len()];
        Supervisor::start_in_arbiter(&arbiter.handle(), move |_| consumer)
    }

    /// The running partition consumers, kept up to date.
    pub fn directory(&self) -> Directory {
        Arc::clone(&self.directory)
    }

    fn publish_directory(&self) {
        if let Ok(mut d) = self.directory.write() {
            d.clone_from(&self.consumers);
            d.extend(self.companions.values().cloned());
        }
    }

    /// Stops consuming `partitions`: each stops fetching, finishes the
    /// records in flight (their outputs acknowledged) and commits its
    /// watermark, within `timeout`; then it is stopped. Records still in
    /// flight at the deadline are handled again by the next owner.
    pub async fn revoke(&mut self, partitions: &[TopicPartition], timeout: Duration) {
        let mut revoked: Vec<(TopicPartition, Addr<PartitionConsumer>)> = partitions
            .iter()
            .filter_map(|tp| self.consumers.remove(tp).map(|c| (tp.clone(), c)))
            .collect();
        revoked.extend(
            partitions
                .iter()
                .filter_map(|tp| self.companions.remove(tp)),
        );
        self.publish_directory();
        if revoked.is_empty() {
            return;
        }
        let drains = revoked.iter().map(|(_, c)| c.send(Drain));
        if tokio::time::timeout(timeout, futures_util::future::join_all(drains))
            .await
            .is_err()
        {
            tracing::warn!(
                ?timeout,
                partitions = ?revoked.iter().map(|(tp, _)| tp).collect::<Vec<_>>(),
                "revoked partitions did not drain in time; their in-flight records will be handled again by their next owner"
            );
        }
        for ((topic, partition), _) in &revoked {
            tracing::info!(topic = %topic, partition, group = %self.group, "stopped consuming");
        }
    }

    /// Stops fetching, lets every partition finish its records in flight
    /// (their outputs acknowledged) and commit, and flushes the producer
    /// pools, within `timeout`; then flushes the committer and stops the
    /// arbiters.
    pub async fn drain(self, timeout: Duration) {
        let drains = self
            .consumers
            .values()
            .chain(self.companions.values().map(|(_, c)| c))
            .map(|c| c.send(Drain));
        let flushes = self.pools.iter().map(|p| p.send(producer::Flush));
        let all = async {
            futures_util::future::join_all(drains).await;
            futures_util::future::join_all(flushes).await;
        };
        if tokio::time::timeout(timeout, all).await.is_err() {
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
        drop(self.companions);
        if let Ok(mut d) = self.directory.write() {
            d.clear();
        }
        for arbiter in self.arbiters {
            arbiter.stop();
        }
        tracing::debug!("pipeline stopped");
    }
}
