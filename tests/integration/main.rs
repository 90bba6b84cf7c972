//! Integration tests against a real broker: Apache Kafka when
//! `KAFKA_ACTORS_TEST_BOOTSTRAP` is set (see `scripts/kafka up`), else an
//! in-process Tansu broker. One binary; random topic and group names per
//! test; a deadline on every wait; the service's log printed on failure.

// Test helpers unwrap: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod actions;
mod admin;
mod alerts;
mod cli;
mod coordinator;
mod dlq;
mod groups;
mod harness;
mod intelligence;
mod library;
mod offsets;
mod ordering;
mod pipeline;
mod poison;
mod reset;
mod retries;
mod security;
mod seeds;
mod service;
mod support;
#[cfg(feature = "tls")]
mod tls;
mod topics;
