//! kafka-actors: a pure-Rust runtime for Kafka event-processing services.
//!
//! # Architecture
//!
//! ```text
//!                      actix System (main thread)
//!  runtime::run ── start-up and shutdown order
//!    ├── Supervisor<HealthMonitor>   broker checks → /health, readiness
//!    ├── topics::TopicManager        create + verify declared topics
//!    ├── HTTP (actix-web)            /health* /metrics
//!    └── pipeline, per Arbiter (one per core):
//!          ProducerPool ◀──Publish── HandlerWorker × concurrency ◀──HandleBatch──┐
//!            │ produce (acks=all)        (route, handler, panic boundary)         │
//!            └──ack──────────────────────────────────────────▶ PartitionConsumer ─┘
//!                                                        fetch ahead │ Report(watermark)
//!                                                                    ▼
//!                                                             OffsetCommitter
//!        │ rskafka (produce/fetch) and kafka-protocol (groups, offsets, admin),
//!        ▼ TCP_NODELAY, a deadline on every call
//!   Kafka brokers (Apache Kafka 4.x, or embedded Tansu for tests)
//! ```
//!
//! `docs/ARCHITECTURE.md` describes each part and what later issues add
//! (consumer groups, retry topics, admin API).
//!
//! # Layout
//!
//! - [`cli`]: command-line definitions; one function per command.
//! - [`config`]: configuration types, layered loading (defaults → TOML →
//!   seed variables → `KAFKA_ACTORS_*`), validation with provenance.
//! - [`consumer`]: consuming partitions; the committable-offset watermark.
//! - [`demo`]: the quickstart's demo load (`run --demo-rate N`).
//! - [`kafka`]: adapters over the Kafka protocol: one connection
//!   ([`kafka::wire`]), cluster operations ([`kafka::cluster`]).
//! - [`handler`]: handling requests; the request envelope and replies.
//! - [`health`]: the health monitor actor and its status logic.
//! - [`producer`]: producing; the Java-compatible partitioner.
//! - [`http`]: the HTTP listener for health and metrics.
//! - [`runtime`]: builds and supervises the actor tree; shutdown order.
//! - [`telemetry`]: logging set-up; every metric name.
//! - [`topics`]: the topic manager: validate, create, verify and align the
//!   declared topics (seed 003).
//! - [`group`]: consumer group membership and partition assignors.
//! - [`exit`]: the documented process exit codes.
//! - `embedded` (feature `embedded-broker`): in-process Tansu broker.
//! - `testkit` (feature `testkit`): the test harness of seed 004.

pub mod cli;
mod cli_dlq;
mod cli_group;
mod cli_records;
mod cli_topics;
pub mod config;
pub mod consumer;
pub mod demo;
#[cfg(feature = "embedded-broker")]
pub mod embedded;
pub mod exit;
pub mod group;
pub mod handler;
pub mod health;
pub mod http;
pub mod kafka;
pub mod producer;
pub mod runtime;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod topics;
