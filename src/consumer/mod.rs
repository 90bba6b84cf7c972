//! Consuming partitions.
//!
//! - [`partition`]: the partition consumer actor (fetch, handle, publish,
//!   commit).
//! - [`commit`]: the offset committer actor.
//! - [`process`]: what happens to one record: route, handle, outputs.
//! - [`watermark`]: the handled-offset watermark of one partition, the only
//!   offset that may be committed.

pub mod commit;
pub mod partition;
pub mod process;
pub mod watermark;

pub use watermark::{Watermark, WatermarkError};
