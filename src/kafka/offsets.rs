//! Committed offsets of a consumer group: FindCoordinator, OffsetFetch,
//! OffsetCommit, through `kafka-protocol` (rskafka has none of them).
//!
//! Versions are negotiated per connection; the field layouts that change
//! (FindCoordinator at v4, OffsetFetch at v8) are handled here. Commits made
//! without group membership use generation -1 and an empty member id, which
//! Kafka accepts for a group with no active members ("standalone" commits);
//! the group-membership actor passes its generation and member id instead.

use std::collections::BTreeMap;

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerConnection, KafkaError, cluster};
use crate::config::KafkaConfig;

/// A topic-partition.
pub type TopicPartition = (String, i32);

/// Who commits: a group member's generation and id, or nobody (standalone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committer {
    /// Generation id (classic protocol) or member epoch; -1 when standalone.
    pub generation: i32,
    /// Member id; empty when standalone.
    pub member_id: String,
    /// Static membership id (KIP-345), if any.
    pub instance_id: Option<String>,
}

impl Committer {
    /// Commits made outside group membership.
    pub fn standalone() -> Self {
        Self {
            generation: -1,
            member_id: String::new(),
            instance_id: None,
        }
    }
}

/// A connection to the coordinator of one consumer group.
#[derive(Debug)]
pub struct GroupCoordinator {
    group: String,
    conn: BrokerConnection,
    config: KafkaConfig,
}

/// COORDINATOR_LOAD_IN_PROGRESS: same coordinator, try again shortly.
const LOAD_IN_PROGRESS: i16 = 14;
/// COORDINATOR_NOT_AVAILABLE and NOT_COORDINATOR: find the coordinator again.
const MOVED: [i16; 2] = [15, 16];

fn coordinator_code(e: &KafkaError) -> Option<i16> {
    match e {
        KafkaError::Broker { code, .. } | KafkaError::PartitionError { code, .. }
            if *code == LOAD_IN_PROGRESS || MOVED.contains(code) =>
        {
            Some(*code)
        }
        _ => None,
    }
}

impl GroupCoordinator {
    /// Finds the group's coordinator through any bootstrap server and
    /// connects to it. Retriable answers (COORDINATOR_NOT_AVAILABLE while
    /// Kafka creates `__consumer_offsets`, COORDINATOR_LOAD_IN_PROGRESS,
    /// NOT_COORDINATOR, connection errors) are retried with backoff until
    /// `kafka.request_timeout_ms` has passed.
    pub async fn connect(config: &KafkaConfig, group: &str) -> Result<Self, KafkaError> {
        let deadline = std::time::Instant::now() + config.request_timeout();
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            match Self::try_connect(config, group).await {
                Err(e)
                    if e.kind() == super::ErrorKind::Retryable
                        && std::time::Instant::now() + pause < deadline =>
                {
                    tracing::debug!(group, error = %e, retry_in = ?pause, "group coordinator not ready");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
                result => return result,
            }
        }
    }

    async fn try_connect(config: &KafkaConfig, group: &str) -> Result<Self, KafkaError> {
        let mut bootstrap = cluster::connect_any(config).await?;
        let version = bootstrap.version_for::<FindCoordinatorRequest>()?;
        let key = StrBytes::from_string(group.to_owned());
        let request = if version >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        };
        let response = bootstrap.send_version(&request, version).await?;
        let (code, host, port) = if version >= 4 {
            let c = response
                .coordinators
                .first()
                .ok_or_else(|| KafkaError::Protocol {
                    broker: bootstrap.addr().to_owned(),
                    api: "FindCoordinator".to_owned(),
                    message: "no coordinator in the response".to_owned(),
                })?;
            (c.error_code, c.host.to_string(), c.port)
        } else {
            (
                response.error_code,
                response.host.to_string(),
                response.port,
            )
        };
        if code != 0 {
            return Err(KafkaError::Broker {
                broker: bootstrap.addr().to_owned(),
                api: "FindCoordinator".to_owned(),
                code,
            });
        }
        let addr = format!("{host}:{port}");
        let conn = if addr == bootstrap.addr() {
            bootstrap
        } else {
            BrokerConnection::open(&addr, config).await?
        };
        Ok(Self {
            group: group.to_owned(),
            conn,
            config: config.clone(),
        })
    }

    /// Runs `op` until it succeeds, fails with something other than a
    /// coordinator error, or `kafka.request_timeout_ms` passes. A coordinator
    /// that moved (or is not available) is looked up again; one that is
    /// still loading the group is asked again after a pause.
    pub(crate) async fn retrying<T, F>(&mut self, mut op: F) -> Result<T, KafkaError>
    where
        F: for<'a> FnMut(
            &'a mut Self,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, KafkaError>> + Send + 'a>,
        >,
    {
        let deadline = std::time::Instant::now() + self.config.request_timeout();
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let err = match op(self).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(code) = coordinator_code(&err) else {
                return Err(err);
            };
            if std::time::Instant::now() + pause >= deadline {
                return Err(err);
            }
            tracing::debug!(group = %self.group, error = %err, retry_in = ?pause, "group coordinator busy or moved");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
            if MOVED.contains(&code) {
                let config = self.config.clone();
                *self = Self::connect(&config, &self.group.clone()).await?;
            }
        }
    }

    /// The coordinator's `host:port`.
    pub fn addr(&self) -> &str {
        self.conn.addr()
    }

    /// The group this coordinator was found for.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The connection to the coordinator, for group requests other modules
    /// build (DescribeGroups in [`super::groups`]); run them through
    /// [`GroupCoordinator::retrying`] so a moved coordinator is found again.
    pub(crate) fn connection(&mut self) -> &mut BrokerConnection {
        &mut self.conn
    }

    /// The connection to the coordinator, for the group-membership requests
    /// ([`super::membership`]).
    pub fn into_connection(self) -> BrokerConnection {
        self.conn
    }

    /// The group's committed offsets for `partitions`; `None` where the
    /// group has committed nothing. Coordinator errors are retried (see
    /// [`GroupCoordinator::connect`]).
    pub async fn fetch(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>, KafkaError> {
        let partitions = partitions.to_vec();
        self.retrying(move |this| {
            let partitions = partitions.clone();
            Box::pin(async move { this.fetch_once(Some(&partitions), true).await })
        })
        .await
    }

    /// Every offset the group has committed, on any topic (OffsetFetch with
    /// no topic list, v2+). Unlike [`GroupCoordinator::fetch`] it does not
    /// ask for stable offsets (what Java's admin client does too): a
    /// pending transactional commit shows its last committed offset instead
    /// of failing with UNSTABLE_OFFSET_COMMIT. Coordinator errors are
    /// retried.
    pub async fn fetch_all(&mut self) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        let all = self
            .retrying(|this| Box::pin(async move { this.fetch_once(None, false).await }))
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(tp, offset)| offset.map(|o| (tp, o)))
            .collect())
    }

    /// OffsetFetch of `partitions`, or of every committed partition when
    /// `None`.
    async fn fetch_once(
        &mut self,
        partitions: Option<&[TopicPartition]>,
        require_stable: bool,
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>, KafkaError> {
        let by_topic = partitions.map(|partitions| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in partitions {
                by_topic.entry(topic).or_default().push(*partition);
            }
            by_topic
        });
        let version = self.conn.version_for::<OffsetFetchRequest>()?;
        // A null topic list ("every topic") exists from v2 on.
        if by_topic.is_none() && version < 2 {
            return Err(KafkaError::UnsupportedApi {
                broker: self.conn.addr().to_owned(),
                api: "OffsetFetch (every topic, v2+)".to_owned(),
            });
        }
        let group = GroupId(StrBytes::from_string(self.group.clone()));
        let request = if version >= 8 {
            OffsetFetchRequest::default()
                .with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(group)
                        .with_topics(by_topic.as_ref().map(|by_topic| {
                            by_topic
                                .iter()
                                .map(|(t, p)| {
                                    OffsetFetchRequestTopics::default()
                                        .with_name(topic_name(t))
                                        .with_partition_indexes(p.clone())
                                })
                                .collect()
                        })),
                ])
                .with_require_stable(require_stable)
        } else {
            OffsetFetchRequest::default()
                .with_group_id(group)
                .with_topics(by_topic.as_ref().map(|by_topic| {
                    by_topic
                        .iter()
                        .map(|(t, p)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(topic_name(t))
                                .with_partition_indexes(p.clone())
                        })
                        .collect()
                }))
                .with_require_stable(require_stable && version >= 7)
        };
        let response = self.conn.send_version(&request, version).await?;

        // (topic, partition, offset, error) whatever the layout.
        let mut rows: Vec<(String, i32, i64, i16)> = Vec::new();
        let group_error = if version >= 8 {
            let g = response
                .groups
                .first()
                .ok_or_else(|| self.malformed("OffsetFetch", "no group in the response"))?;
            for t in &g.topics {
                for p in &t.partitions {
                    rows.push((
                        t.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    ));
                }
            }
            g.error_code
        } else {
            for t in &response.topics {
                for p in &t.partitions {
                    rows.push((
                        t.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    ));
                }
            }
            response.error_code
        };
        if group_error != 0 {
            return Err(self.broker_error("OffsetFetch", group_error));
        }
        let mut out = BTreeMap::new();
        for (topic, partition, offset, code) in rows {
            if code != 0 {
                return Err(KafkaError::PartitionError {
                    broker: self.conn.addr().to_owned(),
                    api: "OffsetFetch".to_owned(),
                    topic,
                    partition,
                    code,
                });
            }
            out.insert((topic, partition), (offset >= 0).then_some(offset));
        }
        Ok(out)
    }

    /// Commits `offsets` (the next offset to consume, per partition) for the
    /// group. Every partition's result is checked; the first failure is
    /// returned with its coordinates. Coordinator errors are retried.
    pub async fn commit(
        &mut self,
        committer: &Committer,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), KafkaError> {
        let committer = committer.clone();
        let offsets = offsets.clone();
        self.retrying(move |this| {
            let committer = committer.clone();
            let offsets = offsets.clone();
            Box::pin(async move { this.commit_once(&committer, &offsets).await })
        })
        .await
    }

    async fn commit_once(
        &mut self,
        committer: &Committer,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), KafkaError> {
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            by_topic.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_generation_id_or_member_epoch(committer.generation)
            .with_member_id(StrBytes::from_string(committer.member_id.clone()))
            .with_group_instance_id(committer.instance_id.clone().map(StrBytes::from_string))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let version = self.conn.version_for::<OffsetCommitRequest>()?;
        let response = self.conn.send_version(&request, version).await?;
        for t in &response.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    return Err(KafkaError::PartitionError {
                        broker: self.conn.addr().to_owned(),
                        api: "OffsetCommit".to_owned(),
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        code: p.error_code,
                    });
                }
            }
        }
        Ok(())
    }

    fn malformed(&self, api: &str, message: &str) -> KafkaError {
        KafkaError::Protocol {
            broker: self.conn.addr().to_owned(),
            api: api.to_owned(),
            message: message.to_owned(),
        }
    }

    fn broker_error(&self, api: &str, code: i16) -> KafkaError {
        KafkaError::Broker {
            broker: self.conn.addr().to_owned(),
            api: api.to_owned(),
            code,
        }
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}
