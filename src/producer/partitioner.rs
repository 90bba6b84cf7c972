//! Partition selection compatible with the Apache Kafka Java client.
//!
//! Kafka only guarantees ordering *within* a partition, so every producer that
//! writes a given key must send it to the same partition — whatever language
//! it is written in. The Java client (and everything that copies it: librdkafka's
//! `murmur2_random`, Kafka Streams, Kafka Connect, ksqlDB) places a keyed record
//! at
//!
//! ```text
//! Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions
//! ```
//!
//! where `Utils` is `org.apache.kafka.common.utils.Utils` in `kafka-clients` and
//! `toPositive(n)` is `n & 0x7fffffff` (not `abs`). [`murmur2`] is a bit-exact
//! port of that function (MurmurHash2, 32-bit, seed `0x9747b28c`), and
//! [`partition_for_key`] applies the formula above. If this module disagreed
//! with Java by even one bit, a service written with this crate and a Java
//! service producing the same keys would split one key's records over two
//! partitions and lose their relative order (and co-partitioned joins would
//! break).
//!
//! [`Partitioner`] puts the rules together:
//!
//! 1. an explicit partition wins (validated against the partition count);
//! 2. a record with a key (including an *empty* key, which Java hashes too)
//!    goes to [`partition_for_key`];
//! 3. a record without a key goes round robin over all partitions. The Java
//!    client (since 3.3) instead uses a "sticky" partition per batch, weighted
//!    by broker queue sizes; we deliberately do not reproduce that, because
//!    keyless placement carries no ordering contract and plain round robin is
//!    simple, deterministic and even.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Seed of Kafka's murmur2 (`0x9747b28c`).
const SEED: u32 = 0x9747_b28c;
/// Multiplication constant of MurmurHash2.
const M: u32 = 0x5bd1_e995;
/// Shift constant of MurmurHash2.
const R: u32 = 24;

/// Kafka's 32-bit MurmurHash2 of `data`, bit-for-bit equal to
/// `org.apache.kafka.common.utils.Utils.murmur2(byte[])`.
///
/// Java's `int` arithmetic wraps and its `>>>` is a logical shift, so the
/// computation is done on `u32` with wrapping multiplication and the result is
/// reinterpreted as `i32` (the value Java returns, which may be negative).
#[must_use]
pub fn murmur2(data: &[u8]) -> i32 {
    let length = data.len();
    // Java: `int h = seed ^ length;` — the length is an `int`; truncating to
    // 32 bits matches it for every array Java can hold.
    let mut h: u32 = SEED ^ (length as u32);

    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        // Little-endian, unsigned bytes: `(data[i4] & 0xff) + ((data[i4+1] & 0xff) << 8) + ...`.
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }

    // Java's `switch (length % 4)` falls through from case 3 to case 1; only
    // case 1 (reached from 3, 2 and 1) multiplies by `m`.
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;

    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (`n & 0x7fffffff`).
///
/// Not `abs`: `toPositive(i32::MIN)` is `0` and `toPositive(-1)` is
/// `i32::MAX`.
const fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition the Java client's default partitioner picks for `key` among
/// `partitions` partitions: `toPositive(murmur2(key)) % partitions`.
///
/// `key` is the *serialized* key, exactly the bytes sent on the wire. The
/// result is in `0..partitions`.
///
/// # Panics
///
/// Panics if `partitions` is not positive. Use [`Partitioner::partition`] to
/// get an error instead.
#[must_use]
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "partition count must be positive, got {partitions}"
    );
    to_positive(murmur2(key)) % partitions
}

/// Why [`Partitioner::partition`] could not choose a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// The topic's partition count is zero or negative.
    #[error("invalid partition count {partitions}: a topic has at least one partition")]
    InvalidPartitionCount {
        /// The partition count that was given.
        partitions: i32,
    },
    /// The caller asked for a partition outside `0..partitions`.
    #[error(
        "partition {partition} out of range: the topic has {partitions} partitions (0..{partitions})"
    )]
    PartitionOutOfRange {
        /// The explicit partition that was requested.
        partition: i32,
        /// The topic's partition count.
        partitions: i32,
    },
}

/// Chooses the partition of an outgoing record, placing keyed records where the
/// Java client would (see the [module documentation](self)).
///
/// Keyless records are spread round robin by one counter per `Partitioner`;
/// the counter is atomic, so a shared `&Partitioner` can be used from several
/// tasks or threads. Use one `Partitioner` per topic to get a strict rotation
/// per topic; sharing one between topics still spreads each topic's records,
/// but interleaves the rotation.
#[derive(Debug, Default)]
pub struct Partitioner {
    /// Number of keyless records placed so far (wraps on overflow).
    next: AtomicUsize,
}

impl Partitioner {
    /// A partitioner whose round robin starts at partition 0.
    #[must_use]
    pub fn new() -> Self {
        Self {
            next: AtomicUsize::new(0),
        }
    }

    /// The partition for a record among `partitions` partitions.
    ///
    /// - `explicit`: if `Some`, that partition is returned (the key is
    ///   ignored, as in the Java client), provided it is in `0..partitions`.
    /// - otherwise, if `key` is `Some` (even if empty), the Java-compatible
    ///   [`partition_for_key`];
    /// - otherwise the next partition in round robin order.
    ///
    /// # Errors
    ///
    /// [`PartitionError::InvalidPartitionCount`] if `partitions <= 0`;
    /// [`PartitionError::PartitionOutOfRange`] if `explicit` is negative or
    /// not below `partitions`.
    pub fn partition(
        &self,
        key: Option<&[u8]>,
        explicit: Option<i32>,
        partitions: i32,
    ) -> Result<i32, PartitionError> {
        if partitions <= 0 {
            return Err(PartitionError::InvalidPartitionCount { partitions });
        }
        if let Some(partition) = explicit {
            return if (0..partitions).contains(&partition) {
                Ok(partition)
            } else {
                Err(PartitionError::PartitionOutOfRange {
                    partition,
                    partitions,
                })
            };
        }
        match key {
            Some(key) => Ok(partition_for_key(key, partitions)),
            None => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                // `partitions` is in 1..=i32::MAX, so it fits in usize and the
                // remainder fits back into i32. (At the usize wrap-around the
                // rotation skips a step once; irrelevant in practice.)
                Ok((n % partitions as usize) as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partition counts of the `partitions` column of [`JAVA_VECTORS`].
    const PARTITION_COUNTS: [i32; 6] = [1, 3, 6, 7, 12, 100];

    /// `(key, Utils.murmur2(key), [Utils.toPositive(murmur2) % n for n in PARTITION_COUNTS])`
    /// as computed by the real Java client: kafka-clients 4.3.1
    /// (`org.apache.kafka.common.utils.Utils`, commit 26b251a451ce941d).
    ///
    /// Regenerate: `scripts/kafka fetch`, then a small Java program that, for
    /// each key, prints `Utils.murmur2(key)` and `Utils.toPositive(h) % n`;
    /// compile it with `javac -cp "$HOME/.cache/kafka-actors/kafka-4.3.1/libs/*" Gen.java`
    /// and run it with `java -cp "$HOME/.cache/kafka-actors/kafka-4.3.1/libs/*:." Gen`.
    /// (`BuiltInPartitioner.partitionForKey`, what `KafkaProducer` calls, was
    /// checked to agree with that formula on 100 000 random keys.)
    #[rustfmt::skip]
    const JAVA_VECTORS: &[(&[u8], i32, [i32; 6])] = &[
    (b"", 275646681, [0, 0, 3, 2, 9, 81]),
    (b"a", -1563381124, [0, 1, 4, 5, 4, 24]),
    (b"ab", 316155434, [0, 2, 2, 0, 2, 34]),
    (b"abc", 479470107, [0, 0, 3, 4, 3, 7]),
    (b"abcd", -1323649548, [0, 2, 2, 5, 8, 0]),
    (b"abcde", 461995741, [0, 1, 1, 4, 1, 41]),
    (b"abcdefg", -346467175, [0, 1, 1, 4, 1, 73]),
    (b"abcdefgh", -955427363, [0, 0, 3, 0, 9, 85]),
    (b"kafka", -798503068, [0, 1, 4, 3, 4, 80]),
    (b"hello world", 1221641059, [0, 1, 1, 2, 7, 59]),
    ("héllo wörld ☕ 日本語 🚀".as_bytes(), 1491189211, [0, 1, 1, 1, 7, 11]),
    (b"the-quick-brown-fox-jumps-over-the-lazy-dog/the-quick-brown-fox-jumps-over-the-lazy-dog/0123456789abc", -2001433528, [0, 1, 4, 6, 4, 20]),
    (b"\x80", 857690492, [0, 2, 2, 1, 8, 92]),
    (b"\xde\xad", 273424384, [0, 1, 4, 2, 4, 84]),
    (b"\xff\xfe\xfd", 998637092, [0, 2, 2, 5, 8, 92]),
    (b"\xff\xff\xff\xff", 644171429, [0, 2, 5, 6, 5, 29]),
    (b"\x00\xc3\x7f\xa0\xf0", 743374082, [0, 2, 2, 3, 2, 82]),
    (b"\x80\x81\x82\x83\x84\x85\x86", -47880214, [0, 1, 4, 5, 10, 34]),
    (b"\xca\xfe\xba\xbe\xde\xad\xbe\xef\x99", -1795289531, [0, 0, 3, 2, 9, 17]),
    (b"order-1", 1221710326, [0, 1, 4, 4, 10, 26]),
    (b"order-2", -1055499005, [0, 0, 3, 1, 3, 43]),
    (b"order-3", -849583649, [0, 0, 3, 4, 3, 99]),
    (b"order-4", 1928061674, [0, 2, 2, 0, 2, 74]),
    (b"order-5", 847857254, [0, 2, 2, 6, 2, 54]),
    ];

    #[test]
    fn murmur2_matches_java_client() {
        for (key, hash, _) in JAVA_VECTORS {
            assert_eq!(murmur2(key), *hash, "murmur2 of {key:02x?}");
        }
    }

    #[test]
    fn partition_for_key_matches_java_client() {
        for (key, _, expected) in JAVA_VECTORS {
            for (n, want) in PARTITION_COUNTS.iter().zip(expected) {
                assert_eq!(
                    partition_for_key(key, *n),
                    *want,
                    "key {key:02x?}, {n} partitions"
                );
            }
        }
    }

    #[test]
    fn vectors_cover_every_tail_length() {
        let mut seen = [false; 4];
        for (key, _, _) in JAVA_VECTORS {
            seen[key.len() % 4] = true;
        }
        assert_eq!(seen, [true; 4]);
        assert!(JAVA_VECTORS.iter().any(|(key, _, _)| key.len() >= 100));
        assert!(JAVA_VECTORS.iter().any(|(_, hash, _)| *hash < 0));
    }

    #[test]
    fn partitioner_uses_key_hash() {
        let p = Partitioner::new();
        for (key, _, expected) in JAVA_VECTORS {
            for (n, want) in PARTITION_COUNTS.iter().zip(expected) {
                assert_eq!(p.partition(Some(key), None, *n), Ok(*want));
            }
        }
        // An empty key is a key: hashed, not round robin (as in Java).
        for _ in 0..10 {
            assert_eq!(p.partition(Some(b""), None, 12), Ok(9));
        }
    }

    #[test]
    fn to_positive_clears_sign_bit() {
        assert_eq!(to_positive(0), 0);
        assert_eq!(to_positive(5), 5);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(i32::MAX), i32::MAX);
    }

    #[test]
    fn keyless_round_robin_is_even() {
        for partitions in [1, 3, 7, 12] {
            let p = Partitioner::new();
            let rounds = 50;
            let mut counts = vec![0; partitions as usize];
            for i in 0..partitions * rounds {
                let chosen = p.partition(None, None, partitions).unwrap();
                assert_eq!(chosen, i % partitions, "rotation order");
                counts[chosen as usize] += 1;
            }
            assert!(counts.iter().all(|&c| c == rounds), "{counts:?}");
        }
    }

    #[test]
    fn keyless_round_robin_is_even_across_threads() {
        let p = Partitioner::new();
        let partitions = 6;
        let per_thread = 600;
        let counts = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let mut counts = vec![0; partitions as usize];
                        for _ in 0..per_thread {
                            counts[p.partition(None, None, partitions).unwrap() as usize] += 1;
                        }
                        counts
                    })
                })
                .collect();
            let mut total = vec![0; partitions as usize];
            for h in handles {
                for (t, c) in total.iter_mut().zip(h.join().unwrap()) {
                    *t += c;
                }
            }
            total
        });
        assert_eq!(
            counts,
            vec![4 * per_thread / partitions as usize; partitions as usize]
        );
    }

    #[test]
    fn explicit_partition_is_honoured() {
        let p = Partitioner::new();
        assert_eq!(p.partition(None, Some(0), 1), Ok(0));
        assert_eq!(p.partition(None, Some(4), 12), Ok(4));
        assert_eq!(p.partition(None, Some(11), 12), Ok(11));
        // The explicit partition wins over the key ("kafka" hashes to 4 of 12).
        assert_eq!(p.partition(Some(b"kafka"), Some(7), 12), Ok(7));
        // Explicit placements do not advance the round robin.
        assert_eq!(p.partition(None, None, 12), Ok(0));
    }

    #[test]
    fn explicit_partition_out_of_range_is_an_error() {
        let p = Partitioner::new();
        for (partition, partitions) in [(12, 12), (13, 12), (-1, 12), (i32::MIN, 3), (1, 1)] {
            assert_eq!(
                p.partition(Some(b"k"), Some(partition), partitions),
                Err(PartitionError::PartitionOutOfRange {
                    partition,
                    partitions
                })
            );
        }
        let message = p.partition(None, Some(12), 12).unwrap_err().to_string();
        assert!(message.contains("12"), "{message}");
    }

    #[test]
    fn non_positive_partition_count_is_an_error() {
        let p = Partitioner::new();
        for partitions in [0, -1, i32::MIN] {
            for (key, explicit) in [(None, None), (Some(&b"k"[..]), None), (None, Some(0))] {
                assert_eq!(
                    p.partition(key, explicit, partitions),
                    Err(PartitionError::InvalidPartitionCount { partitions })
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "partition count must be positive")]
    fn partition_for_key_panics_on_zero_partitions() {
        let _ = partition_for_key(b"k", 0);
    }

    #[test]
    fn partition_is_always_in_range() {
        // Deterministic pseudo-random keys (xorshift), all lengths 0..=64,
        // partition counts from 1 up to i32::MAX.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let p = Partitioner::new();
        for len in 0..=64usize {
            for _ in 0..40 {
                let key: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                let partitions = match next() % 4 {
                    0 => 1 + (next() % 16) as i32,
                    1 => 1 + (next() % 10_000) as i32,
                    2 => i32::MAX,
                    _ => 1 + (next() % i32::MAX as u64) as i32,
                };
                let keyed = p.partition(Some(&key), None, partitions).unwrap();
                assert!((0..partitions).contains(&keyed), "{keyed} of {partitions}");
                assert_eq!(keyed, partition_for_key(&key, partitions));
                let keyless = p.partition(None, None, partitions).unwrap();
                assert!(
                    (0..partitions).contains(&keyless),
                    "{keyless} of {partitions}"
                );
            }
        }
    }
}
