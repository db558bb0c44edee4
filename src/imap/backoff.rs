//! Reconnect delays: exponential from one second, capped at `reconnect_max`, with jitter so
//! that many postroom instances behind one failed server do not return in step.

use rand::Rng;
use std::time::Duration;

const FIRST: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Backoff {
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(max: Duration) -> Backoff {
        Backoff {
            max: max.max(FIRST),
            failures: 0,
        }
    }

    /// The delay before the next attempt: `1s · 2^failures`, capped, then jittered to between
    /// half and all of it ("equal jitter"), so it never drops below half a second (no spin).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = FIRST
            .checked_mul(1u32 << self.failures.min(20))
            .unwrap_or(self.max)
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        let extra_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::thread_rng().gen_range(0..=extra_ms))
    }

    /// A session that worked for a while starts the count again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(10));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_secs(1u64 << i).min(Duration::from_secs(10));
            assert!(
                *d >= ceiling / 2 && *d <= ceiling,
                "attempt {i}: {d:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert_eq!(b.failures(), 8);
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn never_below_half_a_second() {
        let mut b = Backoff::new(Duration::from_millis(1));
        for _ in 0..100 {
            assert!(b.next_delay() >= Duration::from_millis(500));
        }
    }
}
