//! The wait between retries, one kind for every retry loop: it doubles
//! from a first wait up to a cap, each wait is drawn at random between half
//! and all of it (so that the thousands of workers that lost their manager
//! together do not come back together), and a success starts it over.

use std::time::Duration;

/// The waits of one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits from `first` (at most) doubling up to `cap`; a cap below
    /// `first` is taken as `first`.
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap: cap.max(first),
            next: first,
        }
    }

    /// The wait before the next try: between half of the current step and
    /// all of it. The step after is twice as long, up to the cap.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.next;
        self.next = step.saturating_mul(2).min(self.cap);
        jittered(step)
    }

    /// Starts over from the first wait, after a success.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Between half of `step` and all of it, at random.
fn jittered(step: Duration) -> Duration {
    let unit = getrandom::u64().map_or(0.5, |random| (random >> 11) as f64 / (1u64 << 53) as f64);
    step / 2 + (step / 2).mul_f64(unit)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the first wait, each wait is between half its step and
        /// all of it.
        #[test]
        fn every_wait_is_within_its_step(millis in 0..u64::MAX / 4) {
            let first = Duration::from_millis(millis);
            let mut backoff = Backoff::new(first, first * 2);
            for step in [first, first * 2, first * 2] {
                let wait = backoff.next_wait();
                prop_assert!(wait >= step / 2 && wait <= step, "{:?} of {:?}", wait, step);
            }
        }
    }

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_below_each_step() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        for step in [1, 2, 4, 8, 8, 8] {
            let wait = backoff.next_wait();
            let step = Duration::from_secs(step);
            assert!(
                (step / 2..=step).contains(&wait),
                "{wait:?} for a step of {step:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_wait() <= Duration::from_secs(1));
    }

    #[test]
    fn waits_of_many_loops_spread_out() {
        let waits: std::collections::BTreeSet<Duration> = (0..100)
            .map(|_| Backoff::new(Duration::from_secs(4), Duration::from_secs(4)).next_wait())
            .collect();
        assert!(waits.len() > 50, "{} distinct waits of 100", waits.len());
    }

    #[test]
    fn a_cap_below_the_first_wait_is_the_first_wait() {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        backoff.next_wait();
        assert!(backoff.next_wait() <= Duration::from_secs(2));
    }
}
