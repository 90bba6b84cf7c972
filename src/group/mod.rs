//! Consumer group membership: this instance shares the partitions of its
//! routed topics with the other members of `consumer.group_id`.
//!
//! - [`assignor`]: the partition assignors (`range`, `roundrobin`,
//!   `cooperative-sticky`), compatible with the Java client's.
//! - [`member`]: the group membership actor (classic protocol).
//! - [`consumer`]: the group membership actor for KIP-848's consumer
//!   protocol.

pub mod assignor;
pub mod consumer;
pub mod member;
pub mod reset;

pub use consumer::ConsumerMember;
pub use member::{GroupMember, Leave};
