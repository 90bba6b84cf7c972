//! Integration tests against a real broker: Apache Kafka when
//! `KAFKA_ACTORS_TEST_BOOTSTRAP` is set (see `scripts/kafka up`), else an
//! in-process Tansu broker. One binary; random topic and group names per
//! test; a deadline on every wait; the service's log printed on failure.

mod cli;
mod harness;
mod offsets;
mod service;
mod support;
