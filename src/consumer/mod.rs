//! Consuming partitions.
//!
//! - [`watermark`]: the handled-offset watermark of one partition, the only
//!   offset that may be committed.

pub mod watermark;

pub use watermark::{Watermark, WatermarkError};
