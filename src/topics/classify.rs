//! Seed 003's error classification for topic operations: every failure is
//! **expected** (logged at INFO, work continues), **retriable** (WARN, tried
//! again after `topic_manager.creation_retry_delay_secs`) or **fatal**
//! (ERROR, start-up fails), and a fatal one says what to change.
//!
//! | class     | Kafka error codes and transport errors                         |
//! |-----------|----------------------------------------------------------------|
//! | expected  | TOPIC_ALREADY_EXISTS (36), also when another instance won a race |
//! | retriable | LEADER_NOT_AVAILABLE (5), REQUEST_TIMED_OUT (7), BROKER_NOT_AVAILABLE (8), NETWORK_EXCEPTION (13), NOT_CONTROLLER (41), THROTTLING_QUOTA_EXCEEDED (89), every other code Kafka marks retriable; connection failures and deadlines |
//! | fatal     | INVALID_TOPIC_EXCEPTION (17), TOPIC_AUTHORIZATION_FAILED (29), CLUSTER_AUTHORIZATION_FAILED (31), INVALID_PARTITIONS (37), INVALID_REPLICATION_FACTOR (38), INVALID_REPLICA_ASSIGNMENT (39), INVALID_CONFIG (40), POLICY_VIOLATION (44), every other code Kafka does not mark retriable; undecodable answers, unsupported APIs |

use std::fmt;

use kafka_protocol::error::ParseResponseErrorCode;
use serde::Serialize;

use crate::config::{SEED_VARIABLES, TopicSpec};
use crate::kafka::admin::TopicFailure;
use crate::kafka::{KafkaError, error_code_name};

/// Seed 003's three error categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A normal condition (the topic already exists): INFO, continue.
    Expected,
    /// May resolve by itself: WARN, retry after the configured delay.
    Retriable,
    /// Needs a change by an operator: ERROR, start-up fails.
    Fatal,
}

/// The topic operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Listing topics or reading their configs (Metadata, DescribeConfigs).
    Describe,
    /// CreateTopics.
    Create,
    /// CreatePartitions.
    AddPartitions,
    /// IncrementalAlterConfigs.
    AlterConfigs,
}

impl Operation {
    /// How the operation reads in a log line (`creating`, ...).
    pub fn verb(self) -> &'static str {
        match self {
            Self::Describe => "describing",
            Self::Create => "creating",
            Self::AddPartitions => "adding partitions to",
            Self::AlterConfigs => "changing the configs of",
        }
    }

    /// The ACL operation Kafka checks for it.
    fn acl(self) -> &'static str {
        match self {
            Self::Describe => "DESCRIBE and DESCRIBE_CONFIGS",
            Self::Create => "CREATE",
            Self::AddPartitions => "ALTER",
            Self::AlterConfigs => "ALTER_CONFIGS",
        }
    }
}

/// What a failure concerns: the topic, its declaration, and what is known
/// about the cluster. Only used to word the advice.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The Kafka topic name.
    pub topic: &'a str,
    /// The logical name it is declared under (`topics.<logical>`).
    pub logical: &'a str,
    /// Its declaration.
    pub spec: &'a TopicSpec,
    /// Brokers in the cluster's metadata, when known.
    pub broker_count: Option<usize>,
    /// What was being done.
    pub operation: Operation,
}

/// The verdict on one failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    /// Expected, retriable or fatal.
    pub class: ErrorClass,
    /// Kafka's error code, when the broker answered with one.
    pub code: Option<i16>,
    /// What happened: the code's name and description, and the broker's own
    /// message, or the transport error.
    pub reason: String,
    /// What to change (fatal), or what to check if retries run out
    /// (retriable); `None` for expected conditions.
    pub action: Option<String>,
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)?;
        if let Some(action) = &self.action {
            write!(f, "; {action}")?;
        }
        Ok(())
    }
}

/// TOPIC_ALREADY_EXISTS.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;

/// The class of a Kafka error code, by seed 003's table, falling back on
/// Kafka's own retriable flag for codes the table does not name (unknown
/// codes, UNKNOWN_SERVER_ERROR included, are fatal, as in the Java client).
pub fn class_of_code(code: i16) -> ErrorClass {
    match code {
        TOPIC_ALREADY_EXISTS => ErrorClass::Expected,
        // LEADER_NOT_AVAILABLE, REQUEST_TIMED_OUT, BROKER_NOT_AVAILABLE,
        // NETWORK_EXCEPTION, NOT_CONTROLLER, THROTTLING_QUOTA_EXCEEDED.
        5 | 7 | 8 | 13 | 41 | 89 => ErrorClass::Retriable,
        // INVALID_TOPIC_EXCEPTION, TOPIC_AUTHORIZATION_FAILED,
        // CLUSTER_AUTHORIZATION_FAILED, INVALID_PARTITIONS,
        // INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT,
        // INVALID_CONFIG, POLICY_VIOLATION.
        17 | 29 | 31 | 37 | 38 | 39 | 40 | 44 => ErrorClass::Fatal,
        other => match other.err() {
            Some(e) if e.is_retriable() => ErrorClass::Retriable,
            _ => ErrorClass::Fatal,
        },
    }
}

/// `topics.<logical>.<field>`, followed by the seed variable that sets it
/// when there is one: `topics.requests.replication_factor
/// (KAFKA_TOPIC_REQUESTS_REPLICATION)`.
fn key_hint(logical: &str, field: &str) -> String {
    let key = format!("topics.{logical}.{field}");
    match SEED_VARIABLES.iter().find(|v| v.key == key) {
        Some(var) => format!("{key} ({})", var.name),
        None => key,
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Classifies a broker's error code for `subject`. `broker_message` is the
/// broker's own text, quoted in the reason.
pub fn classify_code(
    code: i16,
    broker_message: Option<&str>,
    subject: &Subject<'_>,
) -> Classification {
    let class = class_of_code(code);
    let mut reason = error_code_name(code);
    if let Some(message) = broker_message.filter(|m| !m.trim().is_empty()) {
        reason = format!("{reason} (broker: {message})");
    }
    let Subject {
        topic,
        logical,
        spec,
        broker_count,
        operation,
    } = *subject;
    let action = match (class, code) {
        (ErrorClass::Expected, _) => None,
        (_, 17) => Some(format!(
            "rename the topic: set {} to 1-249 characters of a-z A-Z 0-9 . _ - that do not \
             collide with an existing topic differing only by '.' versus '_'",
            key_hint(logical, "name")
        )),
        (_, 29) => Some(format!(
            "grant {} permission on topic {topic} to the client's Kafka user \
             (and DESCRIBE / DESCRIBE_CONFIGS for listing and verification)",
            operation.acl()
        )),
        (_, 31) => Some(format!(
            "grant {} permission on the cluster to the client's Kafka user",
            operation.acl()
        )),
        (_, 37) if operation == Operation::AddPartitions => Some(format!(
            "Kafka only increases a topic's partition count: set {} to at least the current \
             count of topic {topic}",
            key_hint(logical, "partitions")
        )),
        (_, 37) => Some(format!(
            "set {} to a partition count the cluster accepts (now {})",
            key_hint(logical, "partitions"),
            spec.partitions
        )),
        (_, 38) => Some(match broker_count {
            Some(n) => format!(
                "reduce the replication factor to match the broker count ({}): set {} to at \
                 most {n} (now {})",
                plural(n, "broker", "brokers"),
                key_hint(logical, "replication_factor"),
                spec.replication_factor
            ),
            None => format!(
                "reduce the replication factor to match the broker count: set {} to at most \
                 the number of brokers (now {})",
                key_hint(logical, "replication_factor"),
                spec.replication_factor
            ),
        }),
        (_, 39) => Some(format!(
            "the broker could not place the replicas of topic {topic}; check that enough \
             brokers are registered, or lower {}",
            key_hint(logical, "replication_factor")
        )),
        (_, 40) => Some(format!(
            "fix or remove the offending entry under topics.{logical}.configs (declared: {})",
            if spec.configs.is_empty() {
                "none".to_owned()
            } else {
                spec.configs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )),
        (_, 44) => Some(format!(
            "the cluster's topic policy refused {} topic {topic}: change topics.{logical} to \
             satisfy it (partition, replication and config limits), or ask the cluster's \
             operators",
            operation.verb()
        )),
        (ErrorClass::Retriable, _) => Some(retriable_advice()),
        (ErrorClass::Fatal, _) => Some(format!(
            "read the broker's message and fix topics.{logical}, or {} topic {topic} by hand \
             and set topic_manager.auto_create = false (KAFKA_TOPIC_AUTO_CREATE=false)",
            if operation == Operation::Create {
                "create"
            } else {
                "align"
            }
        )),
    };
    Classification {
        class,
        code: Some(code),
        reason,
        action,
    }
}

/// Seed 003's troubleshooting for timeouts and unavailable brokers.
fn retriable_advice() -> String {
    "check that all brokers are running and reachable from this host \
     (kafka.bootstrap_servers), or allow more time: topic_manager.creation_timeout_secs \
     (KAFKA_TOPIC_CREATION_TIMEOUT), topic_manager.creation_retries \
     (KAFKA_TOPIC_CREATION_RETRIES)"
        .to_owned()
}

/// Classifies a per-topic failure the broker sent.
pub fn classify_failure(failure: &TopicFailure, subject: &Subject<'_>) -> Classification {
    classify_code(failure.code, failure.message.as_deref(), subject)
}

/// Classifies a failed exchange: connection problems and deadlines are
/// retriable, broker error codes go through [`classify_code`], anything else
/// is fatal.
pub fn classify_error(error: &KafkaError, subject: &Subject<'_>) -> Classification {
    match error {
        KafkaError::Broker { code, .. } | KafkaError::PartitionError { code, .. } => {
            let mut c = classify_code(*code, None, subject);
            c.reason = error.to_string();
            c
        }
        KafkaError::Connect { .. } | KafkaError::Timeout { .. } | KafkaError::Io { .. } => {
            Classification {
                class: ErrorClass::Retriable,
                code: None,
                reason: error.to_string(),
                action: Some(retriable_advice()),
            }
        }
        KafkaError::NoBrokerReachable { last, .. } => {
            let mut c = classify_error(last, subject);
            c.reason = error.to_string();
            c
        }
        KafkaError::UnsupportedApi { api, .. } => Classification {
            class: ErrorClass::Fatal,
            code: None,
            reason: error.to_string(),
            action: Some(if subject.operation == Operation::Create {
                format!(
                    "use a broker that supports {api} (Apache Kafka 2.4 or later), or create \
                     topic {} by hand and set topic_manager.auto_create = false \
                     (KAFKA_TOPIC_AUTO_CREATE=false)",
                    subject.topic
                )
            } else {
                format!(
                    "use a broker that supports {api} (Apache Kafka 2.4 or later), or change \
                     topic {} by hand (kafka-topics.sh --alter, kafka-configs.sh --alter)",
                    subject.topic
                )
            }),
        },
        KafkaError::Protocol { .. } => Classification {
            class: ErrorClass::Fatal,
            code: None,
            reason: error.to_string(),
            action: Some(
                "check that kafka.bootstrap_servers points at Kafka brokers (not another \
                 service) and that they are Kafka-compatible"
                    .to_owned(),
            ),
        },
        KafkaError::Authentication { .. } => Classification {
            class: ErrorClass::Fatal,
            code: None,
            reason: error.to_string(),
            action: Some(
                "check kafka.security.sasl.mechanism, username and password \
                 (KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD) against \
                 the broker's listener"
                    .to_owned(),
            ),
        },
        KafkaError::Tls { .. } => Classification {
            class: ErrorClass::Fatal,
            code: None,
            reason: error.to_string(),
            action: Some(
                "check kafka.security.protocol against the broker's listener and the files in \
                 kafka.security.ssl (KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE)"
                    .to_owned(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec() -> TopicSpec {
        TopicSpec {
            name: Some("gigaoffice-requests".into()),
            partitions: 3,
            replication_factor: 3,
            configs: [("cleanup.policy".to_owned(), "compact".to_owned())].into(),
        }
    }

    fn subject(spec: &TopicSpec, operation: Operation) -> Subject<'_> {
        Subject {
            topic: "gigaoffice-requests",
            logical: "requests",
            spec,
            broker_count: Some(1),
            operation,
        }
    }

    #[test]
    fn codes_classify_as_seed_003_says() {
        use ErrorClass::*;
        let spec = spec();
        let create = subject(&spec, Operation::Create);
        // (code, class, a phrase the action must contain)
        let table: &[(i16, ErrorClass, Option<&str>)] = &[
            (36, Expected, None),
            (5, Retriable, Some("check that all brokers are running")),
            (7, Retriable, Some("KAFKA_TOPIC_CREATION_TIMEOUT")),
            (8, Retriable, Some("reachable")),
            (13, Retriable, Some("reachable")),
            (41, Retriable, Some("reachable")),
            (89, Retriable, Some("reachable")),
            // Not in 003's table: Kafka marks it retriable.
            (6, Retriable, Some("reachable")),
            (
                17,
                Fatal,
                Some("set topics.requests.name (KAFKA_TOPIC_REQUESTS) to 1-249"),
            ),
            (
                29,
                Fatal,
                Some("grant CREATE permission on topic gigaoffice-requests"),
            ),
            (31, Fatal, Some("grant CREATE permission on the cluster")),
            (
                37,
                Fatal,
                Some("set topics.requests.partitions (KAFKA_TOPIC_REQUESTS_PARTITIONS)"),
            ),
            (
                38,
                Fatal,
                Some(
                    "reduce the replication factor to match the broker count (1 broker): set \
                     topics.requests.replication_factor (KAFKA_TOPIC_REQUESTS_REPLICATION) to \
                     at most 1 (now 3)",
                ),
            ),
            (39, Fatal, Some("could not place the replicas")),
            (
                40,
                Fatal,
                Some("under topics.requests.configs (declared: cleanup.policy=compact)"),
            ),
            (44, Fatal, Some("topic policy refused creating topic")),
            // UNKNOWN_SERVER_ERROR and codes Kafka does not know: fatal.
            (-1, Fatal, Some("read the broker's message")),
            (9999, Fatal, Some("KAFKA_TOPIC_AUTO_CREATE=false")),
            // UNSUPPORTED_VERSION: not retriable.
            (35, Fatal, Some("read the broker's message")),
        ];
        for &(code, class, action) in table {
            let c = classify_code(code, Some("broker text"), &create);
            assert_eq!(c.class, class, "code {code}: {c}");
            assert_eq!(class_of_code(code), class, "code {code}");
            assert_eq!(c.code, Some(code));
            assert!(c.reason.contains("broker text"), "code {code}: {c}");
            match action {
                None => assert_eq!(c.action, None, "code {code}"),
                Some(phrase) => {
                    let got = c.action.clone().unwrap_or_default();
                    assert!(got.contains(phrase), "code {code}: {got}");
                }
            }
        }
    }

    #[test]
    fn advice_depends_on_operation_and_broker_count() {
        let spec = spec();
        let grow = subject(&spec, Operation::AddPartitions);
        let c = classify_code(37, None, &grow);
        assert!(
            c.action
                .as_deref()
                .is_some_and(|a| a.contains("only increases")),
            "{c}"
        );
        let c = classify_code(29, None, &subject(&spec, Operation::AlterConfigs));
        assert!(c.to_string().contains("grant ALTER_CONFIGS"), "{c}");

        let unknown = Subject {
            broker_count: None,
            ..subject(&spec, Operation::Create)
        };
        let c = classify_code(38, None, &unknown);
        assert!(
            c.to_string()
                .contains("to at most the number of brokers (now 3)"),
            "{c}"
        );
        let three = Subject {
            broker_count: Some(3),
            ..subject(&spec, Operation::Create)
        };
        assert!(
            classify_code(38, None, &three)
                .to_string()
                .contains("broker count (3 brokers)")
        );
        // A logical name without a seed variable gets the key only.
        let custom = Subject {
            logical: "orders",
            ..three
        };
        let c = classify_code(38, None, &custom);
        assert!(
            c.to_string()
                .contains("set topics.orders.replication_factor to at most 3"),
            "{c}"
        );
    }

    #[test]
    fn transport_errors_are_retriable_and_others_fatal() {
        let spec = spec();
        let s = subject(&spec, Operation::Create);
        let io = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let b = || "h:1".to_owned();
        let table: Vec<(KafkaError, ErrorClass)> = vec![
            (
                KafkaError::Connect {
                    broker: b(),
                    source: io(),
                },
                ErrorClass::Retriable,
            ),
            (
                KafkaError::Timeout {
                    broker: b(),
                    operation: "CreateTopics".into(),
                    after: Duration::from_secs(30),
                },
                ErrorClass::Retriable,
            ),
            (
                KafkaError::Io {
                    broker: b(),
                    source: io(),
                },
                ErrorClass::Retriable,
            ),
            (
                KafkaError::NoBrokerReachable {
                    tried: vec![b()],
                    last: Box::new(KafkaError::Connect {
                        broker: b(),
                        source: io(),
                    }),
                },
                ErrorClass::Retriable,
            ),
            (
                KafkaError::Broker {
                    broker: b(),
                    api: "CreateTopics".into(),
                    code: 41,
                },
                ErrorClass::Retriable,
            ),
            (
                KafkaError::Broker {
                    broker: b(),
                    api: "CreateTopics".into(),
                    code: 31,
                },
                ErrorClass::Fatal,
            ),
            (
                KafkaError::UnsupportedApi {
                    broker: b(),
                    api: "CreatePartitions".into(),
                },
                ErrorClass::Fatal,
            ),
            (
                KafkaError::Protocol {
                    broker: b(),
                    api: "CreateTopics".into(),
                    message: "x".into(),
                },
                ErrorClass::Fatal,
            ),
        ];
        for (error, class) in table {
            let c = classify_error(&error, &s);
            assert_eq!(c.class, class, "{error}");
            assert!(c.reason.contains("h:1"), "{c}");
            assert!(c.action.is_some(), "{c}");
        }
    }

    #[test]
    fn broker_failures_keep_the_brokers_message() {
        let spec = spec();
        let failure = TopicFailure {
            broker: "h:1".into(),
            api: "CreateTopics".into(),
            topic: "gigaoffice-requests".into(),
            code: 38,
            message: Some("Unable to replicate the partition 3 time(s)".into()),
        };
        let c = classify_failure(&failure, &subject(&spec, Operation::Create));
        assert_eq!(c.class, ErrorClass::Fatal);
        assert!(c.reason.starts_with("InvalidReplicationFactor (38)"), "{c}");
        assert!(
            c.reason
                .contains("broker: Unable to replicate the partition 3 time(s)"),
            "{c}"
        );
    }
}
