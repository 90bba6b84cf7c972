//! Listing and describing consumer groups: what `kafka-consumer-groups.sh
//! --list` and `--describe` show.
//!
//! ```text
//! list_groups:     Metadata (brokers) ──▶ ListGroups on every broker ──▶ merged
//! describe_group:  FindCoordinator ──▶ DescribeGroups ─┐ members, assignments
//!                                  ──▶ OffsetFetch ────┤ committed offsets (every topic)
//!                  leaders (rskafka) ──▶ Fetch ────────┘ high watermarks ──▶ lag
//! ```
//!
//! A group lives on one coordinator, so only all brokers together know
//! every group. The log end is the high watermark of a Fetch response, not
//! ListOffsets(Latest): Tansu answers the latter with the last batch's base
//! offset + 1 (FINDINGS.md), which makes lag wrong.
//!
//! Classic groups only: a KIP-848 (`consumer` type) group answers
//! DescribeGroups as if it did not exist; Kafka 4 says why in
//! [`GroupDescription::broker_message`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, GroupId, ListGroupsRequest};
use kafka_protocol::protocol::StrBytes;
use rskafka::client::Client;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use serde::{Serialize, Serializer};

use super::consumer_protocol::{self, PROTOCOL_TYPE};
use super::{BrokerConnection, ErrorKind, GroupCoordinator, KafkaError, TopicPartition, cluster};
use crate::config::KafkaConfig;

/// One group, as the broker coordinating it lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for consumer groups; empty for a group that only has
    /// offsets committed outside membership.
    pub protocol_type: String,
    /// `Stable`, `Empty`, ... (ListGroups v4+; `None` from older brokers).
    pub state: Option<String>,
    /// `classic` or `consumer` (KIP-848) (ListGroups v5+).
    pub group_type: Option<String>,
    /// `host:port` of the broker that listed it: its coordinator.
    pub coordinator: String,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// Member id the coordinator gave it.
    pub member_id: String,
    /// Static membership id (KIP-345), if it has one.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// Where it connects from, as the broker sees it (`/10.0.0.7`).
    pub client_host: String,
    /// Its partitions, decoded from its SyncGroup assignment (consumer
    /// protocol groups only; empty outside the Stable state, where the
    /// broker does not show assignments). Grouped by topic in JSON.
    #[serde(serialize_with = "grouped")]
    pub assignment: Vec<TopicPartition>,
    /// Why the assignment could not be decoded, if it could not.
    pub assignment_error: Option<String>,
    /// Where its admin API answers, if it is a kafka-actors member that
    /// advertised it in its subscription (see
    /// [`consumer_protocol::admin_user_data`]).
    pub admin_url: Option<String>,
}

/// One partition the group has committed to or is assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionOffsets {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (next offset to consume); `None` when it
    /// has committed nothing here.
    pub committed_offset: Option<i64>,
    /// The partition's high watermark; `None` when it could not be read
    /// (see `error`).
    pub log_end_offset: Option<i64>,
    /// `log_end_offset - committed_offset`, when both are known.
    pub lag: Option<i64>,
    /// Member id of the member assigned this partition, if any.
    pub owner: Option<String>,
    /// Why `log_end_offset` is unknown.
    pub error: Option<String>,
}

/// A group's state, members and offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// `host:port` of its coordinator.
    pub coordinator: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, `CompletingRebalance`, or
    /// `Dead` when it does not exist.
    pub state: String,
    /// `consumer` for consumer groups; empty when no member ever joined.
    pub protocol_type: String,
    /// The protocol the members agreed on (the assignor: `range`,
    /// `cooperative-sticky`...); empty outside the Stable state.
    pub protocol: String,
    /// Members, by member id.
    pub members: Vec<GroupMember>,
    /// Every partition with a committed offset or an owner, by topic and
    /// partition.
    pub partitions: Vec<PartitionOffsets>,
    /// The coordinator's error message, if it gave one (DescribeGroups v6+:
    /// why a group is reported as not existing).
    pub broker_message: Option<String>,
}

impl GroupDescription {
    /// Whether the group exists. Kafka answers `Dead` for a group id it does
    /// not know (DescribeGroups v6+: GROUP_ID_NOT_FOUND). Tansu answers
    /// `Empty` for any id, so an empty group with no protocol type (no
    /// member ever joined) and no committed offset counts as missing too:
    /// Kafka itself deletes such a group once its last offset expires.
    pub fn exists(&self) -> bool {
        let nothing_there = self.state == "Empty"
            && self.members.is_empty()
            && self.protocol_type.is_empty()
            && self.partitions.is_empty();
        self.state != DEAD && !nothing_there
    }

    /// Sum of the known lags.
    pub fn total_lag(&self) -> i64 {
        self.partitions.iter().filter_map(|p| p.lag).sum()
    }
}

const DEAD: &str = "Dead";
/// GROUP_ID_NOT_FOUND: DescribeGroups v6+ for an unknown group.
const GROUP_ID_NOT_FOUND: i16 = 69;
/// Partitions whose log end is read at once (each opens a connection).
const LOG_END_CONCURRENCY: usize = 8;

fn grouped<S: Serializer>(partitions: &[TopicPartition], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Topic<'a> {
        topic: &'a str,
        partitions: Vec<i32>,
    }
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    s.collect_seq(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| Topic { topic, partitions }),
    )
}

fn text(s: &StrBytes) -> String {
    s.to_string()
}

fn non_empty(s: &StrBytes) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Every group of the cluster: ListGroups on each broker the metadata
/// names, merged and sorted by group id. Fails if any broker fails (a
/// partial list would silently hide groups); retriable answers
/// (COORDINATOR_LOAD_IN_PROGRESS after a broker restart) are retried until
/// `kafka.request_timeout_ms` passes.
pub async fn list_groups(config: &KafkaConfig) -> Result<Vec<GroupListing>, KafkaError> {
    let brokers = {
        let mut conn = cluster::connect_any(config).await?;
        let metadata = cluster::metadata(&mut conn, Some(Vec::new())).await?;
        metadata
            .brokers
            .iter()
            .map(|b| format!("{}:{}", b.host, b.port))
            .collect::<Vec<_>>()
    };
    let listed = futures_util::future::join_all(
        brokers
            .iter()
            .map(|broker| list_on_retrying(config, broker)),
    )
    .await;
    let mut groups = BTreeMap::new();
    for result in listed {
        for g in result? {
            groups.entry(g.group_id.clone()).or_insert(g);
        }
    }
    Ok(groups.into_values().collect())
}

async fn list_on_retrying(
    config: &KafkaConfig,
    broker: &str,
) -> Result<Vec<GroupListing>, KafkaError> {
    let deadline = Instant::now() + config.request_timeout();
    let mut pause = Duration::from_millis(50);
    loop {
        match list_on(config, broker).await {
            Err(e) if e.kind() == ErrorKind::Retryable && Instant::now() + pause < deadline => {
                tracing::debug!(broker, error = %e, retry_in = ?pause, "ListGroups failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            result => return result,
        }
    }
}

async fn list_on(config: &KafkaConfig, broker: &str) -> Result<Vec<GroupListing>, KafkaError> {
    let mut conn = BrokerConnection::open(broker, config).await?;
    let version = conn.version_for::<ListGroupsRequest>()?;
    // No state or type filter (v4+, v5+): empty lists mean every group.
    let response = conn
        .send_version(&ListGroupsRequest::default(), version)
        .await?;
    if response.error_code != 0 {
        return Err(KafkaError::Broker {
            broker: conn.addr().to_owned(),
            api: "ListGroups".to_owned(),
            code: response.error_code,
        });
    }
    Ok(response
        .groups
        .iter()
        .map(|g| GroupListing {
            group_id: g.group_id.0.to_string(),
            protocol_type: text(&g.protocol_type),
            state: (version >= 4).then(|| non_empty(&g.group_state)).flatten(),
            group_type: (version >= 5).then(|| non_empty(&g.group_type)).flatten(),
            coordinator: conn.addr().to_owned(),
        })
        .collect())
}

/// DescribeGroups for the coordinator's group; GROUP_ID_NOT_FOUND becomes
/// the `Dead` state older versions answer with. Group-level errors come
/// back as [`KafkaError::Broker`], so the coordinator errors among them are
/// retried by [`GroupCoordinator::retrying`].
async fn describe_once(c: &mut GroupCoordinator) -> Result<DescribedGroup, KafkaError> {
    let group = c.group().to_owned();
    let conn = c.connection();
    let version = conn.version_for::<DescribeGroupsRequest>()?;
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.clone()))]);
    let response = conn.send_version(&request, version).await?;
    let described = response
        .groups
        .into_iter()
        .find(|g| g.group_id.0.as_str() == group)
        .ok_or_else(|| KafkaError::Protocol {
            broker: conn.addr().to_owned(),
            api: "DescribeGroups".to_owned(),
            message: format!("group {group} is missing from the response"),
        })?;
    match described.error_code {
        0 => Ok(described),
        GROUP_ID_NOT_FOUND => Ok(described.with_group_state(StrBytes::from_static_str(DEAD))),
        code => Err(KafkaError::Broker {
            broker: conn.addr().to_owned(),
            api: "DescribeGroups".to_owned(),
            code,
        }),
    }
}

/// ConsumerGroupDescribe (KIP-848 groups): state, server-side assignor and
/// members with their current assignments; `None` when the coordinator
/// does not speak it or knows no such consumer group.
async fn describe_consumer_group(
    c: &mut GroupCoordinator,
    group: &str,
) -> Result<Option<(String, String, Vec<GroupMember>)>, KafkaError> {
    use kafka_protocol::messages::ConsumerGroupDescribeRequest;
    let conn = c.connection();
    let Ok(version) = conn.version_for::<ConsumerGroupDescribeRequest>() else {
        return Ok(None);
    };
    let request = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
    let response = conn.send_version(&request, version).await?;
    let Some(g) = response
        .groups
        .into_iter()
        .find(|g| g.group_id.0.as_str() == group && g.error_code == 0)
    else {
        return Ok(None);
    };
    let members = g
        .members
        .iter()
        .map(|m| GroupMember {
            member_id: text(&m.member_id),
            group_instance_id: m.instance_id.as_ref().map(text),
            client_id: text(&m.client_id),
            client_host: text(&m.client_host),
            assignment: m
                .assignment
                .topic_partitions
                .iter()
                .flat_map(|tp| {
                    let topic = text(&tp.topic_name.0);
                    tp.partitions.iter().map(move |p| (topic.clone(), *p))
                })
                .collect(),
            assignment_error: None,
            // KIP-848 members carry no user data.
            admin_url: None,
        })
        .collect();
    Ok(Some((
        text(&g.group_state),
        text(&g.assignor_name),
        members,
    )))
}

fn member(
    protocol_type: &str,
    m: &kafka_protocol::messages::describe_groups_response::DescribedGroupMember,
) -> GroupMember {
    // Only the consumer protocol's assignment layout is known; other
    // protocols (Connect, Streams' own) carry their own.
    let (assignment, assignment_error) = if protocol_type == PROTOCOL_TYPE {
        match consumer_protocol::decode_assignment(&m.member_assignment) {
            Ok(a) => (a.partitions, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    } else {
        (Vec::new(), None)
    };
    let client_host = text(&m.client_host);
    let admin_url = (protocol_type == PROTOCOL_TYPE)
        .then(|| consumer_protocol::decode_subscription(&m.member_metadata).ok())
        .flatten()
        .and_then(|s| s.user_data)
        .and_then(|u| consumer_protocol::admin_url(&u, &client_host));
    GroupMember {
        member_id: text(&m.member_id),
        group_instance_id: m.group_instance_id.as_ref().map(text),
        client_id: text(&m.client_id),
        client_host,
        assignment,
        assignment_error,
        admin_url,
    }
}

/// A group's state, members with their assigned partitions, and for every
/// partition it committed to or is assigned: committed offset, log end and
/// lag. DescribeGroups and OffsetFetch go to the group's coordinator
/// (coordinator errors are retried, see [`GroupCoordinator::connect`]); log
/// ends are read from each partition's leader, and a partition whose log
/// end cannot be read is reported with its error rather than failing the
/// whole description.
///
/// A group that does not exist is described with state `Dead` (see
/// [`GroupDescription::exists`]).
pub async fn describe_group(
    config: &KafkaConfig,
    group: &str,
) -> Result<GroupDescription, KafkaError> {
    let mut coordinator = GroupCoordinator::connect(config, group).await?;
    let described = coordinator.retrying(|c| Box::pin(describe_once(c))).await?;
    let mut description = GroupDescription {
        group_id: group.to_owned(),
        coordinator: coordinator.addr().to_owned(),
        state: text(&described.group_state),
        protocol_type: text(&described.protocol_type),
        protocol: text(&described.protocol_data),
        members: Vec::new(),
        partitions: Vec::new(),
        broker_message: described.error_message.as_ref().map(text),
    };
    if description.state == DEAD {
        // Kafka answers DescribeGroups for a KIP-848 group as if it did not
        // exist: ask ConsumerGroupDescribe.
        match describe_consumer_group(&mut coordinator, group).await? {
            Some((state, assignor, members)) => {
                description.state = state;
                description.protocol_type = PROTOCOL_TYPE.to_owned();
                description.protocol = assignor;
                description.members = members;
                description.broker_message = None;
            }
            None => return Ok(description),
        }
    } else {
        description.members = described
            .members
            .iter()
            .map(|m| member(&description.protocol_type, m))
            .collect();
    }
    description
        .members
        .sort_by(|a, b| a.member_id.cmp(&b.member_id));

    let committed = coordinator.fetch_all().await?;
    let mut owners: BTreeMap<TopicPartition, String> = BTreeMap::new();
    for m in &description.members {
        for tp in &m.assignment {
            owners.insert(tp.clone(), m.member_id.clone());
        }
    }
    let mut partitions: Vec<TopicPartition> = committed.keys().cloned().collect();
    partitions.extend(owners.keys().cloned());
    partitions.sort();
    partitions.dedup();

    let mut log_ends = log_end_offsets(config, &partitions).await;
    description.partitions = partitions
        .into_iter()
        .map(|tp| {
            let committed_offset = committed.get(&tp).copied();
            let (log_end_offset, error) = match log_ends.remove(&tp) {
                Some(Ok(end)) => (Some(end), None),
                Some(Err(e)) => (None, Some(e)),
                None => (None, Some("log end not read".to_owned())),
            };
            PartitionOffsets {
                lag: committed_offset.zip(log_end_offset).map(|(c, e)| e - c),
                owner: owners.get(&tp).cloned(),
                topic: tp.0,
                partition: tp.1,
                committed_offset,
                log_end_offset,
                error,
            }
        })
        .collect();
    Ok(description)
}

/// The high watermark of each partition, or why it could not be read. The
/// whole lookup ends after twice `kafka.request_timeout_ms`; partitions not
/// read by then report a timeout.
async fn log_end_offsets(
    config: &KafkaConfig,
    partitions: &[TopicPartition],
) -> BTreeMap<TopicPartition, Result<i64, String>> {
    if partitions.is_empty() {
        return BTreeMap::new();
    }
    let timeout = config.request_timeout();
    let all_failed = |why: String| -> BTreeMap<TopicPartition, Result<i64, String>> {
        partitions
            .iter()
            .map(|tp| (tp.clone(), Err(why.clone())))
            .collect()
    };
    let client = match tokio::time::timeout(
        timeout,
        crate::producer::client::rskafka_client(config),
    )
    .await
    {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return all_failed(format!("cannot connect: {e}")),
        Err(_) => return all_failed(format!("connecting timed out after {timeout:?}")),
    };
    let client = &client;
    let mut out: BTreeMap<TopicPartition, Result<i64, String>> =
        futures_util::stream::iter(partitions.iter().cloned())
            .map(|tp| async move {
                let read = tokio::time::timeout(timeout, high_watermark(client, &tp)).await;
                let result = match read {
                    Ok(Ok(end)) => Ok(end),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("timed out after {timeout:?}")),
                };
                (tp, result)
            })
            .buffer_unordered(LOG_END_CONCURRENCY)
            .take_until(tokio::time::sleep(timeout * 2))
            .collect()
            .await;
    for tp in partitions {
        out.entry(tp.clone())
            .or_insert_with(|| Err(format!("not read within {:?}", timeout * 2)));
    }
    out
}

/// The high watermark from a Fetch response. The Fetch starts at
/// ListOffsets(Latest), an offset inside the log on every broker (Kafka:
/// the high watermark itself, so nothing comes back; Tansu: at most its last
/// batch), asks for 0 bytes minimum and waits 0 ms, so it returns at once.
async fn high_watermark(
    client: &Client,
    (topic, partition): &TopicPartition,
) -> Result<i64, rskafka::client::error::Error> {
    let pc = client
        .partition_client(topic.clone(), *partition, UnknownTopicHandling::Error)
        .await?;
    let at = pc.get_offset(OffsetAt::Latest).await?;
    let (_, high_watermark) = pc.fetch_records(at, 0..1_048_576, 0).await?;
    Ok(high_watermark)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description(state: &str, protocol_type: &str) -> GroupDescription {
        GroupDescription {
            group_id: "g".into(),
            coordinator: "h:1".into(),
            state: state.into(),
            protocol_type: protocol_type.into(),
            protocol: String::new(),
            members: Vec::new(),
            partitions: Vec::new(),
            broker_message: None,
        }
    }

    fn offsets(committed: Option<i64>, lag: Option<i64>) -> PartitionOffsets {
        PartitionOffsets {
            topic: "t".into(),
            partition: 0,
            committed_offset: committed,
            log_end_offset: Some(10),
            lag,
            owner: None,
            error: None,
        }
    }

    #[test]
    fn dead_or_never_used_groups_do_not_exist() {
        assert!(!description("Dead", "").exists());
        // Tansu's answer for any unknown id.
        assert!(!description("Empty", "").exists());
        // Members left, the group stays (Kafka keeps it until its offsets expire).
        assert!(description("Empty", "consumer").exists());
        assert!(description("Stable", "consumer").exists());
        // Offsets committed outside membership.
        let mut standalone = description("Empty", "");
        standalone.partitions.push(offsets(Some(3), Some(7)));
        assert!(standalone.exists());
    }

    #[test]
    fn total_lag_sums_the_known_lags() {
        let mut d = description("Empty", "");
        d.partitions = vec![
            offsets(Some(3), Some(7)),
            offsets(None, None),
            offsets(Some(8), Some(2)),
        ];
        assert_eq!(d.total_lag(), 9);
    }

    #[test]
    fn assignments_serialize_grouped_by_topic() {
        let m = GroupMember {
            member_id: "m-1".into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            assignment: vec![("b".into(), 1), ("a".into(), 0), ("b".into(), 0)],
            assignment_error: None,
            admin_url: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v["assignment"],
            serde_json::json!([
                {"topic": "a", "partitions": [0]},
                {"topic": "b", "partitions": [1, 0]},
            ])
        );
    }

    #[test]
    fn members_of_other_protocols_are_not_decoded_and_bad_blobs_are_reported() {
        use kafka_protocol::messages::describe_groups_response::DescribedGroupMember;
        let blob = consumer_protocol::encode_assignment(
            &consumer_protocol::Assignment {
                partitions: vec![("t".into(), 2)],
                user_data: None,
            },
            3,
        );
        let m = DescribedGroupMember::default()
            .with_member_id(StrBytes::from_static_str("m"))
            .with_member_assignment(blob.clone());
        assert_eq!(member("consumer", &m).assignment, [("t".to_owned(), 2)]);
        assert!(member("connect", &m).assignment.is_empty());
        assert_eq!(member("connect", &m).assignment_error, None);

        let bad = m.with_member_assignment(blob.slice(..blob.len() - 3));
        let described = member("consumer", &bad);
        assert!(described.assignment.is_empty());
        let error = described.assignment_error.unwrap();
        assert!(error.contains("assignment v3"), "{error}");
    }
}
