//! Producing records.
//!
//! - [`client`]: a producer over rskafka with deadlines and per-record
//!   results.
//! - [`pool`]: the producer pool actor: per-partition queues with linger
//!   and batch limits, one request in flight per partition, per-publish
//!   acknowledgements.
//! - [`partitioner`]: where a record goes, bit-compatible with the Java
//!   client's default partitioner so every client agrees on key placement.
//!
//! rskafka carries the produce requests; its sockets get `TCP_NODELAY` from
//! the vendored patch (`vendor/rskafka/PATCHED.md`).

pub mod client;
pub mod partitioner;
pub mod pool;

pub use client::{OutRecord, ProduceError, Producer, TopicHandle, Written};
pub use partitioner::{PartitionError, Partitioner, murmur2, partition_for_key};
pub use pool::{Flush, PoolSettings, ProducerPool, Publish, Results};
