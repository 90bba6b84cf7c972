//! Adapters over the Kafka clients.
//!
//! - [`wire`]: one connection speaking the Kafka protocol with the
//!   `kafka-protocol` crate (API versions, metadata; later groups, offsets
//!   and topic configs, which rskafka lacks).
//! - [`offsets`]: a group's committed offsets (FindCoordinator,
//!   OffsetFetch, OffsetCommit).
//! - [`cluster`]: cluster-level operations built on it: connect to the first
//!   reachable bootstrap server, describe brokers and topics.
//! - [`consumer_protocol`]: the consumer protocol's subscription and
//!   assignment blobs (what Java, librdkafka and Go members exchange).
//! - [`groups`]: listing and describing consumer groups.
//! - [`membership`]: the classic group protocol's requests (JoinGroup,
//!   SyncGroup, Heartbeat, LeaveGroup) for one member.
//! - [`admin`]: topic administration (CreateTopics with configs,
//!   DescribeConfigs, CreatePartitions, IncrementalAlterConfigs,
//!   DeleteTopics) with per-topic errors.
//!
//! Every call has a deadline: nothing here retries forever.

pub mod admin;
pub mod cluster;
pub mod consumer_protocol;
pub mod groups;
pub mod membership;
pub mod offsets;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wire;

use std::time::Duration;

use kafka_protocol::error::ParseResponseErrorCode;

pub use cluster::{BrokerInfo, ClusterInfo, TopicInfo};
pub use offsets::{Committer, GroupCoordinator, TopicPartition};
pub use wire::{BrokerConnection, VersionRange, api_name};

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Transient: try again after a pause.
    Retryable,
    /// Will fail the same way again: report it.
    Permanent,
}

/// An error talking to a broker. Every variant names the broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to broker {broker}: {source}")]
    Connect {
        /// `host:port`.
        broker: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A step did not finish within its deadline.
    #[error("broker {broker}: {operation} timed out after {after:?}")]
    Timeout {
        /// `host:port`.
        broker: String,
        /// What was being done (`connect`, an API name).
        operation: String,
        /// The deadline.
        after: Duration,
    },
    /// The connection failed mid-request.
    #[error("broker {broker}: connection lost: {source}")]
    Io {
        /// `host:port`.
        broker: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A frame could not be encoded or decoded.
    #[error("broker {broker}: malformed {api} exchange: {message}")]
    Protocol {
        /// `host:port`.
        broker: String,
        /// The API.
        api: String,
        /// What was wrong.
        message: String,
    },
    /// The broker does not support any version of an API this crate speaks.
    #[error("broker {broker} does not support {api} in any version kafka-actors speaks")]
    UnsupportedApi {
        /// `host:port`.
        broker: String,
        /// The API.
        api: String,
    },
    /// The broker answered with an error code.
    #[error("broker {broker}: {api} failed: {}", error_code_name(*code))]
    Broker {
        /// `host:port`.
        broker: String,
        /// The API.
        api: String,
        /// Kafka's error code.
        code: i16,
    },
    /// The broker answered with an error code for one partition.
    #[error("broker {broker}: {api} failed for {topic}/{partition}: {}", error_code_name(*code))]
    PartitionError {
        /// `host:port`.
        broker: String,
        /// The API.
        api: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Kafka's error code.
        code: i16,
    },
    /// SASL authentication failed: a wrong user name or password, or a
    /// mechanism the broker does not enable. Not retried.
    #[error("broker {broker}: SASL {mechanism} authentication failed: {message}")]
    Authentication {
        /// `host:port`.
        broker: String,
        /// The mechanism.
        mechanism: String,
        /// The broker's reason, or ours.
        message: String,
    },
    /// TLS failed: the handshake (an untrusted, expired or misnamed
    /// certificate, a refused client certificate), a TLS setting that
    /// cannot be used, or TLS on one side of the connection only. Not
    /// retried.
    #[error("broker {broker}: TLS: {message}")]
    Tls {
        /// `host:port`.
        broker: String,
        /// The cause, and what to check.
        message: String,
    },
    /// No bootstrap server answered.
    #[error("no bootstrap server reachable ({}): {last}", tried.join(", "))]
    NoBrokerReachable {
        /// Every server tried, in order.
        tried: Vec<String>,
        /// The error of the last one.
        last: Box<KafkaError>,
    },
}

/// An error code with Kafka's name and description:
/// `UnknownTopicOrPartition (3): This server does not host this topic-partition.`
pub fn error_code_name(code: i16) -> String {
    use kafka_protocol::error::ResponseError;
    match code.err() {
        None => "None (0)".to_owned(),
        Some(ResponseError::Unknown(_)) => format!("unknown error code {code}"),
        Some(e) => format!("{e:?} ({code}): {e}"),
    }
}

impl KafkaError {
    /// Whether trying again may help.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Io { .. } => ErrorKind::Retryable,
            Self::Protocol { .. }
            | Self::UnsupportedApi { .. }
            | Self::Authentication { .. }
            | Self::Tls { .. } => ErrorKind::Permanent,
            Self::Broker { code, .. } | Self::PartitionError { code, .. } => match code.err() {
                Some(e) if e.is_retriable() => ErrorKind::Retryable,
                _ => ErrorKind::Permanent,
            },
            Self::NoBrokerReachable { last, .. } => last.kind(),
        }
    }

    /// A metric label naming the error: Kafka's error name in snake case
    /// for broker answers (`illegal_generation`), else [`Self::code`].
    pub fn label(&self) -> String {
        use kafka_protocol::error::ResponseError;
        match self {
            Self::Broker { code, .. } | Self::PartitionError { code, .. } => match code.err() {
                Some(ResponseError::Unknown(c)) => format!("error_{c}"),
                Some(e) => {
                    let mut out = String::new();
                    for (i, ch) in format!("{e:?}").chars().enumerate() {
                        if ch.is_ascii_uppercase() && i > 0 {
                            out.push('_');
                        }
                        out.push(ch.to_ascii_lowercase());
                    }
                    out
                }
                None => "none".to_owned(),
            },
            other => other.code().to_owned(),
        }
    }

    /// A short, stable label for metrics and exit paths.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::Io { .. } => "io",
            Self::Protocol { .. } => "protocol",
            Self::UnsupportedApi { .. } => "unsupported_api",
            Self::Broker { .. } => "broker_error",
            Self::PartitionError { .. } => "partition_error",
            Self::Authentication { .. } => "authentication",
            Self::Tls { .. } => "tls",
            Self::NoBrokerReachable { .. } => "unreachable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused")
    }

    #[test]
    fn every_error_has_a_kind_and_code() {
        let b = || "h:1".to_owned();
        let table: Vec<(KafkaError, ErrorKind, &str)> = vec![
            (
                KafkaError::Connect {
                    broker: b(),
                    source: io(),
                },
                ErrorKind::Retryable,
                "connect",
            ),
            (
                KafkaError::Timeout {
                    broker: b(),
                    operation: "connect".into(),
                    after: Duration::from_secs(1),
                },
                ErrorKind::Retryable,
                "timeout",
            ),
            (
                KafkaError::Io {
                    broker: b(),
                    source: io(),
                },
                ErrorKind::Retryable,
                "io",
            ),
            (
                KafkaError::Protocol {
                    broker: b(),
                    api: "Metadata".into(),
                    message: "x".into(),
                },
                ErrorKind::Permanent,
                "protocol",
            ),
            (
                KafkaError::UnsupportedApi {
                    broker: b(),
                    api: "JoinGroup".into(),
                },
                ErrorKind::Permanent,
                "unsupported_api",
            ),
            // LEADER_NOT_AVAILABLE (5) is retriable, TOPIC_AUTHORIZATION_FAILED (29) is not.
            (
                KafkaError::Broker {
                    broker: b(),
                    api: "Metadata".into(),
                    code: 5,
                },
                ErrorKind::Retryable,
                "broker_error",
            ),
            (
                KafkaError::Broker {
                    broker: b(),
                    api: "Metadata".into(),
                    code: 29,
                },
                ErrorKind::Permanent,
                "broker_error",
            ),
            (
                KafkaError::PartitionError {
                    broker: b(),
                    api: "OffsetCommit".into(),
                    topic: "t".into(),
                    partition: 3,
                    code: 3,
                },
                ErrorKind::Retryable,
                "partition_error",
            ),
            (
                KafkaError::NoBrokerReachable {
                    tried: vec![b()],
                    last: Box::new(KafkaError::Connect {
                        broker: b(),
                        source: io(),
                    }),
                },
                ErrorKind::Retryable,
                "unreachable",
            ),
        ];
        for (err, kind, code) in table {
            assert_eq!(err.kind(), kind, "{err}");
            assert_eq!(err.code(), code, "{err}");
            assert!(err.to_string().contains("h:1"), "{err}");
        }
    }

    #[test]
    fn error_codes_have_names() {
        assert!(error_code_name(3).contains("(3)"));
        assert_eq!(error_code_name(0), "None (0)");
        assert!(error_code_name(3).starts_with("UnknownTopicOrPartition (3): "));
        assert!(error_code_name(-999).contains("unknown"));
    }
}
