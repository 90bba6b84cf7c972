//! Topic administration through `kafka-protocol`: CreateTopics (with topic
//! configs), DescribeConfigs, CreatePartitions, IncrementalAlterConfigs and
//! DeleteTopics, none of which rskafka offers with configs (FINDINGS.md).
//!
//! ```text
//!  Admin::connect ── connect_any (first bootstrap that answers ApiVersions)
//!        │           └─ Metadata(no topics): brokers + controller id
//!        ▼
//!  controller connection (KRaft brokers forward admin requests to the
//!  controller, so when the controller is not reachable the bootstrap
//!  connection is kept; an old ZooKeeper-mode broker answers NOT_CONTROLLER,
//!  which callers treat as retriable and reconnect)
//!        │
//!        ├─ create_topics          → per topic: Ok(CreatedTopic) | Err(TopicFailure)
//!        ├─ describe_topic_configs → per topic: Ok(configs)      | Err(TopicFailure)
//!        ├─ create_partitions      → per topic: Ok(())           | Err(TopicFailure)
//!        ├─ alter_topic_configs    → per topic: Ok(())           | Err(TopicFailure)
//!        ├─ delete_topics          → per topic: Ok(())           | Err(TopicFailure)
//!        └─ describe_topics        → per topic: Ok(description)  | Err(TopicFailure)
//! ```
//!
//! Two levels of failure: the outer `Result` is the exchange itself
//! ([`KafkaError`]: connection, deadline, protocol), the inner one is the
//! broker's answer for one topic ([`TopicFailure`]: error code and the
//! broker's message). Every requested topic gets an answer; a response that
//! leaves one out is a protocol error.
//!
//! Versions are negotiated per connection ([`BrokerConnection::send`]); the
//! layouts that differ are handled here: DeleteTopics names topics in
//! `topics` from v6 (`topic_names` before), CreateTopics reports the topic
//! id from v7 and the effective partition count, replication factor and
//! configs from v5, DeleteTopics carries an error message from v5.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::cluster::{self, BrokerInfo};
use super::{BrokerConnection, ErrorKind, KafkaError, error_code_name};
use crate::config::KafkaConfig;

/// Kafka's `ConfigResource.Type.TOPIC`.
const RESOURCE_TOPIC: i8 = 2;
/// IncrementalAlterConfigs' `SET` operation.
const OP_SET: i8 = 0;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewTopic {
    /// The Kafka topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...), sent as given.
    pub configs: BTreeMap<String, String>,
}

/// The broker's error for one topic of an admin request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error(
    "broker {broker}: {api} failed for topic {topic}: {}{}",
    error_code_name(*code),
    message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
)]
pub struct TopicFailure {
    /// `host:port` of the broker that answered.
    pub broker: String,
    /// The API (`CreateTopics`, ...).
    pub api: String,
    /// The topic.
    pub topic: String,
    /// Kafka's error code.
    pub code: i16,
    /// The broker's own explanation, when it sent one (it often names the
    /// limit that was hit, such as the number of registered brokers).
    pub message: Option<String>,
}

impl TopicFailure {
    /// Whether trying again may help, by Kafka's own table of retriable
    /// codes (`crate::topics::classify` refines this for topic creation).
    pub fn kind(&self) -> ErrorKind {
        match self.code.err() {
            Some(e) if e.is_retriable() => ErrorKind::Retryable,
            _ => ErrorKind::Permanent,
        }
    }
}

/// Per-topic outcome of an admin request, by topic name.
pub type TopicResults<T> = BTreeMap<String, Result<T, TopicFailure>>;

/// What CreateTopics reports about a created topic; fields the negotiated
/// version does not carry are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedTopic {
    /// The topic id (CreateTopics v7+).
    pub topic_id: Option<String>,
    /// The partition count the broker created (v5+).
    pub partitions: Option<i32>,
    /// The replication factor the broker used (v5+).
    pub replication_factor: Option<i16>,
    /// The topic's effective configs (v5+), by name.
    pub configs: Option<BTreeMap<String, ConfigEntry>>,
}

/// Where a config value comes from (`DescribeConfigsResponse.config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// Set on the topic itself (what CreateTopics configs and
    /// IncrementalAlterConfigs write).
    DynamicTopic,
    /// A dynamic per-broker config.
    DynamicBroker,
    /// A dynamic cluster-wide broker default.
    DynamicDefaultBroker,
    /// The broker's `server.properties`.
    StaticBroker,
    /// Kafka's built-in default.
    Default,
    /// A dynamic broker logger config.
    DynamicBrokerLogger,
    /// A client metrics subscription.
    ClientMetrics,
    /// A group config.
    Group,
    /// The broker did not say (code 0), or sent a code this crate does not
    /// know.
    Unknown(i8),
}

impl ConfigSource {
    /// From the protocol's code.
    pub fn from_code(code: i8) -> Self {
        match code {
            1 => Self::DynamicTopic,
            2 => Self::DynamicBroker,
            3 => Self::DynamicDefaultBroker,
            4 => Self::StaticBroker,
            5 => Self::Default,
            6 => Self::DynamicBrokerLogger,
            7 => Self::ClientMetrics,
            8 => Self::Group,
            other => Self::Unknown(other),
        }
    }
}

/// One config of a topic, as DescribeConfigs (or CreateTopics v5+) reports
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigEntry {
    /// Config name (`retention.ms`).
    pub name: String,
    /// Its value; `None` when unset or sensitive.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it can be changed.
    pub read_only: bool,
    /// Whether the broker hides its value.
    pub sensitive: bool,
}

/// One partition, as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionDescription {
    /// Partition index.
    pub index: i32,
    /// Leader's node id; -1 while there is none.
    pub leader: i32,
    /// Node ids of its replicas.
    pub replicas: Vec<i32>,
    /// The partition's error code (0: none; LEADER_NOT_AVAILABLE while a
    /// new partition elects its leader).
    pub error_code: i16,
}

/// One topic, as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Whether Kafka marks it internal (`__consumer_offsets`).
    pub internal: bool,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionDescription>,
}

impl TopicDescription {
    /// Partition count.
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// Whether every partition has a leader and no error: records can be
    /// produced to every partition.
    pub fn is_ready(&self) -> bool {
        self.partitions
            .iter()
            .all(|p| p.error_code == 0 && p.leader >= 0)
    }
}

/// An admin connection: to the controller when it is reachable, else to the
/// first bootstrap server that answered.
#[derive(Debug)]
pub struct Admin {
    conn: BrokerConnection,
    brokers: Vec<BrokerInfo>,
    controller_id: i32,
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A broker-side timeout in the protocol's milliseconds (saturating).
fn timeout_ms(timeout: Duration) -> i32 {
    i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX)
}

fn brokers_of(response: &kafka_protocol::messages::MetadataResponse) -> Vec<BrokerInfo> {
    response
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            node_id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(ToString::to_string),
        })
        .collect()
}

impl Admin {
    /// Connects to the first bootstrap server that answers, learns the
    /// brokers and the controller, and moves to the controller when it is
    /// another broker and reachable. `request_timeout` bounds every round
    /// trip on the connection; make it longer than any broker-side
    /// `timeout` passed to the methods below, or the connection gives up
    /// before the broker answers.
    ///
    /// # Cancellation
    /// Safe to drop at any point: the connections are simply closed.
    pub async fn connect(
        config: &KafkaConfig,
        request_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let config = KafkaConfig {
            request_timeout_ms: u64::try_from(request_timeout.as_millis()).unwrap_or(u64::MAX),
            ..config.clone()
        };
        let mut conn = cluster::connect_any(&config).await?;
        let response = cluster::metadata(&mut conn, Some(Vec::new())).await?;
        let brokers = brokers_of(&response);
        let controller_id = response.controller_id.0;
        let controller = brokers
            .iter()
            .find(|b| b.node_id == controller_id)
            .map(|b| format!("{}:{}", b.host, b.port));
        if let Some(addr) = controller.filter(|addr| addr != conn.addr()) {
            match BrokerConnection::open(&addr, &config).await {
                Ok(controller_conn) => conn = controller_conn,
                Err(error) => tracing::debug!(
                    controller = %addr,
                    bootstrap = %conn.addr(),
                    %error,
                    "controller not reachable; admin requests go to the bootstrap broker"
                ),
            }
        }
        Ok(Self {
            conn,
            brokers,
            controller_id,
        })
    }

    /// The `host:port` requests go to.
    pub fn addr(&self) -> &str {
        self.conn.addr()
    }

    /// The brokers of the cluster, as last seen in Metadata.
    pub fn brokers(&self) -> &[BrokerInfo] {
        &self.brokers
    }

    /// Node id of the controller the cluster reported (-1 when unknown; a
    /// KRaft broker reports a random live broker, which forwards).
    pub fn controller_id(&self) -> i32 {
        self.controller_id
    }

    /// The underlying connection, for requests this type does not wrap.
    pub fn connection(&mut self) -> &mut BrokerConnection {
        &mut self.conn
    }

    /// Metadata for `topics` (`None`: every topic in the cluster). Also
    /// refreshes [`Admin::brokers`]. A requested topic that does not exist
    /// comes back as UNKNOWN_TOPIC_OR_PARTITION (3).
    pub async fn describe_topics(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<TopicResults<TopicDescription>, KafkaError> {
        let response = cluster::metadata(&mut self.conn, topics.map(<[String]>::to_vec)).await?;
        self.brokers = brokers_of(&response);
        self.controller_id = response.controller_id.0;
        let mut out = BTreeMap::new();
        for topic in &response.topics {
            // v10+ may answer by id only; this crate always asks by name.
            let Some(name) = topic.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            let result = if topic.error_code != 0 {
                Err(TopicFailure {
                    broker: self.conn.addr().to_owned(),
                    api: "Metadata".to_owned(),
                    topic: name.clone(),
                    code: topic.error_code,
                    message: None,
                })
            } else {
                let mut partitions: Vec<PartitionDescription> = topic
                    .partitions
                    .iter()
                    .map(|p| PartitionDescription {
                        index: p.partition_index,
                        leader: p.leader_id.0,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        error_code: p.error_code,
                    })
                    .collect();
                partitions.sort_by_key(|p| p.index);
                Ok(TopicDescription {
                    name: name.clone(),
                    internal: topic.is_internal,
                    partitions,
                })
            };
            out.insert(name, result);
        }
        if let Some(requested) = topics {
            self.require_answers("Metadata", requested.iter().map(String::as_str), &out)?;
        }
        Ok(out)
    }

    /// CreateTopics: creates `topics` with their configs. `timeout` is the
    /// broker-side deadline (`timeout_ms`): past it the broker answers
    /// REQUEST_TIMED_OUT for the topic, although the creation may still
    /// complete. `validate_only` asks the broker to check without creating.
    pub async fn create_topics(
        &mut self,
        topics: &[NewTopic],
        timeout: Duration,
        validate_only: bool,
    ) -> Result<TopicResults<CreatedTopic>, KafkaError> {
        let version = self.conn.version_for::<CreateTopicsRequest>()?;
        let request = CreateTopicsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(str_bytes(k))
                                            .with_value(Some(str_bytes(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .with_timeout_ms(timeout_ms(timeout))
            .with_validate_only(validate_only);
        let response = self.conn.send_version(&request, version).await?;
        let mut out = BTreeMap::new();
        for t in response.topics {
            let name = t.name.0.to_string();
            let result = if t.error_code != 0 {
                Err(self.failure("CreateTopics", &name, t.error_code, t.error_message))
            } else {
                Ok(CreatedTopic {
                    topic_id: (version >= 7 && !t.topic_id.is_nil())
                        .then(|| t.topic_id.to_string()),
                    partitions: (version >= 5 && t.num_partitions > 0).then_some(t.num_partitions),
                    replication_factor: (version >= 5 && t.replication_factor > 0)
                        .then_some(t.replication_factor),
                    configs: (version >= 5)
                        .then_some(t.configs)
                        .flatten()
                        .map(|configs| {
                            configs
                                .into_iter()
                                .map(|c| {
                                    let entry = ConfigEntry {
                                        name: c.name.to_string(),
                                        value: c.value.map(|v| v.to_string()),
                                        source: ConfigSource::from_code(c.config_source),
                                        read_only: c.read_only,
                                        sensitive: c.is_sensitive,
                                    };
                                    (entry.name.clone(), entry)
                                })
                                .collect()
                        }),
                })
            };
            out.insert(name, result);
        }
        self.require_answers("CreateTopics", topics.iter().map(|t| t.name.as_str()), &out)?;
        Ok(out)
    }

    /// DescribeConfigs: every config of each topic, by name. A topic that
    /// does not exist fails with UNKNOWN_TOPIC_OR_PARTITION (3) on Apache
    /// Kafka.
    pub async fn describe_topic_configs(
        &mut self,
        topics: &[String],
    ) -> Result<TopicResults<BTreeMap<String, ConfigEntry>>, KafkaError> {
        let request = DescribeConfigsRequest::default()
            .with_resources(
                topics
                    .iter()
                    .map(|t| {
                        DescribeConfigsResource::default()
                            .with_resource_type(RESOURCE_TOPIC)
                            .with_resource_name(str_bytes(t))
                            .with_configuration_keys(None)
                    })
                    .collect(),
            )
            .with_include_synonyms(false);
        let response = self.conn.send(&request).await?;
        let mut out = BTreeMap::new();
        for r in response.results {
            if r.resource_type != RESOURCE_TOPIC {
                continue;
            }
            let name = r.resource_name.to_string();
            let result = if r.error_code != 0 {
                Err(self.failure("DescribeConfigs", &name, r.error_code, r.error_message))
            } else {
                Ok(r.configs
                    .into_iter()
                    .map(|c| {
                        let entry = ConfigEntry {
                            name: c.name.to_string(),
                            value: c.value.map(|v| v.to_string()),
                            source: ConfigSource::from_code(c.config_source),
                            read_only: c.read_only,
                            sensitive: c.is_sensitive,
                        };
                        (entry.name.clone(), entry)
                    })
                    .collect())
            };
            out.insert(name, result);
        }
        self.require_answers("DescribeConfigs", topics.iter().map(String::as_str), &out)?;
        Ok(out)
    }

    /// CreatePartitions: raises each topic's partition count to the given
    /// total (Kafka never lowers it: a count at or below the current one
    /// fails with INVALID_PARTITIONS). The broker places the new replicas.
    pub async fn create_partitions(
        &mut self,
        totals: &BTreeMap<String, i32>,
        timeout: Duration,
        validate_only: bool,
    ) -> Result<TopicResults<()>, KafkaError> {
        let request = CreatePartitionsRequest::default()
            .with_topics(
                totals
                    .iter()
                    .map(|(t, count)| {
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(t))
                            .with_count(*count)
                            .with_assignments(None)
                    })
                    .collect(),
            )
            .with_timeout_ms(timeout_ms(timeout))
            .with_validate_only(validate_only);
        let response = self.conn.send(&request).await?;
        let mut out = BTreeMap::new();
        for r in response.results {
            let name = r.name.0.to_string();
            let result = if r.error_code != 0 {
                Err(self.failure("CreatePartitions", &name, r.error_code, r.error_message))
            } else {
                Ok(())
            };
            out.insert(name, result);
        }
        self.require_answers("CreatePartitions", totals.keys().map(String::as_str), &out)?;
        Ok(out)
    }

    /// IncrementalAlterConfigs: sets (`SET`) the given configs of each
    /// topic, leaving its other configs alone (unlike the legacy
    /// AlterConfigs, which replaces them all).
    pub async fn alter_topic_configs(
        &mut self,
        changes: &BTreeMap<String, BTreeMap<String, String>>,
        validate_only: bool,
    ) -> Result<TopicResults<()>, KafkaError> {
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(
                changes
                    .iter()
                    .map(|(t, configs)| {
                        AlterConfigsResource::default()
                            .with_resource_type(RESOURCE_TOPIC)
                            .with_resource_name(str_bytes(t))
                            .with_configs(
                                configs
                                    .iter()
                                    .map(|(k, v)| {
                                        AlterableConfig::default()
                                            .with_name(str_bytes(k))
                                            .with_config_operation(OP_SET)
                                            .with_value(Some(str_bytes(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .with_validate_only(validate_only);
        let response = self.conn.send(&request).await?;
        let mut out = BTreeMap::new();
        for r in response.responses {
            if r.resource_type != RESOURCE_TOPIC {
                continue;
            }
            let name = r.resource_name.to_string();
            let result = if r.error_code != 0 {
                Err(self.failure(
                    "IncrementalAlterConfigs",
                    &name,
                    r.error_code,
                    r.error_message,
                ))
            } else {
                Ok(())
            };
            out.insert(name, result);
        }
        self.require_answers(
            "IncrementalAlterConfigs",
            changes.keys().map(String::as_str),
            &out,
        )?;
        Ok(out)
    }

    /// DeleteTopics, by name. `timeout` is the broker-side deadline.
    pub async fn delete_topics(
        &mut self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<TopicResults<()>, KafkaError> {
        let version = self.conn.version_for::<DeleteTopicsRequest>()?;
        let request = if version >= 6 {
            DeleteTopicsRequest::default().with_topics(
                topics
                    .iter()
                    .map(|t| DeleteTopicState::default().with_name(Some(topic_name(t))))
                    .collect(),
            )
        } else {
            DeleteTopicsRequest::default()
                .with_topic_names(topics.iter().map(|t| topic_name(t)).collect())
        }
        .with_timeout_ms(timeout_ms(timeout));
        let response = self.conn.send_version(&request, version).await?;
        let mut out = BTreeMap::new();
        for r in response.responses {
            let Some(name) = r.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let result = if r.error_code != 0 {
                Err(self.failure("DeleteTopics", &name, r.error_code, r.error_message))
            } else {
                Ok(())
            };
            out.insert(name, result);
        }
        self.require_answers("DeleteTopics", topics.iter().map(String::as_str), &out)?;
        Ok(out)
    }

    fn failure(
        &self,
        api: &str,
        topic: &str,
        code: i16,
        message: Option<StrBytes>,
    ) -> TopicFailure {
        TopicFailure {
            broker: self.conn.addr().to_owned(),
            api: api.to_owned(),
            topic: topic.to_owned(),
            code,
            // Some brokers send an empty message, or the code's own name.
            message: message
                .map(|m| m.to_string())
                .filter(|m| !m.trim().is_empty()),
        }
    }

    /// Fails when the broker left a requested topic out of its answer.
    fn require_answers<'a, T>(
        &self,
        api: &str,
        requested: impl Iterator<Item = &'a str>,
        answered: &TopicResults<T>,
    ) -> Result<(), KafkaError> {
        let missing: BTreeSet<&str> = requested.filter(|t| !answered.contains_key(*t)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(KafkaError::Protocol {
            broker: self.conn.addr().to_owned(),
            api: api.to_owned(),
            message: format!(
                "no answer for topic(s) {}",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sources_map_protocol_codes() {
        assert_eq!(ConfigSource::from_code(1), ConfigSource::DynamicTopic);
        assert_eq!(ConfigSource::from_code(5), ConfigSource::Default);
        assert_eq!(ConfigSource::from_code(0), ConfigSource::Unknown(0));
        assert_eq!(ConfigSource::from_code(42), ConfigSource::Unknown(42));
    }

    #[test]
    fn topic_failures_name_topic_code_and_message() {
        let failure = TopicFailure {
            broker: "h:1".into(),
            api: "CreateTopics".into(),
            topic: "orders".into(),
            code: 38,
            message: Some("only 1 broker(s) are registered".into()),
        };
        let text = failure.to_string();
        assert!(text.contains("h:1"), "{text}");
        assert!(text.contains("orders"), "{text}");
        assert!(text.contains("InvalidReplicationFactor (38)"), "{text}");
        assert!(text.contains("only 1 broker(s) are registered"), "{text}");
        assert_eq!(failure.kind(), ErrorKind::Permanent);
        let retriable = TopicFailure {
            code: 7,
            message: None,
            ..failure
        };
        assert_eq!(retriable.kind(), ErrorKind::Retryable);
        assert!(
            retriable.to_string().contains("RequestTimedOut (7)"),
            "{retriable}"
        );
    }

    #[test]
    fn timeouts_saturate() {
        assert_eq!(timeout_ms(Duration::from_secs(30)), 30_000);
        assert_eq!(timeout_ms(Duration::from_secs(u64::MAX / 4)), i32::MAX);
    }

    #[test]
    fn descriptions_are_ready_only_with_leaders() {
        let mut d = TopicDescription {
            name: "t".into(),
            internal: false,
            partitions: vec![PartitionDescription {
                index: 0,
                leader: 1,
                replicas: vec![1],
                error_code: 0,
            }],
        };
        assert!(d.is_ready());
        assert_eq!(d.partition_count(), 1);
        d.partitions[0].leader = -1;
        assert!(!d.is_ready());
        d.partitions[0].leader = 1;
        d.partitions[0].error_code = 5;
        assert!(!d.is_ready());
    }
}
