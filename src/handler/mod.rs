//! Handling requests.
//!
//! - [`api`]: the [`Handler`] trait, typed handlers, and the boundary that
//!   turns a panic into a failure.
//! - [`envelope`]: reading a request's correlation id, event type, reply
//!   topic and payload (seeds 000, 002, 004), and building its reply.
//! - [`dead_letter`]: the dead-letter record of a failed request.
//! - [`failure`]: what each failure class does (retry, dlq, pause, stop),
//!   and the circuit breaker.
//! - [`retry_topic`]: retry records (`retry.mode = "topic"`): headers,
//!   due time, the original record.
//! - [`key_waits`]: key order through retry topics: the keys of an input
//!   partition with records waiting in its retry partition.
//! - [`jq`]: jq programs through jaq (pure Rust), for the `jq` handler.
//! - [`router`]: routes by topic and event type, and the handler registry.
//! - [`process`]: what happens to one record: route, handle, outputs (no
//!   actors, no I/O).
//! - [`worker`]: the handler worker actor: runs [`process`] on the records a
//!   partition consumer hands it, in order, and publishes their outputs.

pub mod api;
pub mod dead_letter;
pub mod envelope;
pub mod failure;
pub mod jq;
pub mod key_waits;
pub mod process;
pub mod retry;
pub mod retry_topic;
pub mod router;
pub mod worker;

pub use api::{Context, Failure, FailureKind, Handler, HandlerError, invoke, typed};
pub use router::{HandlerRegistry, Route, Router, RouterError};
