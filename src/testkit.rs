//! Test harness (feature `testkit`), shared by the integration tests, the
//! examples and the benchmarks. What seed 004's `kafka_utils` offers:
//! connectivity check, wait with backoff, test topics, publish with a
//! correlation id, consume until that id arrives, and request -> response
//! flow tracking.
//!
//! Every wait has a deadline; every client call is bounded by rskafka's
//! backoff deadline.
//!
//! The broker is `KAFKA_ACTORS_TEST_BOOTSTRAP` (or seed 004's
//! `TEST_KAFKA_BOOTSTRAP_SERVERS`) when set, else an embedded Tansu broker
//! (feature `embedded-broker`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::{Record, RecordAndOffset};
use serde_json::Value;

use crate::config::KafkaConfig;
use crate::kafka::{ClusterInfo, KafkaError, cluster};

/// Header (and JSON field) that carries the correlation id.
pub const CORRELATION_HEADER: &str = "correlation_id";

/// Variable naming an external broker for the tests.
pub const TEST_BOOTSTRAP_VAR: &str = "KAFKA_ACTORS_TEST_BOOTSTRAP";
/// Seed 004's name for the same thing.
pub const SEED_TEST_BOOTSTRAP_VAR: &str = "TEST_KAFKA_BOOTSTRAP_SERVERS";

/// Errors of the harness; each says what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A client call failed.
    #[error("{what}: {source}")]
    Client {
        /// What was being done.
        what: String,
        /// rskafka's error.
        #[source]
        source: rskafka::client::error::Error,
    },
    /// A protocol call failed.
    #[error("{what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: KafkaError,
    },
    /// No broker configured and the embedded one is not compiled in.
    #[error(
        "no test broker: set {TEST_BOOTSTRAP_VAR}=host:port or build with --features embedded-broker"
    )]
    NoBroker,
    /// The embedded broker did not start.
    #[cfg(feature = "embedded-broker")]
    #[error(transparent)]
    Embedded(#[from] crate::embedded::EmbeddedError),
}

/// The broker a test runs against.
#[derive(Debug)]
pub enum TestBroker {
    /// A broker someone else runs (Apache Kafka from `scripts/kafka up`).
    External(String),
    /// An in-process Tansu broker, stopped when this is dropped.
    #[cfg(feature = "embedded-broker")]
    Embedded(crate::embedded::EmbeddedBroker),
}

impl TestBroker {
    /// The external broker when one is configured, else an embedded one.
    pub async fn start() -> Result<Self, TestkitError> {
        if let Some(bootstrap) = external_bootstrap() {
            return Ok(Self::External(bootstrap));
        }
        #[cfg(feature = "embedded-broker")]
        {
            Ok(Self::Embedded(
                crate::embedded::EmbeddedBroker::start().await?,
            ))
        }
        #[cfg(not(feature = "embedded-broker"))]
        {
            Err(TestkitError::NoBroker)
        }
    }

    /// `host:port` to give clients.
    pub fn bootstrap(&self) -> &str {
        match self {
            Self::External(b) => b,
            #[cfg(feature = "embedded-broker")]
            Self::Embedded(b) => b.bootstrap(),
        }
    }

    /// Whether this is the reference broker (Apache Kafka) rather than Tansu.
    pub fn is_external(&self) -> bool {
        matches!(self, Self::External(_))
    }
}

/// The external test broker's address, if one is configured.
pub fn external_bootstrap() -> Option<String> {
    [TEST_BOOTSTRAP_VAR, SEED_TEST_BOOTSTRAP_VAR]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
}

/// A name no other test uses: `prefix-<uuid>`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A [`KafkaConfig`] for `bootstrap` with short test deadlines.
pub fn kafka_config(bootstrap: &str) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: servers(bootstrap),
        client_id: "kafka-actors-test".to_owned(),
        connect_timeout_ms: 5_000,
        request_timeout_ms: 15_000,
        ..KafkaConfig::default()
    }
}

/// Quick connectivity check (seed 004's `verify_kafka_connectivity`).
pub async fn verify_connectivity(bootstrap: &str) -> bool {
    cluster::describe(&kafka_config(bootstrap)).await.is_ok()
}

/// Waits until the broker answers, with exponential backoff (seed 004's
/// `wait_for_kafka`: initial delay, times 1.5 each retry).
pub async fn wait_for_kafka(
    bootstrap: &str,
    max_retries: u32,
    initial_delay: Duration,
) -> Result<ClusterInfo, TestkitError> {
    let config = kafka_config(bootstrap);
    let deadline = Instant::now()
        + initial_delay.mul_f64(
            (1..=max_retries)
                .map(|i| 1.5f64.powi(i as i32 - 1))
                .sum::<f64>(),
        )
        + config.request_timeout() * (max_retries + 1);
    cluster::wait_until_reachable(&config, deadline, initial_delay, 1.5)
        .await
        .map_err(|source| TestkitError::Kafka {
            what: format!("waiting for {bootstrap}"),
            source,
        })
}

/// `a:1,b:2` as a list.
fn servers(bootstrap: &str) -> Vec<String> {
    bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(ToOwned::to_owned)
        .collect()
}

/// An rskafka client for `bootstrap` (one `host:port` or a comma list) whose
/// calls give up after `deadline`.
pub async fn client(bootstrap: &str, deadline: Duration) -> Result<Client, TestkitError> {
    ClientBuilder::new(servers(bootstrap))
        .client_id("kafka-actors-test")
        .backoff_config(crate::producer::client::backoff(deadline))
        .build()
        .await
        .map_err(|source| TestkitError::Client {
            what: format!("connecting to {bootstrap}"),
            source,
        })
}

/// Creates topics (seed 004's `create_test_topics`), waiting until each
/// one's partitions answer.
pub async fn create_topics(
    client: &Client,
    topics: &[&str],
    partitions: i32,
    replication_factor: i16,
) -> Result<(), TestkitError> {
    let controller = client
        .controller_client()
        .map_err(|source| TestkitError::Client {
            what: "controller client".to_owned(),
            source,
        })?;
    for topic in topics {
        controller
            .create_topic(*topic, partitions, replication_factor, 10_000)
            .await
            .map_err(|source| TestkitError::Client {
                what: format!("creating topic {topic}"),
                source,
            })?;
        for partition in 0..partitions {
            partition_client(client, topic, partition).await?;
        }
    }
    Ok(())
}

async fn partition_client(
    client: &Client,
    topic: &str,
    partition: i32,
) -> Result<PartitionClient, TestkitError> {
    client
        .partition_client(topic, partition, UnknownTopicHandling::Retry)
        .await
        .map_err(|source| TestkitError::Client {
            what: format!("partition client for {topic}/{partition}"),
            source,
        })
}

/// Publishes a JSON event carrying `correlation_id` as a header and, for
/// JSON objects, as a field (seed 004's `publish_test_event`). Returns the
/// offset it was written at.
pub async fn publish_test_event(
    client: &Client,
    topic: &str,
    partition: i32,
    mut event: Value,
    correlation_id: &str,
) -> Result<i64, TestkitError> {
    if let Value::Object(map) = &mut event {
        map.entry(CORRELATION_HEADER)
            .or_insert_with(|| Value::String(correlation_id.to_owned()));
    }
    let record = Record {
        key: Some(correlation_id.as_bytes().to_vec()),
        value: Some(event.to_string().into_bytes()),
        headers: BTreeMap::from([(
            CORRELATION_HEADER.to_owned(),
            correlation_id.as_bytes().to_vec(),
        )]),
        timestamp: chrono::Utc::now(),
    };
    let pc = partition_client(client, topic, partition).await?;
    let offsets = pc
        .produce(vec![record], Compression::NoCompression)
        .await
        .map_err(|source| TestkitError::Client {
            what: format!("producing to {topic}/{partition}"),
            source,
        })?;
    Ok(offsets.first().copied().unwrap_or(-1))
}

/// A record found by [`consume_response`].
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its payload parsed as JSON (`Value::Null` if it is not JSON).
    pub value: Value,
    /// Its headers.
    pub headers: BTreeMap<String, Vec<u8>>,
    /// Its timestamp.
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

fn correlation_of(record: &RecordAndOffset) -> Option<String> {
    if let Some(h) = record.record.headers.get(CORRELATION_HEADER) {
        return String::from_utf8(h.clone()).ok();
    }
    let value: Value = serde_json::from_slice(record.record.value.as_deref()?).ok()?;
    value
        .get(CORRELATION_HEADER)?
        .as_str()
        .map(ToOwned::to_owned)
}

/// Reads every partition of `topic` from the start until a record with
/// `correlation_id` arrives or `timeout` passes (seed 004's
/// `consume_response`). `None` on timeout.
pub async fn consume_response(
    client: &Client,
    topic: &str,
    partitions: i32,
    correlation_id: &str,
    timeout: Duration,
) -> Result<Option<Consumed>, TestkitError> {
    let deadline = Instant::now() + timeout;
    let mut readers = Vec::new();
    for p in 0..partitions {
        let pc = Arc::new(partition_client(client, topic, p).await?);
        let start =
            pc.get_offset(OffsetAt::Earliest)
                .await
                .map_err(|source| TestkitError::Client {
                    what: format!("earliest offset of {topic}/{p}"),
                    source,
                })?;
        readers.push((pc, start));
    }
    while Instant::now() < deadline {
        for (pc, next) in &mut readers {
            // Short waits: Tansu answers a waiting fetch only at its max wait.
            let (records, _high_watermark) = pc
                .fetch_records(*next, 1..1_048_576, 50)
                .await
                .map_err(|source| TestkitError::Client {
                    what: format!("fetching {topic}/{} at offset {next}", pc.partition()),
                    source,
                })?;
            for r in records {
                *next = r.offset + 1;
                if correlation_of(&r).as_deref() == Some(correlation_id) {
                    return Ok(Some(Consumed {
                        partition: pc.partition(),
                        offset: r.offset,
                        value: r
                            .record
                            .value
                            .as_deref()
                            .and_then(|v| serde_json::from_slice(v).ok())
                            .unwrap_or(Value::Null),
                        headers: r.record.headers,
                        timestamp: r.record.timestamp,
                    }));
                }
            }
        }
    }
    Ok(None)
}

/// The result of [`track_event_flow`] (seed 004's tracking dict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowTracking {
    /// The request with the correlation id was found.
    pub request_found: bool,
    /// The response with the correlation id was found.
    pub response_found: bool,
    /// Response timestamp minus request timestamp, when both were found.
    pub duration_ms: Option<i64>,
}

/// Looks for the request and the response carrying `correlation_id` on
/// their topics and reports what was found (seed 004's `track_event_flow`).
pub async fn track_event_flow(
    client: &Client,
    correlation_id: &str,
    request: (&str, i32),
    response: (&str, i32),
    timeout: Duration,
) -> Result<FlowTracking, TestkitError> {
    let started = Instant::now();
    let req = consume_response(client, request.0, request.1, correlation_id, timeout).await?;
    let left = timeout.saturating_sub(started.elapsed());
    let resp = consume_response(client, response.0, response.1, correlation_id, left).await?;
    Ok(FlowTracking {
        request_found: req.is_some(),
        response_found: resp.is_some(),
        duration_ms: match (&req, &resp) {
            (Some(a), Some(b)) => Some((b.timestamp - a.timestamp).num_milliseconds()),
            _ => None,
        },
    })
}
