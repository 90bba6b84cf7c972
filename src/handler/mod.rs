//! Handling requests.
//!
//! - [`envelope`]: reading a request's correlation id, event type, reply
//!   topic and payload (seeds 000, 002, 004), and building its reply.

pub mod envelope;
