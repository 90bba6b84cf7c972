//! The partition consumer actor: one per consumed (topic, partition).
//!
//! **What it does**: fetches a batch (at most `max_poll_records`, bounded by
//! `fetch_max_bytes`), processes its records in offset order
//! ([`super::process`]), publishes every output and dead letter, and only
//! when the broker acknowledged them all counts the records as handled and
//! commits the watermark (after every batch, or through the committer's
//! interval with `enable_auto_commit`).
//!
//! **Messages**: in: [`Drain`] (finish the batch in flight, commit, stop);
//! internal `Poll`.
//!
//! **Ordering**: one batch in flight per partition, records in offset order;
//! outputs of one batch are published before the next batch is fetched.
//! That is also the backpressure: a slow partition stops fetching, the
//! others go on, and memory per partition is bounded by one fetch.
//!
//! **Supervision**: a fetch or publish that fails past its retries stops
//! the actor; its `Supervisor` restarts it from the watermark (records of
//! the failed batch are handled again: at-least-once), after a backoff that
//! doubles up to 5 s and is counted in `kafka_actors_actor_restarts_total`.
//!
//! **Metrics**: records consumed, handled by outcome, produced, handler
//! latency, consumer lag from the fetch high watermark.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rskafka::client::error::{Error as RsError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient};
use tokio::sync::oneshot;

use super::commit::{Commit, OffsetCommitter, Report};
use super::process::{InRecord, Outcome, process};
use super::watermark::Watermark;
use crate::config::{ConsumerConfig, OffsetReset};
use crate::handler::router::Router;
use crate::producer::{ProduceError, Producer};
use crate::telemetry::metrics as m;

/// Finish the batch in flight, commit, and stop. Answers once stopped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Poll;

/// Settings a partition consumer needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The consumer settings.
    pub consumer: ConsumerConfig,
    /// Attempts to publish a batch's outputs.
    pub produce_attempts: u32,
    /// Pause between publish attempts.
    pub retry_backoff: Duration,
}

/// The partition consumer; see the module documentation.
pub struct PartitionConsumer {
    topic: String,
    partition: i32,
    client: Arc<PartitionClient>,
    router: Arc<Router>,
    producer: Arc<Producer>,
    committer: Addr<OffsetCommitter>,
    settings: Arc<Settings>,
    watermark: Watermark,
    next: i64,
    busy: bool,
    draining: Vec<oneshot::Sender<()>>,
    restarts: u32,
    /// Drained: the supervisor's restart must not start consuming again.
    drained: bool,
    /// Records fetched but not yet handed out (a fetch returned more than
    /// `max_poll_records`): the next batch takes them without fetching.
    /// Re-fetching from the middle of a record batch would re-read it, and
    /// Tansu answers such a fetch with nothing.
    buffered: Vec<InRecord>,
}

impl std::fmt::Debug for PartitionConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionConsumer")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// What one batch did.
struct BatchDone {
    offsets: Vec<i64>,
    next: i64,
    high_watermark: i64,
    rest: Vec<InRecord>,
}

#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("fetching at offset {offset}: {source}")]
    Fetch {
        offset: i64,
        #[source]
        source: RsError,
    },
    #[error("publishing outputs: {0}")]
    Produce(#[from] ProduceError),
}

impl PartitionConsumer {
    /// A consumer of `topic`/`partition` starting at `start`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: String,
        partition: i32,
        start: i64,
        client: Arc<PartitionClient>,
        router: Arc<Router>,
        producer: Arc<Producer>,
        committer: Addr<OffsetCommitter>,
        settings: Arc<Settings>,
    ) -> Self {
        Self {
            topic,
            partition,
            client,
            router,
            producer,
            committer,
            settings,
            watermark: Watermark::new(start),
            next: start,
            busy: false,
            draining: Vec::new(),
            restarts: 0,
            drained: false,
            buffered: Vec::new(),
        }
    }

    fn batch(&mut self) -> impl Future<Output = Result<BatchDone, BatchError>> + 'static {
        let buffered = std::mem::take(&mut self.buffered);
        let client = Arc::clone(&self.client);
        let router = Arc::clone(&self.router);
        let producer = Arc::clone(&self.producer);
        let settings = Arc::clone(&self.settings);
        let topic = self.topic.clone();
        let partition = self.partition;
        let mut next = self.next;
        async move {
            let c = &settings.consumer;
            let max_wait = i32::try_from(c.fetch_max_wait_ms).unwrap_or(i32::MAX);
            let min = i32::try_from(c.fetch_min_bytes).unwrap_or(1);
            let max = i32::try_from(c.max_partition_fetch_bytes.min(c.fetch_max_bytes))
                .unwrap_or(i32::MAX)
                .max(min + 1);
            let (mut records, high_watermark) = if buffered.is_empty() {
                let fetched = match client.fetch_records(next, min..max, max_wait).await {
                    Err(RsError::ServerError {
                        protocol_error: ProtocolError::OffsetOutOfRange,
                        ..
                    }) => {
                        let at = match c.auto_offset_reset {
                            OffsetReset::Earliest => OffsetAt::Earliest,
                            OffsetReset::Latest => OffsetAt::Latest,
                        };
                        let reset =
                            client
                                .get_offset(at)
                                .await
                                .map_err(|source| BatchError::Fetch {
                                    offset: next,
                                    source,
                                })?;
                        tracing::warn!(topic = %topic, partition, offset = next, reset, "offset out of range; reset");
                        return Ok(BatchDone {
                            offsets: Vec::new(),
                            next: reset,
                            high_watermark: reset,
                            rest: Vec::new(),
                        });
                    }
                    other => other.map_err(|source| BatchError::Fetch {
                        offset: next,
                        source,
                    })?,
                };
                let (records, high_watermark) = fetched;
                let records: Vec<InRecord> = records
                    .into_iter()
                    .filter(|r| r.offset >= next)
                    .map(|r| InRecord {
                        topic: topic.clone(),
                        partition,
                        offset: r.offset,
                        key: r.record.key,
                        value: r.record.value,
                        headers: r.record.headers,
                    })
                    .collect();
                (records, high_watermark)
            } else {
                // No fetch, so no new high watermark.
                (buffered, i64::MIN)
            };
            let rest = records.split_off(records.len().min(c.max_poll_records as usize));
            if records.is_empty() {
                return Ok(BatchDone {
                    offsets: Vec::new(),
                    next,
                    high_watermark,
                    rest,
                });
            }
            metrics::counter!(m::CONSUMER_RECORDS_TOTAL, "topic" => topic.clone())
                .increment(records.len() as u64);

            let mut outputs = Vec::new();
            let mut outcomes: std::collections::BTreeMap<(String, &'static str), u64> =
                std::collections::BTreeMap::new();
            for record in &records {
                let started = Instant::now();
                let processed = process(&router, record).await;
                let route = processed.route.unwrap_or_else(|| "-".to_owned());
                metrics::histogram!(m::HANDLER_DURATION_SECONDS, "route" => route.clone())
                    .record(started.elapsed().as_secs_f64());
                if let Outcome::Failed(kind) = processed.outcome {
                    tracing::warn!(
                        topic = %topic, partition, offset = record.offset, route = %route,
                        kind = kind.as_str(), "handler failed; dead-lettering the record"
                    );
                }
                *outcomes
                    .entry((route, processed.outcome.as_str()))
                    .or_default() += 1;
                outputs.extend(processed.outputs);
            }
            for ((route, outcome), n) in outcomes {
                metrics::counter!(m::HANDLER_RECORDS_TOTAL, "route" => route, "outcome" => outcome)
                    .increment(n);
            }
            publish(&producer, outputs, &settings).await?;
            next = records.last().map_or(next, |r| r.offset + 1);
            Ok(BatchDone {
                offsets: records.iter().map(|r| r.offset).collect(),
                next,
                high_watermark,
                rest,
            })
        }
    }

    fn finish_drain(&mut self, ctx: &mut Context<Self>) {
        let offsets = std::collections::BTreeMap::from([(
            (self.topic.clone(), self.partition),
            self.watermark.committable(),
        )]);
        let committer = self.committer.clone();
        let waiters = std::mem::take(&mut self.draining);
        let (topic, partition) = (self.topic.clone(), self.partition);
        ctx.wait(
            async move {
                match committer.send(Commit(offsets)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(topic = %topic, partition, error = %e, "final commit failed")
                    }
                    Err(e) => {
                        tracing::warn!(topic = %topic, partition, error = %e, "committer gone")
                    }
                }
                for w in waiters {
                    let _ = w.send(());
                }
            }
            .into_actor(self)
            .map(|_, act, ctx| {
                act.drained = true;
                ctx.stop();
            }),
        );
    }
}

/// Publishes `outputs`, retrying the failed ones; every one must be
/// acknowledged before the records they came from count as handled.
async fn publish(
    producer: &Producer,
    mut outputs: Vec<crate::producer::OutRecord>,
    settings: &Settings,
) -> Result<(), ProduceError> {
    let mut attempt = 1;
    loop {
        if outputs.is_empty() {
            return Ok(());
        }
        let results = producer.send(outputs.clone()).await;
        let mut failed = Vec::new();
        let mut last = None;
        let mut ok: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for (record, result) in outputs.into_iter().zip(results) {
            match result {
                Ok(_) => *ok.entry(record.topic).or_default() += 1,
                Err(e) => {
                    failed.push(record);
                    last = Some(e);
                }
            }
        }
        for (topic, n) in ok {
            metrics::counter!(m::PRODUCER_RECORDS_TOTAL, "topic" => topic, "outcome" => "ok")
                .increment(n);
        }
        match last {
            None => return Ok(()),
            Some(e) if attempt >= settings.produce_attempts => return Err(e),
            Some(e) => {
                tracing::warn!(error = %e, attempt, left = failed.len(), "publishing outputs failed; retrying");
                tokio::time::sleep(settings.retry_backoff * attempt).await;
                attempt += 1;
                outputs = failed;
            }
        }
    }
}

impl Actor for PartitionConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.drained {
            // Restarted by the supervisor after a drain: stay idle.
            return;
        }
        tracing::debug!(topic = %self.topic, partition = self.partition, start = self.next, "partition consumer started");
        if self.restarts == 0 {
            ctx.notify(Poll);
        } else {
            let pause = Duration::from_millis(100 * 2u64.pow(self.restarts.min(6)))
                .min(Duration::from_secs(5));
            ctx.notify_later(Poll, pause);
        }
    }
}

impl Supervised for PartitionConsumer {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        if self.drained {
            return;
        }
        // Start over from what was fully handled; the failed batch runs again.
        let from = self.watermark.committable();
        self.watermark = Watermark::new(from);
        self.next = from;
        self.busy = false;
        self.buffered.clear();
        self.restarts += 1;
        metrics::counter!(m::ACTOR_RESTARTS_TOTAL, "actor" => "partition_consumer").increment(1);
        tracing::warn!(topic = %self.topic, partition = self.partition, from, restarts = self.restarts, "partition consumer restarting");
    }
}

impl Handler<Poll> for PartitionConsumer {
    type Result = ();

    fn handle(&mut self, _msg: Poll, ctx: &mut Self::Context) {
        if self.busy {
            return;
        }
        if !self.draining.is_empty() {
            self.finish_drain(ctx);
            return;
        }
        self.busy = true;
        ctx.spawn(self.batch().into_actor(self).map(|result, act, ctx| {
            act.busy = false;
            match result {
                Ok(done) => {
                    act.restarts = 0;
                    for offset in &done.offsets {
                        // Offsets come in increasing order from one fetch.
                        let _ = act.watermark.start(*offset);
                        let _ = act.watermark.finish(*offset);
                    }
                    if done.offsets.is_empty() && done.next != act.next {
                        act.watermark = Watermark::new(done.next);
                    }
                    act.next = done.next;
                    act.buffered = done.rest;
                    if done.high_watermark != i64::MIN {
                        metrics::gauge!(
                            m::CONSUMER_LAG_RECORDS,
                            "topic" => act.topic.clone(),
                            "partition" => act.partition.to_string()
                        )
                        .set((done.high_watermark - act.next).max(0) as f64);
                    }
                    if !done.offsets.is_empty() {
                        let offsets = std::collections::BTreeMap::from([(
                            (act.topic.clone(), act.partition),
                            act.watermark.committable(),
                        )]);
                        let committer = act.committer.clone();
                        let auto = act.settings.consumer.enable_auto_commit;
                        // Commit before the next fetch, so a crash replays at
                        // most the batches after the last commit.
                        ctx.wait(
                            async move {
                                if auto {
                                    let _ = committer.send(Report(offsets)).await;
                                } else if let Ok(Err(e)) = committer.send(Commit(offsets)).await {
                                    tracing::warn!(error = %e, "commit after batch failed; it will be retried");
                                }
                            }
                            .into_actor(act),
                        );
                    }
                    ctx.notify(Poll);
                }
                Err(e) => {
                    tracing::error!(topic = %act.topic, partition = act.partition, error = %e, "batch failed; restarting the partition consumer");
                    ctx.stop();
                }
            }
        }));
    }
}

impl Handler<Drain> for PartitionConsumer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.draining.push(tx);
        if !self.busy {
            ctx.notify(Poll);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
