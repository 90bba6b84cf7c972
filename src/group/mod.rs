//! Consumer group membership: this instance shares the partitions of its
//! routed topics with the other members of `consumer.group_id`.
//!
//! - [`assignor`]: the partition assignors (`range`, `roundrobin`,
//!   `cooperative-sticky`), compatible with the Java client's.
//! - [`member`]: the group membership actor (classic protocol).

pub mod assignor;
pub mod member;

pub use member::{GroupMember, Leave};
