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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::api::FailureKind;
use super::process::{Halt, HaltKind, InRecord, Outcome, process};
use super::router::Router;
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
    /// The result of every output (replies, forwards, dead letters) of the
    /// records handled.
    pub results: Results,
    /// The offset of the record that halted the batch, and why: it and the
    /// records after it in the batch were not handled.
    pub halt: Option<(i64, Halt)>,
    /// Those records, in offset order, to hand out again on resume.
    pub unhandled: Vec<InRecord>,
}

/// The partition resumes after a halt: take batches again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Resume;

/// The handler worker; see the module documentation.
pub struct HandlerWorker {
    router: Arc<Router>,
    pool: Addr<ProducerPool>,
    /// A record halted the partition: later batches are returned unhandled
    /// until [`Resume`], so that nothing overtakes the halted record.
    held: bool,
    restarts: u32,
    durations: HashMap<String, metrics::Histogram>,
}

impl std::fmt::Debug for HandlerWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerWorker")
            .field("restarts", &self.restarts)
            .finish_non_exhaustive()
    }
}

/// Pause before a restarted worker takes records again.
pub fn restart_backoff(restarts: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(restarts.saturating_sub(1).min(6)))
        .min(Duration::from_secs(5))
}

impl HandlerWorker {
    /// A worker routing with `router` and publishing through `pool`.
    pub fn new(router: Arc<Router>, pool: Addr<ProducerPool>) -> Self {
        Self {
            router,
            pool,
            held: false,
            restarts: 0,
            durations: HashMap::new(),
        }
    }
}

impl Actor for HandlerWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.restarts > 0 {
            // Hold the mailbox back for the backoff.
            ctx.wait(tokio::time::sleep(restart_backoff(self.restarts)).into_actor(self));
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
        let records = msg.records;
        let done = msg.done;
        if self.held {
            // Behind a halted record: handled after the partition resumes.
            let halt = records.first().map(|r| {
                (
                    r.offset,
                    Halt {
                        kind: HaltKind::Behind,
                        reason: "behind a halted record".to_owned(),
                    },
                )
            });
            let _ = done.send(BatchDone {
                results: Vec::new(),
                halt,
                unhandled: records,
            });
            return;
        }
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        let (topic, partition) = records
            .first()
            .map(|r| (r.topic.clone(), r.partition))
            .unwrap_or_default();
        // `wait`: the next batch starts only after this one.
        ctx.wait(
            async move {
                let mut outputs = Vec::new();
                // For each output, the index of its record.
                let mut owners = Vec::new();
                let mut results = Vec::with_capacity(records.len());
                let mut halt = None;
                let mut unhandled = Vec::new();
                for (i, record) in records.iter().enumerate() {
                    let started = Instant::now();
                    let processed = process(&router, record).await;
                    if let Outcome::Failed(kind) = processed.outcome {
                        tracing::debug!(
                            topic = %record.topic, partition = record.partition, offset = record.offset,
                            route = processed.route.as_deref().unwrap_or("-"),
                            kind = kind.as_str(), "handler failed; dead-lettering the record"
                        );
                    }
                    results.push((processed.route, processed.outcome, started.elapsed()));
                    owners.extend(std::iter::repeat_n(i, processed.outputs.len()));
                    outputs.extend(processed.outputs);
                    if let Some(h) = processed.halt {
                        // The records after it wait with it.
                        halt = Some((record.offset, h));
                        unhandled = records[i..].to_vec();
                        break;
                    }
                }
                (outputs, owners, records, results, halt, unhandled)
            }
            .into_actor(self)
            .map(move |(outputs, owners, records, results, halt, unhandled), act, ctx| {
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
                let (tx, rx) = oneshot::channel();
                act.pool.do_send(Publish {
                    records: outputs,
                    done: tx,
                });
                let (router, pool) = (Arc::clone(&act.router), act.pool.clone());
                tokio::spawn(async move {
                    let results = rx.await.unwrap_or_else(|_| vec![dropped()]);
                    let results = dead_letter_refused(&router, &pool, &records, &owners, results).await;
                    let _ = done.send(BatchDone {
                        results,
                        halt,
                        unhandled,
                    });
                });
                let mut panicked = false;
                let mut outcomes: HashMap<(Option<String>, &'static str), u64> = HashMap::new();
                // One warning per batch, route and class (a flood of bad
                // records must not become a flood of log lines); each record
                // at debug level above.
                let mut dead: HashMap<(Option<String>, &'static str), (u64, i64, i64)> =
                    HashMap::new();
                for ((route, outcome, _), offset) in results.iter().zip(&offsets) {
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
                for (route, outcome, elapsed) in results {
                    panicked |= outcome == Outcome::Failed(FailureKind::Panic);
                    let label = route.clone().unwrap_or_else(|| "-".to_owned());
                    act.durations
                        .entry(label.clone())
                        .or_insert_with(|| {
                            metrics::histogram!(m::HANDLER_DURATION_SECONDS, "route" => label)
                        })
                        .record(elapsed.as_secs_f64());
                    *outcomes.entry((route, outcome.as_str())).or_default() += 1;
                }
                for ((route, outcome), n) in outcomes {
                    let route = route.unwrap_or_else(|| "-".to_owned());
                    metrics::counter!(m::HANDLER_RECORDS_TOTAL, "route" => route, "outcome" => outcome)
                        .increment(n);
                }
                if panicked {
                    ctx.stop();
                } else {
                    act.restarts = 0;
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

/// Why an output was refused for good because of its record, if it was: too
/// large for the broker (`oversize`), or addressed by the record's own
/// `reply_to` header to a topic that does not exist (`validation`). Other
/// failures (the broker, a configured topic missing) are not the record's.
fn refused(record: &InRecord, error: &ProduceError) -> Option<(FailureKind, String)> {
    match error {
        ProduceError::TooLarge { .. } => Some((FailureKind::Oversize, error.to_string())),
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
        _ => None,
    }
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
    for (i, result) in results.iter().enumerate() {
        let (Err(e), Some(&owner)) = (result, owners.get(i)) else {
            continue;
        };
        let record = &records[owner];
        let Some((kind, message)) = refused(record, e) else {
            continue;
        };
        refused_at[i] = true;
        if letters.iter().any(|(o, _)| *o == owner) {
            continue;
        }
        let mut letter = super::process::refused_letter(router, record, kind, message);
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
            "the broker refused an output because of its record; dead-lettering the record"
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
                    Err(e) => Err(ProduceError::Produce {
                        topic: String::new(),
                        partition: -1,
                        message: format!("the dead letter of an oversize output: {e}"),
                    }),
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
