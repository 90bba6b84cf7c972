//! kafka-actors: a pure-Rust runtime for Kafka event-processing services.
//!
//! # Architecture
//!
//! ```text
//!                      actix System (main thread)
//!  ┌──────────────────────────────────────────────────────────────┐
//!  │ runtime::run ── owns start-up and shutdown order             │
//!  │    │                                                         │
//!  │    ├── Supervisor<HealthMonitor> ── every check_interval:    │
//!  │    │        connect → ApiVersions → Metadata (kafka::cluster)│
//!  │    │                                                         │
//!  │    └── HTTP (actix-web, 1 worker)                            │
//!  │           /health  /health/live  /health/ready  ──ask──▶ HealthMonitor
//!  │           /metrics  (Prometheus text from the recorder)      │
//!  └──────────────────────────────────────────────────────────────┘
//!        │ kafka-protocol frames, TCP_NODELAY, deadline per call
//!        ▼
//!   Kafka brokers (Apache Kafka 4.x, or embedded Tansu for tests)
//! ```
//!
//! The planned tree (partition consumers, handlers, producer pool, DLQ
//! retrier, group membership, topic manager, admin API) is described in
//! `docs/ARCHITECTURE.md`; only what is listed here exists in this version.
//!
//! # Layout
//!
//! - [`cli`]: command-line definitions; one function per command.
//! - [`config`]: configuration types, layered loading (defaults → TOML →
//!   seed variables → `KAFKA_ACTORS_*`), validation with provenance.
//! - [`consumer`]: consuming partitions; the committable-offset watermark.
//! - [`kafka`]: adapters over the Kafka protocol: one connection
//!   ([`kafka::wire`]), cluster operations ([`kafka::cluster`]).
//! - [`handler`]: handling requests; the request envelope and replies.
//! - [`health`]: the health monitor actor and its status logic.
//! - [`producer`]: producing; the Java-compatible partitioner.
//! - [`http`]: the HTTP listener for health and metrics.
//! - [`runtime`]: builds and supervises the actor tree; shutdown order.
//! - [`telemetry`]: logging set-up; every metric name.
//! - [`exit`]: the documented process exit codes.
//! - `embedded` (feature `embedded-broker`): in-process Tansu broker.
//! - `testkit` (feature `testkit`): the test harness of seed 004.

pub mod cli;
mod cli_records;
pub mod config;
pub mod consumer;
#[cfg(feature = "embedded-broker")]
pub mod embedded;
pub mod exit;
pub mod handler;
pub mod health;
pub mod http;
pub mod kafka;
pub mod producer;
pub mod runtime;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
