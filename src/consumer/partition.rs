//! The partition consumer actor: one per consumed (topic, partition).
//!
//! **What it does**: fetches ahead from its partition, hands the records in
//! batches of at most `consumer.max_poll_records` to its handler workers,
//! and counts a record as handled only when the producer pool reports every
//! output and dead letter of its batch acknowledged by the broker. The
//! committable watermark — the lowest offset not yet handled — goes to the
//! offset committer as it moves (committed at once with
//! `enable_auto_commit = false`, on the interval otherwise).
//!
//! **Messages**: in: [`Drain`] (stop fetching, let the records in flight
//! finish, commit, stop); internal `Poll`. Out: [`HandleBatch`] to its
//! workers, [`Report`] and [`Commit`] to the committer.
//!
//! **Ordering**: records reach the workers in offset order. A partition has
//! one worker per unit of its routes' `concurrency`; a record goes to the
//! worker its key hashes to (keyless records: by offset), so with one worker
//! the partition's order is kept and with more each key's.
//!
//! **Backpressure**: the next fetch is sent while earlier records are being
//! handled, but only while fewer than `pipeline.max_in_flight_records`
//! records and `pipeline.max_in_flight_bytes` bytes of this partition are in
//! flight, and a fetch asks for no more bytes than that budget has left (at
//! least 64 KiB). A slow partition stops fetching; the others go on. Memory
//! per partition is bounded by those limits plus one fetch.
//!
//! **Supervision**: a fetch or publish that fails past its retries stops
//! the actor; its `Supervisor` restarts it from the watermark (the records
//! in flight are handled again: at-least-once), after a backoff that
//! doubles up to 5 s and is counted in `kafka_actors_actor_restarts_total`.
//! Its workers survive the restart.
//!
//! **Key order through a retry topic** (`ordering = "key"` with
//! `retry.mode = "topic"`): an input partition's consumer and the consumer
//! of its retry partition share a [`KeyWaits`]. The input side's workers
//! write a record of a waiting key behind it; the retry side reports each
//! record of a key-ordered route it finished ([`crate::handler::key_waits`]).
//!
//! **Metrics**: records consumed, records in flight, consumer lag from the
//! fetch high watermark.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rskafka::client::error::{Error as RsError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use tokio::sync::oneshot;

use super::commit::{Commit, OffsetCommitter, Report, Rewind};
use super::watermark::Watermark;
use crate::config::FailureAction;
use crate::config::{ConsumerConfig, KafkaConfig, OffsetReset};
use crate::handler::key_waits::{self, KeyWaits};
use crate::handler::process::InRecord;
use crate::handler::process::{Halt, HaltKind};
use crate::handler::router::Router;
use crate::handler::worker::{
    BatchDone, Forget, HandleBatch, HandlerWorker, OutputFailure, Resume,
};
use crate::health::heartbeat::{self, Heart, Heartbeats, Registration};
use crate::producer::{ProducerPool, murmur2};
use crate::telemetry::metrics as m;

/// Stop fetching, let the records in flight finish, commit, and stop.
/// Answers once stopped.
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
    /// Records of one partition in flight before it stops fetching.
    pub max_in_flight_records: usize,
    /// Bytes of one partition in flight before it stops fetching.
    pub max_in_flight_bytes: usize,
    /// How long a partition held at a failed record waits before trying it
    /// again (`pipeline.pause_ms`).
    pub pause: Duration,
    /// `health.stall_timeout_ms`: no record finished for this long with
    /// records in flight restarts the partition (None: off).
    pub stall_timeout: Option<Duration>,
    /// Where the partition consumers and their workers send heartbeats.
    pub heartbeats: Option<Arc<Heartbeats>>,
    /// A one-off replay's end per partition: records at or after it are
    /// not handled, and the partition stops fetching there.
    pub ends: BTreeMap<(String, i32), i64>,
    /// A one-off replay's rate limit, shared by its partitions.
    pub pacer: Option<Arc<Pacer>>,
}

/// Spaces records out to a rate shared by every partition that holds it:
/// each record takes `1 / rate` seconds of the schedule.
#[derive(Debug)]
pub struct Pacer {
    per_record: Duration,
    next: std::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    /// A pacer for `rate` records per second (above 0).
    pub fn new(rate: f64) -> Self {
        Self {
            per_record: Duration::from_secs_f64(1.0 / rate.max(f64::MIN_POSITIVE)),
            next: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Reserves the schedule for `n` records; answers how long to wait
    /// before handing them out.
    pub fn reserve(&self, n: usize) -> Duration {
        let now = tokio::time::Instant::now();
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = (*next).max(now);
        *next = start + self.per_record * u32::try_from(n).unwrap_or(u32::MAX);
        start - now
    }
}

/// The partition consumer; see the module documentation.
pub struct PartitionConsumer {
    topic: String,
    partition: i32,
    client: Arc<PartitionClient>,
    router: Arc<Router>,
    pool: Addr<ProducerPool>,
    committer: Addr<OffsetCommitter>,
    settings: Arc<Settings>,
    /// Created on first start; they survive restarts.
    workers: Vec<Addr<HandlerWorker>>,
    /// Its heartbeat, registered in `started`.
    heart: Option<Arc<Heart>>,
    watermark: Watermark,
    /// The next offset to fetch.
    next: i64,
    fetching: bool,
    in_flight_records: usize,
    in_flight_bytes: usize,
    draining: Vec<oneshot::Sender<()>>,
    restarts: u32,
    /// Bumped on every restart: a completion from before it is ignored.
    generation: u64,
    /// Drained: the supervisor's restart must not start consuming again.
    drained: bool,
    /// Fetching stopped for good at a record batch this build cannot read
    /// (why, for logs and restarts).
    paused: Option<String>,
    /// Paused at a failed record (a `pause` or `stop` action, an open
    /// circuit breaker) or a retry record not due yet.
    held: Option<HaltKind>,
    /// Bumped with every decisive hold: an older hold's timer is ignored.
    hold_token: u64,
    /// The records a hold left unhandled, handed out again on resume.
    retained: Vec<InRecord>,
    /// Records parked behind a failed record of their key (`ordering =
    /// "key"`): out of the flight, not finished, still in the budget.
    parked_records: usize,
    parked_bytes: usize,
    /// Paused because an output could not be written: a restart from the
    /// watermark is due (it ends any other hold too).
    output_paused: bool,
    /// Paused by an admin request until one resumes it (survives restarts).
    admin_paused: bool,
    /// A log-end request for the lag of an idle partition is under way.
    refreshing_lag: bool,
    /// An admin seek: the restart starts here (and is not a failure).
    seek_to: Option<i64>,
    /// A replay after a seek: records below the offset carry the id.
    replay_until: Option<(String, i64)>,
    held_gauge: metrics::Gauge,
    parked_gauge: metrics::Gauge,
    in_flight_gauge: metrics::Gauge,
    lag_gauge: metrics::Gauge,
    lag_seconds_gauge: metrics::Gauge,
    /// The committable offset when it last moved, and when.
    progress: (i64, std::time::Instant),
    /// The timestamps (ms) of the records started and not finished, by
    /// offset: the oldest gives the lag in seconds.
    started_at: BTreeMap<i64, i64>,
    consumed: metrics::Counter,
    /// Key order through a retry topic: the key waits this partition
    /// shares with its input or retry partition, and which one it is.
    waits: Option<(Arc<KeyWaits>, Side)>,
    /// On the retry side: the key of each record handed out that counts in
    /// `waits`, by offset, until it is finished.
    counted: BTreeMap<i64, Vec<u8>>,
}

/// Which partition of a key-ordered pair a consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The input partition: its workers write records of waiting keys to
    /// the retry partition.
    Input,
    /// The retry partition: it reports the records it finished.
    Retry,
}

impl std::fmt::Debug for PartitionConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionConsumer")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("next", &self.next)
            .field("in_flight", &self.in_flight_records)
            .finish_non_exhaustive()
    }
}

/// What one fetch brought.
enum Fetched {
    Records {
        records: Vec<InRecord>,
        high_watermark: i64,
    },
    /// The offset was out of range; consumption resets here.
    Reset(i64),
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("fetching at offset {offset}: {source}")]
    Fetch {
        offset: i64,
        #[source]
        source: RsError,
    },
}

/// The fetched records from `next` on (a fetch starts at the batch holding
/// `next`).
fn in_records(
    records: Vec<rskafka::record::RecordAndOffset>,
    topic: &str,
    partition: i32,
    next: i64,
) -> Vec<InRecord> {
    records
        .into_iter()
        .filter(|r| r.offset >= next)
        .map(|r| InRecord {
            topic: topic.to_owned(),
            partition,
            offset: r.offset,
            timestamp: Some(r.record.timestamp.timestamp_millis()),
            key: r.record.key,
            value: r.record.value,
            headers: r.record.headers,
        })
        .collect()
}

/// The keys with records waiting in a retry partition that keeps key
/// order, read from `from` (where its consumer starts) to its end, before
/// its consumers start.
pub async fn waiting_keys(
    client: &PartitionClient,
    router: &Router,
    (topic, partition): (&str, i32),
    from: i64,
) -> Result<KeyWaits, RsError> {
    let waits = KeyWaits::default();
    let mut next = from;
    loop {
        // The end is each fetch's high watermark: Tansu's ListOffsets
        // (latest) answers the last batch's base offset + 1 (FINDINGS.md).
        // Nothing writes to the partition meanwhile: its input side has
        // not started, and the previous owner drained.
        let (records, high_watermark) =
            match client.fetch_records(next, 1..MAX_SCAN_FETCH_BYTES, 0).await {
                Ok(fetched) => fetched,
                Err(RsError::ServerError {
                    protocol_error: ProtocolError::OffsetOutOfRange,
                    ..
                }) => {
                    // Deleted by retention: the consumer starts over at
                    // the earliest offset too (or the latest, as
                    // configured; the scan then counts more, never less).
                    next = client.get_offset(OffsetAt::Earliest).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
        let records = in_records(records, topic, partition, next);
        for r in records.iter().filter(|r| r.offset < high_watermark) {
            if let Some(key) = key_waits::counted(router, r) {
                waits.add(key);
            }
        }
        match records.last() {
            Some(last) if last.offset + 1 < high_watermark => next = last.offset + 1,
            // At the end, or only control records (transaction markers,
            // which this service never writes) before it.
            _ => break,
        }
    }
    Ok(waits)
}

/// The high watermark of `client`'s partition: that of a fetch from the log
/// end (Tansu's ListOffsets(latest) answers the last batch's base offset + 1,
/// FINDINGS.md; Kafka answers such a fetch empty).
pub(crate) async fn high_watermark(client: &PartitionClient) -> Result<i64, RsError> {
    let end = client.get_offset(OffsetAt::Latest).await?;
    let (_, high_watermark) = client
        .fetch_records(end, 1..MIN_FETCH_BYTES as i32, 0)
        .await?;
    Ok(high_watermark)
}

/// The largest fetch of [`waiting_keys`].
const MAX_SCAN_FETCH_BYTES: i32 = 4 * 1024 * 1024;

/// Why a record batch cannot be read: fetching it again fails the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unreadable {
    /// Compressed with a codec this build lacks (rskafka fails the whole
    /// fetch with "Unimplemented compression: Lz4").
    Codec(&'static str),
    /// rskafka cannot decode it ("Malformed data").
    Malformed(String),
}

impl FetchError {
    /// Why the fetched record batch cannot be read, if that is why the
    /// fetch failed.
    fn unreadable(&self) -> Option<Unreadable> {
        let Self::Fetch { source, .. } = self;
        let text = source.to_string();
        if text.contains("Unimplemented compression") {
            return Some(Unreadable::Codec(if text.contains("Lz4") {
                "lz4"
            } else if text.contains("Zstd") {
                "zstd"
            } else {
                "an unknown codec"
            }));
        }
        let malformed = text.contains("Malformed data");
        malformed.then_some(Unreadable::Malformed(text))
    }
}

/// A partition client on a connection of its own.
///
/// A Kafka broker answers the requests of one connection one at a time, and
/// a fetch waits up to `fetch_max_wait_ms` for data: fetches of several
/// partitions (or produce requests) sharing a connection would queue behind
/// an idle partition's wait. So every partition consumer fetches over its
/// own connection, and produce requests never share one with a fetch.
pub async fn connect(
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
) -> Result<Arc<PartitionClient>, RsError> {
    let client = crate::producer::client::rskafka_client(config).await?;
    Ok(Arc::new(
        client
            .partition_client(topic, partition, UnknownTopicHandling::Error)
            .await?,
    ))
}

/// The smallest fetch, whatever the in-flight budget has left.
const MIN_FETCH_BYTES: usize = 64 * 1024;

fn record_bytes(r: &InRecord) -> usize {
    r.value.as_ref().map_or(0, Vec::len) + r.key.as_ref().map_or(0, Vec::len)
}

/// Which of `workers` handles `record`: by key, else by offset.
fn worker_for(record: &InRecord, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let hash = match &record.key {
        Some(key) => (murmur2(key) & 0x7fff_ffff) as u64,
        None => record.offset.unsigned_abs(),
    };
    (hash % workers as u64) as usize
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
        pool: Addr<ProducerPool>,
        committer: Addr<OffsetCommitter>,
        settings: Arc<Settings>,
    ) -> Self {
        let labels = [
            ("topic", topic.clone()),
            ("partition", partition.to_string()),
        ];
        Self {
            held_gauge: metrics::gauge!(m::PARTITION_HELD, &labels),
            parked_gauge: metrics::gauge!(m::PARTITION_PARKED_RECORDS, &labels),
            in_flight_gauge: metrics::gauge!(m::CONSUMER_IN_FLIGHT_RECORDS, &labels),
            lag_gauge: metrics::gauge!(m::CONSUMER_LAG_RECORDS, &labels),
            lag_seconds_gauge: metrics::gauge!(m::CONSUMER_LAG_SECONDS, &labels),
            started_at: BTreeMap::new(),
            progress: (start, std::time::Instant::now()),
            consumed: metrics::counter!(m::CONSUMER_RECORDS_TOTAL, "topic" => topic.clone()),
            topic,
            partition,
            client,
            router,
            pool,
            committer,
            settings,
            workers: Vec::new(),
            heart: None,
            watermark: Watermark::new(start),
            next: start,
            fetching: false,
            in_flight_records: 0,
            in_flight_bytes: 0,
            draining: Vec::new(),
            paused: None,
            held: None,
            hold_token: 0,
            retained: Vec::new(),
            parked_records: 0,
            parked_bytes: 0,
            output_paused: false,
            admin_paused: false,
            refreshing_lag: false,
            seek_to: None,
            replay_until: None,
            restarts: 0,
            generation: 0,
            drained: false,
            waits: None,
            counted: BTreeMap::new(),
        }
    }

    /// A consumer of one partition of a key-ordered pair (see the module
    /// documentation).
    pub fn with_waits(mut self, waits: Arc<KeyWaits>, side: Side) -> Self {
        self.waits = Some((waits, side));
        self
    }

    /// The retry side finished the record at `offset`.
    fn count_finished(&mut self, offset: i64) {
        if let Some(key) = self.counted.remove(&offset)
            && let Some((waits, _)) = &self.waits
        {
            waits.finished(&key, offset);
        }
    }

    fn fetch(&self) -> impl Future<Output = Result<Fetched, FetchError>> + 'static {
        // Ask for no more than the in-flight budget has left.
        let budget = self
            .settings
            .max_in_flight_bytes
            .saturating_sub(self.in_flight_bytes)
            .max(MIN_FETCH_BYTES);
        let client = Arc::clone(&self.client);
        let settings = Arc::clone(&self.settings);
        let topic = self.topic.clone();
        let partition = self.partition;
        let next = self.next;
        async move {
            let c = &settings.consumer;
            let max_wait = i32::try_from(c.fetch_max_wait_ms).unwrap_or(i32::MAX);
            let min = i32::try_from(c.fetch_min_bytes).unwrap_or(1);
            let max = i32::try_from(
                (c.max_partition_fetch_bytes.min(c.fetch_max_bytes) as usize).min(budget),
            )
            .unwrap_or(i32::MAX)
            .max(min + 1);
            match client.fetch_records(next, min..max, max_wait).await {
                Ok((records, high_watermark)) => Ok(Fetched::Records {
                    records: in_records(records, &topic, partition, next),
                    high_watermark,
                }),
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
                            .map_err(|source| FetchError::Fetch {
                                offset: next,
                                source,
                            })?;
                    tracing::warn!(topic = %topic, partition, offset = next, reset, "offset out of range; reset");
                    Ok(Fetched::Reset(reset))
                }
                Err(source) => {
                    let e = FetchError::Fetch {
                        offset: next,
                        source,
                    };
                    if e.unreadable().is_none() {
                        return Err(e);
                    }
                    // rskafka fails the whole fetch when any batch in it
                    // cannot be read: fetch only the first batch at `next`
                    // (a broker always returns one whole batch), so that
                    // the readable records before the bad one are handled.
                    match client.fetch_records(next, 1..2, 0).await {
                        Ok((records, high_watermark))
                            if records.iter().any(|r| r.offset >= next) =>
                        {
                            Ok(Fetched::Records {
                                records: in_records(records, &topic, partition, next),
                                high_watermark,
                            })
                        }
                        _ => Err(e),
                    }
                }
            }
        }
    }

    fn below_bounds(&self) -> bool {
        self.in_flight_records + self.parked_records < self.settings.max_in_flight_records
            && self.in_flight_bytes + self.parked_bytes < self.settings.max_in_flight_bytes
    }

    /// Hands `records` (in offset order) to the workers.
    fn dispatch(&mut self, mut records: Vec<InRecord>, ctx: &mut Context<Self>) {
        let Some(last) = records.last().map(|r| r.offset) else {
            return;
        };
        self.consumed.increment(records.len() as u64);
        if let Some((_, Side::Retry)) = &self.waits {
            for r in &records {
                if let Some(key) = key_waits::counted(&self.router, r) {
                    self.counted.insert(r.offset, key.to_vec());
                }
            }
        }
        if let Some((id, until)) = &self.replay_until {
            for r in records.iter_mut().filter(|r| r.offset < *until) {
                r.headers.insert(
                    crate::handler::router::REPLAY_HEADER.to_owned(),
                    id.as_bytes().to_vec(),
                );
            }
            if last + 1 >= *until {
                self.replay_until = None;
            }
        }
        for r in &records {
            if let Err(e) = self.watermark.start(r.offset) {
                // Cannot happen: a fetch starts at `next` and offsets increase.
                tracing::error!(topic = %self.topic, partition = self.partition, error = %e, "record out of order; skipped");
            }
            if let Some(ts) = r.timestamp {
                self.started_at.insert(r.offset, ts);
            }
        }
        self.next = last + 1;
        if self.admin_paused {
            // Fetched just before an admin pause: kept until the resume.
            self.retained.extend(records);
            return;
        }
        self.hand_out(records, ctx);
    }

    /// Hands fetched records (started in the watermark) to the workers:
    /// each key's records to the same worker, in batches of at most
    /// `consumer.max_poll_records`.
    fn hand_out(&mut self, records: Vec<InRecord>, ctx: &mut Context<Self>) {
        if records.is_empty() {
            return;
        }
        let per_batch = self.settings.consumer.max_poll_records.max(1) as usize;
        let generation = self.generation;
        let workers = self.workers.len();
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let mut lanes: Vec<Vec<InRecord>> = (0..workers).map(|_| Vec::new()).collect();
            for r in records.by_ref().take(per_batch) {
                lanes[worker_for(&r, workers)].push(r);
            }
            for (lane, batch) in lanes.into_iter().enumerate() {
                if batch.is_empty() {
                    continue;
                }
                let sized: Vec<(i64, usize)> =
                    batch.iter().map(|r| (r.offset, record_bytes(r))).collect();
                self.in_flight_records += sized.len();
                self.in_flight_bytes += sized.iter().map(|(_, b)| b).sum::<usize>();
                let (done, result) = oneshot::channel();
                self.workers[lane].do_send(HandleBatch {
                    records: batch,
                    done,
                });
                ctx.spawn(
                    async move {
                        match result.await {
                            // Every output acknowledged, or the first failure.
                            Ok(BatchDone {
                                halt,
                                unhandled,
                                parked,
                                failure,
                            }) => (
                                failure.map_or(Ok(()), Err),
                                halt.map(|h| (h, unhandled)),
                                parked,
                            ),
                            Err(_) => (Err(OutputFailure::dropped("the batch")), None, Vec::new()),
                        }
                    }
                    .into_actor(self)
                    .map(move |(result, halt, parked), act, ctx| {
                        if act.generation == generation {
                            act.finished(sized, result, halt, parked, ctx);
                        }
                    }),
                );
            }
        }
        self.in_flight_gauge.set(self.in_flight_records as f64);
    }

    /// A batch is fully handled (or its outputs could not be published, or
    /// a record halted it: the records from that one on were not handled).
    fn finished(
        &mut self,
        offsets: Vec<(i64, usize)>,
        result: Result<(), OutputFailure>,
        halt: Option<((i64, Halt), Vec<InRecord>)>,
        parked: Vec<(i64, oneshot::Receiver<BatchDone>)>,
        ctx: &mut Context<Self>,
    ) {
        if let Err(failure) = result {
            // None of the batch is finished: it runs again after a restart.
            self.in_flight_records -= offsets.len();
            self.in_flight_bytes -= offsets.iter().map(|(_, b)| b).sum::<usize>();
            self.in_flight_gauge.set(self.in_flight_records as f64);
            self.output_failed(failure, ctx);
            // A drain may be waiting for this batch.
            ctx.notify(Poll);
            return;
        }
        self.restarts = 0;
        let halted_at = halt.as_ref().map_or(i64::MAX, |((offset, _), _)| *offset);
        for (offset, bytes) in &offsets {
            if parked.iter().any(|(p, _)| p == offset) {
                self.parked_records += 1;
                self.parked_bytes += bytes;
            } else if *offset < halted_at {
                let _ = self.watermark.finish(*offset);
                self.started_at.remove(offset);
                self.count_finished(*offset);
            }
        }
        if let Some((waits, Side::Retry)) = &self.waits {
            waits.forget_before(self.watermark.committable());
        }
        self.parked_gauge.set(self.parked_records as f64);
        for (offset, outcome) in parked {
            let bytes = offsets
                .iter()
                .find(|(o, _)| *o == offset)
                .map_or(0, |(_, b)| *b);
            let generation = self.generation;
            ctx.spawn(outcome.into_actor(self).map(move |outcome, act, ctx| {
                if act.generation == generation && !act.drained {
                    act.unparked(offset, bytes, outcome.ok(), ctx);
                }
            }));
        }
        // Halted records leave the flight unhandled: kept, and handed out
        // again on resume (not fetched again: no broker has to serve a
        // fetch from inside a batch, and nothing handled runs twice).
        self.in_flight_records -= offsets.len();
        self.in_flight_bytes -= offsets.iter().map(|(_, b)| b).sum::<usize>();
        self.in_flight_gauge.set(self.in_flight_records as f64);
        if let Some(((offset, h), unhandled)) = halt {
            self.retained.extend(unhandled);
            self.hold(offset, &h, ctx);
        }
        let offsets = BTreeMap::from([(
            (self.topic.clone(), self.partition),
            self.watermark.committable(),
        )]);
        // The committer commits at once (or on its interval with
        // auto-commit), one commit in flight at a time.
        self.committer.do_send(Report(offsets));
        ctx.notify(Poll);
    }

    /// A parked record is handled (`None`: its worker forgot it, which
    /// only a restart or a drain asks for).
    fn unparked(
        &mut self,
        offset: i64,
        bytes: usize,
        outcome: Option<BatchDone>,
        ctx: &mut Context<Self>,
    ) {
        self.parked_records = self.parked_records.saturating_sub(1);
        self.parked_bytes = self.parked_bytes.saturating_sub(bytes);
        self.parked_gauge.set(self.parked_records as f64);
        let failure = match outcome {
            Some(done) => done.failure,
            None => Some(OutputFailure::dropped("a parked record")),
        };
        if let Some(failure) = failure {
            // While draining, the record is simply not committed.
            if self.draining.is_empty() {
                self.output_failed(failure, ctx);
            }
            return;
        }
        let _ = self.watermark.finish(offset);
        self.started_at.remove(&offset);
        self.count_finished(offset);
        let offsets = BTreeMap::from([(
            (self.topic.clone(), self.partition),
            self.watermark.committable(),
        )]);
        self.committer.do_send(Report(offsets));
        ctx.notify(Poll);
    }

    /// The lag in records comes with each fetch; a partition that does not
    /// fetch (paused, held, or its budget full) asks for its high watermark
    /// every second instead, so that its lag keeps growing while records
    /// arrive.
    fn refresh_lag(&mut self, ctx: &mut Context<Self>) {
        let idle = self.paused.is_some()
            || self.held.is_some()
            || self.admin_paused
            || !self.below_bounds();
        if self.fetching || self.refreshing_lag || self.drained || !idle {
            return;
        }
        self.refreshing_lag = true;
        let client = Arc::clone(&self.client);
        ctx.spawn(
            async move { high_watermark(&client).await }
                .into_actor(self)
                .map(|end, act, _| {
                    act.refreshing_lag = false;
                    if let Ok(end) = end {
                        act.lag_gauge
                            .set((end - act.watermark.committable()).max(0) as f64);
                    }
                }),
        );
    }

    /// `kafka_actors_consumer_lag_seconds`: the age of the oldest record
    /// fetched and not yet handled (0 when there is none).
    fn update_lag_seconds(&self) {
        let age_ms = self
            .started_at
            .values()
            .next()
            .map_or(0, |ts| (chrono::Utc::now().timestamp_millis() - ts).max(0));
        self.lag_seconds_gauge.set(age_ms as f64 / 1000.0);
    }

    /// Stall detection: records are in flight (handed to handlers, not
    /// held, parked or paused) and none finished for
    /// `health.stall_timeout_ms`. A handler that never returns holds its
    /// worker for good, so the partition restarts from its watermark with
    /// new handler workers (the stuck one is abandoned).
    fn check_stall(&mut self, ctx: &mut Context<Self>) {
        let committable = self.watermark.committable();
        let now = std::time::Instant::now();
        if committable != self.progress.0 || self.in_flight_records == 0 {
            self.progress = (committable, now);
            return;
        }
        let Some(limit) = self.settings.stall_timeout else {
            return;
        };
        let waiting = self.held.is_some()
            || self.admin_paused
            || self.output_paused
            || self.paused.is_some()
            || !self.draining.is_empty()
            || self.drained;
        if waiting {
            self.progress = (committable, now);
            return;
        }
        let stalled_for = now.duration_since(self.progress.1);
        if stalled_for < limit {
            return;
        }
        tracing::error!(
            topic = %self.topic, partition = self.partition, offset = committable,
            in_flight = self.in_flight_records, ?stalled_for,
            "partition stalled: records were handed to its handlers and none finished within \
             health.stall_timeout_ms; restarting it with new handler workers"
        );
        metrics::counter!(
            m::PARTITION_STALLS_TOTAL,
            "topic" => self.topic.clone(),
            "partition" => self.partition.to_string()
        )
        .increment(1);
        // Started again by `started`; the old ones drop their parked
        // records (the stuck one gets the message only if it ever
        // returns).
        for w in self.workers.drain(..) {
            w.do_send(Forget);
        }
        self.progress = (committable, now);
        ctx.stop();
    }

    /// An output could not be written (its records were not finished): do
    /// what the failure's action says. `retry` (and `dlq`, whose dead
    /// letter could not be written either) restarts the partition from its
    /// watermark after a backoff; `pause` stops fetching, raises an alert,
    /// and restarts it after `pipeline.pause_ms`; `stop` stops the service.
    fn output_failed(&mut self, failure: OutputFailure, ctx: &mut Context<Self>) {
        let (class, from) = (failure.kind.as_str(), self.watermark.committable());
        if !self.draining.is_empty() || self.held == Some(HaltKind::Stop) {
            // Stopping anyway: the record is simply not committed.
            tracing::warn!(
                topic = %self.topic, partition = self.partition, offset = failure.offset, class,
                error = %failure.error, "an output could not be written while stopping; the record is not committed"
            );
            return;
        }
        match failure.action {
            FailureAction::Retry | FailureAction::Dlq => {
                tracing::error!(
                    topic = %self.topic, partition = self.partition, offset = failure.offset, from, class,
                    error = %failure.error,
                    "publishing outputs failed; restarting the partition consumer from its watermark"
                );
                ctx.stop();
            }
            FailureAction::Pause => {
                if self.output_paused || self.held == Some(HaltKind::Stop) {
                    // Already paused (other batches failing the same way),
                    // or stopping.
                    return;
                }
                self.output_paused = true;
                tracing::error!(
                    topic = %self.topic, partition = self.partition, offset = failure.offset, from, class,
                    error = %failure.error, resume_in = ?self.settings.pause,
                    "partition paused: an output could not be written; the failure action for {class} is \
                     pause; it starts again from its watermark after pipeline.pause_ms"
                );
                self.held = Some(HaltKind::Pause);
                self.held_gauge.set(1.0);
                self.hold_token += 1;
                let (generation, token) = (self.generation, self.hold_token);
                ctx.run_later(self.settings.pause, move |act, ctx| {
                    if act.generation == generation && act.hold_token == token {
                        ctx.stop();
                    }
                });
            }
            FailureAction::Stop => {
                let reason = format!(
                    "{class} failure of an output of {}/{}@{}: {}; the failure action for {class} \
                     is stop",
                    self.topic, self.partition, failure.offset, failure.error
                );
                tracing::error!(
                    topic = %self.topic, partition = self.partition, offset = failure.offset, class,
                    error = %failure.error, "stopping the service: {reason}"
                );
                self.held = Some(HaltKind::Stop);
                self.output_paused = false;
                self.held_gauge.set(1.0);
                self.hold_token += 1;
                self.router.stop_service(reason);
            }
        }
    }

    /// A record at `offset` halted: stop fetching; unless the service is
    /// stopping, take it again after `pipeline.pause_ms` (or, for a retry
    /// record not due yet, when it is due).
    fn hold(&mut self, offset: i64, halt: &Halt, ctx: &mut Context<Self>) {
        // The halt that decides: a stop over a pause over a wait; a batch
        // returned because it was behind a halted record never decides (its
        // halt comes with the halted record's batch).
        if self
            .held
            .is_some_and(|held| halt.kind.rank() <= held.rank())
        {
            return;
        }
        self.hold_token += 1;
        self.held = Some(halt.kind);
        let wait = match halt.kind {
            HaltKind::Behind => return,
            HaltKind::Stop => {
                self.held_gauge.set(1.0);
                tracing::error!(
                    topic = %self.topic, partition = self.partition, offset, reason = %halt.reason,
                    "partition stopped at a record whose failure stops the service; it is not committed"
                );
                return;
            }
            HaltKind::Pause => {
                self.held_gauge.set(1.0);
                tracing::error!(
                    topic = %self.topic, partition = self.partition, offset, reason = %halt.reason,
                    resume_in = ?self.settings.pause, "partition paused at a failed record"
                );
                self.settings.pause
            }
            HaltKind::NotDue(wait) => {
                tracing::debug!(
                    topic = %self.topic, partition = self.partition, offset, ?wait,
                    "retry record not due yet; its partition waits"
                );
                wait
            }
        };
        let (generation, token) = (self.generation, self.hold_token);
        ctx.run_later(wait, move |act, ctx| {
            if act.generation == generation && act.hold_token == token {
                act.resume(ctx);
            }
        });
    }

    /// Takes the held record again, once the records still in flight are
    /// done (the halted ones count as not handled: fetched again).
    fn resume(&mut self, ctx: &mut Context<Self>) {
        if self.held.is_none() || self.admin_paused || !self.draining.is_empty() || self.drained {
            return;
        }
        if self.in_flight_records > 0 {
            let (generation, token) = (self.generation, self.hold_token);
            ctx.run_later(Duration::from_millis(100), move |act, ctx| {
                if act.generation == generation && act.hold_token == token {
                    act.resume(ctx);
                }
            });
            return;
        }
        let mut retained = std::mem::take(&mut self.retained);
        retained.sort_by_key(|r| r.offset);
        if self.held == Some(HaltKind::Pause) {
            tracing::info!(
                topic = %self.topic, partition = self.partition,
                from = retained.first().map_or(self.next, |r| r.offset),
                "partition resumes"
            );
        }
        self.held = None;
        self.held_gauge.set(0.0);
        for w in &self.workers {
            w.do_send(Resume);
        }
        // The held records first, in offset order (they are still started
        // in the watermark), then fetching goes on after them.
        self.hand_out(retained, ctx);
        ctx.notify(Poll);
    }

    fn finish_drain(&mut self, ctx: &mut Context<Self>) {
        let offsets = BTreeMap::from([(
            (self.topic.clone(), self.partition),
            self.watermark.committable(),
        )]);
        let committer = self.committer.clone();
        let waiters = std::mem::take(&mut self.draining);
        // Parked records are not committed: the next owner handles them.
        // The workers answer once their last outputs are written, so that
        // none lands after the next owner's.
        let forgotten: Vec<_> = self.workers.iter().map(|w| w.send(Forget)).collect();
        let (topic, partition) = (self.topic.clone(), self.partition);
        // Busy: the drain is bounded by the revoking side's deadline.
        ctx.wait(
            heartbeat::busy(self.heart.as_ref(), async move {
                for f in forgotten {
                    let _ = f.await;
                }
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
            })
            .into_actor(self)
            .map(|_, act, ctx| {
                act.drained = true;
                // No longer this instance's partition: its gauges (and the
                // alerts on them) go back to zero.
                for gauge in [
                    &act.lag_gauge,
                    &act.lag_seconds_gauge,
                    &act.held_gauge,
                    &act.parked_gauge,
                    &act.in_flight_gauge,
                ] {
                    gauge.set(0.0);
                }
                metrics::gauge!(
                    m::CONSUMER_PAUSED_COUNT,
                    "topic" => act.topic.clone(),
                    "partition" => act.partition.to_string()
                )
                .set(0.0);
                ctx.stop();
            }),
        );
    }
}

impl Actor for PartitionConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.drained {
            // Restarted by the supervisor after a drain: stay idle.
            self.heart = None;
            return;
        }
        let name = format!("{}/{}", self.topic, self.partition);
        self.heart = self
            .settings
            .heartbeats
            .as_ref()
            .map(|b| b.start("partition_consumer", name.clone(), Duration::ZERO, ctx));
        self.progress = (self.watermark.committable(), std::time::Instant::now());
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            act.update_lag_seconds();
            act.check_stall(ctx);
            act.refresh_lag(ctx);
        });
        if self.workers.is_empty() {
            let n = self.router.concurrency(&self.topic);
            self.workers = (0..n)
                .map(|i| {
                    let (router, pool) = (Arc::clone(&self.router), self.pool.clone());
                    let waits = match &self.waits {
                        Some((waits, Side::Input)) => Some(Arc::clone(waits)),
                        _ => None,
                    };
                    let beats = self.settings.heartbeats.clone().map(|beats| Registration {
                        beats,
                        name: format!("{name}#{i}"),
                        grace: Duration::ZERO,
                    });
                    Supervisor::start(move |_| {
                        HandlerWorker::new(router, pool)
                            .with_waits(waits)
                            .with_heartbeats(beats)
                    })
                })
                .collect();
        }
        tracing::debug!(topic = %self.topic, partition = self.partition, start = self.next, workers = self.workers.len(), "partition consumer started");
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
        // Start over from what was fully handled (or where an admin seek
        // asked); the records in flight run again (their completions were
        // dropped with the old context).
        let seek = self.seek_to.take();
        let from = seek.unwrap_or_else(|| self.watermark.committable());
        self.watermark = Watermark::new(from);
        self.started_at.clear();
        self.counted.clear();
        self.next = from;
        self.fetching = false;
        self.refreshing_lag = false;
        self.in_flight_records = 0;
        self.in_flight_bytes = 0;
        self.in_flight_gauge.set(0.0);
        self.generation += 1;
        if seek.is_none() {
            self.restarts += 1;
        }
        // A hold ends with the restart: the held record is fetched again.
        self.retained.clear();
        self.held = None;
        self.held_gauge
            .set(if self.admin_paused { 1.0 } else { 0.0 });
        self.output_paused = false;
        // So do parked records.
        self.parked_records = 0;
        self.parked_bytes = 0;
        self.parked_gauge.set(0.0);
        // A worker may be held by a halt whose result the restart dropped,
        // and holds parked records the restart fetches again.
        for w in &self.workers {
            w.do_send(Forget);
        }
        if seek.is_some() {
            tracing::info!(topic = %self.topic, partition = self.partition, from, "partition consumer starting over from the offset an admin request asked for");
            return;
        }
        metrics::counter!(m::ACTOR_RESTARTS_TOTAL, "actor" => "partition_consumer").increment(1);
        tracing::warn!(topic = %self.topic, partition = self.partition, from, restarts = self.restarts, "partition consumer restarting");
    }
}

impl Handler<Poll> for PartitionConsumer {
    type Result = ();

    fn handle(&mut self, _msg: Poll, ctx: &mut Self::Context) {
        if self.fetching || self.drained || self.seek_to.is_some() {
            return;
        }
        if !self.draining.is_empty() {
            if self.in_flight_records == 0 {
                self.finish_drain(ctx);
            }
            return;
        }
        if self.paused.is_some() || self.held.is_some() || self.admin_paused || !self.below_bounds()
        {
            return;
        }
        let end = self
            .settings
            .ends
            .get(&(self.topic.clone(), self.partition))
            .copied();
        if end.is_some_and(|end| self.next >= end) {
            // A one-off replay's end: nothing more to fetch.
            return;
        }
        self.fetching = true;
        let generation = self.generation;
        ctx.spawn(self.fetch().into_actor(self).map(move |result, act, ctx| {
            if act.generation != generation {
                return;
            }
            act.fetching = false;
            match result {
                Ok(Fetched::Records {
                    mut records,
                    high_watermark,
                }) => {
                    act.lag_gauge
                        .set((high_watermark - act.watermark.committable()).max(0) as f64);
                    // The fetch reached a one-off replay's end.
                    let reached = end.filter(|end| records.iter().any(|r| r.offset >= *end));
                    if let Some(end) = end {
                        records.retain(|r| r.offset < end);
                    }
                    let wait = match &act.settings.pacer {
                        Some(pacer) if !records.is_empty() => pacer.reserve(records.len()),
                        _ => Duration::ZERO,
                    };
                    if !wait.is_zero() {
                        // Paced: still fetching (nothing new is fetched)
                        // until these are handed out.
                        act.fetching = true;
                        ctx.run_later(wait, move |act, ctx| {
                            if act.generation != generation {
                                return;
                            }
                            act.fetching = false;
                            if act.draining.is_empty() {
                                act.dispatch(records, ctx);
                            }
                            if let Some(end) = reached {
                                act.next = act.next.max(end);
                            }
                            ctx.notify(Poll);
                        });
                        return;
                    }
                    if act.draining.is_empty() {
                        act.dispatch(records, ctx);
                    }
                    if let Some(end) = reached {
                        act.next = act.next.max(end);
                    }
                }
                Ok(Fetched::Reset(offset)) => {
                    if act.in_flight_records == 0
                        && act.parked_records == 0
                        && act.held.is_none()
                        && act.retained.is_empty()
                    {
                        act.watermark = Watermark::new(offset);
                        act.next = offset;
                    } else {
                        // Let the records in flight finish first (held
                        // ones start over from the watermark).
                        tracing::warn!(topic = %act.topic, partition = act.partition, "offset reset while records are in flight or held; restarting");
                        ctx.stop();
                        return;
                    }
                }
                Err(e) => {
                    if let Some(unreadable) = e.unreadable() {
                        // Fetching again fails the same way at this offset
                        // forever: stop here instead of restarting in a loop.
                        let why = match &unreadable {
                            Unreadable::Codec(codec) => format!(
                                "the record batch at offset {} is compressed with {codec}, which \
                                 this build cannot read: it needs the cargo feature `{codec}`, \
                                 which does not exist yet (gzip and snappy are built in); records \
                                 before it were handled, the partition is paused here",
                                act.next
                            ),
                            Unreadable::Malformed(error) => format!(
                                "the record batch at offset {} cannot be decoded ({error}); records \
                                 before it were handled, the partition is paused here",
                                act.next
                            ),
                        };
                        let codec = match unreadable {
                            Unreadable::Codec(codec) => codec,
                            Unreadable::Malformed(_) => "-",
                        };
                        tracing::error!(
                            topic = %act.topic, partition = act.partition, offset = act.next,
                            codec, "partition paused: {why}"
                        );
                        metrics::gauge!(
                            m::CONSUMER_PAUSED_COUNT,
                            "topic" => act.topic.clone(),
                            "partition" => act.partition.to_string()
                        )
                        .set(1.0);
                        act.paused = Some(why);
                        return;
                    }
                    let FetchError::Fetch { source, .. } = &e;
                    if crate::producer::client::refused_credentials(source) {
                        // Restarting would be refused the same way.
                        let reason = format!(
                            "the broker refused the credentials while fetching {}/{}: {e}",
                            act.topic, act.partition
                        );
                        tracing::error!(topic = %act.topic, partition = act.partition, error = %e, "stopping the service: {reason}");
                        act.router.stop_refused(reason);
                        return;
                    }
                    tracing::error!(topic = %act.topic, partition = act.partition, error = %e, "fetch failed; restarting the partition consumer");
                    ctx.stop();
                    return;
                }
            }
            ctx.notify(Poll);
        }));
    }
}

/// What a partition consumer is doing, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionState {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// `consuming`, `paused` (by an admin request), `held` (at a failed
    /// record: a `pause` action or an open circuit breaker), `waiting`
    /// (a retry record not due yet), `stopping` (a `stop` action),
    /// `unreadable` (a record batch this build cannot read).
    pub state: &'static str,
    /// Why, when it is not consuming.
    pub reason: Option<String>,
    /// The next offset to fetch.
    pub next_offset: i64,
    /// The offset it commits: every record below it is handled.
    pub committable_offset: i64,
    /// Records handed to handlers and not finished.
    pub in_flight_records: usize,
    /// Records parked behind a failed record of their key.
    pub parked_records: usize,
}

/// Asks a partition consumer for its [`PartitionState`].
#[derive(Debug, Message)]
#[rtype(result = "PartitionState")]
pub struct Describe;

/// Pauses a partition until [`AdminResume`]: it stops fetching and handing
/// out records; those in flight finish.
#[derive(Debug, Message)]
#[rtype(result = "PartitionState")]
pub struct AdminPause;

/// Resumes a partition paused by [`AdminPause`], and ends at once a pause
/// at a failed record (`pause` action, open circuit breaker, an output that
/// could not be written) or an unreadable batch, which is tried again.
#[derive(Debug, Message)]
#[rtype(result = "PartitionState")]
pub struct AdminResume;

impl PartitionConsumer {
    fn state(&self) -> PartitionState {
        let (state, reason) = if self.admin_paused {
            ("paused", Some("paused by an admin request".to_owned()))
        } else if let Some(why) = &self.paused {
            ("unreadable", Some(why.clone()))
        } else if self.output_paused {
            ("held", Some("an output could not be written".to_owned()))
        } else {
            match self.held {
                None | Some(HaltKind::Behind) => ("consuming", None),
                Some(HaltKind::Pause) => ("held", Some("paused at a failed record".to_owned())),
                Some(HaltKind::NotDue(_)) => {
                    ("waiting", Some("a retry record is not due yet".to_owned()))
                }
                Some(HaltKind::Stop) => (
                    "stopping",
                    Some("a stop action stops the service".to_owned()),
                ),
            }
        };
        PartitionState {
            topic: self.topic.clone(),
            partition: self.partition,
            state,
            reason,
            next_offset: self.next,
            committable_offset: self.watermark.committable(),
            in_flight_records: self.in_flight_records,
            parked_records: self.parked_records,
        }
    }
}

impl Handler<Describe> for PartitionConsumer {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, _msg: Describe, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.state())
    }
}

impl Handler<AdminPause> for PartitionConsumer {
    type Result = MessageResult<AdminPause>;

    fn handle(&mut self, _msg: AdminPause, _ctx: &mut Self::Context) -> Self::Result {
        if !self.admin_paused {
            self.admin_paused = true;
            self.held_gauge.set(1.0);
            tracing::warn!(
                topic = %self.topic, partition = self.partition, next = self.next,
                "partition paused by an admin request; it stays paused until resumed"
            );
        }
        MessageResult(self.state())
    }
}

/// Where an admin seek goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// This offset (at most the high watermark).
    Offset(i64),
    /// The earliest offset still in the log.
    Earliest,
    /// The end of the log (the high watermark).
    Latest,
    /// The first record at or after this time (the end if none).
    Timestamp(chrono::DateTime<chrono::Utc>),
}

/// Start over from another offset: the records in flight, held or parked
/// are dropped (outputs already on their way may still be written), the
/// offset is committed (even below the committed one), and the partition
/// fetches from it. Answers the offset, or why not (`Err((field, why))`).
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, (&'static str, String)>")]
pub struct AdminSeek {
    /// Where to.
    pub to: SeekTo,
    /// A replay id: the records below the offset the partition had
    /// reached carry it in [`crate::handler::router::REPLAY_HEADER`] (and
    /// so do their outputs).
    pub replay: Option<String>,
}

impl Handler<AdminSeek> for PartitionConsumer {
    type Result = ResponseActFuture<Self, Result<i64, (&'static str, String)>>;

    fn handle(&mut self, msg: AdminSeek, _ctx: &mut Self::Context) -> Self::Result {
        if self.drained || !self.draining.is_empty() || self.seek_to.is_some() {
            let why = format!(
                "{}/{} is stopping or already seeking",
                self.topic, self.partition
            );
            return Box::pin(actix::fut::ready(Err(("partition", why))));
        }
        let AdminSeek { to, replay } = msg;
        // Records below where it got to were handled once already.
        let reached = self.next;
        let client = Arc::clone(&self.client);
        let committer = self.committer.clone();
        let tp = (self.topic.clone(), self.partition);
        // Fetch nothing more until the restart from the new offset (or the
        // refusal).
        self.seek_to = Some(self.watermark.committable());
        let (topic, partition) = tp.clone();
        let resolve = async move {
            let earliest = client
                .get_offset(OffsetAt::Earliest)
                .await
                .map_err(|e| ("partition", e.to_string()))?;
            let end = high_watermark(&client)
                .await
                .map_err(|e| ("partition", e.to_string()))?;
            match to {
                SeekTo::Offset(o) if (earliest..=end).contains(&o) => Ok(o),
                SeekTo::Offset(o) => Err((
                    "offset",
                    format!("offset {o} is outside {topic}/{partition}'s log ({earliest}..={end})"),
                )),
                SeekTo::Earliest => Ok(earliest),
                SeekTo::Latest => Ok(end),
                SeekTo::Timestamp(t) => {
                    let at = client
                        .get_offset(OffsetAt::Timestamp(t))
                        .await
                        .map_err(|e| ("partition", e.to_string()))?;
                    // -1 (Kafka) or past the end: nothing that late.
                    Ok(if (earliest..=end).contains(&at) {
                        at
                    } else {
                        end
                    })
                }
            }
        };
        Box::pin(resolve.into_actor(self).then(move |resolved, act, ctx| {
            let offset = match resolved {
                Ok(offset) => offset,
                Err(refused) => {
                    // Nothing changed: go on.
                    act.seek_to = None;
                    ctx.notify(Poll);
                    let refused: ResponseActFuture<Self, _> =
                        Box::pin(actix::fut::ready(Err(refused)));
                    return refused;
                }
            };
            // From here what completes is ignored: the records in flight
            // run again from the new offset.
            act.generation += 1;
            let rewind: ResponseActFuture<Self, _> = Box::pin(
                async move { committer.send(Rewind(tp, offset)).await }
                    .into_actor(act)
                    .map(move |committed, act, ctx| {
                        let result = match committed {
                            Ok(Ok(())) => {
                                act.seek_to = Some(offset);
                                act.replay_until =
                                    replay.map(|id| (id, reached)).filter(|(_, r)| *r > offset);
                                Ok(offset)
                            }
                            Ok(Err(e)) => {
                                act.seek_to = None;
                                Err(("partition", e))
                            }
                            Err(e) => {
                                act.seek_to = None;
                                Err(("partition", e.to_string()))
                            }
                        };
                        // Start over: from the new offset, or (the commit
                        // failed) from the watermark.
                        ctx.stop();
                        result
                    }),
            );
            rewind
        }))
    }
}

impl Handler<AdminResume> for PartitionConsumer {
    type Result = MessageResult<AdminResume>;

    fn handle(&mut self, _msg: AdminResume, ctx: &mut Self::Context) -> Self::Result {
        if self.drained || !self.draining.is_empty() || self.held == Some(HaltKind::Stop) {
            // Stopping: nothing is taken up again.
            self.admin_paused = false;
            return MessageResult(self.state());
        }
        let was = self.state();
        tracing::info!(
            topic = %self.topic, partition = self.partition, state = was.state,
            "partition resumed by an admin request"
        );
        self.admin_paused = false;
        if self.held != Some(HaltKind::Stop) {
            self.held_gauge.set(0.0);
        }
        if self.paused.take().is_some() {
            metrics::gauge!(
                m::CONSUMER_PAUSED_COUNT,
                "topic" => self.topic.clone(),
                "partition" => self.partition.to_string()
            )
            .set(0.0);
        }
        if self.output_paused {
            // Its outputs run again from the watermark.
            ctx.stop();
        } else if matches!(self.held, Some(HaltKind::Pause | HaltKind::NotDue(_))) {
            // Older timers are ignored; the held records are taken again.
            self.hold_token += 1;
            self.resume(ctx);
        } else if self.held.is_none() && !self.retained.is_empty() {
            // Fetched while paused.
            let mut retained = std::mem::take(&mut self.retained);
            retained.sort_by_key(|r| r.offset);
            self.hand_out(retained, ctx);
        }
        ctx.notify(Poll);
        let mut now = self.state();
        if self.output_paused {
            now.state = "consuming";
            now.reason = None;
        }
        MessageResult(now)
    }
}

impl Handler<Drain> for PartitionConsumer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.drained {
            let _ = tx.send(());
        } else {
            self.draining.push(tx);
            ctx.notify(Poll);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: Option<&str>, offset: i64) -> InRecord {
        InRecord {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp: None,
            key: key.map(|k| k.as_bytes().to_vec()),
            value: None,
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn batches_that_fail_every_fetch_the_same_way_are_recognised() {
        let fetch = |source| FetchError::Fetch { offset: 7, source };
        let codec = fetch(RsError::InvalidResponse(
            "Unimplemented compression: Lz4".to_owned(),
        ));
        assert_eq!(codec.unreadable(), Some(Unreadable::Codec("lz4")));
        // rskafka's error types are private; its text, as a fetch reports
        // it, is what counts.
        let malformed = fetch(RsError::InvalidResponse(
            "Cannot read versioned data: Read error: Malformed data: out of range integral type \
             conversion attempted"
                .to_owned(),
        ));
        assert!(matches!(
            malformed.unreadable(),
            Some(Unreadable::Malformed(text)) if text.contains("out of range")
        ));
        let network = fetch(RsError::InvalidResponse("connection reset".to_owned()));
        assert_eq!(network.unreadable(), None);
    }

    #[test]
    fn one_worker_takes_everything_and_a_key_always_goes_to_the_same_worker() {
        assert_eq!(worker_for(&rec(Some("a"), 1), 1), 0);
        assert_eq!(worker_for(&rec(None, 7), 1), 0);
        for key in ["a", "b", "user-17", ""] {
            let first = worker_for(&rec(Some(key), 0), 4);
            assert!(first < 4);
            for offset in 1..50 {
                assert_eq!(worker_for(&rec(Some(key), offset), 4), first, "{key}");
            }
        }
        // Keys spread over the workers; keyless records go by offset.
        let used: std::collections::BTreeSet<usize> = (0..100)
            .map(|i| worker_for(&rec(Some(&format!("k{i}")), 0), 4))
            .collect();
        assert_eq!(used.len(), 4);
        let keyless: Vec<usize> = (0..4).map(|o| worker_for(&rec(None, o), 4)).collect();
        assert_eq!(keyless, vec![0, 1, 2, 3]);
    }
}
