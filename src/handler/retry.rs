//! Retry schedules (seed 002's strategies): how long a handler worker waits
//! before trying a failed record again. Pure logic; the randomness for the
//! jitter is passed in.

use std::time::Duration;

use crate::config::{RetryConfig, RetryStrategy};

impl RetryConfig {
    /// Attempts in all, the first included.
    pub fn attempts(&self) -> u32 {
        match self.strategy {
            RetryStrategy::None => 1,
            _ => self.max_attempts.max(1),
        }
    }

    /// The pause after the `failed`-th failed attempt (1 for the first),
    /// before the next one, for `random` in `[0, 1)`: the strategy's delay
    /// scaled by `1 - jitter + 2 × jitter × random`, capped at
    /// `max_delay_ms`.
    pub fn delay(&self, failed: u32, random: f64) -> Duration {
        let base = self.base_delay_ms(failed);
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * random.clamp(0.0, 1.0);
        let ms = (base * factor).min(self.max_delay_ms as f64).max(0.0);
        Duration::from_micros((ms * 1000.0) as u64)
    }

    /// The strategy's delay in milliseconds, before jitter, capped.
    fn base_delay_ms(&self, failed: u32) -> f64 {
        let n = f64::from(failed.max(1));
        let initial = self.initial_delay_ms as f64;
        let ms = match self.strategy {
            RetryStrategy::Exponential => initial * self.multiplier.powf(n - 1.0),
            RetryStrategy::Fixed => initial,
            RetryStrategy::Linear => initial * n,
            RetryStrategy::None => 0.0,
        };
        ms.min(self.max_delay_ms as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(strategy: RetryStrategy, jitter: f64) -> RetryConfig {
        RetryConfig {
            strategy,
            max_attempts: 5,
            initial_delay_ms: 100,
            multiplier: 2.0,
            max_delay_ms: 1_000,
            jitter,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn each_strategy_has_its_shape() {
        let ms = |c: &RetryConfig, n| c.delay(n, 0.5).as_millis();
        let e = config(RetryStrategy::Exponential, 0.0);
        assert_eq!(
            [1, 2, 3, 4, 5].map(|n| ms(&e, n)),
            [100, 200, 400, 800, 1000]
        );
        let f = config(RetryStrategy::Fixed, 0.0);
        assert_eq!([1, 2, 3].map(|n| ms(&f, n)), [100, 100, 100]);
        let l = config(RetryStrategy::Linear, 0.0);
        assert_eq!([1, 2, 3, 20].map(|n| ms(&l, n)), [100, 200, 300, 1000]);
        let none = config(RetryStrategy::None, 0.0);
        assert_eq!(none.attempts(), 1);
        assert_eq!(e.attempts(), 5);
        // Jitter at its extremes.
        let j = config(RetryStrategy::Fixed, 0.5);
        assert_eq!(j.delay(1, 0.0).as_millis(), 50);
        assert_eq!(j.delay(1, 1.0).as_millis(), 150);
    }

    fn strategy() -> impl Strategy<Value = RetryStrategy> {
        prop_oneof![
            Just(RetryStrategy::Exponential),
            Just(RetryStrategy::Fixed),
            Just(RetryStrategy::Linear),
        ]
    }

    proptest! {
        /// Without jitter a schedule never shrinks and never passes its cap.
        #[test]
        fn schedules_are_monotonic_and_capped(
            strategy in strategy(),
            initial in 0u64..5_000,
            extra in 0u64..100_000,
            multiplier in 1.0f64..10.0,
        ) {
            let c = RetryConfig {
                strategy,
                max_attempts: 50,
                initial_delay_ms: initial,
                multiplier,
                max_delay_ms: initial + extra,
                jitter: 0.0,
                ..RetryConfig::default()
            };
            let mut last = Duration::ZERO;
            for n in 1..50 {
                let d = c.delay(n, 0.3);
                prop_assert!(d >= last, "attempt {n}: {d:?} < {last:?}");
                prop_assert!(d <= Duration::from_millis(c.max_delay_ms));
                last = d;
            }
        }

        /// Jitter stays within `1 ± jitter` of the delay, and under the cap.
        #[test]
        fn jitter_is_bounded(
            strategy in strategy(),
            jitter in 0.0f64..=1.0,
            random in 0.0f64..1.0,
            n in 1u32..30,
        ) {
            let c = RetryConfig { jitter, ..config(strategy, 0.0) };
            let plain = c.base_delay_ms(n);
            let d = c.delay(n, random).as_secs_f64() * 1000.0;
            prop_assert!(d >= plain * (1.0 - jitter) - 0.001, "{d} vs {plain}");
            prop_assert!(d <= (plain * (1.0 + jitter)).min(c.max_delay_ms as f64) + 0.001);
        }
    }
}
