//! The handled-offset watermark of one partition: what may be committed.
//!
//! Records are handed out in offset order but may finish in any order
//! (concurrent handlers, retries). Kafka's committed offset means "every
//! record below this one is done", so the watermark is the lowest offset that
//! is still in flight, or one past the highest handed-out offset when
//! nothing is. It never moves backwards and never passes an unfinished
//! record.
//!
//! Offsets need not be contiguous (compacted topics, transaction markers):
//! a gap between handed-out offsets is simply skipped.

use std::collections::BTreeSet;

/// Why an offset was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatermarkError {
    /// Offsets must be handed out in increasing order.
    #[error("offset {offset} handed out after {last}: offsets must increase")]
    OutOfOrder {
        /// The offending offset.
        offset: i64,
        /// The last offset handed out.
        last: i64,
    },
    /// Completing an offset that is not in flight (twice, or never handed out).
    #[error("offset {offset} is not in flight")]
    NotInFlight {
        /// The offending offset.
        offset: i64,
    },
}

/// Tracks in-flight offsets of one partition; see the module documentation.
#[derive(Debug, Clone)]
pub struct Watermark {
    /// Where consumption started (the committed offset, or the reset point).
    start: i64,
    /// Offsets handed out and not finished.
    in_flight: BTreeSet<i64>,
    /// The highest offset handed out so far.
    last_started: Option<i64>,
}

impl Watermark {
    /// A tracker for a partition whose consumption starts at `start`.
    pub fn new(start: i64) -> Self {
        Self {
            start,
            in_flight: BTreeSet::new(),
            last_started: None,
        }
    }

    /// Records that `offset` was handed to a handler.
    pub fn start(&mut self, offset: i64) -> Result<(), WatermarkError> {
        let floor = self.last_started.unwrap_or(self.start - 1);
        if offset <= floor {
            return Err(WatermarkError::OutOfOrder {
                offset,
                last: floor,
            });
        }
        self.in_flight.insert(offset);
        self.last_started = Some(offset);
        Ok(())
    }

    /// Records that `offset` is fully handled (its output and any dead
    /// letter acknowledged by the broker).
    pub fn finish(&mut self, offset: i64) -> Result<(), WatermarkError> {
        if self.in_flight.remove(&offset) {
            Ok(())
        } else {
            Err(WatermarkError::NotInFlight { offset })
        }
    }

    /// The offset to commit: every record below it is handled.
    pub fn committable(&self) -> i64 {
        match (self.in_flight.first(), self.last_started) {
            (Some(&lowest), _) => lowest,
            (None, Some(last)) => last + 1,
            (None, None) => self.start,
        }
    }

    /// Records handed out and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn follows_the_lowest_unfinished_offset() {
        let mut w = Watermark::new(10);
        assert_eq!(w.committable(), 10);
        for o in [10, 11, 12, 15] {
            w.start(o).unwrap();
        }
        assert_eq!(w.committable(), 10);
        w.finish(11).unwrap();
        assert_eq!(w.committable(), 10, "11 done but 10 is not");
        w.finish(10).unwrap();
        assert_eq!(w.committable(), 12);
        w.finish(15).unwrap();
        assert_eq!(w.committable(), 12);
        w.finish(12).unwrap();
        assert_eq!(w.committable(), 16, "gap 13-14 skipped");
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn refuses_misuse() {
        let mut w = Watermark::new(5);
        assert!(matches!(w.start(4), Err(WatermarkError::OutOfOrder { .. })));
        w.start(5).unwrap();
        assert!(matches!(w.start(5), Err(WatermarkError::OutOfOrder { .. })));
        assert_eq!(w.finish(6), Err(WatermarkError::NotInFlight { offset: 6 }));
        w.finish(5).unwrap();
        assert_eq!(w.finish(5), Err(WatermarkError::NotInFlight { offset: 5 }));
    }

    proptest! {
        /// Whatever the completion order: the watermark never passes an
        /// unfinished offset and never goes backwards, and it reaches one
        /// past the last offset once everything is finished.
        #[test]
        fn never_past_unfinished_never_backwards(
            start in 0i64..1_000,
            gaps in prop::collection::vec(1i64..4, 1..60),
            order in prop::collection::vec(any::<prop::sample::Index>(), 60),
        ) {
            let mut w = Watermark::new(start);
            let mut offsets = Vec::new();
            let mut next = start;
            for gap in gaps {
                next += gap - 1;
                offsets.push(next);
                w.start(next).unwrap();
                next += 1;
            }
            let mut pending = offsets.clone();
            let mut last = w.committable();
            prop_assert_eq!(last, offsets[0]);
            for index in order.iter().take(offsets.len()) {
                let o = pending.remove(index.index(pending.len()));
                w.finish(o).unwrap();
                let now = w.committable();
                prop_assert!(now >= last, "went backwards: {} -> {}", last, now);
                if let Some(lowest) = pending.iter().min() {
                    prop_assert!(now <= *lowest, "passed unfinished {}: {}", lowest, now);
                }
                last = now;
            }
            prop_assert!(pending.is_empty());
            prop_assert_eq!(w.committable(), offsets.last().unwrap() + 1);
        }
    }
}
