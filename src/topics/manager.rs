//! The topic manager: seed 003's creation workflow, verification with drift
//! detection, and alignment. Plain async code (no actix), so the runtime can
//! call it before the actor tree starts and the CLI can call it directly.
//!
//! Every broker step runs through the same retry rule: a retriable failure
//! (see [`super::classify`]) is logged at WARN and tried again after
//! `topic_manager.creation_retry_delay_secs`, at most
//! `topic_manager.creation_retries` more times; a transport failure also
//! drops the connection, so the next attempt starts on a fresh one (a
//! request cut off by its deadline leaves the stream in an unknown state).
//!
//! # Cancellation
//! Every async method is safe to drop: connections are closed, and a
//! creation already sent may or may not complete on the broker (the next
//! `ensure` then finds the topic, which is an expected condition).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};

use super::classify::{
    self, Classification, ErrorClass, Operation, Subject, classify_error, classify_failure,
};
use super::validate::validate_topics;
use super::{TopicError, TopicOperationFailure};
use crate::config::{Config, KafkaConfig, TopicManagerConfig, TopicSpec};
use crate::kafka::admin::{Admin, ConfigEntry, NewTopic, TopicDescription, TopicFailure};
use crate::kafka::{ErrorKind, KafkaError};

/// Margin between the broker-side deadline of a creation and the
/// connection's own deadline, so the broker's REQUEST_TIMED_OUT answer
/// arrives before the connection gives up.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);
/// First pause while waiting for new topics or partitions to show up.
const FIRST_POLL: Duration = Duration::from_millis(50);
/// Longest pause while waiting for them.
const MAX_POLL: Duration = Duration::from_millis(500);

/// Counters kept for the lifetime of a [`TopicManager`] (seed 003's
/// statistics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopicStatistics {
    /// Topics this instance created (a topic another instance created first
    /// is not counted).
    pub topics_created: u64,
    /// Topics whose creation failed (fatal, or retries exhausted).
    pub topic_creation_errors: u64,
    /// When topics were last verified against the cluster (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub last_topic_verification: Option<SystemTime>,
}

fn rfc3339<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(t) => s.serialize_some(&humantime::format_rfc3339_seconds(*t).to_string()),
        None => s.serialize_none(),
    }
}

/// Overall state of the declared topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicStatus {
    /// Every declared topic exists as declared.
    Healthy,
    /// Every declared topic exists, but some differ from their declaration
    /// (see the drift list).
    Degraded,
    /// Declared topics are missing.
    Unhealthy,
    /// Auto-creation is off: nothing was checked.
    Skipped,
}

/// How an existing topic differs from its declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DriftKind {
    /// Fewer partitions than declared (more is not drift: Kafka cannot
    /// remove partitions, and extra ones do no harm to consumers).
    FewerPartitions {
        /// Declared count.
        declared: i32,
        /// Count in the cluster.
        actual: i32,
    },
    /// A declared config has another value in the cluster.
    ConfigDiffers {
        /// Config name.
        config: String,
        /// Declared value.
        declared: String,
        /// Value in the cluster; `None` when unset.
        actual: Option<String>,
    },
}

/// One difference between an existing topic and its declaration; each is
/// logged as a warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The Kafka topic.
    pub topic: String,
    /// The configuration key of the declared value
    /// (`topics.requests.partitions`).
    pub key: String,
    /// What differs.
    #[serde(flatten)]
    pub kind: DriftKind,
    /// The same, in words.
    pub message: String,
}

/// What an `ensure` or `verify` found: seed 003's topic health
/// (`status`, `required_topics`, `existing_topics`, `missing_topics`,
/// `last_verification`), plus drift and statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicReport {
    /// Overall state.
    pub status: TopicStatus,
    /// Kafka names of every declared topic.
    pub required_topics: Vec<String>,
    /// Declared topics that exist in the cluster.
    pub existing_topics: Vec<String>,
    /// Declared topics that do not.
    pub missing_topics: Vec<String>,
    /// When this verification ran (RFC 3339, UTC); `None` when skipped.
    #[serde(serialize_with = "rfc3339")]
    pub last_verification: Option<SystemTime>,
    /// Topics this call created.
    pub created_topics: Vec<String>,
    /// Topics this call tried to create that another client created first
    /// (an expected condition).
    pub created_concurrently: Vec<String>,
    /// Differences between existing topics and their declarations.
    pub drift: Vec<Drift>,
    /// The manager's counters after this call.
    pub statistics: TopicStatistics,
}

/// A change to one config value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    /// Value in the cluster; `None` when unset.
    pub from: Option<String>,
    /// Declared value.
    pub to: String,
}

/// One step of an alignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AlignmentAction {
    /// CreateTopics for a missing topic.
    CreateTopic {
        /// The topic.
        topic: String,
        /// Partition count.
        partitions: i32,
        /// Replication factor.
        replication_factor: i16,
        /// Topic configs.
        configs: BTreeMap<String, String>,
    },
    /// CreatePartitions up to the declared count.
    AddPartitions {
        /// The topic.
        topic: String,
        /// Count in the cluster.
        from: i32,
        /// Declared count.
        to: i32,
    },
    /// IncrementalAlterConfigs `SET` of the differing configs.
    SetConfigs {
        /// The topic.
        topic: String,
        /// Changes, by config name.
        configs: BTreeMap<String, ConfigChange>,
    },
}

impl AlignmentAction {
    /// The topic the action changes.
    pub fn topic(&self) -> &str {
        match self {
            Self::CreateTopic { topic, .. }
            | Self::AddPartitions { topic, .. }
            | Self::SetConfigs { topic, .. } => topic,
        }
    }

    fn operation(&self) -> Operation {
        match self {
            Self::CreateTopic { .. } => Operation::Create,
            Self::AddPartitions { .. } => Operation::AddPartitions,
            Self::SetConfigs { .. } => Operation::AlterConfigs,
        }
    }
}

impl fmt::Display for AlignmentAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateTopic {
                topic,
                partitions,
                replication_factor,
                configs,
            } => {
                write!(
                    f,
                    "create topic {topic} ({}, replication factor {replication_factor}",
                    count(*partitions, "partition")
                )?;
                for (k, v) in configs {
                    write!(f, ", {k}={v}")?;
                }
                f.write_str(")")
            }
            Self::AddPartitions { topic, from, to } => {
                write!(f, "add partitions to topic {topic}: {from} -> {to}")
            }
            Self::SetConfigs { topic, configs } => {
                write!(f, "set configs of topic {topic}:")?;
                for (k, change) in configs {
                    let from = change.from.as_deref().unwrap_or("(unset)");
                    write!(f, " {k}: {from} -> {}", change.to)?;
                }
                Ok(())
            }
        }
    }
}

/// What `topics align` would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlignmentPlan {
    /// Steps, in order: creations first, then per topic partitions before
    /// configs.
    pub actions: Vec<AlignmentAction>,
    /// Differences alignment leaves alone, with the reason (a topic with
    /// more partitions than declared: Kafka cannot remove partitions).
    pub notes: Vec<String>,
}

impl AlignmentPlan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// What `apply_alignment` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlignmentReport {
    /// The actions applied.
    pub applied: Vec<AlignmentAction>,
    /// Verification after applying them.
    pub report: TopicReport,
}

/// A declared topic: its logical name, Kafka name and declaration.
#[derive(Debug, Clone)]
struct Declared {
    logical: String,
    name: String,
    spec: TopicSpec,
}

impl Declared {
    fn subject(&self, operation: Operation, broker_count: Option<usize>) -> Subject<'_> {
        Subject {
            topic: &self.name,
            logical: &self.logical,
            spec: &self.spec,
            broker_count,
            operation,
        }
    }

    fn create_action(&self) -> AlignmentAction {
        AlignmentAction::CreateTopic {
            topic: self.name.clone(),
            partitions: self.spec.partitions,
            replication_factor: self.spec.replication_factor,
            configs: self.spec.configs.clone(),
        }
    }
}

fn declared(config: &Config) -> Vec<Declared> {
    config
        .topics
        .iter()
        .map(|(logical, spec)| Declared {
            logical: logical.clone(),
            name: spec.topic_name(logical).to_owned(),
            spec: spec.clone(),
        })
        .collect()
}

/// What the cluster holds for the declared topics.
#[derive(Debug, Clone, Default)]
struct Inspection {
    /// Declared topics that exist, by name.
    topics: BTreeMap<String, TopicDescription>,
    /// Their configs, for those with declared configs.
    configs: BTreeMap<String, BTreeMap<String, ConfigEntry>>,
}

/// Retry settings from `[topic_manager]`.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    delay: Duration,
    timeout: Duration,
}

impl Retry {
    fn from(config: &TopicManagerConfig) -> Self {
        Self {
            attempts: config.creation_retries.saturating_add(1),
            delay: Duration::from_secs(config.creation_retry_delay_secs),
            timeout: Duration::from_secs(config.creation_timeout_secs),
        }
    }
}

/// One admin connection, opened on first use and dropped after a transport
/// failure.
struct Session<'c> {
    kafka: &'c KafkaConfig,
    request_timeout: Duration,
    admin: Option<Admin>,
}

impl<'c> Session<'c> {
    fn new(kafka: &'c KafkaConfig, retry: Retry) -> Self {
        Self {
            kafka,
            request_timeout: kafka.request_timeout().max(retry.timeout + DEADLINE_MARGIN),
            admin: None,
        }
    }

    async fn admin(&mut self) -> Result<&mut Admin, KafkaError> {
        let admin = match self.admin.take() {
            Some(admin) => admin,
            None => Admin::connect(self.kafka, self.request_timeout).await?,
        };
        Ok(self.admin.insert(admin))
    }

    fn broker_count(&self) -> Option<usize> {
        self.admin
            .as_ref()
            .map(|a| a.brokers().len())
            .filter(|n| *n > 0)
    }

    /// After a failed exchange: a transport failure leaves the connection
    /// unusable, a broker's answer does not (unless it says it is not the
    /// controller).
    fn after_error(&mut self, error: &KafkaError) {
        match error {
            KafkaError::Broker { code, .. } | KafkaError::PartitionError { code, .. } => {
                if *code == NOT_CONTROLLER {
                    self.admin = None;
                }
            }
            _ => self.admin = None,
        }
    }

    /// After a topic's failure: NOT_CONTROLLER means the controller moved
    /// (or this is a ZooKeeper-mode broker that does not forward); connect
    /// again to find it.
    fn after_failure(&mut self, failure: &TopicFailure) {
        if failure.code == NOT_CONTROLLER {
            self.admin = None;
        }
    }
}

/// A failed broker step: the exchange itself, or one topic's answer.
enum StepError {
    Kafka(KafkaError),
    Topic(TopicFailure),
}

/// Creates, verifies and aligns the declared topics (`[topics.*]`),
/// following seed 003's workflow. Keeps [`TopicStatistics`] across calls;
/// share it (`Arc<TopicManager>`) to read them while a call runs.
#[derive(Debug, Default)]
pub struct TopicManager {
    stats: Mutex<TopicStatistics>,
    /// The drift and missing topics last logged: a verification logs only
    /// what changed (the health monitor verifies on every check).
    logged: Mutex<Option<(Vec<Drift>, Vec<String>)>>,
}

impl TopicManager {
    /// A manager with zeroed statistics.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters so far.
    pub fn statistics(&self) -> TopicStatistics {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut TopicStatistics)) -> TopicStatistics {
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut stats);
        stats.clone()
    }

    /// Seed 003's topic creation workflow:
    ///
    /// 1. skip everything when `topic_manager.auto_create` is off (the
    ///    report's status is `skipped`);
    /// 2. validate every declared topic, reporting all problems at once;
    /// 3. list the cluster's topics (Metadata);
    /// 4. find the declared topics that are missing;
    /// 5. create them one by one (CreateTopics with their configs, the
    ///    creation timeout as the broker's deadline), retrying retriable
    ///    failures; a topic that already exists (another instance was
    ///    faster) is fine; every topic is attempted before failures are
    ///    reported together;
    /// 6. wait until the new topics have leaders for their partitions, then
    ///    verify every declared topic: partition counts (Metadata) and
    ///    declared configs (DescribeConfigs); differences are warnings;
    /// 7. update the statistics.
    pub async fn ensure(&self, config: &Config) -> Result<TopicReport, TopicError> {
        let declared = declared(config);
        let required: Vec<String> = declared.iter().map(|d| d.name.clone()).collect();
        if !config.topic_manager.auto_create {
            tracing::info!(
                topics = required.len(),
                "topic auto-creation is disabled (topic_manager.auto_create = false); \
                 not checking or creating topics"
            );
            return Ok(TopicReport {
                status: TopicStatus::Skipped,
                required_topics: required,
                existing_topics: Vec::new(),
                missing_topics: Vec::new(),
                last_verification: None,
                created_topics: Vec::new(),
                created_concurrently: Vec::new(),
                drift: Vec::new(),
                statistics: self.statistics(),
            });
        }
        check(config)?;
        let retry = Retry::from(&config.topic_manager);
        let mut session = Session::new(&config.kafka, retry);

        let before = self.inspect(&mut session, retry, &declared, false).await?;
        let missing: Vec<&Declared> = declared
            .iter()
            .filter(|d| !before.topics.contains_key(&d.name))
            .collect();
        tracing::debug!(
            required = required.len(),
            missing = missing.len(),
            "listed topics"
        );

        let mut created = Vec::new();
        let mut concurrently = Vec::new();
        let mut failures = Vec::new();
        for d in &missing {
            match self.apply(&mut session, retry, d, &d.create_action()).await {
                Ok(Applied::Done) => created.push(d.name.clone()),
                Ok(Applied::AlreadyThere) => concurrently.push(d.name.clone()),
                Err(failure) => failures.push(failure),
            }
        }
        if !failures.is_empty() {
            return Err(TopicError::Creation { failures, created });
        }

        let targets: Vec<(&str, i32)> = missing
            .iter()
            .map(|d| (d.name.as_str(), d.spec.partitions))
            .collect();
        wait_ready(&mut session, retry.timeout, &targets).await?;

        let after = self.inspect(&mut session, retry, &declared, true).await?;
        Ok(self.report(&declared, &after, created, concurrently))
    }

    /// Verifies the declared topics without creating anything: which exist,
    /// which are missing, and how existing ones drifted from their
    /// declaration (fewer partitions, differing config values; a warning
    /// each). Runs whether or not auto-creation is on.
    pub async fn verify(&self, config: &Config) -> Result<TopicReport, TopicError> {
        check(config)?;
        let declared = declared(config);
        let retry = Retry::from(&config.topic_manager);
        let mut session = Session::new(&config.kafka, retry);
        let inspection = self.inspect(&mut session, retry, &declared, true).await?;
        Ok(self.report(&declared, &inspection, Vec::new(), Vec::new()))
    }

    /// What `topics align` would do: create missing topics, add partitions
    /// where there are fewer than declared (never remove any), and set
    /// configs whose value differs from the declaration.
    pub async fn plan_alignment(&self, config: &Config) -> Result<AlignmentPlan, TopicError> {
        check(config)?;
        let declared = declared(config);
        let retry = Retry::from(&config.topic_manager);
        let mut session = Session::new(&config.kafka, retry);
        let inspection = self.inspect(&mut session, retry, &declared, true).await?;
        Ok(plan(&declared, &inspection))
    }

    /// Applies `plan` (from [`TopicManager::plan_alignment`]) step by step
    /// with the creation retry rule, then verifies, waiting up to the
    /// creation timeout for the changes to show. Every step is attempted;
    /// failures are reported together.
    pub async fn apply_alignment(
        &self,
        config: &Config,
        plan: &AlignmentPlan,
    ) -> Result<AlignmentReport, TopicError> {
        check(config)?;
        let declared = declared(config);
        let by_name: BTreeMap<&str, &Declared> =
            declared.iter().map(|d| (d.name.as_str(), d)).collect();
        for action in &plan.actions {
            if !by_name.contains_key(action.topic()) {
                return Err(TopicError::NotDeclared {
                    topic: action.topic().to_owned(),
                });
            }
        }
        let retry = Retry::from(&config.topic_manager);
        let mut session = Session::new(&config.kafka, retry);

        let mut applied = Vec::new();
        let mut created = Vec::new();
        let mut concurrently = Vec::new();
        let mut failures = Vec::new();
        for action in &plan.actions {
            let Some(d) = by_name.get(action.topic()) else {
                continue;
            };
            match self.apply(&mut session, retry, d, action).await {
                Ok(outcome) => {
                    if let AlignmentAction::CreateTopic { topic, .. } = action {
                        match outcome {
                            Applied::Done => created.push(topic.clone()),
                            Applied::AlreadyThere => concurrently.push(topic.clone()),
                        }
                    }
                    applied.push(action.clone());
                }
                Err(failure) => failures.push(failure),
            }
        }
        if !failures.is_empty() {
            return Err(TopicError::Alignment {
                failures,
                applied: applied.iter().map(ToString::to_string).collect(),
            });
        }

        let targets: Vec<(&str, i32)> = applied
            .iter()
            .filter_map(|a| match a {
                AlignmentAction::CreateTopic {
                    topic, partitions, ..
                } => Some((topic.as_str(), *partitions)),
                AlignmentAction::AddPartitions { topic, to, .. } => Some((topic.as_str(), *to)),
                AlignmentAction::SetConfigs { .. } => None,
            })
            .collect();
        wait_ready(&mut session, retry.timeout, &targets).await?;

        // Config changes reach the answering broker through the metadata
        // log; look again until they show or the creation timeout passes.
        let changed: BTreeSet<&str> = applied.iter().map(AlignmentAction::topic).collect();
        let deadline = Instant::now() + retry.timeout;
        let mut pause = FIRST_POLL;
        let inspection = loop {
            let inspection = self.inspect(&mut session, retry, &declared, true).await?;
            let settled = drift(&declared, &inspection)
                .iter()
                .all(|d| !changed.contains(d.topic.as_str()));
            if settled || Instant::now() + pause >= deadline {
                break inspection;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        };
        let report = self.report(&declared, &inspection, created, concurrently);
        Ok(AlignmentReport { applied, report })
    }

    /// Builds the report, logs drift and missing topics when they differ
    /// from the last verification's, and records the verification time.
    fn report(
        &self,
        declared: &[Declared],
        inspection: &Inspection,
        created: Vec<String>,
        concurrently: Vec<String>,
    ) -> TopicReport {
        let now = SystemTime::now();
        let statistics = self.update(|s| s.last_topic_verification = Some(now));
        let (existing, missing): (Vec<&Declared>, Vec<&Declared>) = declared
            .iter()
            .partition(|d| inspection.topics.contains_key(&d.name));
        let drift = drift(declared, inspection);
        let now_wrong = (
            drift.clone(),
            missing.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
        );
        let previous = self
            .logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(now_wrong.clone());
        if previous.as_ref() != Some(&now_wrong) {
            for d in &drift {
                tracing::warn!(topic = %d.topic, key = %d.key, "topic verification: {}", d.message);
            }
            for d in &missing {
                tracing::warn!(topic = %d.name, key = %format!("topics.{}", d.logical), "topic verification: declared topic does not exist");
            }
            if drift.is_empty()
                && missing.is_empty()
                && previous.is_some_and(|(d, m)| !d.is_empty() || !m.is_empty())
            {
                tracing::info!("topic verification: every declared topic matches again");
            }
        }
        let status = if !missing.is_empty() {
            TopicStatus::Unhealthy
        } else if !drift.is_empty() {
            TopicStatus::Degraded
        } else {
            TopicStatus::Healthy
        };
        TopicReport {
            status,
            required_topics: declared.iter().map(|d| d.name.clone()).collect(),
            existing_topics: existing.iter().map(|d| d.name.clone()).collect(),
            missing_topics: missing.iter().map(|d| d.name.clone()).collect(),
            last_verification: Some(now),
            created_topics: created,
            created_concurrently: concurrently,
            drift,
            statistics,
        }
    }

    /// Lists the declared topics (Metadata) and, with `configs`, reads the
    /// configs of those that exist and declare some (DescribeConfigs),
    /// retrying retriable failures.
    async fn inspect(
        &self,
        session: &mut Session<'_>,
        retry: Retry,
        declared: &[Declared],
        configs: bool,
    ) -> Result<Inspection, TopicError> {
        let mut attempt = 1;
        loop {
            let error = match inspect_once(session, declared, configs).await {
                Ok(inspection) => return Ok(inspection),
                Err(error) => error,
            };
            let (retriable, what) = match &error {
                StepError::Kafka(e) => {
                    session.after_error(e);
                    (e.kind() == ErrorKind::Retryable, e.to_string())
                }
                StepError::Topic(f) => {
                    session.after_failure(f);
                    (
                        classify::class_of_code(f.code) == ErrorClass::Retriable,
                        f.to_string(),
                    )
                }
            };
            if retriable && attempt < retry.attempts {
                tracing::warn!(attempt, retry_in = ?retry.delay, error = %what, "describing topics failed; retrying");
                tokio::time::sleep(retry.delay).await;
                attempt += 1;
                continue;
            }
            tracing::error!(attempt, error = %what, "describing topics failed");
            return Err(match error {
                StepError::Kafka(source) => TopicError::Kafka {
                    operation: "describing topics".to_owned(),
                    attempts: attempt,
                    source,
                },
                StepError::Topic(failure) => {
                    let d = declared.iter().find(|d| d.name == failure.topic);
                    let classification = match d {
                        Some(d) => classify_failure(
                            &failure,
                            &d.subject(Operation::Describe, session.broker_count()),
                        ),
                        None => Classification {
                            class: ErrorClass::Fatal,
                            code: Some(failure.code),
                            reason: failure.to_string(),
                            action: None,
                        },
                    };
                    TopicError::Inspection {
                        failure: TopicOperationFailure {
                            topic: failure.topic,
                            logical: d.map(|d| d.logical.clone()).unwrap_or_default(),
                            operation: Operation::Describe,
                            attempts: attempt,
                            classification,
                        },
                    }
                }
            });
        }
    }

    /// Runs one alignment action (creations included) with the retry rule;
    /// logs per seed 003's levels and counts creations.
    async fn apply(
        &self,
        session: &mut Session<'_>,
        retry: Retry,
        d: &Declared,
        action: &AlignmentAction,
    ) -> Result<Applied, TopicOperationFailure> {
        let operation = action.operation();
        let mut attempt = 1;
        loop {
            let classification = match apply_once(session, retry, action).await {
                Ok(()) => {
                    if operation == Operation::Create {
                        self.update(|s| s.topics_created += 1);
                    }
                    tracing::info!(topic = %d.name, attempt, "{action}: done");
                    return Ok(Applied::Done);
                }
                Err(StepError::Topic(failure)) => {
                    session.after_failure(&failure);
                    classify_failure(&failure, &d.subject(operation, session.broker_count()))
                }
                Err(StepError::Kafka(error)) => {
                    session.after_error(&error);
                    classify_error(&error, &d.subject(operation, session.broker_count()))
                }
            };
            match classification.class {
                ErrorClass::Expected => {
                    tracing::info!(
                        topic = %d.name,
                        "topic already exists (created earlier or concurrently by another \
                         instance)"
                    );
                    return Ok(Applied::AlreadyThere);
                }
                ErrorClass::Retriable if attempt < retry.attempts => {
                    tracing::warn!(
                        topic = %d.name,
                        attempt,
                        retry_in = ?retry.delay,
                        error = %classification.reason,
                        "{} topic {} failed; retrying",
                        operation.verb(),
                        d.name
                    );
                    tokio::time::sleep(retry.delay).await;
                    attempt += 1;
                }
                ErrorClass::Retriable | ErrorClass::Fatal => {
                    if operation == Operation::Create {
                        self.update(|s| s.topic_creation_errors += 1);
                    }
                    tracing::error!(
                        topic = %d.name,
                        key = %format!("topics.{}", d.logical),
                        attempts = attempt,
                        class = ?classification.class,
                        "{} topic {} failed: {classification}",
                        operation.verb(),
                        d.name
                    );
                    return Err(TopicOperationFailure {
                        topic: d.name.clone(),
                        logical: d.logical.clone(),
                        operation,
                        attempts: attempt,
                        classification,
                    });
                }
            }
        }
    }
}

/// How an action ended when it did not fail.
enum Applied {
    Done,
    /// A creation found the topic already there.
    AlreadyThere,
}

/// Step 2: every problem of every declared topic at once.
fn check(config: &Config) -> Result<(), TopicError> {
    let problems = validate_topics(&config.topics);
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        tracing::error!(key = %p.key, topic = %p.topic, "invalid topic configuration: {}", p.message);
    }
    Err(TopicError::Invalid { problems })
}

async fn inspect_once(
    session: &mut Session<'_>,
    declared: &[Declared],
    with_configs: bool,
) -> Result<Inspection, StepError> {
    if declared.is_empty() {
        return Ok(Inspection::default());
    }
    let admin = session.admin().await.map_err(StepError::Kafka)?;
    let all = admin
        .describe_topics(None)
        .await
        .map_err(StepError::Kafka)?;
    let mut topics = BTreeMap::new();
    for d in declared {
        match all.get(&d.name) {
            Some(Ok(description)) => {
                topics.insert(d.name.clone(), description.clone());
            }
            Some(Err(failure)) if failure.code != UNKNOWN_TOPIC_OR_PARTITION => {
                return Err(StepError::Topic(failure.clone()));
            }
            _ => {}
        }
    }
    let mut configs = BTreeMap::new();
    let wanted: Vec<String> = declared
        .iter()
        .filter(|d| !d.spec.configs.is_empty() && topics.contains_key(&d.name))
        .map(|d| d.name.clone())
        .collect();
    if with_configs && !wanted.is_empty() {
        for (topic, result) in admin
            .describe_topic_configs(&wanted)
            .await
            .map_err(StepError::Kafka)?
        {
            configs.insert(topic, result.map_err(StepError::Topic)?);
        }
    }
    Ok(Inspection { topics, configs })
}

/// NOT_CONTROLLER: the request must go to the (new) controller.
const NOT_CONTROLLER: i16 = 41;

/// UNKNOWN_TOPIC_OR_PARTITION: the topic does not exist.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

async fn apply_once(
    session: &mut Session<'_>,
    retry: Retry,
    action: &AlignmentAction,
) -> Result<(), StepError> {
    let admin = session.admin().await.map_err(StepError::Kafka)?;
    let topic = action.topic().to_owned();
    let mut results = match action {
        AlignmentAction::CreateTopic {
            topic,
            partitions,
            replication_factor,
            configs,
        } => admin
            .create_topics(
                &[NewTopic {
                    name: topic.clone(),
                    partitions: *partitions,
                    replication_factor: *replication_factor,
                    configs: configs.clone(),
                }],
                retry.timeout,
                false,
            )
            .await
            .map(|r| r.into_iter().map(|(k, v)| (k, v.map(|_| ()))).collect()),
        AlignmentAction::AddPartitions { topic, to, .. } => {
            admin
                .create_partitions(
                    &BTreeMap::from([(topic.clone(), *to)]),
                    retry.timeout,
                    false,
                )
                .await
        }
        AlignmentAction::SetConfigs { topic, configs } => {
            let values = configs
                .iter()
                .map(|(k, change)| (k.clone(), change.to.clone()))
                .collect();
            admin
                .alter_topic_configs(&BTreeMap::from([(topic.clone(), values)]), false)
                .await
        }
    }
    .map_err(StepError::Kafka)?;
    match results.remove(&topic) {
        Some(result) => result.map_err(StepError::Topic),
        // The admin layer guarantees an answer per requested topic.
        None => Err(StepError::Kafka(KafkaError::Protocol {
            broker: admin.addr().to_owned(),
            api: "admin".to_owned(),
            message: format!("no answer for topic {topic}"),
        })),
    }
}

/// Waits until each `(topic, partitions)` shows at least that many
/// partitions, each with a leader, or `timeout` passes.
async fn wait_ready(
    session: &mut Session<'_>,
    timeout: Duration,
    targets: &[(&str, i32)],
) -> Result<(), TopicError> {
    if targets.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = targets.iter().map(|(t, _)| (*t).to_owned()).collect();
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_POLL;
    loop {
        let pending: Vec<(&str, i32)> = match session.admin().await {
            Ok(admin) => match admin.describe_topics(Some(&names)).await {
                Ok(found) => targets
                    .iter()
                    .filter(|(t, partitions)| {
                        !matches!(found.get(*t), Some(Ok(d))
                            if d.partition_count() >= *partitions && d.is_ready())
                    })
                    .copied()
                    .collect(),
                Err(error) => {
                    tracing::debug!(%error, "waiting for new topics: metadata failed");
                    session.after_error(&error);
                    targets.to_vec()
                }
            },
            Err(error) => {
                tracing::debug!(%error, "waiting for new topics: cannot connect");
                targets.to_vec()
            }
        };
        let Some((topic, partitions)) = pending.first() else {
            return Ok(());
        };
        if Instant::now() + pause >= deadline {
            return Err(TopicError::NotReady {
                topic: (*topic).to_owned(),
                partitions: *partitions,
                after: timeout,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// `1 partition`, `3 partitions`.
fn count(n: i32, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Whether a declared config value matches the cluster's. List values
/// (`compact,delete`) compare item by item, ignoring spaces around commas.
fn same_value(declared: &str, actual: &str) -> bool {
    declared
        .split(',')
        .map(str::trim)
        .eq(actual.split(',').map(str::trim))
}

/// Drift of every existing declared topic, in declaration order.
fn drift(declared: &[Declared], inspection: &Inspection) -> Vec<Drift> {
    let mut out = Vec::new();
    for d in declared {
        let Some(topic) = inspection.topics.get(&d.name) else {
            continue;
        };
        let actual = topic.partition_count();
        if actual < d.spec.partitions {
            out.push(Drift {
                topic: d.name.clone(),
                key: format!("topics.{}.partitions", d.logical),
                kind: DriftKind::FewerPartitions {
                    declared: d.spec.partitions,
                    actual,
                },
                message: format!(
                    "topic {} has {}, {} declared",
                    d.name,
                    count(actual, "partition"),
                    d.spec.partitions
                ),
            });
        }
        let Some(configs) = inspection.configs.get(&d.name) else {
            continue;
        };
        for (name, want) in &d.spec.configs {
            let entry = configs.get(name);
            if entry.is_some_and(|e| e.sensitive) {
                // The broker hides the value: nothing to compare.
                continue;
            }
            let have = entry.and_then(|e| e.value.clone());
            if have.as_deref().is_some_and(|h| same_value(want, h)) {
                continue;
            }
            out.push(Drift {
                topic: d.name.clone(),
                key: format!("topics.{}.configs.{name}", d.logical),
                message: format!(
                    "topic {} has {name}={}, {want} declared",
                    d.name,
                    have.as_deref().unwrap_or("(unset)")
                ),
                kind: DriftKind::ConfigDiffers {
                    config: name.clone(),
                    declared: want.clone(),
                    actual: have,
                },
            });
        }
    }
    out
}

/// The alignment plan for an inspection.
fn plan(declared: &[Declared], inspection: &Inspection) -> AlignmentPlan {
    let mut plan = AlignmentPlan::default();
    for d in declared {
        if !inspection.topics.contains_key(&d.name) {
            plan.actions.push(d.create_action());
        }
    }
    let drift = drift(declared, inspection);
    for d in declared {
        let Some(topic) = inspection.topics.get(&d.name) else {
            continue;
        };
        let actual = topic.partition_count();
        if actual > d.spec.partitions {
            plan.notes.push(format!(
                "topic {} has {actual} partitions, more than the {} declared \
                 (topics.{}.partitions); Kafka cannot remove partitions, so it is left as is",
                d.name, d.spec.partitions, d.logical
            ));
        }
        let mut configs = BTreeMap::new();
        for item in drift.iter().filter(|x| x.topic == d.name) {
            match &item.kind {
                DriftKind::FewerPartitions { declared, actual } => {
                    plan.actions.push(AlignmentAction::AddPartitions {
                        topic: d.name.clone(),
                        from: *actual,
                        to: *declared,
                    });
                }
                DriftKind::ConfigDiffers {
                    config,
                    declared,
                    actual,
                } => {
                    configs.insert(
                        config.clone(),
                        ConfigChange {
                            from: actual.clone(),
                            to: declared.clone(),
                        },
                    );
                }
            }
        }
        if !configs.is_empty() {
            plan.actions.push(AlignmentAction::SetConfigs {
                topic: d.name.clone(),
                configs,
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::admin::{ConfigSource, PartitionDescription};

    fn topic(name: &str, partitions: i32) -> TopicDescription {
        TopicDescription {
            name: name.to_owned(),
            internal: false,
            partitions: (0..partitions)
                .map(|index| PartitionDescription {
                    index,
                    leader: 1,
                    replicas: vec![1],
                    error_code: 0,
                })
                .collect(),
        }
    }

    fn entry(name: &str, value: &str) -> (String, ConfigEntry) {
        (
            name.to_owned(),
            ConfigEntry {
                name: name.to_owned(),
                value: Some(value.to_owned()),
                source: ConfigSource::DynamicTopic,
                read_only: false,
                sensitive: false,
            },
        )
    }

    fn config() -> Config {
        let mut config = Config::default();
        config.topics.insert(
            "requests".to_owned(),
            TopicSpec {
                name: Some("app-requests".to_owned()),
                partitions: 3,
                replication_factor: 1,
                configs: BTreeMap::from([
                    ("retention.ms".to_owned(), "60000".to_owned()),
                    ("cleanup.policy".to_owned(), "compact, delete".to_owned()),
                ]),
            },
        );
        config.topics.insert(
            "dlq".to_owned(),
            TopicSpec {
                partitions: 1,
                ..TopicSpec::default()
            },
        );
        config.topics.insert(
            "events".to_owned(),
            TopicSpec {
                partitions: 2,
                ..TopicSpec::default()
            },
        );
        config
    }

    fn inspection() -> Inspection {
        Inspection {
            topics: BTreeMap::from([
                ("app-requests".to_owned(), topic("app-requests", 2)),
                ("events".to_owned(), topic("events", 4)),
            ]),
            configs: BTreeMap::from([(
                "app-requests".to_owned(),
                BTreeMap::from([
                    entry("retention.ms", "86400000"),
                    entry("cleanup.policy", "compact,delete"),
                ]),
            )]),
        }
    }

    #[test]
    fn drift_lists_fewer_partitions_and_differing_configs() {
        let config = config();
        let drift = drift(&declared(&config), &inspection());
        let keys: Vec<&str> = drift.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "topics.requests.partitions",
                "topics.requests.configs.retention.ms"
            ]
        );
        assert_eq!(
            drift[0].kind,
            DriftKind::FewerPartitions {
                declared: 3,
                actual: 2
            }
        );
        assert_eq!(
            drift[1].message,
            "topic app-requests has retention.ms=86400000, 60000 declared"
        );
    }

    #[test]
    fn unset_and_sensitive_configs() {
        let config = config();
        let mut inspection = inspection();
        let configs = inspection.configs.get_mut("app-requests").expect("configs");
        configs.remove("retention.ms");
        configs.insert(
            "cleanup.policy".to_owned(),
            ConfigEntry {
                value: None,
                sensitive: true,
                ..entry("cleanup.policy", "").1
            },
        );
        let drift = drift(&declared(&config), &inspection);
        assert_eq!(drift.len(), 2, "{drift:#?}");
        assert_eq!(
            drift[1].kind,
            DriftKind::ConfigDiffers {
                config: "retention.ms".into(),
                declared: "60000".into(),
                actual: None
            }
        );
        assert!(
            drift[1]
                .message
                .ends_with("retention.ms=(unset), 60000 declared")
        );
    }

    #[test]
    fn plan_creates_grows_and_sets_but_never_shrinks() {
        let config = config();
        let plan = plan(&declared(&config), &inspection());
        assert_eq!(
            plan.actions,
            vec![
                AlignmentAction::CreateTopic {
                    topic: "dlq".into(),
                    partitions: 1,
                    replication_factor: 1,
                    configs: BTreeMap::new(),
                },
                AlignmentAction::AddPartitions {
                    topic: "app-requests".into(),
                    from: 2,
                    to: 3,
                },
                AlignmentAction::SetConfigs {
                    topic: "app-requests".into(),
                    configs: BTreeMap::from([(
                        "retention.ms".into(),
                        ConfigChange {
                            from: Some("86400000".into()),
                            to: "60000".into(),
                        }
                    )]),
                },
            ]
        );
        assert_eq!(plan.notes.len(), 1);
        assert!(
            plan.notes[0].contains("topic events has 4 partitions"),
            "{:?}",
            plan.notes
        );
        assert_eq!(
            plan.actions[2].to_string(),
            "set configs of topic app-requests: retention.ms: 86400000 -> 60000"
        );
        assert_eq!(
            plan.actions[0].to_string(),
            "create topic dlq (1 partition, replication factor 1)"
        );
    }

    #[test]
    fn list_values_compare_item_by_item() {
        assert!(same_value("compact, delete", "compact,delete"));
        assert!(same_value("60000", "60000"));
        assert!(!same_value("delete,compact", "compact,delete"));
        assert!(!same_value("6000", "60000"));
    }

    #[test]
    fn report_has_seed_003_topic_health_shape() {
        let manager = TopicManager::new();
        let config = config();
        let report = manager.report(
            &declared(&config),
            &inspection(),
            vec!["events".into()],
            vec![],
        );
        assert_eq!(report.status, TopicStatus::Unhealthy);
        assert_eq!(report.missing_topics, vec!["dlq".to_owned()]);
        assert_eq!(
            // In declaration order: by logical name (dlq, events, requests).
            report.existing_topics,
            vec!["events".to_owned(), "app-requests".to_owned()]
        );
        let json = serde_json::to_value(&report).expect("serialise");
        for key in [
            "status",
            "required_topics",
            "existing_topics",
            "missing_topics",
            "last_verification",
            "drift",
            "statistics",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert_eq!(json["status"], "unhealthy");
        assert_eq!(json["drift"][0]["kind"], "fewer_partitions");
        assert_eq!(json["drift"][0]["declared"], 3);
        let at = json["last_verification"].as_str().expect("a timestamp");
        assert!(humantime::parse_rfc3339(at).is_ok(), "{at}");
        assert_eq!(json["statistics"]["last_topic_verification"], at);
        assert_eq!(json["statistics"]["topics_created"], 0);
        assert!(manager.statistics().last_topic_verification.is_some());
    }

    #[tokio::test]
    async fn disabled_auto_create_skips_without_a_broker() {
        let mut config = config();
        config.topic_manager.auto_create = false;
        // Nothing listens here; a skipped run must not try.
        config.kafka.bootstrap_servers = vec!["127.0.0.1:1".to_owned()];
        let report = TopicManager::new().ensure(&config).await.expect("skipped");
        assert_eq!(report.status, TopicStatus::Skipped);
        assert_eq!(report.required_topics.len(), 3);
        assert!(report.last_verification.is_none());
    }

    #[tokio::test]
    async fn invalid_topics_fail_before_any_broker_call() {
        let mut config = config();
        config.kafka.bootstrap_servers = vec!["127.0.0.1:1".to_owned()];
        config.topics.insert(
            "bad".to_owned(),
            TopicSpec {
                partitions: 0,
                replication_factor: 0,
                ..TopicSpec::default()
            },
        );
        let error = TopicManager::new()
            .ensure(&config)
            .await
            .expect_err("invalid");
        assert_eq!(error.code(), "invalid_topic_config");
        assert_eq!(error.kind(), ErrorKind::Permanent);
        let text = error.to_string();
        assert!(
            text.contains(
                "topics.bad.partitions: Partition count must be greater than 0 for topic bad"
            ),
            "{text}"
        );
        assert!(
            text.contains("topics.bad.replication_factor: Replication factor must be greater"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn unreachable_brokers_are_retried_then_reported() {
        let mut config = config();
        config.kafka.bootstrap_servers = vec!["127.0.0.1:1".to_owned()];
        config.topic_manager.creation_retries = 1;
        config.topic_manager.creation_retry_delay_secs = 0;
        let error = TopicManager::new()
            .ensure(&config)
            .await
            .expect_err("no broker");
        assert_eq!(error.kind(), ErrorKind::Retryable, "{error}");
        assert_eq!(error.code(), "kafka");
        assert!(error.to_string().contains("after 2 attempt(s)"), "{error}");
    }
}
