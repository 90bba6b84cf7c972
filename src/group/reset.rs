//! Offset resets of a consumer group, coordinated with its running
//! instances.
//!
//! Kafka refuses offset commits from outside an active group, and a commit
//! made anyway would be overwritten by the owner's next one: plain admin
//! tools only reset inactive groups. Here each partition's owner is asked
//! to do it: every kafka-actors member advertises its admin API in its
//! group subscription ([`crate::kafka::consumer_protocol::admin_user_data`]),
//! and the owner's partition consumer seeks (`POST
//! /api/v1/partitions/{topic}/{p}/seek`): it drops the records in flight,
//! commits the new offset and fetches from it. Partitions nobody owns in a
//! group with no members are committed directly.
//!
//! [`plan`] describes the group and resolves every target offset, refusing
//! the whole reset (nothing changed) when a partition cannot be reached: an
//! owner that advertises no admin API (another client, or a KIP-848 member),
//! a group in the middle of a rebalance, an unowned partition of an active
//! group. [`execute`] carries the plan out and reports each partition.

use std::collections::BTreeMap;
use std::time::Duration;

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use serde::Serialize;

use crate::config::KafkaConfig;
use crate::config::Secret;
use crate::kafka::groups::{GroupDescription, describe_group};
use crate::kafka::{Committer, GroupCoordinator, KafkaError};

/// Where to reset to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The earliest offset still in each log.
    Earliest,
    /// Each log's end (the high watermark): skip everything not handled.
    Latest,
    /// This offset in every selected partition (within the log).
    Offset(i64),
    /// The first record at or after this time (the end if none).
    Timestamp(chrono::DateTime<chrono::Utc>),
    /// The committed offset moved by this many records (clamped to the log,
    /// as Kafka's own tool does).
    ShiftBy(i64),
}

/// A reset of `group`'s offsets in `topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partitions (`None`: all of the topic's).
    pub partitions: Option<Vec<i32>>,
    /// Where to.
    pub to: ResetTo,
}

/// A replay id's form: what a header value and a log line can carry.
pub fn check_replay_id(id: &str) -> Result<(), ResetError> {
    if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err(field(
            "replay",
            format!("`{id}` must be 1-200 characters without control characters"),
        ));
    }
    Ok(())
}

/// How a partition is reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Its owner seeks (over its admin API).
    Seek,
    /// Committed directly: the group has no members.
    Commit,
}

/// One partition of a [`ResetPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPartition {
    /// The partition.
    pub partition: i32,
    /// The group's committed offset now (`None`: nothing committed).
    pub committed: Option<i64>,
    /// The earliest offset in the log.
    pub earliest: i64,
    /// The log's end (high watermark).
    pub log_end: i64,
    /// The offset it is reset to.
    pub offset: i64,
    /// The owner's member id, if the partition is assigned.
    pub owner: Option<String>,
    /// The owner's client id.
    pub owner_client_id: Option<String>,
    /// Where the owner's admin API answers.
    pub admin_url: Option<String>,
    /// How it is reset.
    pub via: Via,
}

/// What a reset will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetPlan {
    /// The group.
    pub group: String,
    /// Its state when planned.
    pub state: String,
    /// The topic.
    pub topic: String,
    /// Every selected partition, in order.
    pub partitions: Vec<PlannedPartition>,
}

/// What happened to one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReset {
    /// The partition.
    pub partition: i32,
    /// The offset it was reset to (as its owner answered), if it was.
    pub offset: Option<i64>,
    /// How.
    pub via: Via,
    /// Why not, if it was not.
    pub error: Option<String>,
}

/// Why a reset cannot be planned; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// A field of the request is wrong (HTTP 400).
    #[error("{field}: {message}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The group or the topic does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The group's state does not allow a coordinated reset now (HTTP
    /// 409).
    #[error("{0}")]
    Conflict(String),
    /// The group's coordinator could not be asked (HTTP 503).
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// A partition's leader could not be asked (HTTP 503).
    #[error("{0}")]
    Broker(String),
}

fn field(field: &'static str, message: impl Into<String>) -> ResetError {
    ResetError::Field {
        field,
        message: message.into(),
    }
}

/// Describes the group and resolves the reset; refuses it, naming the
/// partition and the reason, when any selected partition cannot be reset.
pub async fn plan(config: &KafkaConfig, request: &ResetRequest) -> Result<ResetPlan, ResetError> {
    let described = describe_group(config, &request.group).await?;
    if !described.exists() {
        return Err(ResetError::NotFound(format!(
            "consumer group `{}` does not exist",
            request.group
        )));
    }
    let brokers = |e: rskafka::client::error::Error| {
        ResetError::Broker(format!(
            "brokers {}: {e}",
            config.bootstrap_servers.join(",")
        ))
    };
    let client = crate::producer::client::rskafka_client(config)
        .await
        .map_err(brokers)?;
    let topics = client.list_topics().await.map_err(brokers)?;
    let Some(topic) = topics.iter().find(|t| t.name == request.topic) else {
        return Err(ResetError::NotFound(format!(
            "topic `{}` does not exist",
            request.topic
        )));
    };
    let all: Vec<i32> = topic.partitions.iter().copied().collect();
    let selected = match &request.partitions {
        None => all.clone(),
        Some(list) if list.is_empty() => {
            return Err(field(
                "partitions",
                "give at least one partition, or leave it out for all",
            ));
        }
        Some(list) => {
            if let Some(p) = list.iter().find(|p| !all.contains(p)) {
                return Err(field(
                    "partitions",
                    format!(
                        "{}/{p} does not exist ({} has {} partitions)",
                        request.topic,
                        request.topic,
                        all.len()
                    ),
                ));
            }
            let mut list = list.clone();
            list.sort_unstable();
            list.dedup();
            list
        }
    };
    let members = !described.members.is_empty();
    if members && described.state != "Stable" {
        return Err(ResetError::Conflict(format!(
            "group `{}` is {}: its partitions are moving; try again once it is Stable",
            request.group, described.state
        )));
    }
    if members && described.members.iter().all(|m| m.assignment.is_empty()) {
        return Err(ResetError::Conflict(format!(
            "the coordinator of group `{}` describes its {} member(s) without their assignments \
             (Tansu does): the partitions' owners cannot be found",
            request.group,
            described.members.len()
        )));
    }
    let mut partitions = Vec::with_capacity(selected.len());
    for p in selected {
        let at = format!("{}/{p}", request.topic);
        let pc = client
            .partition_client(request.topic.as_str(), p, UnknownTopicHandling::Error)
            .await
            .map_err(|e| ResetError::Broker(format!("{at}: {e}")))?;
        let committed = committed_offset(&described, &request.topic, p);
        let Resolved {
            earliest,
            log_end,
            offset,
        } = resolve(&pc, request.to, committed, &request.group, &at).await?;
        let owner = described.members.iter().find(|m| {
            m.assignment
                .iter()
                .any(|(t, q)| *t == request.topic && *q == p)
        });
        let via = match (owner, members) {
            (Some(m), _) if m.admin_url.is_none() => {
                return Err(ResetError::Conflict(format!(
                    "{at} is owned by member {} (client id `{}`, {}), which advertises no kafka-actors admin API: \
                     stop it, or reset while the group is empty",
                    m.member_id, m.client_id, m.client_host
                )));
            }
            (Some(_), _) => Via::Seek,
            (None, false) => Via::Commit,
            (None, true) => {
                return Err(ResetError::Conflict(format!(
                    "{at} has no owner in active group `{}` (not subscribed?): Kafka refuses commits from outside it",
                    request.group
                )));
            }
        };
        partitions.push(PlannedPartition {
            partition: p,
            committed,
            earliest,
            log_end,
            offset,
            owner: owner.map(|m| m.member_id.clone()),
            owner_client_id: owner.map(|m| m.client_id.clone()),
            admin_url: owner.and_then(|m| m.admin_url.clone()),
            via,
        });
    }
    Ok(ResetPlan {
        group: request.group.clone(),
        state: described.state,
        topic: request.topic.clone(),
        partitions,
    })
}

/// A partition's log bounds and the offset a target resolves to in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The earliest offset in the log.
    pub earliest: i64,
    /// The log's end (high watermark).
    pub log_end: i64,
    /// Where `to` lands.
    pub offset: i64,
}

/// Resolves `to` in the partition of `pc` (`at`: `topic/partition`, for
/// the errors), with `committed` the offset `group` committed there (for
/// [`ResetTo::ShiftBy`]). An offset outside the log is refused naming
/// `offset`; a shift with nothing committed, naming `shift_by`.
pub async fn resolve(
    pc: &rskafka::client::partition::PartitionClient,
    to: ResetTo,
    committed: Option<i64>,
    group: &str,
    at: &str,
) -> Result<Resolved, ResetError> {
    let read = |e: rskafka::client::error::Error| ResetError::Broker(format!("{at}: {e}"));
    let earliest = pc.get_offset(OffsetAt::Earliest).await.map_err(read)?;
    let log_end = crate::consumer::partition::high_watermark(pc)
        .await
        .map_err(read)?;
    let offset = match to {
        ResetTo::Earliest => earliest,
        ResetTo::Latest => log_end,
        ResetTo::Offset(o) if (earliest..=log_end).contains(&o) => o,
        ResetTo::Offset(o) => {
            return Err(field(
                "offset",
                format!("offset {o} is outside {at}'s log ({earliest}..={log_end})"),
            ));
        }
        ResetTo::Timestamp(t) => {
            let found = pc.get_offset(OffsetAt::Timestamp(t)).await.map_err(read)?;
            // -1 (Kafka) or past the end: nothing that late.
            if (earliest..=log_end).contains(&found) {
                found
            } else {
                log_end
            }
        }
        ResetTo::ShiftBy(n) => {
            let Some(c) = committed else {
                return Err(field(
                    "shift_by",
                    format!("group `{group}` has committed nothing in {at}"),
                ));
            };
            c.saturating_add(n).clamp(earliest, log_end)
        }
    };
    Ok(Resolved {
        earliest,
        log_end,
        offset,
    })
}

fn committed_offset(described: &GroupDescription, topic: &str, partition: i32) -> Option<i64> {
    described
        .partitions
        .iter()
        .find(|p| p.topic == topic && p.partition == partition)
        .and_then(|p| p.committed_offset)
}

/// Carries `plan` out: asks each owner to seek its partitions (with
/// `token` as the bearer token: the instances of a group share their
/// configuration), and commits the unowned ones directly. Every partition
/// is tried; each reports its own outcome.
pub async fn execute(
    config: &KafkaConfig,
    token: Option<&Secret>,
    plan: &ResetPlan,
    replay: Option<&str>,
) -> Vec<PartitionReset> {
    let mut results = Vec::with_capacity(plan.partitions.len());
    let direct: BTreeMap<(String, i32), i64> = plan
        .partitions
        .iter()
        .filter(|p| p.via == Via::Commit)
        .map(|p| ((plan.topic.clone(), p.partition), p.offset))
        .collect();
    let committed = if direct.is_empty() {
        Ok(())
    } else {
        match GroupCoordinator::connect(config, &plan.group).await {
            Ok(mut c) => c
                .commit(&Committer::standalone(), &direct)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    let timeout = config.request_timeout() * 2 + Duration::from_secs(5);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    for p in &plan.partitions {
        let result = match (&p.via, &p.admin_url) {
            (Via::Commit, _) => match &committed {
                Ok(()) => Ok(p.offset),
                Err(e) => Err(format!("commit: {e}")),
            },
            (Via::Seek, Some(url)) => {
                let to = Seek {
                    topic: &plan.topic,
                    partition: p.partition,
                    offset: p.offset,
                    replay,
                };
                seek(agent.clone(), url, token, to).await
            }
            (Via::Seek, None) => Err("no admin API advertised".to_owned()),
        };
        match &result {
            Ok(offset) => tracing::info!(
                group = %plan.group, topic = %plan.topic, partition = p.partition,
                offset, via = ?p.via, owner = ?p.owner_client_id, "offset reset"
            ),
            Err(e) => tracing::warn!(
                group = %plan.group, topic = %plan.topic, partition = p.partition,
                offset = p.offset, owner = ?p.owner_client_id, error = %e, "offset reset failed"
            ),
        }
        results.push(PartitionReset {
            partition: p.partition,
            offset: result.as_ref().ok().copied(),
            via: p.via.clone(),
            error: result.err(),
        });
    }
    results
}

/// One partition's seek, as its owner is asked for it.
struct Seek<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    /// The replay id the records handled again carry.
    replay: Option<&'a str>,
}

/// Asks the admin API at `url` to seek; answers the offset it sought to.
async fn seek(
    agent: ureq::Agent,
    url: &str,
    token: Option<&Secret>,
    Seek {
        topic,
        partition,
        offset,
        replay,
    }: Seek<'_>,
) -> Result<i64, String> {
    // Topic names are [a-zA-Z0-9._-]: a path segment as they are.
    let to = format!("{url}/api/v1/partitions/{topic}/{partition}/seek");
    let bearer = token.map(|t| format!("Bearer {}", t.expose()));
    let replay = replay.map(str::to_owned);
    let at = to.clone();
    tokio::task::spawn_blocking(move || {
        let mut request = agent.post(&to);
        if let Some(b) = &bearer {
            request = request.header("Authorization", b);
        }
        let mut response = request
            .send_json(serde_json::json!({ "offset": offset, "replay": replay }))
            .map_err(|e| format!("{at}: {e}"))?;
        let status = response.status();
        let body: serde_json::Value = response
            .body_mut()
            .read_json()
            .map_err(|e| format!("{at} answered {status} with an unreadable body: {e}"))?;
        if status.is_success() {
            body["offset"]
                .as_i64()
                .ok_or_else(|| format!("{at} answered {status} without an offset: {body}"))
        } else {
            Err(format!(
                "{at} answered {status}: {}",
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("(no error message)")
            ))
        }
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()))
}
