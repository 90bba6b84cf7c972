//! The classic group protocol's requests for one member: JoinGroup,
//! SyncGroup, Heartbeat and LeaveGroup, through `kafka-protocol`, on a
//! connection to the group's coordinator.
//!
//! Versions are negotiated per connection (the highest both sides speak);
//! fields a version lacks are left out (the static membership id needs
//! JoinGroup v5, Heartbeat and SyncGroup v3, LeaveGroup v3; LeaveGroup
//! before v3 names one member, later ones a list). Every error code comes
//! back as [`KafkaError::Broker`], for the membership actor to act on as
//! Kafka defines it.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_heartbeat_request::{
    ConsumerGroupHeartbeatRequest, TopicPartitions,
};
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerConnection, GroupCoordinator, KafkaError};
use crate::config::KafkaConfig;

pub use super::consumer_protocol::PROTOCOL_TYPE;

/// MEMBER_ID_REQUIRED: the first join of a dynamic member; join again with
/// the member id the coordinator gave.
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// REBALANCE_IN_PROGRESS: join again.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// UNKNOWN_MEMBER_ID: the coordinator forgot this member (session expired).
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// ILLEGAL_GENERATION: the group moved on to a newer generation.
pub const ILLEGAL_GENERATION: i16 = 22;
/// FENCED_INSTANCE_ID: another member joined with this member's static id.
pub const FENCED_INSTANCE_ID: i16 = 82;
/// COORDINATOR_LOAD_IN_PROGRESS.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// COORDINATOR_NOT_AVAILABLE.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// NOT_COORDINATOR.
pub const NOT_COORDINATOR: i16 = 16;

/// What a member asks for when it joins.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Member id: empty on the first join of a dynamic member.
    pub member_id: String,
    /// Static membership id (KIP-345).
    pub instance_id: Option<String>,
    /// Session timeout.
    pub session_timeout: Duration,
    /// How long the coordinator waits for every member to rejoin.
    pub rebalance_timeout: Duration,
    /// Assignor names with this member's subscription metadata, in order of
    /// preference.
    pub protocols: Vec<(String, Bytes)>,
    /// Why it (re)joins (JoinGroup v8+).
    pub reason: String,
}

/// One member of the group, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// Its subscription metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// The result of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Joined generation `generation`.
    Joined {
        /// The generation.
        generation: i32,
        /// The assignor the group chose.
        protocol: String,
        /// The leader's member id.
        leader: String,
        /// This member's id.
        member_id: String,
        /// Every member with its metadata (for the leader; empty otherwise).
        members: Vec<JoinedMember>,
    },
    /// MEMBER_ID_REQUIRED: join again with this id.
    MemberIdRequired(String),
}

/// A connection to the group's coordinator, for one member.
#[derive(Debug)]
pub struct MemberClient {
    group: String,
    conn: BrokerConnection,
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl MemberClient {
    /// Finds the group's coordinator and connects to it (retrying while it
    /// is not available, up to `kafka.request_timeout_ms`).
    pub async fn connect(config: &KafkaConfig, group: &str) -> Result<Self, KafkaError> {
        let conn = GroupCoordinator::connect(config, group)
            .await?
            .into_connection();
        Ok(Self {
            group: group.to_owned(),
            conn,
        })
    }

    /// The coordinator's `host:port`.
    pub fn addr(&self) -> &str {
        self.conn.addr()
    }

    fn error(&self, api: &str, code: i16) -> KafkaError {
        KafkaError::Broker {
            broker: self.conn.addr().to_owned(),
            api: api.to_owned(),
            code,
        }
    }

    /// JoinGroup. Waits up to the rebalance timeout (plus 5 s, as the Java
    /// client does) for the coordinator to complete the rebalance.
    pub async fn join(&mut self, request: &JoinRequest) -> Result<JoinOutcome, KafkaError> {
        let version = self.conn.version_for::<JoinGroupRequest>()?;
        let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        let mut body = JoinGroupRequest::default()
            .with_group_id(GroupId(text(&self.group)))
            .with_session_timeout_ms(millis(request.session_timeout))
            .with_member_id(text(&request.member_id))
            .with_protocol_type(text(PROTOCOL_TYPE))
            .with_protocols(
                request
                    .protocols
                    .iter()
                    .map(|(name, metadata)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(text(name))
                            .with_metadata(metadata.clone())
                    })
                    .collect(),
            );
        if version >= 1 {
            body = body.with_rebalance_timeout_ms(millis(request.rebalance_timeout));
        }
        if version >= 5 {
            body = body.with_group_instance_id(request.instance_id.as_deref().map(text));
        }
        if version >= 8 {
            body = body.with_reason(Some(text(&request.reason)));
        }
        let wait = request.rebalance_timeout + Duration::from_secs(5);
        let response = self.conn.send_version_within(&body, version, wait).await?;
        match response.error_code {
            0 => Ok(JoinOutcome::Joined {
                generation: response.generation_id,
                protocol: response
                    .protocol_name
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                leader: response.leader.to_string(),
                member_id: response.member_id.to_string(),
                members: response
                    .members
                    .into_iter()
                    .map(|m| JoinedMember {
                        member_id: m.member_id.to_string(),
                        instance_id: m.group_instance_id.map(|i| i.to_string()),
                        metadata: m.metadata,
                    })
                    .collect(),
            }),
            MEMBER_ID_REQUIRED => Ok(JoinOutcome::MemberIdRequired(
                response.member_id.to_string(),
            )),
            code => Err(self.error("JoinGroup", code)),
        }
    }

    /// SyncGroup: the leader sends every member's assignment, the others
    /// none; each gets its own back.
    pub async fn sync(
        &mut self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Bytes, KafkaError> {
        let version = self.conn.version_for::<SyncGroupRequest>()?;
        let mut body = SyncGroupRequest::default()
            .with_group_id(GroupId(text(&self.group)))
            .with_generation_id(generation)
            .with_member_id(text(member_id))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(member, assignment)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(text(&member))
                            .with_assignment(assignment)
                    })
                    .collect(),
            );
        if version >= 3 {
            body = body.with_group_instance_id(instance_id.map(text));
        }
        if version >= 5 {
            body = body
                .with_protocol_type(Some(text(PROTOCOL_TYPE)))
                .with_protocol_name(Some(text(protocol)));
        }
        let response = self.conn.send_version(&body, version).await?;
        match response.error_code {
            0 => Ok(response.assignment),
            code => Err(self.error("SyncGroup", code)),
        }
    }

    /// Heartbeat for `generation`.
    pub async fn heartbeat(
        &mut self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), KafkaError> {
        let version = self.conn.version_for::<HeartbeatRequest>()?;
        let mut body = HeartbeatRequest::default()
            .with_group_id(GroupId(text(&self.group)))
            .with_generation_id(generation)
            .with_member_id(text(member_id));
        if version >= 3 {
            body = body.with_group_instance_id(instance_id.map(text));
        }
        let response = self.conn.send_version(&body, version).await?;
        match response.error_code {
            0 => Ok(()),
            code => Err(self.error("Heartbeat", code)),
        }
    }

    /// LeaveGroup: the coordinator rebalances the others at once instead of
    /// waiting for the session timeout.
    pub async fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        reason: &str,
    ) -> Result<(), KafkaError> {
        let version = self.conn.version_for::<LeaveGroupRequest>()?;
        let mut body = LeaveGroupRequest::default().with_group_id(GroupId(text(&self.group)));
        if version >= 3 {
            let mut member = MemberIdentity::default()
                .with_member_id(text(member_id))
                .with_group_instance_id(instance_id.map(text));
            if version >= 5 {
                member = member.with_reason(Some(text(reason)));
            }
            body = body.with_members(vec![member]);
        } else {
            body = body.with_member_id(text(member_id));
        }
        let response = self.conn.send_version(&body, version).await?;
        let code = match response.error_code {
            0 => response
                .members
                .iter()
                .map(|m| m.error_code)
                .find(|c| *c != 0)
                .unwrap_or(0),
            code => code,
        };
        match code {
            0 => Ok(()),
            code => Err(self.error("LeaveGroup", code)),
        }
    }
}

/// FENCED_MEMBER_EPOCH (KIP-848): the member's epoch is behind; rejoin.
pub const FENCED_MEMBER_EPOCH: i16 = 110;
/// UNRELEASED_INSTANCE_ID (KIP-848): the static id is still held by a
/// member that has not left.
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
/// STALE_MEMBER_EPOCH (KIP-848): an offset commit with an old epoch.
pub const STALE_MEMBER_EPOCH: i16 = 113;

/// What a KIP-848 member sends in a ConsumerGroupHeartbeat.
#[derive(Debug, Clone)]
pub struct ConsumerHeartbeat {
    /// Member id (generated by the member since v1; empty on v0's join).
    pub member_id: String,
    /// 0 to join, the current epoch, -1 to leave, -2 to leave as a static
    /// member that comes back.
    pub member_epoch: i32,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// Rebalance timeout.
    pub rebalance_timeout: Duration,
    /// Subscribed topic names.
    pub topics: Vec<String>,
    /// Server-side assignor (`uniform`, `range`); `None`: the broker's
    /// default.
    pub assignor: Option<String>,
    /// The partitions the member owns now, by topic id.
    pub owned: Vec<(uuid::Uuid, Vec<i32>)>,
}

/// The coordinator's answer to a ConsumerGroupHeartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatAnswer {
    /// The member id (the coordinator's on v0).
    pub member_id: Option<String>,
    /// The member's epoch now.
    pub member_epoch: i32,
    /// How often to heartbeat.
    pub heartbeat_interval: Duration,
    /// A new target assignment (by topic id), when it changed.
    pub assignment: Option<Vec<(uuid::Uuid, Vec<i32>)>>,
}

impl MemberClient {
    /// The ConsumerGroupHeartbeat version this coordinator speaks, or
    /// [`KafkaError::UnsupportedApi`] when it has no KIP-848 support.
    pub fn consumer_protocol_version(&self) -> Result<i16, KafkaError> {
        self.conn.version_for::<ConsumerGroupHeartbeatRequest>()
    }

    /// ConsumerGroupHeartbeat (KIP-848): joins, heartbeats, reports the
    /// owned partitions and receives the target assignment; error codes come
    /// back as [`KafkaError::Broker`] with the coordinator's message logged.
    pub async fn consumer_heartbeat(
        &mut self,
        request: &ConsumerHeartbeat,
    ) -> Result<ConsumerHeartbeatAnswer, KafkaError> {
        let version = self.consumer_protocol_version()?;
        let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        let body = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text(&self.group)))
            .with_member_id(text(&request.member_id))
            .with_member_epoch(request.member_epoch)
            .with_instance_id(request.instance_id.as_deref().map(text))
            .with_rebalance_timeout_ms(millis(request.rebalance_timeout))
            .with_subscribed_topic_names(Some(
                request.topics.iter().map(|t| TopicName(text(t))).collect(),
            ))
            .with_server_assignor(request.assignor.as_deref().map(text))
            .with_topic_partitions(Some(
                request
                    .owned
                    .iter()
                    .map(|(id, partitions)| {
                        TopicPartitions::default()
                            .with_topic_id(*id)
                            .with_partitions(partitions.clone())
                    })
                    .collect(),
            ));
        let response = self.conn.send_version(&body, version).await?;
        if response.error_code != 0 {
            if let Some(message) = &response.error_message {
                tracing::debug!(group = %self.group, code = response.error_code, message = %message, "ConsumerGroupHeartbeat refused");
            }
            return Err(self.error("ConsumerGroupHeartbeat", response.error_code));
        }
        Ok(ConsumerHeartbeatAnswer {
            member_id: response.member_id.map(|m| m.to_string()),
            member_epoch: response.member_epoch,
            heartbeat_interval: Duration::from_millis(
                u64::try_from(response.heartbeat_interval_ms.max(100)).unwrap_or(100),
            ),
            assignment: response.assignment.map(|a| {
                a.topic_partitions
                    .into_iter()
                    .map(|tp| (tp.topic_id, tp.partitions))
                    .collect()
            }),
        })
    }
}

/// The Kafka error code of a broker answer, if it is one.
pub fn error_code(e: &KafkaError) -> Option<i16> {
    match e {
        KafkaError::Broker { code, .. } | KafkaError::PartitionError { code, .. } => Some(*code),
        _ => None,
    }
}
