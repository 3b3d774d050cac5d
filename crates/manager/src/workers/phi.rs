//! A phi-accrual failure detector (Hayashibara et al.) over one worker's
//! heartbeat arrivals: phi is how unlikely it is, given the intervals seen so
//! far, that a heartbeat is still on its way; it grows smoothly the longer
//! one is overdue, so one threshold fits fast and slow networks alike.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// Intervals kept to estimate the distribution.
const MAX_SAMPLES: usize = 200;

/// The detector of one worker.
#[derive(Debug, Clone)]
pub struct PhiDetector {
    intervals_ms: VecDeque<f64>,
    /// Whether the intervals are still the first estimate, to be replaced
    /// by the first one measured.
    estimated: bool,
    last: Option<Instant>,
    min_std_dev_ms: f64,
}

impl PhiDetector {
    /// A detector that expects heartbeats every `expected` (the first
    /// estimate, until real intervals replace it) and never assumes less
    /// spread than `min_std_dev`.
    pub fn new(expected: Duration, min_std_dev: Duration) -> Self {
        let expected_ms = expected.as_secs_f64() * 1000.0;
        Self {
            // Two samples around the expected interval seed mean and spread.
            intervals_ms: VecDeque::from([expected_ms * 0.75, expected_ms * 1.25]),
            estimated: true,
            last: None,
            min_std_dev_ms: min_std_dev.as_secs_f64() * 1000.0,
        }
    }

    /// Records a heartbeat arriving at `now`.
    pub fn heartbeat(&mut self, now: Instant) {
        if let Some(last) = self.last.replace(now) {
            if std::mem::take(&mut self.estimated) {
                self.intervals_ms.clear();
            }
            if self.intervals_ms.len() == MAX_SAMPLES {
                self.intervals_ms.pop_front();
            }
            self.intervals_ms
                .push_back(now.saturating_duration_since(last).as_secs_f64() * 1000.0);
        }
    }

    /// When the last heartbeat arrived.
    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.last
    }

    /// Phi at `now`: 0 right after a heartbeat, growing while none comes.
    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last else {
            return 0.0;
        };
        let elapsed = now.saturating_duration_since(last).as_secs_f64() * 1000.0;
        let count = self.intervals_ms.len() as f64;
        let mean = self.intervals_ms.iter().sum::<f64>() / count;
        let variance = self
            .intervals_ms
            .iter()
            .map(|interval| (interval - mean).powi(2))
            .sum::<f64>()
            / count;
        let std_dev = variance.sqrt().max(self.min_std_dev_ms);
        // The logistic approximation of the normal distribution's tail.
        let y = (elapsed - mean) / std_dev;
        let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
        let phi = if elapsed > mean {
            -(e / (1.0 + e)).log10()
        } else {
            -(1.0 - 1.0 / (1.0 + e)).log10()
        };
        if phi.is_finite() {
            phi.max(0.0)
        } else {
            f64::MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_stays_low_while_heartbeats_come_and_grows_when_they_stop() {
        let interval = Duration::from_secs(1);
        let mut detector = PhiDetector::new(interval, Duration::from_millis(100));
        let start = Instant::now();
        for beat in 0..20 {
            detector.heartbeat(start + interval * beat);
        }
        let last = start + interval * 19;
        assert!(detector.phi(last + Duration::from_millis(500)) < 1.0);
        let later =
            [1_200, 1_500, 2_000, 4_000].map(|ms| detector.phi(last + Duration::from_millis(ms)));
        assert!(later.windows(2).all(|pair| pair[0] < pair[1]), "{later:?}");
        assert!(later[3] > 10.0, "{later:?}");
    }

    #[test]
    fn measured_intervals_replace_the_first_estimate() {
        let mut detector = PhiDetector::new(Duration::from_secs(5), Duration::from_millis(100));
        let start = Instant::now();
        for beat in 0..3 {
            detector.heartbeat(start + Duration::from_secs(1) * beat);
        }
        let overdue = start + Duration::from_secs(2) + Duration::from_millis(1_800);
        assert!(detector.phi(overdue) > 8.0, "{}", detector.phi(overdue));
    }

    #[test]
    fn irregular_heartbeats_make_a_late_one_less_suspicious() {
        let start = Instant::now();
        let mut steady = PhiDetector::new(Duration::from_secs(1), Duration::from_millis(10));
        let mut jittery = steady.clone();
        let mut at = (start, start);
        for beat in 0..40u64 {
            let jitter = Duration::from_millis((beat % 5) * 150);
            at = (
                at.0 + Duration::from_secs(1),
                at.1 + Duration::from_millis(700) + jitter,
            );
            steady.heartbeat(at.0);
            jittery.heartbeat(at.1);
        }
        let late = Duration::from_millis(1_600);
        assert!(jittery.phi(at.1 + late) < steady.phi(at.0 + late));
    }
}
