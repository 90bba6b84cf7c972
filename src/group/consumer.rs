//! The KIP-848 group membership actor (`consumer.group_protocol =
//! "consumer"`).
//!
//! **What it does**: keeps this instance a member of `consumer.group_id`
//! with ConsumerGroupHeartbeat: the broker computes the assignment and
//! hands each member its target in heartbeat answers. The member
//! reconciles: it drains and commits the partitions it no longer has, then
//! starts the new ones, and reports what it owns in its next heartbeat. No
//! group-wide stop: only the partitions that move stop.
//!
//! **Heartbeats** go out every interval the coordinator asks for, as futures
//! of this actor that never wait for a reconciliation (which runs in a
//! future of its own): a slow drain never delays them. Answers:
//! FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID → the partitions are lost
//! (stopped without committing) and the member joins again with epoch 0;
//! coordinator errors and lost connections → the coordinator is found again
//! with backoff; no answer for a whole session timeout → partitions lost.
//!
//! **Commits** carry the member epoch, and only owned partitions are
//! committed (the committer's fence, as with the classic protocol).
//!
//! **Messages**: in: [`super::Leave`] (drain, commit, heartbeat with epoch
//! -1, or -2 for a static member so that its restart keeps the assignment).
//!
//! **Metrics**: as the classic member: rebalances (`assignment_changed`,
//! `fenced`...), epoch as generation, assigned partitions, errors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::Mutex;

use super::Leave;
use crate::config::Config;
use crate::consumer::commit::SetMember;
use crate::kafka::membership::{self as wire, ConsumerHeartbeat, MemberClient};
use crate::kafka::{Committer, KafkaError, TopicPartition, cluster};
use crate::runtime::pipeline::Pipeline;
use crate::telemetry::metrics as m;

/// Send a heartbeat now (after a reconciliation, to report it).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Beat;

/// The KIP-848 member; see the module documentation.
pub struct ConsumerMember {
    config: Arc<Config>,
    pipeline: Arc<Mutex<Option<Pipeline>>>,
    consuming: Arc<AtomicBool>,
    member_id: String,
    epoch: i32,
    /// Partitions being consumed (reconciled).
    owned: BTreeSet<TopicPartition>,
    /// A target assignment not reconciled yet.
    target: Option<BTreeSet<TopicPartition>>,
    reconciling: bool,
    /// The partitions were lost: reconcile to nothing without committing.
    lost: bool,
    client: Option<MemberClient>,
    beating: bool,
    interval: Duration,
    last_ok: Instant,
    failures: u32,
    leaving: bool,
    topics: Vec<String>,
    ids: BTreeMap<String, uuid::Uuid>,
}

impl std::fmt::Debug for ConsumerMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerMember")
            .field("group", &self.config.consumer.group_id)
            .field("member_id", &self.member_id)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Checks that the group's coordinator speaks KIP-848; the error says what
/// to change when it does not.
pub async fn check_support(config: &Config) -> Result<(), String> {
    let client = MemberClient::connect(&config.kafka, &config.consumer.group_id)
        .await
        .map_err(|e| format!("finding the group coordinator: {e}"))?;
    client.consumer_protocol_version().map(|_| ()).map_err(|_| {
        format!(
            "consumer.group_protocol = \"consumer\" needs KIP-848 (the ConsumerGroupHeartbeat \
             API), which the coordinator {} does not support; set consumer.group_protocol = \
             \"classic\" (Apache Kafka 4.x supports both)",
            client.addr()
        )
    })
}

impl ConsumerMember {
    /// A member of `config.consumer.group_id` driving `pipeline`; sets
    /// `consuming` once its first assignment is being consumed.
    pub fn new(config: Arc<Config>, pipeline: Pipeline, consuming: Arc<AtomicBool>) -> Self {
        let mut topics = pipeline.topics();
        topics.sort();
        let interval = config.consumer.heartbeat_interval();
        Self {
            config,
            pipeline: Arc::new(Mutex::new(Some(pipeline))),
            consuming,
            member_id: uuid::Uuid::new_v4().to_string(),
            epoch: 0,
            owned: BTreeSet::new(),
            target: None,
            reconciling: false,
            lost: false,
            client: None,
            beating: false,
            interval,
            last_ok: Instant::now(),
            failures: 0,
            leaving: false,
            topics,
            ids: BTreeMap::new(),
        }
    }

    fn group(&self) -> &str {
        &self.config.consumer.group_id
    }

    fn committer_identity(&self) -> Committer {
        Committer {
            generation: self.epoch,
            member_id: self.member_id.clone(),
            instance_id: self.config.consumer.group_instance_id.clone(),
        }
    }

    fn request(&self, epoch: i32) -> ConsumerHeartbeat {
        let mut owned: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in &self.owned {
            if let Some(id) = self.ids.get(topic) {
                owned.entry(*id).or_default().push(*partition);
            }
        }
        ConsumerHeartbeat {
            member_id: self.member_id.clone(),
            member_epoch: epoch,
            instance_id: self.config.consumer.group_instance_id.clone(),
            rebalance_timeout: self.config.consumer.rebalance_timeout(),
            topics: self.topics.clone(),
            assignor: self.config.consumer.group_remote_assignor.clone(),
            owned: owned.into_iter().collect(),
        }
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        if self.beating || self.leaving {
            return;
        }
        self.beating = true;
        let request = self.request(self.epoch);
        let client = self.client.take();
        let (kafka, group, topics) = (
            self.config.kafka.clone(),
            self.group().to_owned(),
            self.topics.clone(),
        );
        let need_ids = self.ids.len() < self.topics.len();
        ctx.spawn(
            async move {
                let mut client = match client {
                    Some(c) => c,
                    None => match MemberClient::connect(&kafka, &group).await {
                        Ok(c) => c,
                        Err(e) => return (None, None, Err(e)),
                    },
                };
                let ids = if need_ids {
                    cluster::topic_ids(&kafka, &topics).await.ok()
                } else {
                    None
                };
                let result = client.consumer_heartbeat(&request).await;
                (Some(client), ids, result)
            }
            .into_actor(self)
            .map(|(client, ids, result), act, ctx| {
                act.beating = false;
                if let Some(ids) = ids {
                    act.ids = ids;
                }
                let keep = match &result {
                    Ok(_) => true,
                    Err(e) => wire::error_code(e).is_some_and(|c| {
                        !matches!(
                            c,
                            wire::NOT_COORDINATOR
                                | wire::COORDINATOR_NOT_AVAILABLE
                                | wire::COORDINATOR_LOAD_IN_PROGRESS
                        )
                    }),
                };
                if keep {
                    act.client = client;
                }
                let next = act.answered(result, ctx);
                if !act.leaving {
                    ctx.notify_later(Beat, next);
                }
            }),
        );
    }

    /// Handles a heartbeat's answer; returns when to send the next one.
    fn answered(
        &mut self,
        result: Result<wire::ConsumerHeartbeatAnswer, KafkaError>,
        ctx: &mut Context<Self>,
    ) -> Duration {
        let answer = match result {
            Ok(answer) => answer,
            Err(e) => return self.refused(&e, ctx),
        };
        self.failures = 0;
        self.last_ok = Instant::now();
        self.interval = answer.heartbeat_interval;
        if let Some(id) = answer.member_id.filter(|id| !id.is_empty()) {
            self.member_id = id;
        }
        if answer.member_epoch != self.epoch {
            tracing::debug!(group = %self.group(), member = %self.member_id, epoch = answer.member_epoch, "member epoch");
            self.epoch = answer.member_epoch;
            metrics::gauge!(m::GROUP_GENERATION_COUNT).set(f64::from(self.epoch));
            if !self.reconciling {
                self.fence(ctx, self.owned.clone());
            }
        }
        if let Some(assignment) = answer.assignment {
            let names: BTreeMap<uuid::Uuid, &String> =
                self.ids.iter().map(|(name, id)| (*id, name)).collect();
            let mut target = BTreeSet::new();
            for (id, partitions) in assignment {
                match names.get(&id) {
                    Some(name) => {
                        target.extend(partitions.into_iter().map(|p| ((*name).clone(), p)))
                    }
                    None => {
                        // A topic id not known yet: ask again with fresh
                        // metadata before accepting anything.
                        tracing::debug!(group = %self.group(), topic_id = %id, "unknown topic id in the assignment; refreshing metadata");
                        self.ids.clear();
                        return Duration::from_millis(100);
                    }
                }
            }
            self.target = Some(target);
            self.reconcile(ctx);
        }
        self.interval
    }

    /// Handles a refused or failed heartbeat; returns the pause before the
    /// next one.
    fn refused(&mut self, e: &KafkaError, ctx: &mut Context<Self>) -> Duration {
        metrics::counter!(m::GROUP_ERRORS_TOTAL, "api" => "ConsumerGroupHeartbeat", "error" => e.label())
            .increment(1);
        let (group, member, epoch) = (self.group().to_owned(), self.member_id.clone(), self.epoch);
        match wire::error_code(e) {
            Some(wire::FENCED_MEMBER_EPOCH | wire::UNKNOWN_MEMBER_ID) => {
                tracing::warn!(group = %group, member = %member, epoch, error = %e, "membership lost; joining again");
                metrics::counter!(m::GROUP_REBALANCES_TOTAL, "cause" => "fenced").increment(1);
                self.lose(ctx);
                self.epoch = 0;
                Duration::ZERO
            }
            Some(wire::UNRELEASED_INSTANCE_ID) => {
                tracing::warn!(group = %group, member = %member, error = %e, "the static id is still held by a member that has not left; retrying");
                self.backoff()
            }
            _ => {
                tracing::warn!(group = %group, member = %member, epoch, error = %e, "heartbeat failed; finding the coordinator again");
                if self.last_ok.elapsed() > self.config.consumer.session_timeout()
                    && !self.owned.is_empty()
                {
                    tracing::warn!(group = %group, member = %member, "no heartbeat answered for a whole session timeout");
                    self.lose(ctx);
                    self.epoch = 0;
                }
                self.backoff()
            }
        }
    }

    fn backoff(&mut self) -> Duration {
        self.failures += 1;
        Duration::from_millis(100 * 2u64.pow(self.failures.min(6))).min(Duration::from_secs(5))
    }

    /// The partitions are no longer this member's: stop them without
    /// committing.
    fn lose(&mut self, ctx: &mut Context<Self>) {
        self.lost = true;
        self.target = Some(BTreeSet::new());
        self.reconcile(ctx);
    }

    /// Tells the committer who commits and what.
    fn fence(&self, ctx: &mut Context<Self>, owned: BTreeSet<TopicPartition>) {
        let committer = self
            .pipeline
            .try_lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.committer().clone()));
        if let Some(committer) = committer {
            let msg = SetMember {
                committer: self.committer_identity(),
                owned: Some(owned),
            };
            ctx.spawn(
                async move {
                    let _ = committer.send(msg).await;
                }
                .into_actor(self),
            );
        }
    }

    /// Moves the pipeline to the target assignment: drain and commit what
    /// goes, then start what comes.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        if self.reconciling {
            return;
        }
        let Some(target) = self.target.take() else {
            return;
        };
        self.reconciling = true;
        let lost = std::mem::take(&mut self.lost);
        let revoked: Vec<TopicPartition> = self.owned.difference(&target).cloned().collect();
        let added: Vec<TopicPartition> = target.difference(&self.owned).cloned().collect();
        let identity = self.committer_identity();
        let owned_now = self.owned.clone();
        let pipeline = Arc::clone(&self.pipeline);
        let drain_within = self.config.consumer.rebalance_timeout() / 2;
        let group = self.group().to_owned();
        let started = Instant::now();
        if !revoked.is_empty() || !added.is_empty() {
            metrics::counter!(m::GROUP_REBALANCES_TOTAL, "cause" => "assignment_changed")
                .increment(1);
        }
        ctx.spawn(
            async move {
                let mut guard = pipeline.lock().await;
                let Some(pipeline) = guard.as_mut() else {
                    return (owned_now, Ok(()));
                };
                let committer = pipeline.committer().clone();
                // Lost partitions are not committed; revoked ones are, with
                // the current epoch, before they are fenced off.
                let keep = if lost { BTreeSet::new() } else { owned_now };
                let _ = committer
                    .send(SetMember {
                        committer: identity.clone(),
                        owned: Some(keep),
                    })
                    .await;
                pipeline.revoke(&revoked, drain_within).await;
                let _ = committer
                    .send(SetMember {
                        committer: identity,
                        owned: Some(target.clone()),
                    })
                    .await;
                let result = pipeline.assign(&added).await;
                if let Err(e) = &result {
                    tracing::warn!(group = %group, error = %e, "starting assigned partitions failed");
                }
                (pipeline.owned(), result.map_err(|e| e.to_string()))
            }
            .into_actor(self)
            .map(move |(owned, result), act, ctx| {
                act.reconciling = false;
                act.owned = owned;
                metrics::gauge!(m::GROUP_ASSIGNED_PARTITIONS_COUNT).set(act.owned.len() as f64);
                metrics::histogram!(m::GROUP_REBALANCE_DURATION_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                tracing::info!(
                    group = %act.group(), member = %act.member_id, generation = act.epoch,
                    protocol = "consumer", leader = false, partitions = ?act.owned,
                    took = ?started.elapsed(), "joined the group"
                );
                // The epoch may have moved meanwhile.
                act.fence(ctx, act.owned.clone());
                if result.is_ok() {
                    act.consuming.store(true, Ordering::SeqCst);
                }
                if act.target.is_some() {
                    act.reconcile(ctx);
                } else {
                    // Report what is owned now.
                    ctx.notify(Beat);
                }
            }),
        );
    }
}

impl Actor for ConsumerMember {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::counter!(m::GROUP_REBALANCES_TOTAL, "cause" => "start").increment(1);
        tracing::info!(group = %self.group(), member = %self.member_id, "joining the group (KIP-848 consumer protocol)");
        self.beat(ctx);
    }
}

impl Handler<Beat> for ConsumerMember {
    type Result = ();

    fn handle(&mut self, _msg: Beat, ctx: &mut Self::Context) {
        self.beat(ctx);
    }
}

impl Handler<Leave> for ConsumerMember {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Leave, _ctx: &mut Self::Context) -> Self::Result {
        self.leaving = true;
        let pipeline = Arc::clone(&self.pipeline);
        let epoch = if self.config.consumer.group_instance_id.is_some() {
            -2
        } else {
            -1
        };
        let request = self.request(epoch);
        let (kafka, group) = (self.config.kafka.clone(), self.group().to_owned());
        let client = self.client.take();
        let member = self.member_id.clone();
        Box::pin(
            async move {
                if let Some(pipeline) = pipeline.lock().await.take() {
                    pipeline.drain(msg.timeout).await;
                }
                let client = match client {
                    Some(c) => Some(c),
                    None => MemberClient::connect(&kafka, &group).await.ok(),
                };
                if let Some(mut client) = client {
                    match client.consumer_heartbeat(&request).await {
                        Ok(_) => tracing::info!(group = %group, member = %member, epoch, "left the group"),
                        Err(e) => tracing::warn!(group = %group, member = %member, error = %e, "leaving the group failed; the coordinator will evict this member after the session timeout"),
                    }
                }
            }
            .into_actor(self)
            .map(|(), _act, ctx| ctx.stop()),
        )
    }
}
