//! What happens to one consumed record: route it, run its handler behind
//! the panic boundary, and turn the result into output records (replies,
//! forwards, or a dead letter). No actors, no I/O: the handler worker
//! publishes the outputs, and the partition consumer counts the record as
//! handled only once the broker acknowledged them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::api::{Context, Failure, FailureKind, invoke};
use super::dead_letter::{self, Origin};
use super::envelope;
use super::key_waits::KeyWaits;
use super::retry_topic;
use super::router::{Route, Router};
use crate::config::{FailureAction, Unrouted};
use crate::producer::OutRecord;
use crate::telemetry::metrics as m;

/// A consumed record, as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp, milliseconds since the epoch (absent in tests and tools
    /// that build records by hand).
    pub timestamp: Option<i64>,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: BTreeMap<String, Vec<u8>>,
}

/// How a record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded (with or without output).
    Handled,
    /// It failed and goes to the dead-letter topic.
    Failed(FailureKind),
    /// No route takes it; skipped.
    Skipped,
    /// No route takes it; dead-lettered.
    UnroutedDeadLettered,
    /// Its failure's action (or the open circuit breaker) pauses the
    /// partition at it; not handled.
    Paused,
    /// Its failure's action stops the service; not handled.
    Stopped,
    /// It failed and went to its route's retry topic.
    RetryScheduled(FailureKind),
    /// A retry record not due yet: its partition waits.
    NotDue,
    /// It failed, its route keeps key order, and it waits in its handler
    /// worker with the later records of its key (`ordering = "key"`).
    Parked(Later),
    /// Its key has a record waiting in its route's retry topic (`ordering
    /// = "key"`): it went there too, behind that one, without a call.
    Deferred,
}

/// A parked record, and when to call it (again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Later {
    /// How long to wait before the next call.
    pub delay: std::time::Duration,
    /// Calls so far.
    pub attempts: u32,
    /// When the first call failed (none for a retry record that was not
    /// called yet).
    pub first_failure: Option<chrono::DateTime<chrono::Utc>>,
}

/// Why a record stops its partition instead of counting as handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    /// What the partition does.
    pub kind: HaltKind,
    /// What happened, for the log and the alert.
    pub reason: String,
}

/// What a halted partition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltKind {
    /// Pause for `pipeline.pause_ms` (an alert), then take the record again.
    Pause,
    /// Stay stopped: the service shuts down.
    Stop,
    /// A retry record that is not due yet: wait this long (normal work).
    NotDue(std::time::Duration),
    /// A batch behind a halted record of the same worker, returned
    /// unhandled: the halt that matters comes with that record.
    Behind,
}

impl HaltKind {
    /// Which halt decides when several reach one partition.
    pub fn rank(self) -> u8 {
        match self {
            Self::Behind => 0,
            Self::NotDue(_) => 1,
            Self::Pause => 2,
            Self::Stop => 3,
        }
    }
}

impl Outcome {
    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::Failed(kind) => kind.as_str(),
            Self::Skipped => "unrouted_skipped",
            Self::UnroutedDeadLettered => "unrouted_dead_lettered",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::RetryScheduled(_) => "retry_scheduled",
            Self::NotDue => "not_due",
            Self::Parked(_) => "parked",
            Self::Deferred => "deferred",
        }
    }
}

/// The result of processing one record.
#[derive(Debug, Clone)]
pub struct Processed {
    /// The route that took it, if any.
    pub route: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Records to publish before the record counts as handled.
    pub outputs: Vec<OutRecord>,
    /// Set when the record must stop its partition (or the service).
    pub halt: Option<Halt>,
}

fn halted(route: &Route, stop: bool, reason: String) -> Processed {
    Processed {
        route: Some(route.name.clone()),
        outcome: if stop {
            Outcome::Stopped
        } else {
            Outcome::Paused
        },
        outputs: Vec::new(),
        halt: Some(Halt {
            kind: if stop {
                HaltKind::Stop
            } else {
                HaltKind::Pause
            },
            reason,
        }),
    }
}

/// While the route's circuit breaker is open, its records wait.
fn breaker_holds(route: &Route, record: &InRecord) -> Option<Processed> {
    let open = route
        .breaker
        .as_ref()
        .is_some_and(|b| b.is_open(std::time::Instant::now()));
    open.then(|| {
        halted(
            route,
            false,
            format!(
                "the circuit breaker of routes.{} is open; {}/{}@{} waits",
                route.name, record.topic, record.partition, record.offset
            ),
        )
    })
}

/// A record of `route` failed for good (its retries, if any, are spent):
/// its class's action says whether it is dead-lettered, pauses its
/// partition or stops the service; the circuit breaker may pause instead of
/// dead-lettering.
fn failed(
    router: &Router,
    route: &Route,
    record: &InRecord,
    failure: &Failure,
    tries: (u32, chrono::DateTime<chrono::Utc>),
) -> Processed {
    let class = failure.kind.as_str();
    let at = format!("{}/{}@{}", record.topic, record.partition, record.offset);
    match route.actions.of_failure(failure) {
        action @ (FailureAction::Pause | FailureAction::Stop) => halted(
            route,
            action == FailureAction::Stop,
            format!(
                "{class} failure of routes.{} at {at}: {}; the failure action for {class} is {}",
                route.name,
                failure.message,
                action.as_str()
            ),
        ),
        FailureAction::Retry | FailureAction::Dlq => {
            if let Some(trip) = route.breaker.as_ref().and_then(|b| {
                b.failure(
                    std::time::Instant::now(),
                    failure.kind,
                    (&record.topic, record.partition, record.offset),
                )
            }) {
                return halted(
                    route,
                    false,
                    format!(
                        "the circuit breaker of routes.{} opened ({trip}) at {at}, a {class} \
                         failure: {}",
                        route.name, failure.message
                    ),
                );
            }
            Processed {
                route: Some(route.name.clone()),
                outcome: Outcome::Failed(failure.kind),
                outputs: vec![dead_letter_of(
                    router,
                    record,
                    &route.dlq_topic,
                    (&route.name, &route.handler_name),
                    failure,
                    tries,
                )],
                halt: None,
            }
        }
    }
}

/// The request in `record`, its route, and the event type that chose it
/// (the envelope's, else the `event_type` header of a record that is not
/// a readable request).
fn read_and_route<'r>(
    router: &'r Router,
    record: &InRecord,
) -> (
    Result<envelope::Request, envelope::EnvelopeError>,
    Option<&'r Arc<Route>>,
    Option<String>,
) {
    let request = envelope::read(&record.headers, record.value.as_deref());
    let event_type = match &request {
        Ok(r) => r.event_type.clone(),
        Err(_) => record
            .headers
            .get(envelope::EVENT_TYPE)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(ToOwned::to_owned),
    };
    let route = router.route(&record.topic, event_type.as_deref());
    (request, route, event_type)
}

/// Routes and handles `record`.
pub async fn process(router: &Router, record: &InRecord) -> Processed {
    process_keyed(router, record, None).await
}

/// [`process`], for a record of an input partition whose retry partition
/// keeps key order: `waits` says which keys have records waiting there (a
/// record of one goes there too, behind them), and gets the keys of the
/// records this call writes there.
pub async fn process_keyed(
    router: &Router,
    record: &InRecord,
    waits: Option<&KeyWaits>,
) -> Processed {
    if is_retry_record(router, record) {
        return process_retry(router, record, None).await;
    }
    process_from(router, record, None, waits).await
}

fn is_retry_record(router: &Router, record: &InRecord) -> bool {
    router.is_retry_topic(&record.topic) && record.headers.contains_key(retry_topic::ROUTE)
}

/// Calls the handler (again) for a record that was [`Outcome::Parked`].
pub async fn process_parked(router: &Router, record: &InRecord, parked: Later) -> Processed {
    if is_retry_record(router, record) {
        return process_retry(router, record, Some(parked)).await;
    }
    process_from(router, record, Some(parked), None).await
}

/// Routes and handles `record`, after the failed calls of `parked`.
async fn process_from(
    router: &Router,
    record: &InRecord,
    parked: Option<Later>,
    waits: Option<&KeyWaits>,
) -> Processed {
    let (request, route, event_type) = read_and_route(router, record);
    let event_type = event_type.as_deref();
    let Some(route) = route else {
        return match router.unrouted() {
            Unrouted::Skip => Processed {
                route: None,
                outcome: Outcome::Skipped,
                outputs: Vec::new(),
                halt: None,
            },
            Unrouted::DeadLetter => {
                let failure = Failure::new(
                    FailureKind::Validation,
                    format!("no route for event type {}", event_type.unwrap_or("(none)")),
                );
                Processed {
                    route: None,
                    outcome: Outcome::UnroutedDeadLettered,
                    outputs: vec![dead_letter_of(
                        router,
                        record,
                        &dead_letter::default_topic(&record.topic),
                        ("", ""),
                        &failure,
                        (0, chrono::Utc::now()),
                    )],
                    halt: None,
                }
            }
        };
    };
    // Key order through the retry topic: the key's waits, if it has any.
    let keyed = match (waits, record.key.as_deref(), &route.retry_topic) {
        (Some(waits), Some(key), Some(retry_topic)) if route.key_order => {
            Some((waits, key, retry_topic))
        }
        _ => None,
    };
    if let Some((waits, key, retry_topic)) = keyed
        && waits.is_waiting(key)
    {
        waits.add(key);
        tracing::debug!(
            topic = %record.topic, partition = record.partition, offset = record.offset,
            route = %route.name, retry_topic = %retry_topic,
            "a record of its key waits in the retry topic; written behind it"
        );
        return Processed {
            route: Some(route.name.clone()),
            outcome: Outcome::Deferred,
            outputs: vec![retry_topic::behind(retry_topic, &route.name, record)],
            halt: None,
        };
    }
    if let Some(held) = breaker_holds(route, record) {
        return held;
    }

    // The number of the call about to be made.
    let mut attempts: u32 = parked.map_or(0, |p| p.attempts) + 1;
    let mut first_failure = parked.and_then(|p| p.first_failure);
    let result = match &request {
        Err(e) => Err(Failure::new(FailureKind::Deserialization, e.to_string())),
        Ok(request) => {
            let mut result = call(route, record, request).await;
            loop {
                if result.is_err() && first_failure.is_none() {
                    first_failure = Some(chrono::Utc::now());
                }
                match result {
                    Err(failure)
                        if route.retry_topic.is_none()
                            && route.actions.of_failure(&failure) == FailureAction::Retry
                            && attempts < route.retry.attempts() =>
                    {
                        let pause = route.retry.delay(attempts, fastrand::f64());
                        count_retry(route, failure.kind);
                        if route.key_order {
                            tracing::info!(
                                topic = %record.topic, partition = record.partition, offset = record.offset,
                                route = %route.name, class = failure.kind.as_str(), attempt = attempts,
                                retry_in = ?pause, error = %failure.message,
                                "handler failed; parked with the later records of its key"
                            );
                            return Processed {
                                route: Some(route.name.clone()),
                                outcome: Outcome::Parked(Later {
                                    delay: pause,
                                    attempts,
                                    first_failure,
                                }),
                                outputs: Vec::new(),
                                halt: None,
                            };
                        }
                        tracing::info!(
                            topic = %record.topic, partition = record.partition, offset = record.offset,
                            route = %route.name, class = failure.kind.as_str(), attempt = attempts,
                            retry_in = ?pause, error = %failure.message, "handler failed; retrying"
                        );
                        tokio::time::sleep(pause).await;
                        attempts += 1;
                        result = call(route, record, request).await;
                    }
                    other => break other,
                }
            }
        }
    };

    match (result, request) {
        (Ok(values), Ok(request)) => handled(route, record, &request, values),
        (Err(failure), Ok(_)) => {
            let first = first_failure.unwrap_or_else(chrono::Utc::now);
            let waits = keyed.map(|(waits, key, _)| (waits, key));
            retry_or_fail(router, route, record, &failure, (attempts, first), waits)
        }
        (_, Err(e)) => failed(
            router,
            route,
            record,
            &Failure::new(FailureKind::Deserialization, e.to_string()),
            (0, chrono::Utc::now()),
        ),
    }
}

/// One handler call for `record` (as first read), within the route's
/// deadline.
async fn call(
    route: &Route,
    record: &InRecord,
    request: &envelope::Request,
) -> Result<Vec<serde_json::Value>, Failure> {
    let ctx = Context {
        topic: &record.topic,
        partition: record.partition,
        offset: record.offset,
        key: record.key.as_deref(),
        headers: &record.headers,
        correlation_id: request.correlation_id.as_deref(),
        event_type: request.event_type.as_deref(),
    };
    let call = invoke(route.handler.as_ref(), ctx, request.payload.clone());
    match route.timeout {
        None => call.await,
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                FailureKind::Timeout,
                format!(
                    "the handler took longer than handler_timeout_ms ({} ms)",
                    limit.as_millis()
                ),
            )),
        },
    }
}

fn count_retry(route: &Route, kind: FailureKind) {
    metrics::counter!(
        m::HANDLER_RETRIES_TOTAL,
        "route" => route.name.clone(),
        "class" => kind.as_str()
    )
    .increment(1);
}

/// The handler's outputs as replies or forwards.
fn handled(
    route: &Route,
    record: &InRecord,
    request: &envelope::Request,
    values: Vec<serde_json::Value>,
) -> Processed {
    if let Some(b) = &route.breaker {
        b.success(std::time::Instant::now());
    }
    let outputs = values
        .into_iter()
        .filter_map(|value| match &route.forward_to {
            Some(target) => Some(OutRecord {
                topic: target.clone(),
                partition: None,
                key: record.key.clone(),
                value: Some(value.to_string().into_bytes()),
                headers: record.headers.clone(),
            }),
            None => envelope::reply(
                request,
                record.key.as_deref(),
                route.reply_topic.as_deref(),
                value,
            ),
        })
        .collect();
    Processed {
        route: Some(route.name.clone()),
        outcome: Outcome::Handled,
        outputs,
        halt: None,
    }
}

/// After `attempts` failed calls: with a retry topic and attempts left,
/// the record goes there with its due time (and its key, with key order,
/// into `waits`); else [`failed`].
fn retry_or_fail(
    router: &Router,
    route: &Route,
    record: &InRecord,
    failure: &Failure,
    (attempts, first_failure): (u32, chrono::DateTime<chrono::Utc>),
    waits: Option<(&KeyWaits, &[u8])>,
) -> Processed {
    if let Some(retry_topic) = &route.retry_topic
        && route.actions.of_failure(failure) == FailureAction::Retry
        && attempts < route.retry.attempts()
    {
        let delay = route.retry.delay(attempts, fastrand::f64());
        let due =
            chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        count_retry(route, failure.kind);
        if let Some((waits, key)) = waits {
            waits.add(key);
        }
        tracing::info!(
            topic = %record.topic, partition = record.partition, offset = record.offset,
            route = %route.name, class = failure.kind.as_str(), attempts, retry_topic = %retry_topic,
            retry_in = ?delay, error = %failure.message, "handler failed; retry scheduled"
        );
        return Processed {
            route: Some(route.name.clone()),
            outcome: Outcome::RetryScheduled(failure.kind),
            outputs: vec![retry_topic::record(
                retry_topic,
                &route.name,
                record,
                failure,
                attempts,
                first_failure,
                due,
                router.companion(&record.topic) == Some(retry_topic.as_str()),
            )],
            halt: None,
        };
    }
    failed(router, route, record, failure, (attempts, first_failure))
}

/// A record of a retry topic: not due yet, the partition waits (with key
/// order, the record is parked with the later ones of its key); due, one
/// more handler call with the record as first read, then a reply, the next
/// retry record (with key order, it is parked again), or [`failed`].
/// `parked`: the record was parked, and its wait is over.
async fn process_retry(router: &Router, record: &InRecord, parked: Option<Later>) -> Processed {
    let at = format!("{}/{}@{}", record.topic, record.partition, record.offset);
    let pending = match retry_topic::read(record) {
        Ok(p) => p,
        Err(e) => {
            return unusable_retry_record(
                router,
                record,
                record,
                format!("the retry record at {at} is malformed: {e}"),
            );
        }
    };
    let Some(route) = router.retry_route(&record.topic, &pending.route) else {
        let reason = format!(
            "the retry record at {at} names routes.{}, which does not retry through {} \
             (retry.mode = \"topic\")",
            pending.route, record.topic
        );
        return unusable_retry_record(router, record, &pending.original, reason);
    };
    let wait = pending.due_ms - chrono::Utc::now().timestamp_millis();
    if wait > 0 && parked.is_none() {
        if route.key_order {
            return Processed {
                route: Some(route.name.clone()),
                outcome: Outcome::Parked(Later {
                    delay: std::time::Duration::from_millis(wait.unsigned_abs()),
                    attempts: pending.attempts,
                    first_failure: pending.first_failure,
                }),
                outputs: Vec::new(),
                halt: None,
            };
        }
        return Processed {
            route: Some(route.name.clone()),
            outcome: Outcome::NotDue,
            outputs: Vec::new(),
            halt: Some(Halt {
                kind: HaltKind::NotDue(std::time::Duration::from_millis(wait.unsigned_abs())),
                reason: format!("the retry record at {at} is due in {wait} ms"),
            }),
        };
    }
    if let Some(held) = breaker_holds(route, record) {
        return held;
    }
    let original = &pending.original;
    // Calls so far, and the number of the one about to be made.
    let done = parked.map_or(pending.attempts, |l| l.attempts);
    let attempts = done + 1;
    let first = parked
        .and_then(|l| l.first_failure)
        .or(pending.first_failure);
    match envelope::read(&original.headers, original.value.as_deref()) {
        // Readable when it was first read (or it would not be here): the
        // same bytes still are, unless a record was written by hand.
        Err(e) => failed(
            router,
            route,
            original,
            &Failure::new(FailureKind::Deserialization, e.to_string()),
            (done, first.unwrap_or_else(chrono::Utc::now)),
        ),
        Ok(request) => match call(route, original, &request).await {
            Ok(values) => handled(route, original, &request, values),
            Err(failure) => {
                let first = first.unwrap_or_else(chrono::Utc::now);
                if route.key_order
                    && route.actions.of_failure(&failure) == FailureAction::Retry
                    && attempts < route.retry.attempts()
                {
                    // In place: the later records of its key in this retry
                    // partition wait behind it, other keys go on.
                    let pause = route.retry.delay(attempts, fastrand::f64());
                    count_retry(route, failure.kind);
                    tracing::info!(
                        topic = %original.topic, partition = original.partition, offset = original.offset,
                        retry_topic = %record.topic, route = %route.name, class = failure.kind.as_str(),
                        attempt = attempts, retry_in = ?pause, error = %failure.message,
                        "handler failed; parked in its retry partition with the later records of its key"
                    );
                    return Processed {
                        route: Some(route.name.clone()),
                        outcome: Outcome::Parked(Later {
                            delay: pause,
                            attempts,
                            first_failure: Some(first),
                        }),
                        outputs: Vec::new(),
                        halt: None,
                    };
                }
                retry_or_fail(router, route, original, &failure, (attempts, first), None)
            }
        },
    }
}

/// A retry record no route can take (malformed, or naming a route that does
/// not retry through its topic): dead-lettered as `validation`, `original`
/// as far as it can be read, to the dead-letter topic of a route retrying
/// through this topic (else `<retry topic>.dlq`), so that it never blocks
/// its retry partition.
fn unusable_retry_record(
    router: &Router,
    record: &InRecord,
    original: &InRecord,
    reason: String,
) -> Processed {
    let dlq_topic = router
        .retry_routes(&record.topic)
        .next()
        .map(|r| r.dlq_topic.clone())
        .unwrap_or_else(|| dead_letter::default_topic(&record.topic));
    Processed {
        route: None,
        outcome: Outcome::Failed(FailureKind::Validation),
        outputs: vec![dead_letter_of(
            router,
            original,
            &dlq_topic,
            ("", ""),
            &Failure::new(FailureKind::Validation, reason),
            (0, chrono::Utc::now()),
        )],
        halt: None,
    }
}

/// A usable record of a retry topic: its retry state and the route it
/// retries for.
fn retried_for<'r>(
    router: &'r Router,
    record: &InRecord,
) -> Option<(retry_topic::Pending, &'r Arc<Route>)> {
    if !router.is_retry_topic(&record.topic) {
        return None;
    }
    let pending = retry_topic::read(record).ok()?;
    let route = router.retry_route(&record.topic, &pending.route)?;
    Some((pending, route))
}

/// The action of a failure of class `kind` on `record`: its route's (the
/// route it retries for, on a retry topic), else the pipeline's.
pub fn action_for(router: &Router, record: &InRecord, kind: FailureKind) -> FailureAction {
    if let Some((_, route)) = retried_for(router, record) {
        return route.actions.of(kind);
    }
    match read_and_route(router, record).1 {
        Some(route) => route.actions.of(kind),
        None => router.unrouted_actions().of(kind),
    }
}

/// The dead letter of `record` whose output the broker refused for good:
/// `kind` is [`FailureKind::Oversize`] (too large) or
/// [`FailureKind::Validation`] (its `reply_to` names a topic that does not
/// exist), or an output failure whose action is `dlq`
/// ([`FailureKind::Infrastructure`], [`FailureKind::Authorization`]);
/// `message` says which and why. A record no route takes goes to
/// `<topic>.dlq`.
pub fn refused_letter(
    router: &Router,
    record: &InRecord,
    kind: FailureKind,
    message: String,
) -> OutRecord {
    let failure = Failure::new(kind, message);
    if let Some((pending, route)) = retried_for(router, record) {
        return dead_letter_of(
            router,
            &pending.original,
            &route.dlq_topic,
            (&route.name, &route.handler_name),
            &failure,
            (
                pending.attempts + 1,
                pending.first_failure.unwrap_or_else(chrono::Utc::now),
            ),
        );
    }
    match read_and_route(router, record).1 {
        Some(route) => dead_letter_of(
            router,
            record,
            &route.dlq_topic,
            (&route.name, &route.handler_name),
            &failure,
            (1, chrono::Utc::now()),
        ),
        None => dead_letter_of(
            router,
            record,
            &dead_letter::default_topic(&record.topic),
            ("", ""),
            &failure,
            (0, chrono::Utc::now()),
        ),
    }
}

/// The dead letter of `record`: `(route, handler)` that failed it (empty
/// when none), `(handler calls, first failure time)`; the last failure is
/// now.
fn dead_letter_of(
    router: &Router,
    record: &InRecord,
    dlq_topic: &str,
    (route, handler): (&str, &str),
    failure: &Failure,
    (count, first_failure): (u32, chrono::DateTime<chrono::Utc>),
) -> OutRecord {
    dead_letter::record(
        dlq_topic,
        Origin {
            topic: &record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            route,
            handler,
        },
        record.key.as_deref(),
        record.value.as_deref(),
        &record.headers,
        failure,
        dead_letter::Attempts {
            count,
            first_failure,
            last_failure: chrono::Utc::now(),
            instance: router.instance(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RouteConfig};
    use crate::handler::api::HandlerError;
    use crate::handler::router::HandlerRegistry;
    use serde_json::{Value, json};

    fn router(unrouted: Unrouted) -> Router {
        let mut c = Config::default();
        c.pipeline.unrouted = unrouted;
        c.routes.insert(
            "validate".into(),
            RouteConfig {
                topic: "req".into(),
                event_type: Some("validate".into()),
                handler: "echo".into(),
                reply_topic: Some("resp".into()),
                ..Default::default()
            },
        );
        c.routes.insert(
            "copy".into(),
            RouteConfig {
                topic: "events".into(),
                handler: "forward".into(),
                forward_to: Some("events.copy".into()),
                ..Default::default()
            },
        );
        Router::build(&c, &HandlerRegistry::with_builtins()).unwrap()
    }

    fn rec(topic: &str, value: &str) -> InRecord {
        InRecord {
            topic: topic.into(),
            partition: 1,
            offset: 9,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"k".to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn echo_replies_forward_republishes_and_bad_input_is_dead_lettered() {
        let r = router(Unrouted::Skip);
        let body = json!({"correlation_id": "c1", "event_type": "validate", "payload": {"a": 1}});
        let p = process(&r, &rec("req", &body.to_string())).await;
        assert_eq!(p.outcome, Outcome::Handled);
        assert_eq!(p.outputs.len(), 1);
        assert_eq!(p.outputs[0].topic, "resp");
        let v: Value = serde_json::from_slice(p.outputs[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(v["payload"], json!({"a": 1}));
        assert_eq!(v["correlation_id"], "c1");

        let p = process(&r, &rec("events", r#"{"x": 2}"#)).await;
        assert_eq!(p.outputs[0].topic, "events.copy");
        assert_eq!(p.outputs[0].key.as_deref(), Some(&b"k"[..]));

        let p = process(&r, &rec("events", "not json")).await;
        assert_eq!(p.outcome, Outcome::Failed(FailureKind::Deserialization));
        assert_eq!(p.outputs[0].topic, "events.dlq");
        assert_eq!(p.outputs[0].headers[dead_letter::ORIGINAL_OFFSET], b"9");
    }

    /// A route whose handler fails with `error` on its first `fail_first`
    /// calls (all of them with `u32::MAX`), then echoes; the counter says how
    /// many calls it saw.
    fn flaky_router(
        fail_first: u32,
        error: fn(u32) -> HandlerError,
        retry: crate::config::RetryConfig,
        timeout_ms: Option<u64>,
    ) -> (Router, std::sync::Arc<std::sync::atomic::AtomicU32>) {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = std::sync::Arc::new(AtomicU32::new(0));
        let seen = std::sync::Arc::clone(&calls);
        let mut registry = HandlerRegistry::with_builtins();
        registry.register(
            "flaky",
            crate::handler::typed(move |_ctx, v: Value| {
                let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n <= fail_first {
                        Err(error(n))
                    } else {
                        Ok(Some(v))
                    }
                }
            }),
        );
        let mut c = Config::default();
        c.routes.insert(
            "flaky".into(),
            RouteConfig {
                topic: "req".into(),
                handler: "flaky".into(),
                reply_topic: Some("resp".into()),
                retry,
                handler_timeout_ms: timeout_ms,
                ..Default::default()
            },
        );
        (Router::build(&c, &registry).unwrap(), calls)
    }

    fn quick(max_attempts: u32) -> crate::config::RetryConfig {
        crate::config::RetryConfig {
            max_attempts,
            initial_delay_ms: 1,
            max_delay_ms: 5,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_failure_that_may_pass_is_retried_then_succeeds_or_is_dead_lettered() {
        use std::sync::atomic::Ordering;
        let body = json!({"correlation_id": "c1", "payload": {"a": 1}}).to_string();
        // Fails twice, succeeds on the third of three attempts.
        let (r, calls) = flaky_router(
            2,
            |n| HandlerError::Retryable(format!("try {n}")),
            quick(3),
            None,
        );
        let p = process(&r, &rec("req", &body)).await;
        assert_eq!(p.outcome, Outcome::Handled);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(p.outputs[0].topic, "resp");

        // Always fails: exactly max_attempts calls, then the DLQ says so.
        let (r, calls) = flaky_router(
            u32::MAX,
            |_| HandlerError::Dependency("db down".into()),
            quick(4),
            None,
        );
        let p = process(&r, &rec("req", &body)).await;
        assert_eq!(p.outcome, Outcome::Failed(FailureKind::Dependency));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(p.outputs[0].topic, "req.dlq");
        assert_eq!(p.outputs[0].headers[dead_letter::ATTEMPTS], b"4");
        assert_eq!(p.outputs[0].headers[dead_letter::ERROR_KIND], b"dependency");

        // A permanent failure is never retried.
        let (r, calls) = flaky_router(
            u32::MAX,
            |_| HandlerError::Permanent("bad".into()),
            quick(4),
            None,
        );
        let p = process(&r, &rec("req", &body)).await;
        assert_eq!(p.outcome, Outcome::Failed(FailureKind::Validation));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(p.outputs[0].headers[dead_letter::ATTEMPTS], b"1");

        // strategy = "none": one attempt.
        let none = crate::config::RetryConfig {
            strategy: crate::config::RetryStrategy::None,
            ..quick(4)
        };
        let (r, calls) = flaky_router(
            u32::MAX,
            |_| HandlerError::Retryable("x".into()),
            none,
            None,
        );
        let _ = process(&r, &rec("req", &body)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    fn refusing_route(route: RouteConfig, pipeline: crate::config::FailureActions) -> Router {
        let mut registry = HandlerRegistry::with_builtins();
        registry.register(
            "down",
            crate::handler::typed(|_ctx, v: Value| async move {
                match v["fail"].as_str() {
                    Some("dependency") => Err(HandlerError::Dependency("db down".into())),
                    Some("limited") => {
                        Err(HandlerError::Dependency("slow down".into()).with_code("RATE_LIMITED"))
                    }
                    Some("gone") => Err(HandlerError::Permanent("no sku".into()).with_code("GONE")),
                    Some(_) => Err(HandlerError::Permanent("refused".into())),
                    None => Ok(Some(v)),
                }
            }),
        );
        let mut c = Config::default();
        c.pipeline.on_failure = pipeline;
        c.routes.insert(
            "r".into(),
            RouteConfig {
                topic: "req".into(),
                handler: "down".into(),
                reply_topic: Some("resp".into()),
                retry: quick(3),
                ..route
            },
        );
        Router::build(&c, &registry).unwrap()
    }

    #[tokio::test]
    async fn failure_actions_pause_stop_or_dead_letter_as_the_tables_say() {
        use crate::config::{FailureAction, FailureActions};
        let dependency = json!({"payload": {"fail": "dependency"}}).to_string();
        let refused = json!({"payload": {"fail": "validation"}}).to_string();
        let r = refusing_route(
            RouteConfig {
                on_failure: FailureActions {
                    dependency: Some(FailureAction::Pause),
                    ..FailureActions::default()
                },
                ..RouteConfig::default()
            },
            FailureActions {
                validation: Some(FailureAction::Stop),
                dependency: Some(FailureAction::Dlq),
                ..FailureActions::default()
            },
        );
        // The route's table wins: pause, no dead letter, no retries.
        let p = process(&r, &rec("req", &dependency)).await;
        assert_eq!(p.outcome, Outcome::Paused);
        assert!(p.outputs.is_empty());
        let halt = p.halt.unwrap();
        assert_eq!(halt.kind, HaltKind::Pause);
        assert!(
            halt.reason
                .contains("dependency failure of routes.r at req/1@9: db down"),
            "{}",
            halt.reason
        );
        // The pipeline's table: stop.
        let p = process(&r, &rec("req", &refused)).await;
        assert_eq!(p.outcome, Outcome::Stopped);
        assert_eq!(p.halt.unwrap().kind, HaltKind::Stop);
        // Defaults: not JSON is dead-lettered.
        let p = process(&r, &rec("req", "nope")).await;
        assert_eq!(p.outcome, Outcome::Failed(FailureKind::Deserialization));
        assert_eq!(p.outputs[0].topic, "req.dlq");
    }

    #[tokio::test]
    async fn error_codes_pick_their_own_action_over_their_class() {
        use crate::config::{FailureAction, FailureActions};
        let limited = json!({"payload": {"fail": "limited"}}).to_string();
        let gone = json!({"payload": {"fail": "gone"}}).to_string();
        let r = refusing_route(
            RouteConfig {
                on_failure: FailureActions {
                    codes: [("RATE_LIMITED".to_owned(), FailureAction::Pause)].into(),
                    ..FailureActions::default()
                },
                ..RouteConfig::default()
            },
            FailureActions {
                // The route's code wins over this one; GONE is the
                // pipeline's.
                codes: [
                    ("RATE_LIMITED".to_owned(), FailureAction::Stop),
                    ("GONE".to_owned(), FailureAction::Dlq),
                ]
                .into(),
                validation: Some(FailureAction::Stop),
                ..FailureActions::default()
            },
        );
        // A dependency failure would be retried; its code pauses at once.
        let p = process(&r, &rec("req", &limited)).await;
        assert_eq!(p.outcome, Outcome::Paused);
        // A validation failure would stop; its code dead-letters it, with
        // the code in a header.
        let p = process(&r, &rec("req", &gone)).await;
        assert_eq!(p.outcome, Outcome::Failed(FailureKind::Validation));
        let h = &p.outputs[0].headers;
        assert_eq!(h[dead_letter::ERROR_CODE], b"GONE");
        assert_eq!(h[dead_letter::ERROR_KIND], b"validation");
        // Without a code, the class's action.
        let refused = json!({"payload": {"fail": "validation"}}).to_string();
        assert_eq!(
            process(&r, &rec("req", &refused)).await.outcome,
            Outcome::Stopped
        );
    }

    #[tokio::test]
    async fn an_open_circuit_breaker_pauses_instead_of_dead_lettering() {
        use crate::config::{CircuitBreakerConfig, FailureActions};
        let r = refusing_route(
            RouteConfig {
                circuit_breaker: CircuitBreakerConfig {
                    consecutive: 2,
                    ..CircuitBreakerConfig::default()
                },
                ..RouteConfig::default()
            },
            FailureActions::default(),
        );
        let refused = json!({"payload": {"fail": "validation"}}).to_string();
        for _ in 0..2 {
            let p = process(&r, &rec("req", &refused)).await;
            assert_eq!(p.outcome, Outcome::Failed(FailureKind::Validation));
        }
        let p = process(&r, &rec("req", &refused)).await;
        assert_eq!(p.outcome, Outcome::Paused);
        assert!(p.outputs.is_empty());
        assert!(
            p.halt
                .unwrap()
                .reason
                .contains("opened (2 dead letters in a row)"),
            "breaker reason"
        );
        // While open, even a good record waits.
        let p = process(&r, &rec("req", r#"{"payload": {"ok": 1}}"#)).await;
        assert_eq!(p.outcome, Outcome::Paused);
        assert!(p.halt.unwrap().reason.contains("is open"));
    }

    #[tokio::test]
    async fn retry_topic_records_wait_until_due_then_answer_or_dead_letter() {
        use std::sync::atomic::Ordering;
        let topic_mode = |max_attempts| crate::config::RetryConfig {
            mode: crate::config::RetryMode::Topic,
            initial_delay_ms: 60_000,
            max_delay_ms: 60_000,
            jitter: 0.0,
            ..quick(max_attempts)
        };
        let body = json!({"correlation_id": "c1", "payload": {"a": 1}}).to_string();
        let (r, calls) = flaky_router(
            2,
            |n| HandlerError::Dependency(format!("down {n}")),
            topic_mode(3),
            None,
        );
        // First failure: to the retry topic, due in a minute; the partition
        // goes on.
        let p = process(&r, &rec("req", &body)).await;
        assert_eq!(p.outcome, Outcome::RetryScheduled(FailureKind::Dependency));
        assert!(p.halt.is_none());
        let out = &p.outputs[0];
        assert_eq!(out.topic, "req.retry");
        assert_eq!(out.headers[retry_topic::ATTEMPTS], b"1");
        assert_eq!(out.headers[retry_topic::ORIGINAL_OFFSET], b"9");
        let retry_rec = |out: &OutRecord, due_in_ms: i64| {
            let mut headers = out.headers.clone();
            headers.insert(
                retry_topic::DUE.to_owned(),
                (chrono::Utc::now().timestamp_millis() + due_in_ms)
                    .to_string()
                    .into_bytes(),
            );
            InRecord {
                topic: out.topic.clone(),
                partition: 0,
                offset: 3,
                timestamp: None,
                key: out.key.clone(),
                value: out.value.clone(),
                headers,
            }
        };
        // Not due: the retry partition waits, the handler is not called.
        let p = process(&r, &retry_rec(out, 60_000)).await;
        assert_eq!(p.outcome, Outcome::NotDue);
        assert!(matches!(p.halt.unwrap().kind, HaltKind::NotDue(d) if d.as_secs() >= 59));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Due: the second call fails too; the next retry record says 2.
        let p = process(&r, &retry_rec(out, -1)).await;
        assert_eq!(p.outcome, Outcome::RetryScheduled(FailureKind::Dependency));
        let out = p.outputs[0].clone();
        assert_eq!(out.headers[retry_topic::ATTEMPTS], b"2");
        // The third succeeds: the reply answers the original request.
        let p = process(&r, &retry_rec(&out, -1)).await;
        assert_eq!(p.outcome, Outcome::Handled);
        assert_eq!(p.outputs[0].topic, "resp");
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // Out of attempts: dead-lettered with the original coordinates.
        let (r, _) = flaky_router(
            u32::MAX,
            |_| HandlerError::Dependency("down".into()),
            topic_mode(2),
            None,
        );
        let first = process(&r, &rec("req", &body)).await;
        let p = process(&r, &retry_rec(&first.outputs[0], -1)).await;
        assert_eq!(p.outcome, Outcome::Failed(FailureKind::Dependency));
        let dead = &p.outputs[0];
        assert_eq!(dead.topic, "req.dlq");
        assert_eq!(dead.headers[dead_letter::ATTEMPTS], b"2");
        assert_eq!(dead.headers[dead_letter::ORIGINAL_TOPIC], b"req");
        assert_eq!(dead.headers[dead_letter::ORIGINAL_OFFSET], b"9");
        assert!(dead.headers.keys().all(|k| !k.starts_with("retry.")));
    }

    #[tokio::test]
    async fn a_handler_past_its_deadline_is_a_timeout_failure() {
        let mut registry = HandlerRegistry::with_builtins();
        registry.register(
            "slow",
            crate::handler::typed(|_ctx, v: Value| async move {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                Ok(Some(v))
            }),
        );
        let mut c = Config::default();
        c.routes.insert(
            "slow".into(),
            RouteConfig {
                topic: "req".into(),
                handler: "slow".into(),
                handler_timeout_ms: Some(20),
                retry: quick(2),
                ..Default::default()
            },
        );
        let r = Router::build(&c, &registry).unwrap();
        let p = process(&r, &rec("req", r#"{"payload": 1}"#)).await;
        assert_eq!(p.outcome, Outcome::Failed(FailureKind::Timeout));
        assert_eq!(p.outputs[0].headers[dead_letter::ATTEMPTS], b"2");
        let message =
            String::from_utf8(p.outputs[0].headers[dead_letter::ERROR_MESSAGE].clone()).unwrap();
        assert!(message.contains("handler_timeout_ms (20 ms)"), "{message}");
    }

    #[tokio::test]
    async fn unrouted_records_are_skipped_or_dead_lettered() {
        let body = json!({"event_type": "other", "payload": 1}).to_string();
        let p = process(&router(Unrouted::Skip), &rec("req", &body)).await;
        assert_eq!(p.outcome, Outcome::Skipped);
        assert!(p.outputs.is_empty());
        let p = process(&router(Unrouted::DeadLetter), &rec("req", &body)).await;
        assert_eq!(p.outcome, Outcome::UnroutedDeadLettered);
        assert_eq!(p.outputs[0].topic, "req.dlq");
    }

    #[tokio::test]
    async fn no_reply_topic_means_no_output() {
        let mut c = Config::default();
        c.routes.insert(
            "sink".into(),
            RouteConfig {
                topic: "t".into(),
                handler: "echo".into(),
                ..Default::default()
            },
        );
        let r = Router::build(&c, &HandlerRegistry::with_builtins()).unwrap();
        let p = process(&r, &rec("t", "{}")).await;
        assert_eq!(p.outcome, Outcome::Handled);
        assert!(p.outputs.is_empty());
    }
}
