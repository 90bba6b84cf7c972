//! Actor heartbeats.
//!
//! Every long-lived actor holds a [`Heart`] from the runtime's
//! [`Heartbeats`] and beats it from a timer of its own context
//! (`health.heartbeat_interval_ms`). An actix actor stops running its
//! timers and its mailbox while it awaits a future with `ctx.wait`, so an
//! actor stuck in such a wait stops beating. Its waits go through
//! [`Heart::guard`], which lets the monitor end them.
//!
//! The health monitor calls [`Heartbeats::check`] every interval. An actor
//! with no beat for `health.heartbeat_stale_after` intervals is **stale**:
//! - it is logged and counted (`kafka_actors_actor_stale_total{actor}`,
//!   gauge `kafka_actors_actors_stale_count{actor}`), and `/health` reports
//!   it (degraded) until it beats again;
//! - its guarded wait, if any, is aborted: the actor sees
//!   [`Stale`] and restarts (a supervised actor stops and its supervisor
//!   starts it again; the others start the stuck step over). Counted in
//!   `kafka_actors_actor_restarts_total{actor}`.
//!
//! An actor may be **busy** by design while it waits: a handler worker runs
//! a batch inside a wait, for as long as its handlers take. A busy heart is
//! never stale; the partition's stall detection (`health.stall_timeout_ms`)
//! judges that wait instead.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// Tokio's clock: the real one at run time, a paused one in tests.
use tokio::time::Instant;

use futures_util::future::{AbortHandle, Abortable};
use serde::Serialize;

use crate::telemetry::metrics as m;

/// The guarded wait of a stale actor was ended by the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ended by the health monitor: the actor sent no heartbeat")]
pub struct Stale;

#[derive(Debug)]
struct Entry {
    kind: &'static str,
    name: String,
    /// At least this long without a beat before it is stale (its waits
    /// may legitimately take that long).
    grace: Duration,
    last: Instant,
    busy: bool,
    stale: bool,
    /// The wait in progress, if guarded.
    wait: Option<(u64, AbortHandle)>,
}

/// The registry of the runtime's hearts; see the module documentation.
#[derive(Debug)]
pub struct Heartbeats {
    interval: Duration,
    stale_after: u32,
    entries: Mutex<BTreeMap<u64, Entry>>,
    next: AtomicU64,
}

/// One actor as [`Heartbeats::actors`] reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActorBeat {
    /// The kind: `partition_consumer`, `handler_worker`, `producer_pool`,
    /// `committer`, `group_member`, `alert_manager`.
    pub kind: &'static str,
    /// Which one (`orders/3`, ...).
    pub name: String,
    /// Seconds since its last beat.
    pub last_beat_seconds: f64,
    /// Busy by design (a handler worker running a batch).
    pub busy: bool,
    /// No beat for `health.heartbeat_stale_after` intervals.
    pub stale: bool,
}

/// What [`Heartbeats::check`] found newly stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Kind of the actor.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Whether a wait of it was ended (it restarts).
    pub restarted: bool,
}

impl Heartbeats {
    /// A registry whose actors beat every `interval` and are stale after
    /// `stale_after` intervals without a beat (0: never).
    pub fn new(interval: Duration, stale_after: u32) -> Arc<Self> {
        Arc::new(Self {
            interval,
            stale_after,
            entries: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(1),
        })
    }

    /// How often the actors beat.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        // A panic while holding it leaves plain data behind: go on.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A heart for the actor `name` of `kind`, stale after
    /// `health.heartbeat_stale_after` intervals or `grace`, whichever is
    /// longer; it is forgotten when the heart is dropped.
    pub fn register(
        self: &Arc<Self>,
        kind: &'static str,
        name: impl Into<String>,
        grace: Duration,
    ) -> Heart {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.entries().insert(
            id,
            Entry {
                kind,
                name: name.into(),
                grace,
                last: Instant::now(),
                busy: false,
                stale: false,
                wait: None,
            },
        );
        Heart {
            id,
            beats: Arc::clone(self),
        }
    }

    /// Marks the actors with no beat for `stale_after` intervals stale,
    /// ends their guarded waits, logs and counts them, and sets the gauge
    /// per kind; answers the newly stale ones.
    pub fn check(&self) -> Vec<Found> {
        if self.stale_after == 0 {
            return Vec::new();
        }
        let limit = self.interval * self.stale_after;
        let now = Instant::now();
        let mut found = Vec::new();
        let mut stale_by_kind: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut entries = self.entries();
        for e in entries.values_mut() {
            stale_by_kind.entry(e.kind).or_default();
            let silent = now.duration_since(e.last);
            if e.busy || silent < limit.max(e.grace) {
                continue;
            }
            *stale_by_kind.entry(e.kind).or_default() += 1;
            if e.stale {
                continue;
            }
            e.stale = true;
            let restarted = match e.wait.take() {
                Some((_, abort)) => {
                    abort.abort();
                    true
                }
                None => false,
            };
            tracing::error!(
                kind = e.kind, actor = %e.name, silent_for = ?silent, restarted,
                "actor sent no heartbeat for health.heartbeat_stale_after intervals{}",
                if restarted { "; ending its wait and restarting it" } else { "" }
            );
            metrics::counter!(m::ACTOR_STALE_TOTAL, "actor" => e.kind).increment(1);
            if restarted {
                metrics::counter!(m::ACTOR_RESTARTS_TOTAL, "actor" => e.kind).increment(1);
            }
            found.push(Found {
                kind: e.kind,
                name: e.name.clone(),
                restarted,
            });
        }
        drop(entries);
        for (kind, n) in stale_by_kind {
            metrics::gauge!(m::ACTORS_STALE_COUNT, "actor" => kind).set(n as f64);
        }
        found
    }

    /// Every registered actor, by kind and name.
    pub fn actors(&self) -> Vec<ActorBeat> {
        let now = Instant::now();
        let mut out: Vec<ActorBeat> = self
            .entries()
            .values()
            .map(|e| ActorBeat {
                kind: e.kind,
                name: e.name.clone(),
                last_beat_seconds: now.duration_since(e.last).as_secs_f64(),
                busy: e.busy,
                stale: e.stale,
            })
            .collect();
        out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        out
    }
}

/// Where an actor registers its heart when it starts: the registry, its
/// name and its grace (see [`Heartbeats::register`]).
#[derive(Debug, Clone)]
pub struct Registration {
    /// The registry.
    pub beats: Arc<Heartbeats>,
    /// The actor's name.
    pub name: String,
    /// At least this long without a beat before it is stale.
    pub grace: Duration,
}

impl Registration {
    /// Registers the actor of `ctx` as `kind` and beats it (see
    /// [`Heartbeats::start`]).
    pub fn start<A>(&self, kind: &'static str, ctx: &mut actix::Context<A>) -> Arc<Heart>
    where
        A: actix::Actor<Context = actix::Context<A>>,
    {
        self.beats.start(kind, self.name.clone(), self.grace, ctx)
    }
}

impl Heartbeats {
    /// Registers the actor of `ctx` (see [`Self::register`]) and beats its
    /// heart from a timer of `ctx`: call it from `started` (a supervisor's
    /// restart drops the timer, and `started` registers again).
    pub fn start<A>(
        self: &Arc<Self>,
        kind: &'static str,
        name: impl Into<String>,
        grace: Duration,
        ctx: &mut actix::Context<A>,
    ) -> Arc<Heart>
    where
        A: actix::Actor<Context = actix::Context<A>>,
    {
        use actix::AsyncContext;
        let heart = Arc::new(self.register(kind, name, grace));
        let beating = Arc::clone(&heart);
        ctx.run_interval(self.interval, move |_, _| beating.beat());
        heart
    }
}

/// One actor's heart; see the module documentation.
#[derive(Debug)]
pub struct Heart {
    id: u64,
    beats: Arc<Heartbeats>,
}

impl Heart {
    /// The actor is alive.
    pub fn beat(&self) {
        if let Some(e) = self.beats.entries().get_mut(&self.id) {
            e.last = Instant::now();
            if e.stale {
                e.stale = false;
                tracing::info!(kind = e.kind, actor = %e.name, "actor beats again");
            }
        }
    }

    /// How often to beat.
    pub fn interval(&self) -> Duration {
        self.beats.interval
    }

    /// `fut`, which the monitor ends with [`Stale`] if the actor stops
    /// beating while it runs (unless `busy`: then it is never stale while
    /// `fut` runs). The actor beats on entering and leaving.
    pub fn guard<F: Future>(
        &self,
        fut: F,
        busy: bool,
    ) -> impl Future<Output = Result<F::Output, Stale>> + use<F> {
        let (abort, registration) = AbortHandle::new_pair();
        let wait = self.beats.next.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = self.beats.entries().get_mut(&self.id) {
            e.last = Instant::now();
            e.busy = busy;
            e.wait = Some((wait, abort));
        }
        let (beats, id) = (Arc::clone(&self.beats), self.id);
        let guarded = Abortable::new(fut, registration);
        async move {
            let out = guarded.await;
            if let Some(e) = beats.entries().get_mut(&id) {
                e.last = Instant::now();
                if e.wait.as_ref().is_some_and(|(w, _)| *w == wait) {
                    e.wait = None;
                    e.busy = false;
                }
            }
            out.map_err(|_| Stale)
        }
    }
}

impl Heart {
    /// `fut`, during which the actor is busy by design (never stale; its
    /// own deadlines or the stall detection bound it).
    pub fn busy<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> + use<F> {
        self.mark_busy(true);
        let (beats, id) = (Arc::clone(&self.beats), self.id);
        async move {
            let out = fut.await;
            if let Some(e) = beats.entries().get_mut(&id) {
                e.last = Instant::now();
                e.busy = false;
            }
            out
        }
    }

    fn mark_busy(&self, busy: bool) {
        if let Some(e) = self.beats.entries().get_mut(&self.id) {
            e.last = Instant::now();
            e.busy = busy;
        }
    }
}

/// `fut`, busy on `heart` if there is one (see [`Heart::busy`]).
pub fn busy<F: Future>(
    heart: Option<&Arc<Heart>>,
    fut: F,
) -> futures_util::future::Either<impl Future<Output = F::Output> + use<F>, F> {
    match heart {
        Some(h) => futures_util::future::Either::Left(h.busy(fut)),
        None => futures_util::future::Either::Right(fut),
    }
}

impl Drop for Heart {
    fn drop(&mut self) {
        self.beats.entries().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_silent_actor_is_stale_its_wait_ends_and_a_beat_clears_it() {
        let beats = Heartbeats::new(Duration::from_millis(100), 3);
        let quiet = beats.register("committer", "c", Duration::ZERO);
        let lively = beats.register("producer_pool", "p", Duration::ZERO);
        let stuck = tokio::spawn(quiet.guard(std::future::pending::<()>(), false));
        tokio::time::advance(Duration::from_millis(250)).await;
        lively.beat();
        assert!(beats.check().is_empty(), "stale before three intervals");
        tokio::time::advance(Duration::from_millis(100)).await;
        lively.beat();
        let found = beats.check();
        assert_eq!(
            found,
            vec![Found {
                kind: "committer",
                name: "c".into(),
                restarted: true
            }]
        );
        assert_eq!(stuck.await.unwrap(), Err(Stale));
        // Counted once per episode.
        assert!(beats.check().is_empty());
        let actors = beats.actors();
        assert!(actors.iter().any(|a| a.name == "c" && a.stale));
        assert!(actors.iter().any(|a| a.name == "p" && !a.stale));
        quiet.beat();
        assert!(beats.actors().iter().all(|a| !a.stale));
        drop(quiet);
        assert_eq!(beats.actors().len(), 1, "a dropped heart is forgotten");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_busy_wait_is_never_stale_and_a_finished_one_answers_its_value() {
        let beats = Heartbeats::new(Duration::from_millis(100), 2);
        let worker = beats.register("handler_worker", "w", Duration::ZERO);
        let long = tokio::spawn(worker.guard(
            async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                7
            },
            true,
        ));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(beats.check().is_empty());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(long.await.unwrap(), Ok(7));
        assert!(!beats.actors()[0].busy);
        // Off: nothing is ever stale.
        let off = Heartbeats::new(Duration::from_millis(100), 0);
        let _h = off.register("committer", "c", Duration::ZERO);
        // A grace longer than the intervals holds it off.
        let slow = beats.register("group_member", "g", Duration::from_secs(100));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(beats.check().iter().all(|f| f.name != "g"));
        drop(slow);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(off.check().is_empty());
    }
}
