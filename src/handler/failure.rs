//! What a failure does: the action of each failure class on a route (the
//! `on_failure` tables over the defaults), and the route's circuit breaker.
//! Pure logic; the clock is passed in.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{CircuitBreakerConfig, FailureAction, FailureActions};
use crate::telemetry::metrics as m;

use super::api::{Failure, FailureKind};

/// The action of `kind` when no table sets one: bad input and panics go to
/// the dead-letter topic, failures that may pass are retried, an output
/// the broker could not take pauses the partition, and one it refused for
/// authorization stops the service.
pub fn default_action(kind: FailureKind) -> FailureAction {
    match kind {
        FailureKind::Deserialization
        | FailureKind::Validation
        | FailureKind::Panic
        | FailureKind::Oversize => FailureAction::Dlq,
        FailureKind::Processing | FailureKind::Timeout | FailureKind::Dependency => {
            FailureAction::Retry
        }
        FailureKind::Infrastructure => FailureAction::Pause,
        FailureKind::Authorization => FailureAction::Stop,
    }
}

fn from_table(table: &FailureActions, kind: FailureKind) -> Option<FailureAction> {
    match kind {
        FailureKind::Deserialization => table.deserialization,
        FailureKind::Validation => table.validation,
        FailureKind::Processing => table.processing,
        FailureKind::Timeout => table.timeout,
        FailureKind::Dependency => table.dependency,
        FailureKind::Panic => table.panic,
        FailureKind::Infrastructure => table.infrastructure,
        FailureKind::Authorization => table.authorization,
        FailureKind::Oversize => table.oversize,
    }
}

/// Every class's action on one route.
#[derive(Debug, Clone)]
pub struct Actions {
    route: FailureActions,
    pipeline: FailureActions,
}

impl Actions {
    /// The route's table over the pipeline's.
    pub fn new(route: &FailureActions, pipeline: &FailureActions) -> Self {
        Self {
            route: route.clone(),
            pipeline: pipeline.clone(),
        }
    }

    /// The action of `kind`: the route's, else the pipeline's, else the
    /// default.
    pub fn of(&self, kind: FailureKind) -> FailureAction {
        from_table(&self.route, kind)
            .or_else(|| from_table(&self.pipeline, kind))
            .unwrap_or_else(|| default_action(kind))
    }

    /// The action of `failure`: its error code's (the route's table, else
    /// the pipeline's), else its class's ([`Actions::of`]).
    pub fn of_failure(&self, failure: &Failure) -> FailureAction {
        failure
            .code
            .as_ref()
            .and_then(|code| {
                self.route
                    .codes
                    .get(code)
                    .or_else(|| self.pipeline.codes.get(code))
            })
            .copied()
            .unwrap_or_else(|| self.of(failure.kind))
    }
}

/// Buckets of the ratio window.
const BUCKETS: u32 = 10;

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    /// `(bucket number, records, dead letters)`, oldest first.
    window: VecDeque<(u64, u64, u64)>,
    open_until: Option<Instant>,
    /// The pause is over; the next record is a trial: a failure opens the
    /// breaker again at once, a success closes it.
    half_open: bool,
    /// The record of the last failed trial, and how many trials in a row it
    /// failed.
    trial: Option<(String, i32, i64, u32)>,
}

/// Trials one record may fail in a row before it is dead-lettered anyway
/// (it is the record, not the route, that is bad).
const TRIALS_PER_RECORD: u32 = 3;

/// A route's circuit breaker (see [`CircuitBreakerConfig`]): closed, open
/// for its pause once tripped, then half open: the first record decides
/// (handled: closed; failed: open again, not dead-lettered).
#[derive(Debug)]
pub struct Breaker {
    route: String,
    config: CircuitBreakerConfig,
    open_for: Duration,
    origin: Instant,
    state: Mutex<State>,
    open_gauge: metrics::Gauge,
}

/// Why the breaker opened.
#[derive(Debug, Clone, PartialEq)]
pub enum Trip {
    /// `n` dead letters in a row.
    Consecutive(u32),
    /// The trial record after a pause failed too.
    Trial,
    /// `dead` of `records` in the window.
    Ratio {
        /// Dead letters, this one included.
        dead: u64,
        /// Records, this one included.
        records: u64,
    },
}

impl std::fmt::Display for Trip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Consecutive(n) => write!(f, "{n} dead letters in a row"),
            Self::Trial => write!(f, "the first record after its pause failed too"),
            Self::Ratio { dead, records } => {
                write!(
                    f,
                    "{dead} of the last {records} records would be dead letters"
                )
            }
        }
    }
}

impl Breaker {
    /// The breaker of `route`, open for `open_for` once tripped; `None` when
    /// both triggers are off.
    pub fn new(route: &str, config: &CircuitBreakerConfig, open_for: Duration) -> Option<Self> {
        if config.consecutive == 0 && config.ratio <= 0.0 {
            return None;
        }
        Some(Self {
            route: route.to_owned(),
            config: config.clone(),
            open_for,
            origin: Instant::now(),
            state: Mutex::new(State::default()),
            open_gauge: metrics::gauge!(m::CIRCUIT_BREAKER_OPEN, "route" => route.to_owned()),
        })
    }

    fn bucket(&self, now: Instant) -> u64 {
        let width = (self.config.window_ms / u64::from(BUCKETS)).max(1);
        now.saturating_duration_since(self.origin).as_millis() as u64 / width
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it cannot leave the counts inconsistent
        // enough to matter: keep going with them.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one record in the window (`dead`: it would be a dead letter).
    fn count(&self, state: &mut State, now: Instant, dead: bool) {
        let bucket = self.bucket(now);
        while state
            .window
            .front()
            .is_some_and(|(b, _, _)| b + u64::from(BUCKETS) <= bucket)
        {
            state.window.pop_front();
        }
        match state.window.back_mut() {
            Some((b, records, dead_letters)) if *b == bucket => {
                *records += 1;
                *dead_letters += u64::from(dead);
            }
            _ => state.window.push_back((bucket, 1, u64::from(dead))),
        }
    }

    /// Whether the breaker is open at `now`; once its time is up it lets
    /// records through again, the first one as a trial (half open).
    pub fn is_open(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match state.open_until {
            Some(until) if now < until => true,
            Some(_) => {
                state.open_until = None;
                state.half_open = true;
                tracing::info!(route = %self.route, "circuit breaker half open: trying records again");
                false
            }
            None => false,
        }
    }

    /// A record of the route was handled.
    pub fn success(&self, now: Instant) {
        let mut state = self.lock();
        if state.half_open {
            state.half_open = false;
            self.open_gauge.set(0.0);
            tracing::info!(route = %self.route, "circuit breaker closed: the trial record was handled");
        }
        state.consecutive = 0;
        if self.config.ratio > 0.0 {
            self.count(&mut state, now, false);
        }
    }

    /// A record of the route (`at`: topic, partition, offset) is about to
    /// be dead-lettered for a `kind` failure: `Some` when this opens the
    /// breaker instead (the record must then not be dead-lettered). A trial
    /// that fails on bytes that are not JSON, or a record that failed
    /// three trials in a row, is dead-lettered and the breaker stays
    /// half open: the record is bad, not the route.
    pub fn failure(&self, now: Instant, kind: FailureKind, at: (&str, i32, i64)) -> Option<Trip> {
        let mut state = self.lock();
        let mut trip = None;
        let mut trial = None;
        if state.half_open && kind != FailureKind::Deserialization {
            let count = match &state.trial {
                Some((t, p, o, n)) if (t.as_str(), *p, *o) == at => n + 1,
                _ => 1,
            };
            if count >= TRIALS_PER_RECORD {
                state.trial = None;
                return None;
            }
            trial = Some((at.0.to_owned(), at.1, at.2, count));
            trip = Some(Trip::Trial);
        }
        if trip.is_none()
            && self.config.consecutive > 0
            && state.consecutive >= self.config.consecutive
        {
            trip = Some(Trip::Consecutive(state.consecutive));
        }
        if trip.is_none() && self.config.ratio > 0.0 {
            self.count(&mut state, now, true);
            let (records, dead) = state
                .window
                .iter()
                .fold((0, 0), |(r, d), (_, records, dead)| (r + records, d + dead));
            if records >= u64::from(self.config.min_records)
                && dead as f64 / records as f64 > self.config.ratio
            {
                trip = Some(Trip::Ratio { dead, records });
            }
        }
        match trip {
            Some(trip) => {
                *state = State {
                    open_until: Some(now + self.open_for),
                    trial,
                    ..State::default()
                };
                self.open_gauge.set(1.0);
                metrics::counter!(m::CIRCUIT_BREAKER_TRIPS_TOTAL, "route" => self.route.clone())
                    .increment(1);
                tracing::error!(
                    route = %self.route, reason = %trip, open_for = ?self.open_for,
                    "circuit breaker opened: the route's partitions pause instead of dead-lettering"
                );
                Some(trip)
            }
            None => {
                state.consecutive += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_override_the_pipeline_which_overrides_the_defaults() {
        let pipeline = FailureActions {
            dependency: Some(FailureAction::Pause),
            validation: Some(FailureAction::Stop),
            ..FailureActions::default()
        };
        let route = FailureActions {
            validation: Some(FailureAction::Dlq),
            ..FailureActions::default()
        };
        let a = Actions::new(&route, &pipeline);
        assert_eq!(a.of(FailureKind::Validation), FailureAction::Dlq);
        assert_eq!(a.of(FailureKind::Dependency), FailureAction::Pause);
        assert_eq!(a.of(FailureKind::Processing), FailureAction::Retry);
        assert_eq!(a.of(FailureKind::Timeout), FailureAction::Retry);
        assert_eq!(a.of(FailureKind::Deserialization), FailureAction::Dlq);
        assert_eq!(a.of(FailureKind::Panic), FailureAction::Dlq);
        // Outputs that cannot be written: pause, and stop for authorization.
        assert_eq!(a.of(FailureKind::Infrastructure), FailureAction::Pause);
        assert_eq!(a.of(FailureKind::Authorization), FailureAction::Stop);
        let route = FailureActions {
            authorization: Some(FailureAction::Dlq),
            ..FailureActions::default()
        };
        let a = Actions::new(&route, &pipeline);
        assert_eq!(a.of(FailureKind::Authorization), FailureAction::Dlq);
    }

    const K: FailureKind = FailureKind::Validation;
    const AT: (&str, i32, i64) = ("t", 0, 7);

    #[test]
    fn a_record_that_fails_every_trial_is_dead_lettered_and_not_json_never_trips_a_trial() {
        let b = breaker(1, 0.0);
        let t = Instant::now();
        assert_eq!(b.failure(t, K, AT), None);
        assert_eq!(b.failure(t, K, AT), Some(Trip::Consecutive(1)));
        let mut now = t;
        for _ in 1..TRIALS_PER_RECORD {
            now += Duration::from_secs(6);
            assert!(!b.is_open(now));
            assert_eq!(b.failure(now, K, AT), Some(Trip::Trial));
        }
        now += Duration::from_secs(6);
        assert!(!b.is_open(now));
        assert_eq!(b.failure(now, K, AT), None, "the third trial of one record");
        // Still half open: the next record's failure opens it again...
        assert_eq!(b.failure(now, K, ("t", 0, 8)), Some(Trip::Trial));
        // ...unless its bytes are not JSON.
        now += Duration::from_secs(6);
        assert!(!b.is_open(now));
        assert_eq!(
            b.failure(now, FailureKind::Deserialization, ("t", 0, 9)),
            None
        );
    }

    fn breaker(consecutive: u32, ratio: f64) -> Breaker {
        Breaker::new(
            "r",
            &CircuitBreakerConfig {
                consecutive,
                ratio,
                window_ms: 1000,
                min_records: 10,
            },
            Duration::from_secs(5),
        )
        .unwrap()
    }

    #[test]
    fn off_unless_a_trigger_is_set() {
        assert!(Breaker::new("r", &CircuitBreakerConfig::default(), Duration::ZERO).is_none());
    }

    #[test]
    fn n_dead_letters_in_a_row_pass_and_the_next_opens_it_for_its_time() {
        let b = breaker(3, 0.0);
        let t = Instant::now();
        assert_eq!(b.failure(t, K, AT), None);
        assert_eq!(b.failure(t, K, AT), None);
        b.success(t);
        for _ in 0..3 {
            assert_eq!(b.failure(t, K, AT), None);
        }
        assert_eq!(b.failure(t, K, AT), Some(Trip::Consecutive(3)));
        assert!(b.is_open(t + Duration::from_secs(4)));
        // Half open: a failing trial opens it again at once.
        assert!(!b.is_open(t + Duration::from_secs(5)));
        assert_eq!(
            b.failure(t + Duration::from_secs(5), K, AT),
            Some(Trip::Trial)
        );
        assert!(b.is_open(t + Duration::from_secs(6)));
        // A handled trial closes it: counting starts afresh.
        assert!(!b.is_open(t + Duration::from_secs(11)));
        b.success(t + Duration::from_secs(11));
        for _ in 0..3 {
            assert_eq!(b.failure(t + Duration::from_secs(11), K, AT), None);
        }
        assert!(b.failure(t + Duration::from_secs(11), K, AT).is_some());
    }

    #[test]
    fn the_ratio_needs_its_minimum_and_forgets_old_records() {
        let b = breaker(0, 0.5);
        let t = Instant::now();
        // 5 failures alone: below min_records.
        for _ in 0..5 {
            assert_eq!(b.failure(t, K, AT), None);
        }
        for _ in 0..5 {
            b.success(t);
        }
        // 10 records, 6 dead: above half.
        assert_eq!(
            b.failure(t, K, AT),
            Some(Trip::Ratio {
                dead: 6,
                records: 11
            })
        );
        let b = breaker(0, 0.5);
        for _ in 0..9 {
            assert_eq!(b.failure(t, K, AT), None);
        }
        // A window later, those are forgotten.
        let later = t + Duration::from_millis(1500);
        assert_eq!(b.failure(later, K, AT), None);
        for _ in 0..9 {
            b.success(later);
        }
        assert_eq!(b.failure(later, K, AT), None, "2 of 11");
    }
}
