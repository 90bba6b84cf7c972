//! Configuration: types, defaults, layered loading and validation.
//!
//! Layers, lowest first (each one overrides the ones before it):
//!
//! ```text
//! built-in defaults (Config::default)
//!   -> TOML file (--config PATH, else config/default.toml when present)
//!     -> the seed documents' variables (KAFKA_BOOTSTRAP_SERVERS, KAFKA_GROUP_ID, ...)
//!       -> KAFKA_ACTORS_<SECTION>__<KEY> variables
//! ```
//!
//! [`load()`] merges the layers with figment, deserialises, then runs one
//! validation pass that reports **every** problem at once, each naming the
//! key and where its value came from (file and line, or the variable).
//!
//! Units live in key names (`_ms`, `_secs`, `_bytes`); accessors hand out
//! [`Duration`]s so no caller multiplies by 1000 again.

mod de;
mod env;
mod load;
mod provenance;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use env::{ENV_PREFIX, SEED_VARIABLES, SeedVariable};
pub use load::{ConfigError, LoadOptions, Loaded, Problem, load};
pub use provenance::Provenance;
pub use secret::{REDACTED, Secret};

/// The whole configuration of a kafka-actors service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Broker connection settings shared by every client the service opens.
    pub kafka: KafkaConfig,
    /// Consumer (fetch, offsets, group session) settings.
    pub consumer: ConsumerConfig,
    /// Producer settings for responses, forwards and dead letters.
    pub producer: ProducerConfig,
    /// How declared topics are created and verified at start-up.
    pub topic_manager: TopicManagerConfig,
    /// Declared topics, by logical name (the key); `name` overrides the
    /// Kafka topic name when it differs from the logical one.
    pub topics: BTreeMap<String, TopicSpec>,
    /// Routes, by name: which handler handles which topic's records.
    pub routes: BTreeMap<String, RouteConfig>,
    /// Pipeline settings shared by every route.
    pub pipeline: PipelineConfig,
    /// The HTTP listener for `/health*` and `/metrics`.
    pub http: HttpConfig,
    /// Health monitor settings.
    pub health: HealthConfig,
    /// Alert rules and where alerts go.
    pub alerts: AlertsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Shutdown stages.
    pub shutdown: ShutdownConfig,
}

/// Broker connection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port` of one or more brokers. Accepts a list, a comma-separated
    /// string, or a JSON list string (`["localhost:9092"]`, seed 002's form).
    #[serde(deserialize_with = "de::host_list")]
    pub bootstrap_servers: Vec<String>,
    /// Client id sent with every request (visible in broker logs and quotas).
    pub client_id: String,
    /// Deadline for opening one TCP connection to a broker.
    pub connect_timeout_ms: u64,
    /// Deadline for one request/response round trip; no client call waits
    /// longer (rskafka's default backoff retries forever, see FINDINGS.md).
    pub request_timeout_ms: u64,
    /// Security settings: SASL and, with the `tls` feature, TLS. A
    /// protocol this build cannot speak fails start-up rather than silently
    /// connecting in plain text.
    pub security: SecurityConfig,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: vec!["127.0.0.1:9092".to_owned()],
            client_id: "kafka-actors".to_owned(),
            connect_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            security: SecurityConfig::default(),
        }
    }
}

impl KafkaConfig {
    /// [`Self::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// [`Self::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    /// No TLS, no SASL.
    #[default]
    Plaintext,
    /// TLS without SASL.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

/// SASL mechanisms named by the seed documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// `PLAIN`.
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// `OAUTHBEARER`.
    #[serde(rename = "OAUTHBEARER")]
    OAuthBearer,
}

impl SaslMechanism {
    /// Kafka's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// Security settings (`[kafka.security]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub protocol: SecurityProtocol,
    /// SASL settings.
    pub sasl: SaslConfig,
    /// TLS settings.
    pub ssl: SslConfig,
}

/// SASL settings (`[kafka.security.sasl]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaslConfig {
    /// The mechanism.
    pub mechanism: Option<SaslMechanism>,
    /// The user name.
    pub username: Option<String>,
    /// The password; redacted wherever configuration is printed.
    pub password: Option<Secret>,
}

/// TLS settings (`[kafka.security.ssl]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SslConfig {
    /// CA certificates (PEM) that sign the brokers' certificates; unset:
    /// the system's trust store.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM, PKCS#8, PKCS#1 or SEC1; encrypted PKCS#8
    /// with [`Self::key_password`]) for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted client key; redacted wherever printed.
    pub key_password: Option<Secret>,
    /// Whether a broker's certificate must name the host it was reached
    /// at. Turning it off is for testing only and is logged as a warning.
    pub check_hostname: bool,
}

impl Default for SslConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            cert_file: None,
            key_file: None,
            key_password: None,
            check_hostname: true,
        }
    }
}

/// Where a consumer starts when its group has no committed offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// The oldest retained record (seed 000's default: handlers that must see
    /// every event).
    #[default]
    Earliest,
    /// Only records produced after the consumer starts.
    Latest,
}

/// How this instance gets its partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// Kafka's classic consumer group protocol (JoinGroup/SyncGroup), which
    /// Java, librdkafka and Go consumers speak too: instances with the same
    /// `group_id` share the partitions.
    #[default]
    Classic,
    /// KIP-848's consumer group protocol (ConsumerGroupHeartbeat): the
    /// broker computes the assignment and rebalances are incremental.
    /// Needs a broker that supports it (Apache Kafka 4.x).
    Consumer,
    /// No group membership: this instance consumes every partition of its
    /// routed topics and commits as a standalone consumer (one instance per
    /// group only).
    None,
}

/// Consumer settings (`[consumer]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Consumer group id.
    pub group_id: String,
    /// Start position when the group has no committed offset.
    pub auto_offset_reset: OffsetReset,
    /// `true`: commit the handled watermark every `auto_commit_interval_ms`;
    /// `false`: commit after every handled batch. Both commit only what was
    /// fully handled; `true` replays more records after a crash.
    pub enable_auto_commit: bool,
    /// Interval of watermark commits when `enable_auto_commit` is on.
    pub auto_commit_interval_ms: u64,
    /// Most records handed to handlers from one fetch (1-10000, seed 000).
    pub max_poll_records: u32,
    /// Group session timeout (1000-300000 ms, seed 000).
    pub session_timeout_ms: u64,
    /// Heartbeat interval; must be below the session timeout.
    pub heartbeat_interval_ms: u64,
    /// Broker waits until at least this many bytes are ready (or the max
    /// wait passes) before answering a fetch.
    pub fetch_min_bytes: u32,
    /// Upper bound on one fetch response, in bytes.
    pub fetch_max_bytes: u32,
    /// Upper bound on the data of one partition in a fetch (Java's
    /// `max.partition.fetch.bytes`). Each partition consumer fetches its own
    /// partition, so this bounds its memory and what a fetch re-reads.
    pub max_partition_fetch_bytes: u32,
    /// Longest the broker holds a fetch waiting for `fetch_min_bytes`.
    pub fetch_max_wait_ms: u64,
    /// How partitions are shared: `classic` (consumer groups) or `none`.
    pub group_protocol: GroupProtocol,
    /// Assignors offered when joining, in order of preference (Java's
    /// `partition.assignment.strategy`): `range`, `roundrobin`,
    /// `cooperative-sticky`. The group uses the first one every member
    /// offers. With only `cooperative-sticky`, rebalances are incremental.
    pub partition_assignment_strategy: Vec<String>,
    /// With `group_protocol = "consumer"`: the broker-side assignor
    /// (Java's `group.remote.assignor`, `uniform` or `range`); unset: the
    /// broker's default.
    pub group_remote_assignor: Option<String>,
    /// Static membership id (Java's `group.instance.id`, KIP-345): a restart
    /// within the session timeout keeps the assignment without a rebalance.
    pub group_instance_id: Option<String>,
    /// How long the coordinator waits for every member to rejoin in a
    /// rebalance; a revoked partition is drained within half of it.
    pub rebalance_timeout_ms: u64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group_id: "kafka-actors".to_owned(),
            auto_offset_reset: OffsetReset::Earliest,
            enable_auto_commit: false,
            auto_commit_interval_ms: 5_000,
            max_poll_records: 500,
            session_timeout_ms: 30_000,
            heartbeat_interval_ms: 3_000,
            fetch_min_bytes: 1,
            // Same as the Java client's fetch.max.bytes.
            fetch_max_bytes: 52_428_800,
            // Same as the Java client's max.partition.fetch.bytes.
            max_partition_fetch_bytes: 1_048_576,
            fetch_max_wait_ms: 500,
            group_protocol: GroupProtocol::Classic,
            // The Java client's default since 3.0.
            partition_assignment_strategy: vec![
                "range".to_owned(),
                "cooperative-sticky".to_owned(),
            ],
            group_remote_assignor: None,
            group_instance_id: None,
            rebalance_timeout_ms: 60_000,
        }
    }
}

impl ConsumerConfig {
    /// [`Self::session_timeout_ms`] as a duration.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    /// [`Self::rebalance_timeout_ms`] as a duration.
    pub fn rebalance_timeout(&self) -> Duration {
        Duration::from_millis(self.rebalance_timeout_ms)
    }

    /// [`Self::heartbeat_interval_ms`] as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// [`Self::fetch_max_wait_ms`] as a duration.
    pub fn fetch_max_wait(&self) -> Duration {
        Duration::from_millis(self.fetch_max_wait_ms)
    }

    /// [`Self::auto_commit_interval_ms`] as a duration.
    pub fn auto_commit_interval(&self) -> Duration {
        Duration::from_millis(self.auto_commit_interval_ms)
    }
}

/// Producer acknowledgements.
///
/// Accepts Kafka's spellings (`all`, `-1`, `1`, `0`) and seed 001's (`all`,
/// `leader`, `none`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Acks {
    /// Every in-sync replica.
    #[default]
    All,
    /// The partition leader only.
    Leader,
    /// No acknowledgement.
    None,
}

/// Compression codec for produced batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip (pure Rust). Seeds 002 and 003 default to it.
    #[default]
    Gzip,
    /// snappy (pure Rust).
    Snappy,
    /// lz4: needs a cargo feature this build does not have.
    Lz4,
    /// zstd: needs a cargo feature this build does not have.
    Zstd,
}

impl Compression {
    /// The codec's name as Kafka spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

/// Producer settings (`[producer]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerConfig {
    /// Acknowledgements required before a write counts as done.
    #[serde(with = "de::acks")]
    pub acks: Acks,
    /// Codec for produced batches.
    pub compression_type: Compression,
    /// How long a batch may wait for more records (seed 003: 1 ms).
    pub linger_ms: u64,
    /// Batch size in bytes (Kafka's default, 16 KiB): a partition's queue
    /// this full is sent without waiting `linger_ms`.
    pub batch_size: u32,
    /// A partition's queue with this many records is sent without waiting
    /// `linger_ms`.
    pub batch_max_records: u32,
    /// Largest produce request to one partition, in bytes (Kafka's
    /// `max.request.size`, 1 MiB); at least one record.
    pub max_request_bytes: u32,
    /// Retries of a failed produce before it counts as an infrastructure
    /// failure.
    pub retries: u32,
    /// Pause between produce retries (seed 003: 100 ms).
    pub retry_backoff_ms: u64,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: Acks::All,
            compression_type: Compression::Gzip,
            linger_ms: 1,
            batch_size: 16_384,
            batch_max_records: 1000,
            max_request_bytes: 1_048_576,
            retries: 3,
            retry_backoff_ms: 100,
        }
    }
}

/// Topic creation and verification settings (`[topic_manager]`, seed 003).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicManagerConfig {
    /// Create missing declared topics at start-up.
    pub auto_create: bool,
    /// Deadline of one creation attempt, in seconds (seed 003: 30).
    pub creation_timeout_secs: u64,
    /// Attempts after the first one for retriable failures (seed 003: 3).
    pub creation_retries: u32,
    /// Pause between attempts, in seconds (seed 003: 2).
    pub creation_retry_delay_secs: u64,
}

impl Default for TopicManagerConfig {
    fn default() -> Self {
        Self {
            auto_create: true,
            creation_timeout_secs: 30,
            creation_retries: 3,
            creation_retry_delay_secs: 2,
        }
    }
}

/// One declared topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicSpec {
    /// The topic's name in Kafka; the logical name (the table key) when
    /// unset.
    pub name: Option<String>,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...), sent as given.
    pub configs: BTreeMap<String, String>,
}

impl Default for TopicSpec {
    fn default() -> Self {
        Self {
            name: None,
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
        }
    }
}

impl Config {
    /// The Kafka name behind `name`: a declared topic's name when `name` is
    /// the logical name of one (`[topics.<name>]`), else `name` itself. Route
    /// topics (input, reply, dead-letter, forward) may use either.
    pub fn topic_name(&self, name: &str) -> String {
        self.topics
            .get(name)
            .map_or(name, |spec| spec.topic_name(name))
            .to_owned()
    }
}

impl TopicSpec {
    /// The Kafka topic name for a spec declared under `logical`.
    pub fn topic_name<'a>(&'a self, logical: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(logical)
    }
}

/// One route (`[routes.<name>]`): records of `topic` (only those of
/// `event_type`, when set) go to `handler`; its output goes to the reply
/// topic, failures to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Input topic: a Kafka topic name, or the logical name of a declared
    /// topic.
    pub topic: String,
    /// Only records whose event type (header or envelope field) is this.
    pub event_type: Option<String>,
    /// `echo`, `forward`, `jq`, or a handler registered by the library user.
    pub handler: String,
    /// For `jq`: the program that turns the payload into the reply (each
    /// output becomes one reply; none means no reply). Compiled at start-up.
    pub program: Option<String>,
    /// Where replies go (a request's `reply_to` header wins); a topic name
    /// or the logical name of a declared topic.
    pub reply_topic: Option<String>,
    /// Where failed records go; `<topic>.dlq` when unset; a topic name or
    /// the logical name of a declared topic.
    pub dlq_topic: Option<String>,
    /// For `forward`: the topic records are republished to; a topic name or
    /// the logical name of a declared topic.
    pub forward_to: Option<String>,
    /// Records of one input partition this route handles at once. 1 keeps
    /// partition order; more spreads records over that many handler actors
    /// by key, so records with the same key stay in order.
    pub concurrency: u32,
    /// Longest one handler call may take; longer is a `timeout` failure.
    /// Unset: no deadline.
    pub handler_timeout_ms: Option<u64>,
    /// How failures whose action is `retry` are retried in place before
    /// the record is dead-lettered.
    pub retry: RetryConfig,
    /// What each failure class does on this route, over
    /// `pipeline.on_failure`.
    pub on_failure: FailureActions,
    /// Pause the route instead of dead-lettering everything after a bad
    /// deploy (off by default).
    pub circuit_breaker: CircuitBreakerConfig,
    /// `partition` (default): an in-place retry holds the handler worker,
    /// so the records behind the failing one wait; `key`: only the records
    /// with the failing record's key wait, parked behind it in order, while
    /// records with other keys go on.
    pub ordering: Ordering,
}

/// What waits while a record is retried in place (`routes.<name>.ordering`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// Every record behind it in its handler worker.
    #[default]
    Partition,
    /// Only the later records with its key, parked behind it in order.
    Key,
}

/// What a failure does to its record and partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    /// Retry in place per the route's `[retry]`, then dead-letter.
    Retry,
    /// Dead-letter now.
    Dlq,
    /// Stop this partition at the record (not dead-lettered, not
    /// committed), raise an alert, try it again after `pipeline.pause_ms`.
    Pause,
    /// Shut the service down cleanly without committing the record (exit
    /// code 1).
    Stop,
}

impl FailureAction {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Dlq => "dlq",
            Self::Pause => "pause",
            Self::Stop => "stop",
        }
    }
}

/// An action per failure class (`[pipeline.on_failure]`,
/// `[routes.<name>.on_failure]`); unset classes fall back to the pipeline's
/// table, then to the defaults: `dlq` for deserialization, validation,
/// panic and oversize, `retry` for processing, timeout and dependency, `pause` for
/// infrastructure, `stop` for authorization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureActions {
    /// The payload is not JSON or not the handler's input type.
    pub deserialization: Option<FailureAction>,
    /// The handler refused the record for good.
    pub validation: Option<FailureAction>,
    /// The handler failed and says it may work later.
    pub processing: Option<FailureAction>,
    /// The handler outlasted `handler_timeout_ms`.
    pub timeout: Option<FailureAction>,
    /// The handler reports an unavailable dependency.
    pub dependency: Option<FailureAction>,
    /// The handler panicked.
    pub panic: Option<FailureAction>,
    /// An output is larger than the broker accepts for its topic.
    pub oversize: Option<FailureAction>,
    /// An output could not be written (broker unavailable past
    /// `pipeline.produce_attempts`, a configured output topic gone).
    pub infrastructure: Option<FailureAction>,
    /// The broker refused an output for authorization.
    pub authorization: Option<FailureAction>,
    /// Actions by the handler's error code (`HandlerError::with_code`, a
    /// jq `error({code: ...})`), over the class's action.
    pub codes: BTreeMap<String, FailureAction>,
}

impl FailureActions {
    /// `(class, action)` of every class set here.
    pub fn entries(&self) -> Vec<(&'static str, FailureAction)> {
        [
            ("deserialization", self.deserialization),
            ("validation", self.validation),
            ("processing", self.processing),
            ("timeout", self.timeout),
            ("dependency", self.dependency),
            ("panic", self.panic),
            ("oversize", self.oversize),
            ("infrastructure", self.infrastructure),
            ("authorization", self.authorization),
        ]
        .into_iter()
        .filter_map(|(class, action)| action.map(|a| (class, a)))
        .collect()
    }
}

/// A route's circuit breaker (`[routes.<name>.circuit_breaker]`): when
/// dead letters come `consecutive` in a row, or make up more than `ratio`
/// of at least `min_records` records within `window_ms`, the failure that
/// would be the next dead letter is not dead-lettered: the breaker opens,
/// every partition of the route pauses at its next record for
/// `pipeline.pause_ms`, and an alert is raised. Both triggers 0: off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Dead letters in a row that open the breaker (0: this trigger off).
    pub consecutive: u32,
    /// Share of dead letters among the window's records that opens the
    /// breaker, above 0 and at most 1 (0: this trigger off).
    pub ratio: f64,
    /// The ratio's window.
    pub window_ms: u64,
    /// Records the window needs before the ratio counts.
    pub min_records: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            consecutive: 0,
            ratio: 0.0,
            window_ms: 60_000,
            min_records: 20,
        }
    }
}

/// How a route retries a failed record in place, inside its handler worker:
/// only that worker's records (its partition's, or its keys' with
/// `concurrency` above 1) wait (seed 002's strategies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// `exponential`, `fixed`, `linear` or `none` (no retry).
    pub strategy: RetryStrategy,
    /// Attempts in all, the first included (1: no retry).
    pub max_attempts: u32,
    /// The first pause (and every pause with `fixed`).
    pub initial_delay_ms: u64,
    /// Growth of each pause with `exponential`.
    pub multiplier: f64,
    /// No pause is longer.
    pub max_delay_ms: u64,
    /// Each pause is scaled by a random factor in `1 ± jitter` (still
    /// capped at `max_delay_ms`), so that failing records spread out.
    pub jitter: f64,
    /// `in_place`: the handler worker waits and calls again (its partition,
    /// or its keys, wait); `topic`: the record goes to the retry topic with
    /// its due time and the partition goes on.
    pub mode: RetryMode,
    /// The retry topic of `mode = "topic"` (default `<input topic>.retry`);
    /// a topic name or the logical name of a declared topic.
    pub topic: Option<String>,
}

/// Where a route's retries wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryMode {
    /// In the handler worker (short delays).
    #[default]
    InPlace,
    /// In the retry topic (long delays, non-blocking).
    Topic,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            strategy: RetryStrategy::Exponential,
            max_attempts: 3,
            initial_delay_ms: 100,
            multiplier: 2.0,
            max_delay_ms: 10_000,
            jitter: 0.2,
            mode: RetryMode::InPlace,
            topic: None,
        }
    }
}

/// A retry schedule's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryStrategy {
    /// `initial_delay_ms × multiplier^(n-1)`.
    #[default]
    Exponential,
    /// `initial_delay_ms` every time.
    Fixed,
    /// `initial_delay_ms × n`.
    Linear,
    /// No retry: the first failure is final.
    None,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            topic: String::new(),
            event_type: None,
            handler: "echo".to_owned(),
            program: None,
            reply_topic: None,
            dlq_topic: None,
            forward_to: None,
            concurrency: 1,
            handler_timeout_ms: None,
            retry: RetryConfig::default(),
            on_failure: FailureActions::default(),
            circuit_breaker: CircuitBreakerConfig::default(),
            ordering: Ordering::Partition,
        }
    }
}

/// What happens to a record no route takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unrouted {
    /// Skip it (counted in a metric).
    #[default]
    Skip,
    /// Publish it to the topic's dead-letter topic.
    DeadLetter,
}

/// Pipeline settings (`[pipeline]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Records whose event type no route of their topic takes.
    pub unrouted: Unrouted,
    /// Attempts to publish a batch's outputs before the partition stops and
    /// restarts from its committed offset.
    pub produce_attempts: u32,
    /// Records of one partition fetched but not yet fully handled; at the
    /// bound the partition stops fetching (backpressure).
    pub max_in_flight_records: u32,
    /// Bytes (keys and values) of one partition fetched but not yet fully
    /// handled; at the bound the partition stops fetching, and a fetch asks
    /// for no more than what is left of it (at least 64 KiB; a record batch
    /// larger than that still comes whole, as Kafka guarantees progress).
    pub max_in_flight_bytes: u64,
    /// What each failure class does, for every route (a route's own
    /// `on_failure` wins).
    pub on_failure: FailureActions,
    /// How long a partition paused by a `pause` action or an open circuit
    /// breaker waits before it tries its record again.
    pub pause_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            unrouted: Unrouted::Skip,
            produce_attempts: 5,
            max_in_flight_records: 1000,
            max_in_flight_bytes: 256 * 1024,
            on_failure: FailureActions::default(),
            pause_ms: 30_000,
        }
    }
}

/// The HTTP listener (`[http]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve `/health*`, `/metrics` and the admin API at all.
    pub enabled: bool,
    /// `address:port` to bind; port 0 picks a free one (it is logged).
    pub bind: String,
    /// The admin API's base URL as the other instances of the group reach
    /// it (`http://host:port`), advertised in the group membership so that
    /// an offset reset can ask each partition's owner to seek. Unset: the
    /// address the broker sees this instance connect from, with the bound
    /// port.
    pub advertised_url: Option<String>,
    /// The bearer token the admin API's mutating requests must carry;
    /// unset: they are refused (reads are allowed).
    pub admin_token: Option<Secret>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: "127.0.0.1:8080".to_owned(),
            advertised_url: None,
            admin_token: None,
        }
    }
}

/// Health monitor settings (`[health]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Interval between broker connectivity checks.
    pub check_interval_ms: u64,
    /// A partition with records handed to its handlers and none finished
    /// for this long is stalled: it is logged, counted and restarted with
    /// new handler workers (0: off). Keep it above the longest handler
    /// call, in-place retries included.
    pub stall_timeout_ms: u64,
    /// How often every long-lived actor sends a heartbeat.
    pub heartbeat_interval_ms: u64,
    /// An actor with no heartbeat for this many intervals is stale: logged,
    /// counted, reported by `/health`, and its stuck wait ended so that it
    /// restarts (0: off).
    pub heartbeat_stale_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            check_interval_ms: 10_000,
            stall_timeout_ms: 300_000,
            heartbeat_interval_ms: 1_000,
            heartbeat_stale_after: 10,
        }
    }
}

impl HealthConfig {
    /// [`Self::check_interval_ms`] as a duration.
    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms)
    }
}

/// Alert rules, their evaluation, and the webhook (`[alerts]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// How often the rules are evaluated.
    pub interval_ms: u64,
    /// Whether the built-in rules apply (a rule of `rules` with the same
    /// name replaces one).
    pub default_rules: bool,
    /// Rules of your own, by name.
    pub rules: BTreeMap<String, AlertRule>,
    /// Where fired and resolved alerts are POSTed as JSON (`http://` only;
    /// unset: nowhere).
    pub webhook_url: Option<String>,
    /// Attempts per webhook delivery (pauses of 1 s, doubling up to 30 s).
    pub webhook_attempts: u32,
    /// Deadline of one webhook request.
    pub webhook_timeout_ms: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            interval_ms: 5_000,
            default_rules: true,
            rules: BTreeMap::new(),
            webhook_url: None,
            webhook_attempts: 5,
            webhook_timeout_ms: 5_000,
        }
    }
}

/// One alert rule (`[alerts.rules.<name>]`): it fires when `metric` has
/// been above `above` for `for_ms`, and resolves when it no longer is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// What is measured.
    pub metric: AlertMetric,
    /// The threshold.
    pub above: f64,
    /// How long the value must stay above it before the alert fires.
    #[serde(default = "AlertRule::default_for_ms")]
    pub for_ms: u64,
    /// The window of rates and increases (`error_rate`, `dlq_rate`,
    /// `partition_stalls`, `rebalances`).
    #[serde(default = "AlertRule::default_window_ms")]
    pub window_ms: u64,
    /// How bad it is.
    #[serde(default)]
    pub severity: Severity,
}

impl AlertRule {
    fn default_for_ms() -> u64 {
        60_000
    }

    fn default_window_ms() -> u64 {
        60_000
    }
}

/// What an alert rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertMetric {
    /// The largest consumer lag of a partition, in records.
    ConsumerLagRecords,
    /// The largest consumer lag of a partition, in seconds (age of its
    /// oldest unhandled record).
    ConsumerLagSeconds,
    /// Records dead-lettered as a fraction of the records answered or
    /// dead-lettered, over the window.
    ErrorRate,
    /// Records dead-lettered per second, over the window.
    DlqRate,
    /// Partitions found stalled and restarted, over the window.
    PartitionStalls,
    /// Partitions paused now: held at a failed record (a `pause` action,
    /// an open circuit breaker, an output that could not be written), by
    /// an admin request, or at a batch this build cannot read.
    PausedPartitions,
    /// Rebalances this member took part in, over the window.
    Rebalances,
    /// 1 while the last broker check failed, else 0.
    BrokerUnreachable,
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention.
    #[default]
    Warning,
    /// Needs attention now.
    Critical,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// Logging settings (`[log]`). `RUST_LOG`, when set, overrides `level`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter directive such as `info` or
    /// `info,kafka_actors::health=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// Shutdown settings (`[shutdown]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long components may take to drain before they are stopped.
    pub drain_timeout_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout_ms: 10_000,
        }
    }
}

impl ShutdownConfig {
    /// [`Self::drain_timeout_ms`] as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}
