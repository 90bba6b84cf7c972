//! The group membership actor.
//!
//! **What it does**: keeps this instance a member of `consumer.group_id`
//! with Kafka's classic group protocol (protocol type `consumer`, so Java,
//! librdkafka and Go consumers can share the group): FindCoordinator,
//! JoinGroup (rejoining with the member id the coordinator asks for),
//! SyncGroup (as leader it computes the assignment with the group's chosen
//! assignor), Heartbeat, LeaveGroup on shutdown. It starts and drains the
//! pipeline's partition consumers as partitions are assigned and revoked,
//! and tells the offset committer which generation to commit with and which
//! partitions it may commit (the commit fence).
//!
//! **Rebalances**: with eager assignors (`range`, `roundrobin`) every owned
//! partition is drained and committed before rejoining; with only
//! `cooperative-sticky`, the member keeps its partitions while rejoining,
//! drains only the ones it lost, and rejoins once more so they can move.
//! A revoked partition's drain is bounded by half the rebalance timeout.
//!
//! **Heartbeats** run in a task of their own, on their own connection to the
//! coordinator, every `consumer.heartbeat_interval_ms`: handler work and
//! drains never delay them. Their answers come back as messages:
//! REBALANCE_IN_PROGRESS → rejoin; UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
//! FENCED_INSTANCE_ID → the partitions are lost (stopped without commit)
//! and the member rejoins; coordinator errors → the task finds the
//! coordinator again; no successful heartbeat for a whole session timeout →
//! the partitions are lost too, so two members never process one partition
//! for long.
//!
//! **Messages**: in: [`Leave`] (drain everything, commit, leave the group;
//! a static member does not leave, so its restart keeps the assignment);
//! internal `Rejoin`, `HeartbeatOutcome`.
//!
//! **Metrics**: rebalances by cause, rebalance duration, generation,
//! assigned partitions, group errors by API and Kafka error name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::{Mutex, watch};

use super::assignor::{self, Assignor};
use crate::config::Config;
use crate::consumer::commit::SetMember;
use crate::kafka::consumer_protocol::{self, Assignment, Subscription};
use crate::kafka::membership::{self as wire, JoinOutcome, JoinRequest, MemberClient};
use crate::kafka::{Committer, KafkaError, TopicPartition, cluster};
use crate::runtime::pipeline::Pipeline;
use crate::telemetry::metrics as m;

/// Drain every partition, commit, and leave the group (unless static).
/// Answers when done.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// Deadline for draining the partitions in flight.
    pub timeout: Duration,
}

/// Join (again), for `cause`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Rejoin {
    cause: &'static str,
    /// The partitions were lost: stop them without committing first.
    lost: bool,
    /// Forget the member id (UNKNOWN_MEMBER_ID).
    reset_member: bool,
}

/// A heartbeat's answer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct HeartbeatOutcome {
    generation: i32,
    result: Result<(), (Option<i16>, String)>,
}

/// What the heartbeat task needs to know.
#[derive(Debug, Clone, Default)]
struct HeartbeatState {
    member_id: String,
    generation: i32,
    /// Heartbeats are sent only while the member is in a generation.
    active: bool,
    stopped: bool,
}

/// What a rebalance works on, moved into its future and back.
struct Work {
    member_id: String,
    generation: i32,
    owned: BTreeSet<TopicPartition>,
    client: Option<MemberClient>,
    /// Where this instance's admin API answers, advertised to the other
    /// members (see [`consumer_protocol::admin_user_data`]).
    advert: Option<String>,
}

/// The result of a rebalance.
struct Rebalanced {
    work: Work,
    protocol: String,
    leader: bool,
    revoked: usize,
    assigned: usize,
}

/// The group membership actor; see the module documentation.
pub struct GroupMember {
    config: Arc<Config>,
    pipeline: Arc<Mutex<Option<Pipeline>>>,
    /// The pipeline's router: asked to stop the service when a broker
    /// refuses the credentials or TLS after start-up.
    router: Arc<crate::handler::router::Router>,
    consuming: Arc<AtomicBool>,
    heartbeat: watch::Sender<HeartbeatState>,
    work: Option<Work>,
    rebalancing: bool,
    /// A rejoin was asked for during a rebalance.
    rejoin_after: Option<Rejoin>,
    /// A retry of a failed rebalance, waiting for its pause.
    retry: Option<(SpawnHandle, Rejoin)>,
    last_heartbeat: Instant,
    failures: u32,
    leaving: bool,
    /// Where its heart registers, and the heart.
    registration: Option<crate::health::heartbeat::Registration>,
    heart: Option<Arc<crate::health::heartbeat::Heart>>,
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember")
            .field("group", &self.config.consumer.group_id)
            .field("rebalancing", &self.rebalancing)
            .finish_non_exhaustive()
    }
}

impl GroupMember {
    /// A member of `config.consumer.group_id` driving `pipeline`; sets
    /// `consuming` once its first assignment is being consumed.
    pub fn new(config: Arc<Config>, pipeline: Pipeline, consuming: Arc<AtomicBool>) -> Self {
        let (heartbeat, _) = watch::channel(HeartbeatState::default());
        Self {
            config,
            router: pipeline.router(),
            pipeline: Arc::new(Mutex::new(Some(pipeline))),
            consuming,
            heartbeat,
            work: Some(Work {
                member_id: String::new(),
                generation: -1,
                owned: BTreeSet::new(),
                client: None,
                advert: None,
            }),
            rebalancing: false,
            rejoin_after: None,
            retry: None,
            last_heartbeat: Instant::now(),
            failures: 0,
            leaving: false,
            registration: None,
            heart: None,
        }
    }

    /// Sends heartbeats as `registration` says (busy while it rebalances:
    /// the rebalance timeout bounds that).
    pub fn with_heartbeats(
        mut self,
        registration: Option<crate::health::heartbeat::Registration>,
    ) -> Self {
        self.registration = registration;
        self
    }

    /// Advertises the admin API at `advert` (a base URL, or `:port` for the
    /// address the broker sees this member connect from) in the
    /// subscriptions of the assignors that read no user data, so that an
    /// offset reset can reach this instance.
    pub fn with_admin_advert(mut self, advert: Option<String>) -> Self {
        if let Some(work) = self.work.as_mut() {
            work.advert = advert;
        }
        self
    }

    fn group(&self) -> &str {
        &self.config.consumer.group_id
    }

    fn instance_id(&self) -> Option<String> {
        self.config.consumer.group_instance_id.clone()
    }

    /// Whether every configured assignor is cooperative (Java's rule for
    /// using the cooperative protocol).
    fn cooperative(&self) -> bool {
        self.config
            .consumer
            .partition_assignment_strategy
            .iter()
            .all(|name| assignor::by_name(name).is_some_and(|a| a.cooperative()))
    }

    fn rejoin(&mut self, msg: Rejoin, ctx: &mut Context<Self>) {
        if self.leaving {
            return;
        }
        if self.rebalancing {
            // After the one in progress; a loss outranks a plain rejoin.
            let merged = match self.rejoin_after.take() {
                Some(prev) => Rejoin {
                    cause: if msg.lost { msg.cause } else { prev.cause },
                    lost: prev.lost || msg.lost,
                    reset_member: prev.reset_member || msg.reset_member,
                },
                None => msg,
            };
            self.rejoin_after = Some(merged);
            return;
        }
        // A retry waiting for its pause is folded into this rebalance.
        let msg = match self.retry.take() {
            Some((handle, pending)) => {
                ctx.cancel_future(handle);
                Rejoin {
                    cause: msg.cause,
                    lost: msg.lost || pending.lost,
                    reset_member: msg.reset_member || pending.reset_member,
                }
            }
            None => msg,
        };
        let Some(mut work) = self.work.take() else {
            return;
        };
        // Heartbeats go on while the partitions drain: Kafka still expires a
        // member that has not sent its JoinGroup yet.
        self.rebalancing = true;
        metrics::counter!(m::GROUP_REBALANCES_TOTAL, "cause" => msg.cause).increment(1);
        tracing::info!(
            group = %self.group(), member = %work.member_id, generation = work.generation,
            cause = msg.cause, "rebalancing"
        );
        if msg.reset_member {
            work.member_id.clear();
            work.generation = -1;
        }
        let started = Instant::now();
        let fut = rebalance(
            Arc::clone(&self.config),
            Arc::clone(&self.pipeline),
            work,
            msg.lost,
            self.cooperative(),
        );
        let fut = crate::health::heartbeat::busy(self.heart.as_ref(), fut);
        ctx.wait(fut.into_actor(self).map(move |result, act, ctx| {
            act.rebalancing = false;
            match result {
                Ok(done) => {
                    act.failures = 0;
                    act.last_heartbeat = Instant::now();
                    metrics::histogram!(m::GROUP_REBALANCE_DURATION_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    metrics::gauge!(m::GROUP_GENERATION_COUNT).set(f64::from(done.work.generation));
                    metrics::gauge!(m::GROUP_ASSIGNED_PARTITIONS_COUNT)
                        .set(done.work.owned.len() as f64);
                    tracing::info!(
                        group = %act.group(), member = %done.work.member_id,
                        generation = done.work.generation, protocol = %done.protocol,
                        leader = done.leader, assigned = done.assigned, revoked = done.revoked,
                        partitions = ?done.work.owned, took = ?started.elapsed(),
                        "joined the group"
                    );
                    let (member_id, generation) =
                        (done.work.member_id.clone(), done.work.generation);
                    act.heartbeat.send_modify(|h| {
                        h.member_id = member_id;
                        h.generation = generation;
                        h.active = true;
                    });
                    act.work = Some(done.work);
                    act.consuming.store(true, Ordering::SeqCst);
                    if let Some(next) = act.rejoin_after.take() {
                        act.rejoin(next, ctx);
                    } else if done.revoked > 0 && act.cooperative() {
                        // The revoked partitions can move now.
                        act.rejoin(
                            Rejoin {
                                cause: "cooperative_revocation",
                                lost: false,
                                reset_member: false,
                            },
                            ctx,
                        );
                    }
                }
                Err((work, RebalanceError::Kafka(e)))
                    if matches!(
                        e,
                        KafkaError::Authentication { .. } | KafkaError::Tls { .. }
                    ) =>
                {
                    // Rejoining would be refused the same way.
                    act.work = Some(work);
                    let reason = format!("joining group {} failed: {e}", act.group());
                    tracing::error!(group = %act.group(), error = %e, "stopping the service: {reason}");
                    if matches!(e, KafkaError::Tls { .. }) {
                        act.router.stop_tls(reason);
                    } else {
                        act.router.stop_refused(reason);
                    }
                }
                Err((work, e)) => {
                    act.failures += 1;
                    let pause = Duration::from_millis(100 * 2u64.pow(act.failures.min(6)))
                        .min(Duration::from_secs(5));
                    tracing::warn!(
                        group = %act.group(), member = %work.member_id,
                        generation = work.generation, error = %e, retry_in = ?pause,
                        "joining the group failed"
                    );
                    let reset = matches!(
                        &e,
                        RebalanceError::Kafka(k)
                            if wire::error_code(k) == Some(wire::UNKNOWN_MEMBER_ID)
                    );
                    act.work = Some(work);
                    let next = act.rejoin_after.take().unwrap_or(Rejoin {
                        cause: "retry",
                        lost: false,
                        reset_member: false,
                    });
                    let next = Rejoin {
                        reset_member: next.reset_member || reset,
                        ..next
                    };
                    // Cancelled if something else starts a rebalance first.
                    let handle = ctx.run_later(pause, |act, ctx| {
                        if let Some((_, msg)) = act.retry.take() {
                            act.rejoin(msg, ctx);
                        }
                    });
                    act.retry = Some((handle, next));
                }
            }
        }));
    }

    fn spawn_heartbeats(&self, ctx: &mut Context<Self>) {
        let mut state = self.heartbeat.subscribe();
        let me = ctx.address().downgrade();
        let kafka = self.config.kafka.clone();
        let group = self.group().to_owned();
        let instance = self.instance_id();
        let interval = self.config.consumer.heartbeat_interval();
        actix_rt::spawn(async move {
            let mut client: Option<MemberClient> = None;
            loop {
                tokio::time::sleep(interval).await;
                let now = state.borrow_and_update().clone();
                if now.stopped {
                    break;
                }
                if !now.active {
                    continue;
                }
                let result = async {
                    if client.is_none() {
                        client = Some(MemberClient::connect(&kafka, &group).await?);
                    }
                    match client.as_mut() {
                        Some(c) => {
                            c.heartbeat(now.generation, &now.member_id, instance.as_deref())
                                .await
                        }
                        None => Ok(()),
                    }
                }
                .await;
                if let Err(e) = &result
                    && !matches!(
                        wire::error_code(e),
                        Some(
                            wire::REBALANCE_IN_PROGRESS
                                | wire::UNKNOWN_MEMBER_ID
                                | wire::ILLEGAL_GENERATION
                                | wire::FENCED_INSTANCE_ID
                        )
                    )
                {
                    // Transport or coordinator trouble: find it again.
                    client = None;
                }
                let Some(addr) = me.upgrade() else { break };
                addr.do_send(HeartbeatOutcome {
                    generation: now.generation,
                    result: result.map_err(|e| (wire::error_code(&e), e.to_string())),
                });
            }
        });
    }
}

/// Why a rebalance failed.
#[derive(Debug, thiserror::Error)]
enum RebalanceError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Other(String),
}

fn count_error(api: &'static str, e: &KafkaError) {
    metrics::counter!(m::GROUP_ERRORS_TOTAL, "api" => api, "error" => e.label()).increment(1);
}

/// One rebalance: revoke (eager), join, sync, apply the assignment.
async fn rebalance(
    config: Arc<Config>,
    pipeline: Arc<Mutex<Option<Pipeline>>>,
    mut work: Work,
    lost: bool,
    cooperative: bool,
) -> Result<Rebalanced, (Work, RebalanceError)> {
    match rebalance_inner(&config, &pipeline, &mut work, lost, cooperative).await {
        Ok((protocol, leader, revoked, assigned)) => Ok(Rebalanced {
            work,
            protocol,
            leader,
            revoked,
            assigned,
        }),
        Err(e) => {
            if matches!(
                &e,
                RebalanceError::Kafka(k) if matches!(
                    wire::error_code(k),
                    None | Some(wire::NOT_COORDINATOR | wire::COORDINATOR_NOT_AVAILABLE)
                )
            ) {
                // Transport trouble, or the coordinator moved: find it again
                // next time.
                work.client = None;
            }
            Err((work, e))
        }
    }
}

async fn rebalance_inner(
    config: &Config,
    pipeline: &Mutex<Option<Pipeline>>,
    work: &mut Work,
    lost: bool,
    cooperative: bool,
) -> Result<(String, bool, usize, usize), RebalanceError> {
    let group = config.consumer.group_id.as_str();
    let instance_id = config.consumer.group_instance_id.clone();
    let drain_within = config.consumer.rebalance_timeout() / 2;
    let mut guard = pipeline.lock().await;
    let pipeline = guard
        .as_mut()
        .ok_or_else(|| RebalanceError::Other("the pipeline has stopped".to_owned()))?;
    let committer = pipeline.committer().clone();
    let mut revoked_count = 0;

    // Partitions lost (the coordinator no longer knows this generation):
    // stop them without committing; their new owner starts from the last
    // commit.
    if lost && !work.owned.is_empty() {
        tracing::warn!(group, member = %work.member_id, generation = work.generation,
            partitions = ?work.owned, "partitions lost; stopping them without committing");
        let _ = committer
            .send(SetMember {
                committer: committer_of(work, instance_id.clone()),
                owned: Some(BTreeSet::new()),
            })
            .await;
        let owned: Vec<_> = std::mem::take(&mut work.owned).into_iter().collect();
        revoked_count += owned.len();
        pipeline.revoke(&owned, drain_within).await;
    }
    // Eager protocol: give everything back before joining.
    if !cooperative && !work.owned.is_empty() {
        let owned: Vec<_> = work.owned.iter().cloned().collect();
        revoked_count += owned.len();
        pipeline.revoke(&owned, drain_within).await;
        work.owned.clear();
        let _ = committer
            .send(SetMember {
                committer: committer_of(work, instance_id.clone()),
                owned: Some(BTreeSet::new()),
            })
            .await;
    }

    if work.client.is_none() {
        work.client = Some(MemberClient::connect(&config.kafka, group).await?);
    }
    let mut topics = pipeline.topics();
    topics.sort();
    let strategies = &config.consumer.partition_assignment_strategy;

    let mut attempts: u32 = 0;
    let (generation, protocol, leader, assignment) = loop {
        attempts += 1;
        if attempts > 20 {
            return Err(RebalanceError::Other(
                "the group kept rebalancing; giving up this round".to_owned(),
            ));
        }
        let Some(client) = work.client.as_mut() else {
            return Err(RebalanceError::Other(
                "no coordinator connection".to_owned(),
            ));
        };
        let subscription = Subscription {
            topics: topics.clone(),
            user_data: None,
            owned: if cooperative {
                work.owned.iter().cloned().collect()
            } else {
                Vec::new()
            },
            generation: work.generation,
            rack: None,
        };
        let protocols = strategies
            .iter()
            .map(|name| {
                let mut s = subscription.clone();
                if assignor::by_name(name).is_some_and(|a| a.cooperative()) {
                    s.user_data = Some(consumer_protocol::cooperative_user_data(work.generation));
                } else if let Some(advert) = &work.advert
                    && matches!(name.as_str(), "range" | "roundrobin")
                {
                    s.user_data = Some(consumer_protocol::admin_user_data(advert));
                }
                consumer_protocol::try_encode_subscription(
                    &s,
                    consumer_protocol::SUBSCRIPTION_VERSION,
                )
                .map(|blob| (name.clone(), blob))
                .map_err(|e| RebalanceError::Other(format!("this member's subscription: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let request = JoinRequest {
            member_id: work.member_id.clone(),
            instance_id: instance_id.clone(),
            session_timeout: config.consumer.session_timeout(),
            rebalance_timeout: config.consumer.rebalance_timeout(),
            protocols,
            reason: "kafka-actors joining".to_owned(),
        };
        let joined = match client.join(&request).await {
            Ok(JoinOutcome::MemberIdRequired(id)) => {
                work.member_id = id;
                continue;
            }
            Ok(joined) => joined,
            Err(e) => {
                count_error("JoinGroup", &e);
                tracing::info!(group, member = %work.member_id, generation = work.generation, error = %e, "JoinGroup answered with an error");
                pause_before_retry(attempts).await;
                match wire::error_code(&e) {
                    Some(wire::UNKNOWN_MEMBER_ID) => {
                        work.member_id.clear();
                        continue;
                    }
                    Some(wire::REBALANCE_IN_PROGRESS) => continue,
                    _ => return Err(e.into()),
                }
            }
        };
        let JoinOutcome::Joined {
            generation,
            protocol,
            leader,
            member_id,
            members,
        } = joined
        else {
            continue;
        };
        work.member_id = member_id;
        let is_leader = leader == work.member_id;
        let assignments = if is_leader {
            lead(config, &protocol, &members).await?
        } else {
            Vec::new()
        };
        let Some(client) = work.client.as_mut() else {
            return Err(RebalanceError::Other(
                "no coordinator connection".to_owned(),
            ));
        };
        match client
            .sync(
                generation,
                &work.member_id,
                instance_id.as_deref(),
                &protocol,
                assignments,
            )
            .await
        {
            Ok(bytes) => {
                let assignment = if bytes.is_empty() {
                    Assignment {
                        partitions: Vec::new(),
                        user_data: None,
                    }
                } else {
                    consumer_protocol::decode_assignment(&bytes).map_err(|e| {
                        RebalanceError::Other(format!("the assignment from the leader: {e}"))
                    })?
                };
                break (generation, protocol, is_leader, assignment);
            }
            Err(e) => {
                count_error("SyncGroup", &e);
                tracing::info!(group, member = %work.member_id, generation, error = %e, "SyncGroup answered with an error");
                pause_before_retry(attempts).await;
                match wire::error_code(&e) {
                    Some(wire::UNKNOWN_MEMBER_ID) => {
                        work.member_id.clear();
                        continue;
                    }
                    Some(wire::REBALANCE_IN_PROGRESS | wire::ILLEGAL_GENERATION) => continue,
                    _ => return Err(e.into()),
                }
            }
        }
    };

    work.generation = generation;
    let assigned: BTreeSet<TopicPartition> = assignment
        .partitions
        .into_iter()
        .filter(|(t, _)| topics.contains(t))
        .collect();
    let revoked: Vec<TopicPartition> = work.owned.difference(&assigned).cloned().collect();
    let added: Vec<TopicPartition> = assigned.difference(&work.owned).cloned().collect();
    // Commit the revoked partitions' last records with the new generation,
    // then fence them off.
    let _ = committer
        .send(SetMember {
            committer: committer_of(work, instance_id.clone()),
            owned: Some(work.owned.clone()),
        })
        .await;
    revoked_count += revoked.len();
    pipeline.revoke(&revoked, drain_within).await;
    let _ = committer
        .send(SetMember {
            committer: committer_of(work, instance_id),
            owned: Some(assigned.clone()),
        })
        .await;
    work.owned = assigned;
    pipeline
        .assign(&added)
        .await
        .map_err(|e| RebalanceError::Other(e.to_string()))?;
    Ok((protocol, leader, revoked_count, added.len()))
}

/// A short pause before joining again after an error answer, growing with
/// the attempts (50 ms to 1 s).
async fn pause_before_retry(attempts: u32) {
    let ms = (50u64 << attempts.min(5)).min(1_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn committer_of(work: &Work, instance_id: Option<String>) -> Committer {
    Committer {
        generation: work.generation,
        member_id: work.member_id.clone(),
        instance_id,
    }
}

/// The leader's part: decode every member's subscription, run the chosen
/// assignor over the current partition counts, encode the assignments.
async fn lead(
    config: &Config,
    protocol: &str,
    members: &[wire::JoinedMember],
) -> Result<Vec<(String, bytes::Bytes)>, RebalanceError> {
    let assignor: &dyn Assignor = assignor::by_name(protocol).ok_or_else(|| {
        RebalanceError::Other(format!(
            "the group chose assignor `{protocol}`, which kafka-actors does not implement"
        ))
    })?;
    let mut decoded = Vec::with_capacity(members.len());
    for member in members {
        let s = consumer_protocol::decode_subscription(&member.metadata).map_err(|e| {
            RebalanceError::Other(format!("member {}'s subscription: {e}", member.member_id))
        })?;
        let generation = if s.generation >= 0 {
            s.generation
        } else {
            s.user_data
                .as_deref()
                .and_then(consumer_protocol::generation_from_user_data)
                .unwrap_or(-1)
        };
        decoded.push(assignor::Member {
            member_id: member.member_id.clone(),
            instance_id: member.instance_id.clone(),
            topics: s.topics,
            owned: s.owned,
            generation,
            rack: s.rack,
        });
    }
    let wanted: BTreeSet<&String> = decoded.iter().flat_map(|m| m.topics.iter()).collect();
    let partitions: BTreeMap<String, i32> = cluster::list_topics(&config.kafka)
        .await?
        .into_iter()
        .filter(|t| wanted.contains(&t.name))
        .map(|t| (t.name, i32::try_from(t.partitions).unwrap_or(i32::MAX)))
        .collect();
    let result = assignor.assign(&decoded, &partitions);
    tracing::debug!(protocol, assignment = ?result, "computed the group's assignment");
    decoded
        .iter()
        .map(|m| {
            let partitions = result.get(&m.member_id).cloned().unwrap_or_default();
            let assignment = Assignment {
                partitions,
                user_data: None,
            };
            consumer_protocol::try_encode_assignment(
                &assignment,
                consumer_protocol::ASSIGNMENT_VERSION,
            )
            .map(|blob| (m.member_id.clone(), blob))
            .map_err(|e| RebalanceError::Other(format!("member {}'s assignment: {e}", m.member_id)))
        })
        .collect()
}

impl Actor for GroupMember {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.heart = self
            .registration
            .as_ref()
            .map(|r| r.start("group_member", ctx));
        self.spawn_heartbeats(ctx);
        // A member that stops hearing from the coordinator for a whole
        // session has been evicted: stop processing before another member
        // takes its partitions over.
        let session = self.config.consumer.session_timeout();
        ctx.run_interval(self.config.consumer.heartbeat_interval(), move |act, ctx| {
            let active = act.heartbeat.borrow().active;
            if active && !act.rebalancing && act.last_heartbeat.elapsed() > session {
                tracing::warn!(group = %act.group(), ?session, "no heartbeat answered for a whole session timeout");
                act.last_heartbeat = Instant::now();
                act.rejoin(
                    Rejoin {
                        cause: "session_timeout",
                        lost: true,
                        reset_member: false,
                    },
                    ctx,
                );
            }
        });
        self.rejoin(
            Rejoin {
                cause: "start",
                lost: false,
                reset_member: false,
            },
            ctx,
        );
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.heartbeat.send_modify(|h| h.stopped = true);
    }
}

impl Handler<Rejoin> for GroupMember {
    type Result = ();

    fn handle(&mut self, msg: Rejoin, ctx: &mut Self::Context) {
        self.rejoin(msg, ctx);
    }
}

impl Handler<HeartbeatOutcome> for GroupMember {
    type Result = ();

    fn handle(&mut self, msg: HeartbeatOutcome, ctx: &mut Self::Context) {
        let current = self.work.as_ref().map_or(-1, |w| w.generation);
        if msg.generation != current || self.rebalancing || self.leaving {
            return;
        }
        let (code, text) = match msg.result {
            Ok(()) => {
                self.last_heartbeat = Instant::now();
                return;
            }
            Err(e) => e,
        };
        let label = match code {
            Some(c) => KafkaError::Broker {
                broker: String::new(),
                api: String::new(),
                code: c,
            }
            .label(),
            None => "transport".to_owned(),
        };
        metrics::counter!(m::GROUP_ERRORS_TOTAL, "api" => "Heartbeat", "error" => label)
            .increment(1);
        let member = self
            .work
            .as_ref()
            .map(|w| w.member_id.clone())
            .unwrap_or_default();
        let group = self.group().to_owned();
        match code {
            Some(wire::REBALANCE_IN_PROGRESS) => {
                tracing::info!(group = %group, member = %member, generation = current, "the group is rebalancing");
                self.rejoin(
                    Rejoin {
                        cause: "rebalance_in_progress",
                        lost: false,
                        reset_member: false,
                    },
                    ctx,
                );
            }
            Some(
                c @ (wire::UNKNOWN_MEMBER_ID | wire::ILLEGAL_GENERATION | wire::FENCED_INSTANCE_ID),
            ) => {
                tracing::warn!(group = %group, member = %member, generation = current, error = %text, "membership lost");
                self.rejoin(
                    Rejoin {
                        cause: match c {
                            wire::UNKNOWN_MEMBER_ID => "unknown_member_id",
                            wire::ILLEGAL_GENERATION => "illegal_generation",
                            _ => "fenced_instance_id",
                        },
                        lost: true,
                        reset_member: c == wire::UNKNOWN_MEMBER_ID,
                    },
                    ctx,
                );
            }
            _ => {
                tracing::warn!(group = %group, member = %member, generation = current, error = %text, "heartbeat failed; finding the coordinator again");
            }
        }
    }
}

impl Handler<Leave> for GroupMember {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Leave, _ctx: &mut Self::Context) -> Self::Result {
        // Heartbeats go on while the partitions drain, so the coordinator
        // does not give them away before their last commit.
        self.leaving = true;
        let pipeline = Arc::clone(&self.pipeline);
        let work = self.work.take();
        let instance_id = self.instance_id();
        let group = self.group().to_owned();
        let kafka = self.config.kafka.clone();
        Box::pin(
            async move {
                if let Some(pipeline) = pipeline.lock().await.take() {
                    pipeline.drain(msg.timeout).await;
                }
                let Some(mut work) = work else { return };
                if work.member_id.is_empty() {
                    return;
                }
                if instance_id.is_some() {
                    tracing::info!(group = %group, member = %work.member_id,
                        "static member: not leaving the group, so a restart within the session timeout keeps the assignment");
                    return;
                }
                if work.client.is_none() {
                    work.client = MemberClient::connect(&kafka, &group).await.ok();
                }
                if let Some(client) = work.client.as_mut() {
                    match client
                        .leave(&work.member_id, None, "kafka-actors shutting down")
                        .await
                    {
                        Ok(()) => {
                            tracing::info!(group = %group, member = %work.member_id, "left the group")
                        }
                        Err(e) => {
                            count_error("LeaveGroup", &e);
                            tracing::warn!(group = %group, member = %work.member_id, error = %e, "leaving the group failed; the coordinator will evict this member after the session timeout");
                        }
                    }
                }
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                act.heartbeat.send_modify(|h| {
                    h.active = false;
                    h.stopped = true;
                });
                ctx.stop();
            }),
        )
    }
}
