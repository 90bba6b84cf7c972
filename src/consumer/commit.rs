//! The offset committer actor.
//!
//! **What it does**: commits the handled watermarks of every partition of
//! this instance to the group coordinator (OffsetCommit through
//! `kafka-protocol`).
//!
//! **Messages**: [`Commit`] (commit now and answer when the broker
//! acknowledged: `enable_auto_commit = false`), [`Report`] (remember; the
//! interval commits it: `enable_auto_commit = true`), [`Flush`] (commit
//! whatever is pending; shutdown).
//!
//! **Ordering**: commits go out one at a time, in order; a partition's
//! committed offset never goes backwards (a lower offset is ignored).
//!
//! **Supervision**: a failed commit leaves the offsets pending; the next one
//! retries them. The coordinator connection is re-established on demand.
//!
//! **Metrics**: `kafka_actors_consumer_commits_total{outcome}`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::Mutex;

use crate::config::KafkaConfig;
use crate::health::heartbeat::{Heart, Registration};
use crate::kafka::{Committer, GroupCoordinator, TopicPartition};
use crate::telemetry::metrics as m;

/// Commit these offsets now; answers once the broker acknowledged.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Commit(pub BTreeMap<TopicPartition, i64>);

/// Commit this offset for this partition now, even below what was
/// committed (an admin seek); answers once the broker acknowledged.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Rewind(pub TopicPartition, pub i64);

/// A partition's new watermark: committed at once, or on the interval with
/// auto-commit.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Report(pub BTreeMap<TopicPartition, i64>);

/// Commit whatever is pending now.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Flush;

/// The group membership changed: commit as `committer` from now on, and
/// only the partitions in `owned` (`None`: every partition, standalone).
/// Pending offsets of partitions no longer owned are dropped: their new
/// owner commits them (the commit fence).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetMember {
    /// Generation, member id and static id to commit with.
    pub committer: Committer,
    /// The partitions this member may commit.
    pub owned: Option<BTreeSet<TopicPartition>>,
}

#[derive(Debug, Default)]
struct State {
    coordinator: Option<GroupCoordinator>,
    committed: BTreeMap<TopicPartition, i64>,
    pending: BTreeMap<TopicPartition, i64>,
    /// Who commits, and what it may commit (`None`: everything).
    committer: Option<Committer>,
    owned: Option<BTreeSet<TopicPartition>>,
}

/// The offset committer; see the module documentation.
#[derive(Debug)]
pub struct OffsetCommitter {
    kafka: KafkaConfig,
    group: String,
    committer: Committer,
    interval: Option<Duration>,
    state: Arc<Mutex<State>>,
    /// A commit triggered by [`Report`] is in flight.
    committing: bool,
    /// Offsets arrived while it was: commit again when it is done.
    again: bool,
    /// Retry topics consumed beside their input topic (key order), by
    /// input topic: owning input partition `p` owns retry partition `p`.
    companions: Arc<BTreeMap<String, String>>,
    /// Where its heart registers, and the heart.
    registration: Option<Registration>,
    heart: Option<Arc<Heart>>,
}

impl OffsetCommitter {
    /// A committer for `group`; with `interval`, pending offsets are
    /// committed that often.
    pub fn new(kafka: KafkaConfig, group: String, interval: Option<Duration>) -> Self {
        Self {
            kafka,
            group,
            committer: Committer::standalone(),
            interval,
            state: Arc::new(Mutex::new(State::default())),
            committing: false,
            again: false,
            companions: Arc::default(),
            registration: None,
            heart: None,
        }
    }

    /// Sends heartbeats as `registration` says (see
    /// [`crate::health::heartbeat`]).
    pub fn with_heartbeats(mut self, registration: Option<Registration>) -> Self {
        self.registration = registration;
        self
    }

    /// Owning partition `p` of a key in `companions` (input topic -> retry
    /// topic) owns partition `p` of its retry topic too.
    pub fn with_companions(mut self, companions: BTreeMap<String, String>) -> Self {
        self.companions = Arc::new(companions);
        self
    }

    /// Commits what is pending now, or right after the commit in flight.
    fn commit_soon(&mut self, ctx: &mut Context<Self>) {
        if self.committing {
            self.again = true;
            return;
        }
        self.committing = true;
        ctx.spawn(
            self.commit_pending()
                .into_actor(self)
                .map(|result, act, ctx| {
                    act.committing = false;
                    if std::mem::take(&mut act.again) {
                        act.commit_soon(ctx);
                    } else if result.is_err() {
                        ctx.run_later(Duration::from_secs(1), |act, ctx| act.commit_soon(ctx));
                    }
                }),
        );
    }

    fn merge(state: &mut State, offsets: BTreeMap<TopicPartition, i64>) {
        for (tp, offset) in offsets {
            if state
                .owned
                .as_ref()
                .is_some_and(|owned| !owned.contains(&tp))
            {
                tracing::debug!(topic = %tp.0, partition = tp.1, offset, "not committing a partition this member no longer owns");
                continue;
            }
            let floor = state
                .committed
                .get(&tp)
                .copied()
                .max(state.pending.get(&tp).copied())
                .unwrap_or(i64::MIN);
            if offset > floor {
                state.pending.insert(tp, offset);
            }
        }
    }

    /// Commits everything pending; the shared state's lock keeps commits in
    /// order.
    fn commit_pending(&self) -> impl Future<Output = Result<(), String>> + 'static {
        let state = Arc::clone(&self.state);
        let kafka = self.kafka.clone();
        let group = self.group.clone();
        let standalone = self.committer.clone();
        async move {
            let mut state = state.lock().await;
            if state.pending.is_empty() {
                return Ok(());
            }
            let committer = state.committer.clone().unwrap_or(standalone);
            if state.coordinator.is_none() {
                let coordinator = GroupCoordinator::connect(&kafka, &group)
                    .await
                    .map_err(|e| e.to_string())?;
                state.coordinator = Some(coordinator);
            }
            let pending = state.pending.clone();
            let result = match state.coordinator.as_mut() {
                Some(c) => c.commit(&committer, &pending).await,
                None => return Err("no coordinator".to_owned()),
            };
            match result {
                Ok(()) => {
                    tracing::debug!(
                        group = %group,
                        generation = committer.generation,
                        member = %committer.member_id,
                        offsets = %pending
                            .iter()
                            .map(|((t, p), o)| format!("{t}/{p}={o}"))
                            .collect::<Vec<_>>()
                            .join(","),
                        "committed"
                    );
                    for (tp, offset) in pending {
                        if state.pending.get(&tp) == Some(&offset) {
                            state.pending.remove(&tp);
                        }
                        state.committed.insert(tp, offset);
                    }
                    metrics::counter!(m::CONSUMER_COMMITS_TOTAL, "outcome" => "ok").increment(1);
                    Ok(())
                }
                Err(e) => {
                    metrics::counter!(m::CONSUMER_COMMITS_TOTAL, "outcome" => e.label())
                        .increment(1);
                    // Reconnect next time: the coordinator may have moved.
                    state.coordinator = None;
                    tracing::warn!(group = %group, error = %e, "offset commit failed; will retry");
                    Err(e.to_string())
                }
            }
        }
    }
}

impl Actor for OffsetCommitter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.heart = self
            .registration
            .as_ref()
            .map(|r| r.start("committer", ctx));
        if let Some(interval) = self.interval {
            ctx.run_interval(interval, |act, ctx| {
                ctx.spawn(act.commit_pending().into_actor(act).map(|_, _, _| ()));
            });
        }
    }
}

impl Handler<Commit> for OffsetCommitter {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: Commit, _ctx: &mut Self::Context) -> Self::Result {
        let state = Arc::clone(&self.state);
        let commit = self.commit_pending();
        Box::pin(async move {
            Self::merge(&mut *state.lock().await, msg.0);
            commit.await
        })
    }
}

impl Handler<Rewind> for OffsetCommitter {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: Rewind, _ctx: &mut Self::Context) -> Self::Result {
        let state = Arc::clone(&self.state);
        let commit = self.commit_pending();
        Box::pin(async move {
            {
                let mut state = state.lock().await;
                let Rewind(tp, offset) = msg;
                if state
                    .owned
                    .as_ref()
                    .is_some_and(|owned| !owned.contains(&tp))
                {
                    return Err(format!("{}/{} is not owned by this member", tp.0, tp.1));
                }
                // Below the floor on purpose: forget what was committed.
                state.committed.remove(&tp);
                state.pending.insert(tp, offset);
            }
            commit.await
        })
    }
}

impl Handler<Report> for OffsetCommitter {
    type Result = ();

    fn handle(&mut self, msg: Report, ctx: &mut Self::Context) {
        let state = Arc::clone(&self.state);
        let merge = async move { Self::merge(&mut *state.lock().await, msg.0) }.into_actor(self);
        if self.interval.is_some() {
            ctx.spawn(merge);
        } else {
            ctx.spawn(merge.map(|(), act, ctx| act.commit_soon(ctx)));
        }
    }
}

impl Handler<SetMember> for OffsetCommitter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: SetMember, _ctx: &mut Self::Context) -> Self::Result {
        let state = Arc::clone(&self.state);
        let companions = Arc::clone(&self.companions);
        Box::pin(async move {
            let mut msg = msg;
            if let Some(owned) = &mut msg.owned {
                let retry: Vec<TopicPartition> = owned
                    .iter()
                    .filter_map(|(t, p)| companions.get(t).map(|r| (r.clone(), *p)))
                    .collect();
                owned.extend(retry);
            }
            let mut state = state.lock().await;
            if let Some(owned) = &msg.owned {
                state.pending.retain(|tp, _| owned.contains(tp));
            }
            state.committer = Some(msg.committer);
            state.owned = msg.owned;
        })
    }
}

impl Handler<Flush> for OffsetCommitter {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) -> Self::Result {
        Box::pin(self.commit_pending())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards() {
        let mut state = State::default();
        let tp = ("t".to_owned(), 0);
        state.committed.insert(tp.clone(), 10);
        OffsetCommitter::merge(&mut state, BTreeMap::from([(tp.clone(), 5)]));
        assert!(state.pending.is_empty());
        OffsetCommitter::merge(&mut state, BTreeMap::from([(tp.clone(), 12)]));
        OffsetCommitter::merge(&mut state, BTreeMap::from([(tp.clone(), 11)]));
        assert_eq!(state.pending[&tp], 12);
    }

    #[test]
    fn only_owned_partitions_are_committed() {
        let mut state = State {
            owned: Some(BTreeSet::from([("t".to_owned(), 1)])),
            ..State::default()
        };
        OffsetCommitter::merge(
            &mut state,
            BTreeMap::from([(("t".to_owned(), 0), 5), (("t".to_owned(), 1), 7)]),
        );
        assert_eq!(state.pending, BTreeMap::from([(("t".to_owned(), 1), 7)]));
    }
}
