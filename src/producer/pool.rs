//! The producer pool actor: every output of the pipeline (replies,
//! forwards, dead letters) goes through it.
//!
//! **What it does**: keeps one queue per target (topic, partition), places
//! records with the Java-compatible partitioner, and sends each queue as
//! rskafka produce requests of at most `producer.max_request_bytes`. A queue
//! holding less than `producer.batch_size` bytes and
//! `producer.batch_max_records` records waits `producer.linger_ms` for more
//! before it is sent; records that arrive while a request is in flight go
//! in the next one. Every produce is
//! acknowledged by all in-sync replicas (rskafka sends acks=all).
//!
//! **Messages**: in: [`Publish`] (records, and a channel that gets every
//! record's result — where it was written, or why not after
//! `pipeline.produce_attempts` attempts — once all of them are settled);
//! [`Flush`] (answers when nothing is queued or in flight).
//!
//! **Ordering**: one request in flight per target partition, and a failed
//! request is retried before anything queued behind it, so records of one
//! [`Publish`] — and of successive ones — keep their order in each
//! partition. That is what keeps replies to one key in request order.
//!
//! **Supervision**: the pool holds no state a restart could rebuild
//! (queued records belong to callers waiting on them), so it does not
//! restart; produce failures are retried with backoff and reported to the
//! caller, whose partition consumer restarts from its watermark.
//!
//! **Metrics**: `kafka_actors_producer_records_total{topic,outcome}`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rskafka::client::partition::PartitionClient;
use rskafka::record::Record;
use tokio::sync::oneshot;

use super::client::{OutRecord, ProduceError, Producer, TopicHandle, Written};
use crate::config::Config;
use crate::health::heartbeat::{Heart, Registration};
use crate::telemetry::metrics as m;

/// Every record's result, in the order of [`Publish::records`].
pub type Results = Vec<Result<Written, ProduceError>>;

/// Publish these records; `done` gets every record's result once each was
/// acknowledged or failed for good.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Publish {
    /// The records, in the order they must keep per partition.
    pub records: Vec<OutRecord>,
    /// Gets one result per record, in order.
    pub done: oneshot::Sender<Results>,
}

/// Answers once nothing is queued or in flight.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Batching and retry settings of the pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// How long a queue that is not full waits for more records.
    pub linger: Duration,
    /// A queue this full (bytes) is sent without lingering.
    pub batch_bytes: usize,
    /// A queue this full (records) is sent without lingering.
    pub batch_records: usize,
    /// Largest request to one partition, in bytes (at least one record).
    pub max_request_bytes: usize,
    /// Attempts per request before its records fail.
    pub attempts: u32,
    /// Pause before the second attempt; doubles each time.
    pub retry_backoff: Duration,
}

impl PoolSettings {
    /// The settings from `[producer]` and `[pipeline]`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            linger: Duration::from_millis(config.producer.linger_ms),
            batch_bytes: config.producer.batch_size as usize,
            batch_records: config.producer.batch_max_records as usize,
            max_request_bytes: config.producer.max_request_bytes as usize,
            attempts: config.pipeline.produce_attempts,
            retry_backoff: Duration::from_millis(config.producer.retry_backoff_ms),
        }
    }
}

struct Queued {
    publish: u64,
    index: usize,
    record: Record,
    bytes: usize,
}

struct PartitionQueue {
    client: Arc<PartitionClient>,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    in_flight: bool,
    linger_armed: bool,
}

struct Pending {
    remaining: usize,
    results: Vec<Option<Result<Written, ProduceError>>>,
    done: Option<oneshot::Sender<Results>>,
}

type Target = (String, i32);

/// The producer pool; see the module documentation.
pub struct ProducerPool {
    producer: Arc<Producer>,
    settings: PoolSettings,
    topics: HashMap<String, Arc<TopicHandle>>,
    /// Why a topic could not be resolved, for the records of the publish
    /// that asked (the next publish tries again).
    unresolved: HashMap<String, ProduceError>,
    queues: HashMap<Target, PartitionQueue>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    flushes: Vec<oneshot::Sender<()>>,
    /// Where its heart registers, and the heart.
    registration: Option<Registration>,
    heart: Option<Arc<Heart>>,
}

impl std::fmt::Debug for ProducerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerPool")
            .field("queues", &self.queues.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

fn record_bytes(r: &OutRecord) -> usize {
    // Value, key and headers, plus Kafka's per-record overhead (about 20 B).
    r.value.as_ref().map_or(0, Vec::len)
        + r.key.as_ref().map_or(0, Vec::len)
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
        + 20
}

impl ProducerPool {
    /// A pool producing through `producer`.
    pub fn new(producer: Arc<Producer>, settings: PoolSettings) -> Self {
        Self {
            producer,
            settings,
            topics: HashMap::new(),
            unresolved: HashMap::new(),
            queues: HashMap::new(),
            pending: HashMap::new(),
            next_id: 0,
            flushes: Vec::new(),
            registration: None,
            heart: None,
        }
    }

    /// Sends heartbeats as `registration` says (see
    /// [`crate::health::heartbeat`]).
    pub fn with_heartbeats(mut self, registration: Option<Registration>) -> Self {
        self.registration = registration;
        self
    }

    fn idle(&self) -> bool {
        self.pending.is_empty()
    }

    fn settle(&mut self, publish: u64, index: usize, result: Result<Written, ProduceError>) {
        let Some(p) = self.pending.get_mut(&publish) else {
            return;
        };
        if let Some(slot) = p.results.get_mut(index) {
            *slot = Some(result);
        }
        p.remaining = p.remaining.saturating_sub(1);
        if p.remaining == 0
            && let Some(p) = self.pending.remove(&publish)
            && let Some(done) = p.done
        {
            let results = p
                .results
                .into_iter()
                // Every slot was settled: `remaining` counted them.
                .map(|r| {
                    r.unwrap_or_else(|| {
                        Err(ProduceError::Produce {
                            topic: String::new(),
                            partition: -1,
                            message: "record was not produced (internal error)".to_owned(),
                        })
                    })
                })
                .collect();
            let _ = done.send(results);
        }
    }

    fn answer_flushes(&mut self) {
        if self.idle() {
            for f in self.flushes.drain(..) {
                let _ = f.send(());
            }
        }
    }

    /// Queues `records` of publish `id`, whose topics are all resolved.
    fn enqueue(&mut self, id: u64, records: Vec<OutRecord>, ctx: &mut Context<Self>) {
        let mut touched: Vec<Target> = Vec::new();
        for (index, r) in records.into_iter().enumerate() {
            let placed = match self.topics.get(&r.topic) {
                Some(handle) => handle
                    .place(r.key.as_deref(), r.partition)
                    .map_err(|source| ProduceError::Partition {
                        topic: r.topic.clone(),
                        source,
                    }),
                None => Err(match self.unresolved.get(&r.topic) {
                    Some(ProduceError::UnknownTopic { topic }) => ProduceError::UnknownTopic {
                        topic: topic.clone(),
                    },
                    Some(e) => ProduceError::Produce {
                        topic: r.topic.clone(),
                        partition: -1,
                        message: e.to_string(),
                    },
                    None => ProduceError::UnknownTopic {
                        topic: r.topic.clone(),
                    },
                }),
            };
            let (partition, client) = match placed {
                Ok(p) => p,
                Err(e) => {
                    metrics::counter!(m::PRODUCER_RECORDS_TOTAL, "topic" => r.topic.clone(), "outcome" => "error")
                        .increment(1);
                    self.settle(id, index, Err(e));
                    continue;
                }
            };
            let bytes = record_bytes(&r);
            let target = (r.topic, partition);
            let q = self
                .queues
                .entry(target.clone())
                .or_insert_with(|| PartitionQueue {
                    client,
                    queue: VecDeque::new(),
                    queued_bytes: 0,
                    in_flight: false,
                    linger_armed: false,
                });
            q.queue.push_back(Queued {
                publish: id,
                index,
                record: Record {
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                    timestamp: chrono::Utc::now(),
                },
                bytes,
            });
            q.queued_bytes += bytes;
            if !touched.contains(&target) {
                touched.push(target);
            }
        }
        for target in touched {
            self.maybe_send(target, ctx);
        }
    }

    /// Sends `target`'s queue now if it is full or linger is off; else
    /// arms the linger timer.
    fn maybe_send(&mut self, target: Target, ctx: &mut Context<Self>) {
        let settings = &self.settings;
        let Some(q) = self.queues.get_mut(&target) else {
            return;
        };
        if q.in_flight || q.queue.is_empty() {
            return;
        }
        let full =
            q.queued_bytes >= settings.batch_bytes || q.queue.len() >= settings.batch_records;
        if full || settings.linger.is_zero() {
            self.send(target, ctx);
        } else if !q.linger_armed {
            q.linger_armed = true;
            ctx.run_later(settings.linger, move |act, ctx| {
                if let Some(q) = act.queues.get_mut(&target) {
                    q.linger_armed = false;
                }
                act.send(target, ctx);
            });
        }
    }

    /// Sends one request from `target`'s queue, if none is in flight.
    fn send(&mut self, target: Target, ctx: &mut Context<Self>) {
        let settings = self.settings.clone();
        let compression = self.producer.compression();
        let Some(q) = self.queues.get_mut(&target) else {
            return;
        };
        if q.in_flight || q.queue.is_empty() {
            return;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(next) = q.queue.front() {
            if !batch.is_empty() && bytes + next.bytes > settings.max_request_bytes {
                break;
            }
            bytes += next.bytes;
            if let Some(item) = q.queue.pop_front() {
                batch.push(item);
            }
        }
        q.queued_bytes -= bytes;
        q.in_flight = true;
        let client = Arc::clone(&q.client);
        let (publishes, records): (Vec<(u64, usize)>, Vec<Record>) = batch
            .into_iter()
            .map(|b| ((b.publish, b.index), b.record))
            .unzip();
        let (topic, partition) = target.clone();
        let request = async move {
            let send = |records: Vec<Record>| {
                produce_with_retries(&client, records, compression, &settings, &topic, partition)
            };
            match send(records.clone()).await {
                Ok(offsets) => Ok(offsets.into_iter().map(Ok).collect()),
                // Retrying cannot help: find the records that are too large
                // by sending each alone, in order.
                Err(e) if super::client::too_large(&e) => {
                    if records.len() > 1 {
                        tracing::warn!(
                            topic = %topic, partition, records = records.len(), error = %e,
                            "a produce request was refused as too large; sending its records one by one"
                        );
                    }
                    let mut each = Vec::with_capacity(records.len());
                    for (i, record) in records.iter().enumerate() {
                        let bytes = record.key.as_ref().map_or(0, Vec::len)
                            + record.value.as_ref().map_or(0, Vec::len);
                        match send(vec![record.clone()]).await {
                            Ok(offsets) => each.push(offsets.first().copied().ok_or_else(|| {
                                Refused::Failed("the broker returned no offset".to_owned())
                            })),
                            Err(e) if super::client::too_large(&e) => {
                                each.push(Err(Refused::TooLarge(bytes, e.to_string())));
                            }
                            Err(e) => {
                                // This one and, to keep their order, the rest.
                                let message = e.to_string();
                                each.extend(
                                    (i..records.len())
                                        .map(|_| Err(Refused::Failed(message.clone()))),
                                );
                                break;
                            }
                        }
                    }
                    Ok(each)
                }
                Err(e) => Err((e.to_string(), super::client::unauthorized(&e))),
            }
        };
        ctx.spawn(request.into_actor(self).map(move |result, act, ctx| {
            let (topic, partition) = target.clone();
            let n = publishes.len() as u64;
            match result {
                Ok(offsets) => {
                    let (mut ok, mut too_large, mut failed) = (0u64, 0u64, 0u64);
                    for ((id, index), offset) in publishes.into_iter().zip(offsets) {
                        let result = match offset {
                            Ok(offset) => {
                                ok += 1;
                                Ok(Written { partition, offset })
                            }
                            Err(Refused::TooLarge(bytes, message)) => {
                                too_large += 1;
                                Err(ProduceError::TooLarge {
                                    topic: topic.clone(),
                                    partition,
                                    bytes,
                                    message,
                                })
                            }
                            Err(Refused::Failed(message)) => {
                                failed += 1;
                                Err(ProduceError::Produce {
                                    topic: topic.clone(),
                                    partition,
                                    message,
                                })
                            }
                        };
                        act.settle(id, index, result);
                    }
                    for (outcome, count) in [("ok", ok), ("too_large", too_large), ("error", failed)] {
                        if count > 0 {
                            metrics::counter!(m::PRODUCER_RECORDS_TOTAL, "topic" => topic.clone(), "outcome" => outcome)
                                .increment(count);
                        }
                    }
                }
                Err((message, unauthorized)) => {
                    tracing::error!(topic = %topic, partition, records = n, error = %message, "produce failed for good");
                    let outcome = if unauthorized { "unauthorized" } else { "error" };
                    metrics::counter!(m::PRODUCER_RECORDS_TOTAL, "topic" => topic.clone(), "outcome" => outcome)
                        .increment(n);
                    for (id, index) in publishes {
                        let (topic, message) = (topic.clone(), message.clone());
                        act.settle(
                            id,
                            index,
                            Err(if unauthorized {
                                ProduceError::Unauthorized {
                                    topic,
                                    partition,
                                    message,
                                }
                            } else {
                                ProduceError::Produce {
                                    topic,
                                    partition,
                                    message,
                                }
                            }),
                        );
                    }
                }
            }
            if let Some(q) = act.queues.get_mut(&target) {
                q.in_flight = false;
            }
            // What queued up meanwhile has waited long enough.
            act.send(target, ctx);
            act.answer_flushes();
        }));
    }
}

/// Why one record of a request split after a too-large refusal was not
/// written.
enum Refused {
    /// Too large for the broker: `(key and value bytes, the error)`.
    TooLarge(usize, String),
    /// Failed past its retries (it, or a record before it).
    Failed(String),
}

/// One produce request, retried with backoff up to `settings.attempts`
/// unless the broker refused it as too large (retrying cannot help).
async fn produce_with_retries(
    client: &PartitionClient,
    records: Vec<Record>,
    compression: rskafka::client::partition::Compression,
    settings: &PoolSettings,
    topic: &str,
    partition: i32,
) -> Result<Vec<i64>, rskafka::client::error::Error> {
    let mut attempt = 1;
    loop {
        match client.produce(records.clone(), compression).await {
            Ok(offsets) => return Ok(offsets),
            Err(e)
                if super::client::too_large(&e)
                    || super::client::unauthorized(&e)
                    || attempt >= settings.attempts =>
            {
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(
                    topic = %topic, partition, attempt, records = records.len(), error = %e,
                    "produce failed; retrying"
                );
                tokio::time::sleep(settings.retry_backoff * 2u32.pow(attempt - 1)).await;
                attempt += 1;
            }
        }
    }
}

impl Actor for ProducerPool {
    type Context = Context<Self>;

    // Callers send with `do_send`, which does not wait on the mailbox
    // capacity: arrival order is send order, and callers bound what they
    // publish themselves.
    fn started(&mut self, ctx: &mut Self::Context) {
        self.heart = self
            .registration
            .as_ref()
            .map(|r| r.start("producer_pool", ctx));
    }
}

impl Handler<Publish> for ProducerPool {
    type Result = ();

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) {
        if msg.records.is_empty() {
            let _ = msg.done.send(Vec::new());
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                remaining: msg.records.len(),
                results: (0..msg.records.len()).map(|_| None).collect(),
                done: Some(msg.done),
            },
        );
        let unknown: std::collections::BTreeSet<String> = msg
            .records
            .iter()
            .filter(|r| !self.topics.contains_key(&r.topic))
            .map(|r| r.topic.clone())
            .collect();
        if unknown.is_empty() {
            self.enqueue(id, msg.records, ctx);
            return;
        }
        // Resolve new topics first; `wait` holds later messages back so
        // arrival order is kept.
        let producer = Arc::clone(&self.producer);
        let records = msg.records;
        let asked = unknown.clone();
        let resolving = async move {
            let mut resolved = Vec::new();
            for topic in unknown {
                let handle = producer.topic(&topic).await;
                resolved.push((topic, handle));
            }
            resolved
        };
        // Guarded: a resolution stuck past the heartbeat's grace is ended,
        // and the records of its topics fail (the publisher's output
        // failure handling takes them again).
        let resolving = match &self.heart {
            Some(heart) => futures_util::future::Either::Left(heart.guard(resolving, false)),
            None => futures_util::future::Either::Right(async move { Ok(resolving.await) }),
        };
        ctx.wait(resolving.into_actor(self).map(move |resolved, act, ctx| {
            let resolved = resolved.unwrap_or_else(|stale| {
                asked
                    .into_iter()
                    .map(|topic| {
                        let e = ProduceError::Produce {
                            topic: topic.clone(),
                            partition: -1,
                            message: format!("resolving the topic: {stale}"),
                        };
                        (topic, Err(e))
                    })
                    .collect()
            });
            act.unresolved.clear();
            for (topic, handle) in resolved {
                match handle {
                    Ok(handle) => {
                        act.topics.insert(topic, handle);
                    }
                    Err(e) => {
                        tracing::warn!(topic = %topic, error = %e, "cannot resolve output topic");
                        act.unresolved.insert(topic, e);
                    }
                }
            }
            act.enqueue(id, records, ctx);
            act.answer_flushes();
        }));
    }
}

impl Handler<Flush> for ProducerPool {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.flushes.push(tx);
        self.answer_flushes();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::heartbeat::Heartbeats;

    /// A broker that answers ApiVersions and the first Metadata request
    /// (itself as the only broker, no topics), then nothing: a broker that
    /// hangs after the client connected.
    async fn hanging_broker() -> (String, tokio::task::JoinHandle<()>) {
        use bytes::{Buf, BufMut, Bytes, BytesMut};
        use kafka_protocol::messages::{
            ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, RequestHeader, ResponseHeader,
            api_versions_response::ApiVersion, metadata_response::MetadataResponseBroker,
        };
        use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answered_metadata = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let answered_metadata = Arc::clone(&answered_metadata);
                tokio::spawn(async move {
                    loop {
                        let Ok(len) = socket.read_u32().await else {
                            return;
                        };
                        let mut frame = vec![0; len as usize];
                        if socket.read_exact(&mut frame).await.is_err() {
                            return;
                        }
                        let mut buf = Bytes::from(frame);
                        let (key, version) = (
                            i16::from_be_bytes([buf[0], buf[1]]),
                            i16::from_be_bytes([buf[2], buf[3]]),
                        );
                        let Ok(api) = ApiKey::try_from(key) else {
                            return;
                        };
                        let header =
                            RequestHeader::decode(&mut buf, api.request_header_version(version))
                                .unwrap();
                        let mut body = BytesMut::new();
                        match api {
                            ApiKey::ApiVersions => {
                                let keys = [
                                    (ApiKey::ApiVersions, 0, 3),
                                    (ApiKey::Metadata, 0, 12),
                                    (ApiKey::Produce, 3, 9),
                                    (ApiKey::Fetch, 4, 12),
                                    (ApiKey::ListOffsets, 1, 7),
                                ];
                                ApiVersionsResponse::default()
                                    .with_api_keys(
                                        keys.iter()
                                            .map(|(k, min, max)| {
                                                ApiVersion::default()
                                                    .with_api_key(*k as i16)
                                                    .with_min_version(*min)
                                                    .with_max_version(*max)
                                            })
                                            .collect(),
                                    )
                                    .encode(&mut body, version)
                                    .unwrap();
                            }
                            ApiKey::Metadata
                                if !answered_metadata
                                    .swap(true, std::sync::atomic::Ordering::SeqCst) =>
                            {
                                MetadataResponse::default()
                                    .with_brokers(vec![
                                        MetadataResponseBroker::default()
                                            .with_node_id(BrokerId(0))
                                            .with_host(StrBytes::from_static_str("127.0.0.1"))
                                            .with_port(i32::from(addr.port())),
                                    ])
                                    .with_controller_id(BrokerId(0))
                                    .encode(&mut body, version)
                                    .unwrap();
                            }
                            // Hang: read nothing more, answer nothing.
                            _ => {
                                std::future::pending::<()>().await;
                                return;
                            }
                        }
                        let mut head = BytesMut::new();
                        ResponseHeader::default()
                            .with_correlation_id(header.correlation_id)
                            .encode(&mut head, api.response_header_version(version))
                            .unwrap();
                        let mut out = BytesMut::new();
                        out.put_u32((head.len() + body.len()) as u32);
                        out.put(head);
                        out.put(body);
                        if socket.write_all(out.chunk()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr.to_string(), task)
    }

    /// A topic lookup that never ends holds the pool's mailbox; the
    /// heartbeat goes stale, the monitor ends the lookup, and the records
    /// of the publish fail naming the topic instead of waiting forever.
    #[test]
    fn a_stuck_topic_lookup_is_ended_when_the_pool_goes_stale() {
        actix::System::new().block_on(async {
            let (addr, hole) = hanging_broker().await;
            let kafka = crate::config::KafkaConfig {
                bootstrap_servers: vec![addr],
                ..Default::default()
            };
            let producer = tokio::time::timeout(
                Duration::from_secs(10),
                Producer::connect(&kafka, crate::config::Compression::None),
            )
            .await;
            let Ok(Ok(producer)) = producer else {
                panic!("connecting to the hanging broker: {producer:?}");
            };
            let beats = Heartbeats::new(Duration::from_millis(20), 5);
            let pool = ProducerPool::new(
                Arc::new(producer),
                PoolSettings::from_config(&Config::default()),
            )
            .with_heartbeats(Some(Registration {
                beats: Arc::clone(&beats),
                name: "pool-0".into(),
                grace: Duration::ZERO,
            }))
            .start();
            let (done, results) = oneshot::channel();
            pool.do_send(Publish {
                records: vec![OutRecord {
                    topic: "orders".into(),
                    value: Some(b"{}".to_vec()),
                    ..OutRecord::default()
                }],
                done,
            });
            // The monitor's checks, as the health monitor runs them.
            let checking = {
                let beats = Arc::clone(&beats);
                tokio::spawn(async move {
                    let mut found = Vec::new();
                    for _ in 0..200 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        found.extend(beats.check());
                        if !found.is_empty() {
                            break;
                        }
                    }
                    found
                })
            };
            let results = tokio::time::timeout(Duration::from_secs(10), results)
                .await
                .expect("the publish was never answered")
                .unwrap();
            let found = checking.await.unwrap();
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].kind, "producer_pool");
            assert!(found[0].restarted);
            match &results[0] {
                Err(ProduceError::Produce { topic, message, .. }) => {
                    assert_eq!(topic, "orders");
                    assert!(message.contains("no heartbeat"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            hole.abort();
        });
    }
}
