//! Consuming partitions.
//!
//! - [`partition`]: the partition consumer actor (fetch ahead, hand
//!   records to handler workers, track what is fully handled, commit).
//! - [`commit`]: the offset committer actor.
//! - [`watermark`]: the handled-offset watermark of one partition, the only
//!   offset that may be committed.

pub mod commit;
pub mod partition;
pub mod watermark;

pub use watermark::{Watermark, WatermarkError};
