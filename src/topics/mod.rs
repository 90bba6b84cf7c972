//! The topic manager (seed 003): declared topics (`[topics.*]`) are
//! validated, created when missing, verified, and aligned on request.
//!
//! ```text
//!  Config ──▶ TopicManager::ensure
//!               1. topic_manager.auto_create off? ──▶ report "skipped"
//!               2. validate::validate_topics ──▶ every problem, with its key
//!               3. Metadata (all topics)          ┐
//!               4. declared − existing = missing  │ kafka::admin over one
//!               5. CreateTopics, one by one,      │ BrokerConnection
//!                  retried per classify           │ (controller when reachable)
//!               6. wait for leaders, then         │
//!                  Metadata + DescribeConfigs     ┘
//!               7. statistics ──▶ TopicReport (seed 003's topic health + drift)
//!
//!  TopicManager::verify           steps 2, 3, 6 only: what exists, what drifted
//!  TopicManager::plan_alignment   drift ──▶ CreateTopics / CreatePartitions /
//!  TopicManager::apply_alignment            IncrementalAlterConfigs (never fewer partitions)
//! ```
//!
//! - [`validate`]: Kafka's topic rules, seed 003's messages.
//! - [`classify`]: expected / retriable / fatal, with what to change.
//! - [`manager`]: the workflow, verification, alignment, statistics.
//!
//! Logging follows seed 003's levels: DEBUG for listing, INFO for creations
//! and topics that already exist, WARN for retriable failures and drift,
//! ERROR for fatal failures. No metrics are emitted here: the counters live
//! in [`TopicStatistics`], for the health endpoint to expose.

pub mod classify;
pub mod manager;
pub mod validate;

use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use classify::{Classification, ErrorClass, Operation};
pub use manager::{
    AlignmentAction, AlignmentPlan, AlignmentReport, ConfigChange, Drift, DriftKind, TopicManager,
    TopicReport, TopicStatistics, TopicStatus,
};
pub use validate::{ValidationProblem, validate_topics};

use crate::kafka::{ErrorKind, KafkaError};

/// One topic whose creation or alignment step failed for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicOperationFailure {
    /// The Kafka topic.
    pub topic: String,
    /// Its logical name (`topics.<logical>`).
    pub logical: String,
    /// What was being done.
    pub operation: Operation,
    /// Attempts made.
    pub attempts: u32,
    /// Why it failed, and what to change.
    pub classification: Classification,
}

impl fmt::Display for TopicOperationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} topic {} (topics.{}) failed after {} attempt(s): {}",
            self.operation.verb(),
            self.topic,
            self.logical,
            self.attempts,
            self.classification
        )
    }
}

fn lines<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| format!("\n  - {i}"))
        .collect::<String>()
}

fn done(what: &str, items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(" ({what}: {})", items.join(", "))
    }
}

/// Why a topic manager call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Declared topics break Kafka's rules; nothing was sent to Kafka.
    #[error("invalid topic configuration:{}", lines(problems))]
    Invalid {
        /// Every problem, each with its key.
        problems: Vec<ValidationProblem>,
    },
    /// The cluster could not be reached or described, after retries.
    #[error("{operation} failed after {attempts} attempt(s): {source}")]
    Kafka {
        /// What was being done.
        operation: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        #[source]
        source: KafkaError,
    },
    /// The broker refused to describe a declared topic.
    #[error("{failure}")]
    Inspection {
        /// The topic and why.
        failure: TopicOperationFailure,
    },
    /// Topics could not be created. Every missing topic was attempted.
    #[error(
        "creating topics failed for {} topic(s){}:{}",
        failures.len(),
        done("created", created),
        lines(failures)
    )]
    Creation {
        /// Each topic that failed.
        failures: Vec<TopicOperationFailure>,
        /// Topics created before the failures were reported.
        created: Vec<String>,
    },
    /// Alignment steps failed. Every step was attempted.
    #[error(
        "aligning topics failed for {} step(s){}:{}",
        failures.len(),
        done("applied", applied),
        lines(failures)
    )]
    Alignment {
        /// Each step that failed.
        failures: Vec<TopicOperationFailure>,
        /// Steps applied, described.
        applied: Vec<String>,
    },
    /// A created topic (or added partitions) did not show up with leaders in
    /// the metadata in time.
    #[error(
        "topic {topic} did not show {partitions} partition(s) with leaders within {after:?} \
         (raise topic_manager.creation_timeout_secs, KAFKA_TOPIC_CREATION_TIMEOUT, if the \
         cluster is slow)"
    )]
    NotReady {
        /// The topic.
        topic: String,
        /// Partitions expected.
        partitions: i32,
        /// How long it was waited for.
        after: Duration,
    },
    /// An alignment plan names a topic that is not declared (the plan was
    /// made from another configuration).
    #[error("alignment plan names topic {topic}, which is not declared in [topics]")]
    NotDeclared {
        /// The topic.
        topic: String,
    },
}

impl TopicError {
    /// Whether trying again later may help.
    pub fn kind(&self) -> ErrorKind {
        let any_fatal = |failures: &[TopicOperationFailure]| {
            failures
                .iter()
                .any(|f| f.classification.class == ErrorClass::Fatal)
        };
        match self {
            Self::Invalid { .. } | Self::NotDeclared { .. } => ErrorKind::Permanent,
            Self::Kafka { source, .. } => source.kind(),
            Self::Inspection { failure } => match failure.classification.class {
                ErrorClass::Fatal => ErrorKind::Permanent,
                ErrorClass::Retriable | ErrorClass::Expected => ErrorKind::Retryable,
            },
            Self::Creation { failures, .. } | Self::Alignment { failures, .. } => {
                if any_fatal(failures) {
                    ErrorKind::Permanent
                } else {
                    ErrorKind::Retryable
                }
            }
            Self::NotReady { .. } => ErrorKind::Retryable,
        }
    }

    /// A short, stable label for metrics and exit paths.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_topic_config",
            Self::Kafka { .. } => "kafka",
            Self::Inspection { .. } => "describe_failed",
            Self::Creation { .. } => "creation_failed",
            Self::Alignment { .. } => "alignment_failed",
            Self::NotReady { .. } => "not_ready",
            Self::NotDeclared { .. } => "not_declared",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(class: ErrorClass) -> TopicOperationFailure {
        TopicOperationFailure {
            topic: "app-requests".into(),
            logical: "requests".into(),
            operation: Operation::Create,
            attempts: 1,
            classification: Classification {
                class,
                code: Some(38),
                reason: "InvalidReplicationFactor (38)".into(),
                action: Some("reduce the replication factor".into()),
            },
        }
    }

    #[test]
    fn every_error_has_a_kind_and_code() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let table: Vec<(TopicError, ErrorKind, &str)> = vec![
            (
                TopicError::Invalid {
                    problems: vec![ValidationProblem {
                        key: "topics.requests.partitions".into(),
                        topic: "app-requests".into(),
                        message: "Partition count must be greater than 0 for topic app-requests"
                            .into(),
                    }],
                },
                ErrorKind::Permanent,
                "invalid_topic_config",
            ),
            (
                TopicError::Kafka {
                    operation: "describing topics".into(),
                    attempts: 4,
                    source: KafkaError::Connect {
                        broker: "h:1".into(),
                        source: io,
                    },
                },
                ErrorKind::Retryable,
                "kafka",
            ),
            (
                TopicError::Inspection {
                    failure: failure(ErrorClass::Fatal),
                },
                ErrorKind::Permanent,
                "describe_failed",
            ),
            (
                TopicError::Creation {
                    failures: vec![failure(ErrorClass::Retriable), failure(ErrorClass::Fatal)],
                    created: vec!["other".into()],
                },
                ErrorKind::Permanent,
                "creation_failed",
            ),
            (
                TopicError::Alignment {
                    failures: vec![failure(ErrorClass::Retriable)],
                    applied: vec![],
                },
                ErrorKind::Retryable,
                "alignment_failed",
            ),
            (
                TopicError::NotReady {
                    topic: "app-requests".into(),
                    partitions: 3,
                    after: Duration::from_secs(30),
                },
                ErrorKind::Retryable,
                "not_ready",
            ),
            (
                TopicError::NotDeclared {
                    topic: "app-requests".into(),
                },
                ErrorKind::Permanent,
                "not_declared",
            ),
        ];
        for (error, kind, code) in table {
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(error.code(), code, "{error}");
            let text = error.to_string();
            assert!(
                text.contains("app-requests") || text.contains("h:1"),
                "{text}"
            );
        }
    }

    #[test]
    fn creation_errors_list_each_topic_and_what_was_created() {
        let error = TopicError::Creation {
            failures: vec![failure(ErrorClass::Fatal)],
            created: vec!["app-responses".into()],
        };
        assert_eq!(
            error.to_string(),
            "creating topics failed for 1 topic(s) (created: app-responses):\n  - creating \
             topic app-requests (topics.requests) failed after 1 attempt(s): \
             InvalidReplicationFactor (38); reduce the replication factor"
        );
    }
}
