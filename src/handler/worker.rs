//! The handler worker actor.
//!
//! **What it does**: runs [`process`] on every record a partition consumer
//! hands it (route, handler behind the panic boundary, outputs), then gives
//! the batch's outputs — replies, forwards, dead letters — to the producer
//! pool in one [`Publish`]. The pool answers the partition consumer
//! directly once the broker acknowledged them.
//!
//! **Messages**: in: [`HandleBatch`]; out: [`Publish`] to the pool of its
//! own arbiter.
//!
//! **Ordering**: batches are handled one at a time, in arrival order, and
//! records of a batch in their order, so a worker never reorders. A
//! partition consumer has `concurrency` workers (the largest of its topic's
//! routes) and sends every record with the same key to the same one: with
//! one worker the partition's order is kept, with more the order of each
//! key.
//!
//! **Supervision**: a handler that panics is caught at the boundary (the
//! record is dead-lettered with kind `panic`); the worker then restarts,
//! pausing 100 ms, doubling up to 5 s while panics repeat, counted in
//! `kafka_actors_actor_restarts_total{actor="handler_worker"}`. Its mailbox
//! survives the restart, so no record is lost or reordered.
//!
//! **Metrics**: `kafka_actors_handler_records_total{route,outcome}`,
//! `kafka_actors_handler_duration_seconds{route}`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::api::FailureKind;
use super::key_waits::KeyWaits;
use super::process::{
    Halt, HaltKind, InRecord, Later, Outcome, process, process_keyed, process_parked,
};
use super::router::Router;
use crate::config::FailureAction;
use crate::health::heartbeat::{self, Heart, Registration};
use crate::producer::{ProduceError, ProducerPool, Publish, Results};
use crate::telemetry::metrics as m;

/// Handle these records (in order) and publish their outputs; `done` gets
/// the outcome of the publish.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct HandleBatch {
    /// Records, in offset order.
    pub records: Vec<InRecord>,
    /// Gets the outcome once every output was acknowledged by the broker or
    /// failed for good.
    pub done: oneshot::Sender<BatchDone>,
}

/// How a batch ended.
#[derive(Debug)]
pub struct BatchDone {
    /// The offset of the record that halted the batch, and why: it and the
    /// records after it in the batch were not handled.
    pub halt: Option<(i64, Halt)>,
    /// Those records, in offset order, to hand out again on resume.
    pub unhandled: Vec<InRecord>,
    /// Records parked behind a failed record of their key (`ordering =
    /// "key"`): not handled yet; each receiver gets its record's outcome
    /// once it is handled (or is dropped when the worker forgets it).
    pub parked: Vec<(i64, oneshot::Receiver<BatchDone>)>,
    /// The first output (reply, forward, dead letter) of the records
    /// handled that could not be written, if one failed; else every output
    /// was acknowledged.
    pub failure: Option<OutputFailure>,
}

/// The partition resumes after a halt: take batches again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Resume;

/// The partition starts over from its watermark, or is drained: drop the
/// parked records (they are not committed, so they are fetched again) and
/// take batches again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Forget;

/// What a key's parked records wait behind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LaneKey {
    /// Records with this key.
    Key(Vec<u8>),
    /// A record without a key: it waits alone.
    Offset(i64),
}

impl LaneKey {
    fn of(record: &InRecord) -> Self {
        match &record.key {
            Some(k) => Self::Key(k.clone()),
            None => Self::Offset(record.offset),
        }
    }
}

/// A parked record and where its outcome goes.
#[derive(Debug)]
struct Parked {
    record: InRecord,
    done: oneshot::Sender<BatchDone>,
}

/// The parked records of one key, in offset order: the first failed and
/// waits for its next call; the others wait behind it.
#[derive(Debug)]
struct Lane {
    records: VecDeque<Parked>,
    /// The first record's failed calls (none after a `pause`: it starts
    /// over).
    later: Option<Later>,
    /// When the first record is called again.
    due: Instant,
    /// The timer that may run the lane (older timers are ignored).
    token: u64,
    /// That timer, cancelled when the lane is forgotten.
    timer: Option<SpawnHandle>,
    /// Its first record stopped the service: no timer, it waits for the
    /// drain.
    stopped: bool,
}

/// The handler worker; see the module documentation.
pub struct HandlerWorker {
    router: Arc<Router>,
    pool: Addr<ProducerPool>,
    /// A record halted the partition: later batches are returned unhandled
    /// until [`Resume`], so that nothing overtakes the halted record.
    held: bool,
    restarts: u32,
    durations: HashMap<String, metrics::Histogram>,
    /// Parked records by key (`ordering = "key"`).
    lanes: HashMap<LaneKey, Lane>,
    lane_token: u64,
    /// Publishes whose results are still to be handed back.
    publishing: Vec<tokio::task::JoinHandle<()>>,
    /// The key waits of its input partition, when its retry partition
    /// keeps key order ([`super::key_waits`]).
    waits: Option<Arc<KeyWaits>>,
    /// Where its heart registers, and the heart.
    registration: Option<Registration>,
    heart: Option<Arc<Heart>>,
}

impl std::fmt::Debug for HandlerWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerWorker")
            .field("restarts", &self.restarts)
            .field("lanes", &self.lanes.len())
            .finish_non_exhaustive()
    }
}

/// Pause before a restarted worker takes records again.
pub fn restart_backoff(restarts: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(restarts.saturating_sub(1).min(6)))
        .min(Duration::from_secs(5))
}

/// One handled (or parked, or halted) record, for logs and metrics.
type Handled = (i64, Option<String>, Outcome, Duration);

impl HandlerWorker {
    /// A worker routing with `router` and publishing through `pool`.
    pub fn new(router: Arc<Router>, pool: Addr<ProducerPool>) -> Self {
        Self {
            router,
            pool,
            held: false,
            restarts: 0,
            durations: HashMap::new(),
            lanes: HashMap::new(),
            lane_token: 0,
            publishing: Vec::new(),
            waits: None,
            registration: None,
            heart: None,
        }
    }

    /// A worker of an input partition whose retry partition keeps key
    /// order: records of keys in `waits` go behind them.
    pub fn with_waits(mut self, waits: Option<Arc<KeyWaits>>) -> Self {
        self.waits = waits;
        self
    }

    /// Sends heartbeats as `registration` says (busy while a batch or a
    /// lane runs: the partition's stall detection judges those).
    pub fn with_heartbeats(mut self, registration: Option<Registration>) -> Self {
        self.registration = registration;
        self
    }

    /// Runs the lane of `key` when it is due.
    fn arm(&mut self, key: LaneKey, ctx: &mut Context<Self>) {
        let Some(lane) = self.lanes.get_mut(&key) else {
            return;
        };
        if let Some(timer) = lane.timer.take() {
            ctx.cancel_future(timer);
        }
        if lane.stopped {
            return;
        }
        self.lane_token += 1;
        lane.token = self.lane_token;
        let token = lane.token;
        let wait = lane.due.saturating_duration_since(Instant::now());
        lane.timer = Some(ctx.run_later(wait, move |act, ctx| act.run_lane(key, token, ctx)));
    }

    /// Parks `records` (in offset order) behind the lane of `key`, creating
    /// it, due after `wait`, if there is none; returns where their outcomes
    /// will go.
    fn park(
        &mut self,
        key: LaneKey,
        later: Option<Later>,
        wait: Duration,
        records: Vec<InRecord>,
        ctx: &mut Context<Self>,
    ) -> Vec<(i64, oneshot::Receiver<BatchDone>)> {
        let mut receivers = Vec::with_capacity(records.len());
        let fresh = !self.lanes.contains_key(&key);
        let lane = self.lanes.entry(key.clone()).or_insert_with(|| Lane {
            records: VecDeque::new(),
            later,
            due: Instant::now() + wait,
            token: 0,
            timer: None,
            stopped: false,
        });
        for record in records {
            let (done, rx) = oneshot::channel();
            receivers.push((record.offset, rx));
            lane.records.push_back(Parked { record, done });
        }
        if fresh {
            self.arm(key, ctx);
        }
        receivers
    }

    /// The lane of `key` is due: call its first record again, then handle
    /// the records behind it in order until one fails again (it becomes
    /// the lane's first and waits) or the lane is empty.
    fn run_lane(&mut self, key: LaneKey, token: u64, ctx: &mut Context<Self>) {
        if self.lanes.get(&key).is_none_or(|l| l.token != token) {
            return;
        }
        if ctx.waiting() {
            // A batch's `wait` was queued in this poll and has not run yet:
            // run after it (a lane run queued now would go first, and a
            // panic in it would drop that batch).
            self.arm(key, ctx);
            return;
        }
        let Some(lane) = self.lanes.remove(&key) else {
            return;
        };
        let router = Arc::clone(&self.router);
        let pause = router.pause();
        let at = lane
            .records
            .front()
            .map(|p| (p.record.topic.clone(), p.record.partition))
            .unwrap_or_default();
        // `wait`: no batch is handled meanwhile, so no record of this key
        // can overtake the lane.
        ctx.wait(
            heartbeat::busy(self.heart.as_ref(), async move {
                let mut waiting = lane.records;
                let mut later = lane.later;
                let mut ran: Vec<Parked> = Vec::new();
                let mut outputs = Vec::new();
                let mut owners = Vec::new();
                let mut handled: Vec<Handled> = Vec::new();
                // How long the records left wait, and with which failures.
                let mut again = None;
                while let Some(first) = waiting.front() {
                    let started = Instant::now();
                    let processed = match later.take() {
                        Some(l) => process_parked(&router, &first.record, l).await,
                        None => process(&router, &first.record).await,
                    };
                    handled.push((
                        first.record.offset,
                        processed.route.clone(),
                        processed.outcome,
                        started.elapsed(),
                    ));
                    if let Outcome::Parked(l) = processed.outcome {
                        again = Some((Some(l), l.delay));
                        break;
                    }
                    if let Some(h) = processed.halt {
                        if h.kind == HaltKind::Stop {
                            tracing::error!(
                                topic = %first.record.topic, partition = first.record.partition,
                                offset = first.record.offset, reason = %h.reason,
                                "stopping the service; the parked records of this key are not committed"
                            );
                            router.stop_service(h.reason);
                            // No timer: the lane waits for the drain.
                            again = Some((None, Duration::MAX));
                        } else {
                            tracing::error!(
                                topic = %first.record.topic, partition = first.record.partition,
                                offset = first.record.offset, reason = %h.reason, resume_in = ?pause,
                                "key paused at a failed record; records with other keys go on"
                            );
                            again = Some((None, pause));
                        }
                        break;
                    }
                    owners.extend(std::iter::repeat_n(ran.len(), processed.outputs.len()));
                    outputs.extend(processed.outputs);
                    if let Some(p) = waiting.pop_front() {
                        ran.push(p);
                    }
                }
                (waiting, again, ran, outputs, owners, handled)
            })
            .into_actor(self)
            .map(move |(waiting, again, ran, outputs, owners, handled), act, ctx| {
                if let Some((later, wait)) = again
                    && !waiting.is_empty()
                {
                    act.lanes.insert(
                        key.clone(),
                        Lane {
                            records: waiting,
                            later,
                            due: Instant::now() + wait.min(Duration::from_secs(86_400)),
                            token: 0,
                            timer: None,
                            stopped: wait == Duration::MAX,
                        },
                    );
                    act.arm(key, ctx);
                }
                let (records, dones): (Vec<InRecord>, Vec<_>) =
                    ran.into_iter().map(|p| (p.record, p.done)).unzip();
                act.publish(outputs, owners, records, move |failure| {
                    for done in dones {
                        let _ = done.send(BatchDone {
                            halt: None,
                            unhandled: Vec::new(),
                            parked: Vec::new(),
                            failure: failure.clone(),
                        });
                    }
                });
                if act.account(&at, handled) {
                    ctx.stop();
                }
            }),
        );
    }

    /// Publishes `outputs` (the `owners[i]`-th of `records` wrote the
    /// `i`-th), dead-letters the records whose outputs the broker refused
    /// because of them, and gives the results to `then`.
    fn publish(
        &mut self,
        outputs: Vec<crate::producer::OutRecord>,
        owners: Vec<usize>,
        records: Vec<InRecord>,
        then: impl FnOnce(Option<OutputFailure>) + Send + 'static,
    ) {
        // A replay's outputs say so: a one-off replay's all, and those of
        // records a replaying seek marked.
        let mut outputs = outputs;
        let one_off = self.router.replay().map(|id| id.as_bytes().to_vec());
        for (o, owner) in outputs.iter_mut().zip(&owners) {
            let id = one_off.clone().or_else(|| {
                records
                    .get(*owner)
                    .and_then(|r| r.headers.get(super::router::REPLAY_HEADER).cloned())
            });
            if let Some(id) = id {
                o.headers
                    .insert(super::router::REPLAY_HEADER.to_owned(), id);
            }
        }
        let (tx, rx) = oneshot::channel();
        self.pool.do_send(Publish {
            records: outputs,
            done: tx,
        });
        let (router, pool) = (Arc::clone(&self.router), self.pool.clone());
        self.publishing.retain(|p| !p.is_finished());
        self.publishing.push(tokio::spawn(async move {
            let results = rx.await.unwrap_or_else(|_| vec![dropped()]);
            let results = dead_letter_refused(&router, &pool, &records, &owners, results).await;
            then(output_failure(&router, &records, &owners, &results));
        }));
    }

    /// Logs the batch's dead letters (one warning per route and class) and
    /// counts its outcomes and durations; whether a handler panicked.
    fn account(&mut self, (topic, partition): &(String, i32), handled: Vec<Handled>) -> bool {
        let mut panicked = false;
        let mut outcomes: HashMap<(Option<String>, &'static str), u64> = HashMap::new();
        // One warning per batch, route and class (a flood of bad records
        // must not become a flood of log lines); each record at debug level.
        let mut dead: HashMap<(Option<String>, &'static str), (u64, i64, i64)> = HashMap::new();
        for (offset, route, outcome, _) in &handled {
            if let Outcome::Failed(kind) = outcome {
                let e = dead
                    .entry((route.clone(), kind.as_str()))
                    .or_insert((0, *offset, *offset));
                e.0 += 1;
                e.2 = *offset;
            }
        }
        for ((route, kind), (n, first, last)) in dead {
            tracing::warn!(
                topic = %topic, partition, first_offset = first, last_offset = last,
                route = route.as_deref().unwrap_or("-"), kind,
                "{n} record(s) failed and were dead-lettered"
            );
        }
        for (_, route, outcome, elapsed) in handled {
            panicked |= outcome == Outcome::Failed(FailureKind::Panic);
            let label = route.clone().unwrap_or_else(|| "-".to_owned());
            self.durations
                .entry(label.clone())
                .or_insert_with(
                    || metrics::histogram!(m::HANDLER_DURATION_SECONDS, "route" => label),
                )
                .record(elapsed.as_secs_f64());
            *outcomes.entry((route, outcome.as_str())).or_default() += 1;
        }
        for ((route, outcome), n) in outcomes {
            let route = route.unwrap_or_else(|| "-".to_owned());
            metrics::counter!(m::HANDLER_RECORDS_TOTAL, "route" => route, "outcome" => outcome)
                .increment(n);
        }
        if !panicked {
            self.restarts = 0;
        }
        panicked
    }
}

impl Actor for HandlerWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.heart = self
            .registration
            .as_ref()
            .map(|r| r.start("handler_worker", ctx));
        if self.restarts > 0 {
            // Hold the mailbox back for the backoff.
            let backoff = tokio::time::sleep(restart_backoff(self.restarts));
            ctx.wait(heartbeat::busy(self.heart.as_ref(), backoff).into_actor(self));
        }
        // Lanes survive a restart; their timers went with the old context.
        let keys: Vec<LaneKey> = self.lanes.keys().cloned().collect();
        for key in keys {
            self.arm(key, ctx);
        }
    }
}

impl Supervised for HandlerWorker {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.restarts += 1;
        metrics::counter!(m::ACTOR_RESTARTS_TOTAL, "actor" => "handler_worker").increment(1);
        tracing::warn!(
            restarts = self.restarts,
            backoff = ?restart_backoff(self.restarts),
            "handler worker restarting after a panic"
        );
    }
}

impl Handler<HandleBatch> for HandlerWorker {
    type Result = ();

    fn handle(&mut self, msg: HandleBatch, ctx: &mut Self::Context) {
        let router = Arc::clone(&self.router);
        let done = msg.done;
        if self.held {
            // Behind a halted record: handled after the partition resumes.
            let halt = msg.records.first().map(|r| {
                (
                    r.offset,
                    Halt {
                        kind: HaltKind::Behind,
                        reason: "behind a halted record".to_owned(),
                    },
                )
            });
            let _ = done.send(BatchDone {
                halt,
                unhandled: msg.records,
                parked: Vec::new(),
                failure: None,
            });
            return;
        }
        let at = msg
            .records
            .first()
            .map(|r| (r.topic.clone(), r.partition))
            .unwrap_or_default();
        // Records whose key has parked records wait behind them.
        let mut parked = Vec::new();
        let mut records = Vec::with_capacity(msg.records.len());
        for r in msg.records {
            let key = LaneKey::of(&r);
            if self.lanes.contains_key(&key) {
                parked.extend(self.park(key, None, Duration::ZERO, vec![r], ctx));
            } else {
                records.push(r);
            }
        }
        let waits = self.waits.clone();
        // `wait`: the next batch starts only after this one.
        ctx.wait(
            heartbeat::busy(self.heart.as_ref(), async move {
                let mut outputs = Vec::new();
                // For each output, the index of its record.
                let mut owners = Vec::new();
                let mut handled: Vec<Handled> = Vec::with_capacity(records.len());
                let mut halt = None;
                let mut unhandled = Vec::new();
                // Keys that failed in this batch, with their records.
                let mut parking: Vec<(LaneKey, Later, Vec<InRecord>)> = Vec::new();
                for (i, record) in records.iter().enumerate() {
                    let key = LaneKey::of(record);
                    if let Some((_, _, behind)) = parking.iter_mut().find(|(k, _, _)| *k == key) {
                        behind.push(record.clone());
                        continue;
                    }
                    let started = Instant::now();
                    let processed = process_keyed(&router, record, waits.as_deref()).await;
                    if let Outcome::Failed(kind) = processed.outcome {
                        tracing::debug!(
                            topic = %record.topic, partition = record.partition, offset = record.offset,
                            route = processed.route.as_deref().unwrap_or("-"),
                            kind = kind.as_str(), "handler failed; dead-lettering the record"
                        );
                    }
                    handled.push((record.offset, processed.route, processed.outcome, started.elapsed()));
                    if let Outcome::Parked(later) = processed.outcome {
                        parking.push((key, later, vec![record.clone()]));
                        continue;
                    }
                    owners.extend(std::iter::repeat_n(i, processed.outputs.len()));
                    outputs.extend(processed.outputs);
                    if let Some(h) = processed.halt {
                        // The records after it wait with it.
                        halt = Some((record.offset, h));
                        unhandled = records[i..].to_vec();
                        break;
                    }
                }
                (outputs, owners, records, handled, halt, unhandled, parking)
            })
            .into_actor(self)
            .map(move |(outputs, owners, records, handled, halt, unhandled, parking), act, ctx| {
                if let Some((offset, h)) = &halt {
                    act.held = true;
                    match h.kind {
                        HaltKind::Stop => {
                            tracing::error!(offset, reason = %h.reason, "stopping the service");
                            act.router.stop_service(h.reason.clone());
                        }
                        HaltKind::Pause => {
                            tracing::error!(offset, reason = %h.reason, "partition paused");
                        }
                        HaltKind::NotDue(_) | HaltKind::Behind => {}
                    }
                }
                for (key, later, behind) in parking {
                    parked.extend(act.park(key, Some(later), later.delay, behind, ctx));
                }
                act.publish(outputs, owners, records, move |failure| {
                    let _ = done.send(BatchDone {
                        halt,
                        unhandled,
                        parked,
                        failure,
                    });
                });
                if act.account(&at, handled) {
                    ctx.stop();
                }
            }),
        );
    }
}

fn dropped() -> Result<crate::producer::Written, ProduceError> {
    Err(ProduceError::Produce {
        topic: String::new(),
        partition: -1,
        message: "the producer pool dropped the batch".to_owned(),
    })
}

/// Why a record is dead-lettered because of an output that failed, if it
/// is: the output is too large for the broker (`oversize`), or addressed by
/// the record's own `reply_to` header to a topic that does not exist
/// (`validation`), or it failed otherwise (`infrastructure`,
/// `authorization`) and that class's action on the record's route is
/// `dlq`.
fn refused(
    router: &Router,
    record: &InRecord,
    error: &ProduceError,
) -> Option<(FailureKind, String)> {
    match error {
        ProduceError::TooLarge { .. } => {
            (super::process::action_for(router, record, FailureKind::Oversize)
                == FailureAction::Dlq)
                .then(|| (FailureKind::Oversize, error.to_string()))
        }
        ProduceError::UnknownTopic { topic }
            if record
                .headers
                .get(super::envelope::REPLY_TO)
                .map(Vec::as_slice)
                == Some(topic.as_bytes()) =>
        {
            Some((
                FailureKind::Validation,
                format!("its reply_to header names topic {topic}, which does not exist"),
            ))
        }
        _ => {
            let kind = output_class(error);
            (super::process::action_for(router, record, kind) == FailureAction::Dlq)
                .then(|| (kind, error.to_string()))
        }
    }
}

/// The topic a failed produce was for, when the error names one.
fn produce_topic(e: &ProduceError) -> Option<&str> {
    match e {
        ProduceError::Produce { topic, .. }
        | ProduceError::TooLarge { topic, .. }
        | ProduceError::Unauthorized { topic, .. }
        | ProduceError::UnknownTopic { topic }
        | ProduceError::Partition { topic, .. } => Some(topic),
        _ => None,
    }
}

/// The failure of a dead letter written for a refused output, keeping its
/// kind (so that its class, and so its action, stay right).
fn letter_failed(e: &ProduceError) -> ProduceError {
    let message = format!("the dead letter of a refused output: {e}");
    match e {
        ProduceError::Unauthorized {
            topic, partition, ..
        } => ProduceError::Unauthorized {
            topic: topic.clone(),
            partition: *partition,
            message,
        },
        ProduceError::TooLarge {
            topic,
            partition,
            bytes,
            ..
        } => ProduceError::TooLarge {
            topic: topic.clone(),
            partition: *partition,
            bytes: *bytes,
            message,
        },
        _ => ProduceError::Produce {
            topic: produce_topic(e).unwrap_or_default().to_owned(),
            partition: -1,
            message,
        },
    }
}

/// The class of an output failure that is not the record's own doing.
fn output_class(error: &ProduceError) -> FailureKind {
    match error {
        ProduceError::TooLarge { .. } => FailureKind::Oversize,
        ProduceError::Unauthorized { .. } => FailureKind::Authorization,
        _ => FailureKind::Infrastructure,
    }
}

/// An output of a batch (or of a parked record) that could not be written,
/// and what its class's action says the partition does.
#[derive(Debug, Clone)]
pub struct OutputFailure {
    /// `infrastructure`, `authorization` or `oversize`.
    pub kind: FailureKind,
    /// Its action on the record's route (`retry`: restart from the
    /// watermark after a backoff; `pause`: after `pipeline.pause_ms`;
    /// `stop`: stop the service).
    pub action: FailureAction,
    /// The record whose output failed (-1: unknown).
    pub offset: i64,
    /// The error.
    pub error: String,
}

impl OutputFailure {
    /// A batch or record the worker could not finish (it was dropped).
    pub fn dropped(what: &str) -> Self {
        Self {
            kind: FailureKind::Infrastructure,
            action: FailureAction::Retry,
            offset: -1,
            error: format!("the handler worker dropped {what}"),
        }
    }
}

/// The first output in `results` that failed, with its class and action.
fn output_failure(
    router: &Router,
    records: &[InRecord],
    owners: &[usize],
    results: &Results,
) -> Option<OutputFailure> {
    results.iter().enumerate().find_map(|(i, result)| {
        let error = result.as_ref().err()?;
        let kind = output_class(error);
        let record = owners.get(i).and_then(|&o| records.get(o));
        Some(OutputFailure {
            kind,
            action: record.map_or_else(
                || router.unrouted_actions().of(kind),
                |r| super::process::action_for(router, r, kind),
            ),
            offset: record.map_or(-1, |r| r.offset),
            error: error.to_string(),
        })
    })
}

/// Outputs refused because of their record ([`refused`]): those records are
/// dead-lettered instead, and count as handled once their dead letters are
/// acknowledged; other outputs' results are kept.
async fn dead_letter_refused(
    router: &Router,
    pool: &Addr<ProducerPool>,
    records: &[InRecord],
    owners: &[usize],
    mut results: Results,
) -> Results {
    let mut letters: Vec<(usize, crate::producer::OutRecord)> = Vec::new();
    let mut refused_at = vec![false; results.len()];
    // A record with a failed output that does not make it a dead letter
    // fails as a whole: no letter for it (a re-run would write another).
    let mut kept: Vec<usize> = Vec::new();
    let mut candidates = Vec::new();
    for (i, result) in results.iter().enumerate() {
        let (Err(e), Some(&owner)) = (result, owners.get(i)) else {
            continue;
        };
        let record = &records[owner];
        let refusal = refused(router, record, e).and_then(|(kind, message)| {
            let letter = super::process::refused_letter(router, record, kind, message);
            // A failed dead letter is not dead-lettered again (that would
            // lose its own class and message), unless it is too large.
            let own_letter = produce_topic(e) == Some(letter.topic.as_str());
            (!own_letter || matches!(e, ProduceError::TooLarge { .. })).then_some((kind, letter))
        });
        match refusal {
            Some((kind, letter)) => candidates.push((i, owner, kind, letter)),
            None => kept.push(owner),
        }
    }
    for (i, owner, kind, mut letter) in candidates {
        if kept.contains(&owner) {
            continue;
        }
        let (e, record) = (&results[i], &records[owner]);
        let Err(e) = e else { continue };
        refused_at[i] = true;
        if letters.iter().any(|(o, _)| *o == owner) {
            continue;
        }
        if let ProduceError::TooLarge { topic, bytes, .. } = e
            && *topic == letter.topic
        {
            // The refused output was this record's dead letter: the value
            // itself is too large for the dead-letter topic. Keep the
            // headers and say so; without this the partition could never
            // get past the record.
            letter.value = None;
            letter.headers.insert(
                super::dead_letter::VALUE_DROPPED.to_owned(),
                format!("{bytes} bytes; larger than {topic} accepts").into_bytes(),
            );
        }
        tracing::warn!(
            topic = %record.topic, partition = record.partition, offset = record.offset,
            class = kind.as_str(), error = %e,
            "an output of the record could not be written; dead-lettering the record"
        );
        letters.push((owner, letter));
    }
    if letters.is_empty() {
        return results;
    }
    let (tx, rx) = oneshot::channel();
    let (owners_of_letters, letters): (Vec<usize>, Vec<_>) = letters.into_iter().unzip();
    pool.do_send(Publish {
        records: letters,
        done: tx,
    });
    let written = rx.await.unwrap_or_else(|_| vec![dropped()]);
    for (owner, letter_result) in owners_of_letters.iter().zip(written) {
        for (i, result) in results.iter_mut().enumerate() {
            if owners.get(i) == Some(owner) && refused_at[i] {
                *result = match &letter_result {
                    Ok(written) => Ok(*written),
                    Err(e) => Err(letter_failed(e)),
                };
            }
        }
    }
    results
}

impl Handler<Resume> for HandlerWorker {
    type Result = ();

    fn handle(&mut self, _msg: Resume, _ctx: &mut Self::Context) {
        self.held = false;
    }
}

impl Handler<Forget> for HandlerWorker {
    type Result = ResponseFuture<()>;

    /// Answers once the publishes already started are done (a lane run
    /// never overlaps: it is a `wait`), so that a drained partition's
    /// next owner never races a late output of this one.
    fn handle(&mut self, _msg: Forget, ctx: &mut Self::Context) -> Self::Result {
        self.held = false;
        // Dropping the senders tells nobody: the partition ignores
        // completions from before its restart or drain.
        for (_, lane) in self.lanes.drain() {
            if let Some(timer) = lane.timer {
                ctx.cancel_future(timer);
            }
        }
        let publishing = std::mem::take(&mut self.publishing);
        Box::pin(async move {
            for p in publishing {
                let _ = p.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_backoff_doubles_from_100_ms_up_to_5_s() {
        assert_eq!(restart_backoff(1), Duration::from_millis(100));
        assert_eq!(restart_backoff(2), Duration::from_millis(200));
        assert_eq!(restart_backoff(4), Duration::from_millis(800));
        assert_eq!(restart_backoff(7), Duration::from_secs(5));
        assert_eq!(restart_backoff(1000), Duration::from_secs(5));
    }
}
