//! Key order through retry topics (`ordering = "key"` with `retry.mode =
//! "topic"`): which keys of one input partition have records waiting in
//! its retry partition.
//!
//! The retry topic is co-partitioned with its input topic: a record of
//! input partition `p` waits in retry partition `p`, and whoever consumes
//! input partition `p` consumes retry partition `p` beside it. The two
//! partition consumers share one [`KeyWaits`]:
//!
//! - the input side [`add`](KeyWaits::add)s a key when it writes a record
//!   of that key to the retry partition: a failed record, or a later record
//!   of a key that is already waiting (it is written behind the earlier
//!   one instead of being handled);
//! - the retry side reports each record it [`finished`](KeyWaits::finished)
//!   (answered or dead-lettered, its outputs acknowledged). It retries in
//!   place with its records parked by key, so a key's records finish in
//!   offset order, and one whose count drops to zero is free again;
//! - on assignment, the counts are rebuilt by reading the retry partition
//!   from where its consumer starts to its end, before either consumer
//!   starts.
//!
//! An error may only ever count a key too often, never too rarely: a key
//! counted too often goes on through the retry partition (in order, one
//! hop later) until its partitions are assigned again. So a record handled
//! again after a restart of the retry side is counted once (by offset), and
//! a record the input side writes again after its own restart counts again.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::process::InRecord;
use super::retry_topic;
use super::router::Router;

/// The keys of one input partition with records in its retry partition;
/// see the module documentation.
#[derive(Debug, Default)]
pub struct KeyWaits {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Records of each key written (or being written) to the retry
    /// partition and not finished there.
    waiting: HashMap<Vec<u8>, usize>,
    /// The offsets of the retry records of each key counted as finished
    /// (above the retry partition's committable offset): finishing one
    /// again after a restart, or a duplicate report, counts nothing.
    finished: HashMap<Vec<u8>, BTreeSet<i64>>,
}

impl KeyWaits {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether records of `key` wait in the retry partition.
    pub fn is_waiting(&self, key: &[u8]) -> bool {
        self.lock().waiting.contains_key(key)
    }

    /// A record of `key` goes to the retry partition.
    pub fn add(&self, key: &[u8]) {
        *self.lock().waiting.entry(key.to_vec()).or_default() += 1;
    }

    /// The retry record of `key` at `offset` is finished (answered or
    /// dead-lettered). Counts once per offset, in whatever order the
    /// reports come.
    pub fn finished(&self, key: &[u8], offset: i64) {
        let mut inner = self.lock();
        if !inner
            .finished
            .entry(key.to_vec())
            .or_default()
            .insert(offset)
        {
            return;
        }
        if let Some(n) = inner.waiting.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                inner.waiting.remove(key);
            }
        }
    }

    /// The retry partition will never hand out a record below `offset`
    /// again (its committable offset moved there): forget what was
    /// finished below it.
    pub fn forget_before(&self, offset: i64) {
        self.lock().finished.retain(|_, done| {
            done.retain(|o| *o >= offset);
            !done.is_empty()
        });
    }

    /// Keys with records waiting.
    pub fn keys(&self) -> usize {
        self.lock().waiting.len()
    }
}

/// The key under which `record`, read from a retry topic, counts in its
/// partition's [`KeyWaits`]: it has a key, and its `retry.route` header
/// names a route that keeps key order through this topic.
pub fn counted<'r>(router: &Router, record: &'r InRecord) -> Option<&'r [u8]> {
    let key = record.key.as_deref()?;
    let route = std::str::from_utf8(record.headers.get(retry_topic::ROUTE)?).ok()?;
    router
        .retry_route(&record.topic, route)
        .filter(|r| r.key_order)
        .map(|_| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_waits_until_each_of_its_records_finished_once() {
        let waits = KeyWaits::default();
        assert!(!waits.is_waiting(b"k"));
        waits.add(b"k");
        waits.add(b"k");
        waits.add(b"j");
        assert_eq!(waits.keys(), 2);
        // Reports may come out of offset order (outputs to different
        // topics are acknowledged in any order).
        waits.finished(b"k", 12);
        assert!(waits.is_waiting(b"k"));
        // Handled again after a restart of the retry side: not counted.
        waits.finished(b"k", 12);
        assert!(waits.is_waiting(b"k"));
        waits.finished(b"k", 10);
        assert!(!waits.is_waiting(b"k"));
        assert!(waits.is_waiting(b"j"));
        // A new wait is freed only by a record not counted before.
        waits.add(b"k");
        waits.finished(b"k", 10);
        assert!(waits.is_waiting(b"k"), "a finished offset freed a new wait");
        waits.finished(b"k", 14);
        assert!(!waits.is_waiting(b"k"));
    }

    #[test]
    fn forgetting_finished_offsets_below_the_watermark_keeps_those_above() {
        let waits = KeyWaits::default();
        waits.add(b"a");
        waits.add(b"b");
        waits.add(b"b");
        waits.finished(b"a", 3);
        waits.finished(b"b", 4);
        waits.finished(b"b", 8);
        waits.forget_before(5);
        // b's offset 8 is still remembered: handling it again counts nothing.
        waits.add(b"b");
        waits.finished(b"b", 8);
        assert!(waits.is_waiting(b"b"));
        waits.finished(b"b", 9);
        assert!(!waits.is_waiting(b"b"));
    }
}
