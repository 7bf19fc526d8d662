//! Repeated timings and their percentiles.

use std::time::{Duration, Instant};

/// How many times a measured operation runs.
#[derive(Debug, Clone, Copy)]
pub struct Repeat {
    /// Untimed runs first (caches, branch predictors, lazy initialisation).
    pub warmup: usize,
    /// Timed runs.
    pub runs: usize,
}

/// Durations of the timed runs of one operation, sorted.
#[derive(Debug, Clone)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    /// Sorts `durations` (at least one).
    pub fn new(mut durations: Vec<Duration>) -> Self {
        durations.sort_unstable();
        Self { sorted: durations }
    }

    /// The `p`-th percentile (0 < p ≤ 100) by the nearest-rank method: a duration that was
    /// actually measured, never an interpolation.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (p / 100.0 * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    /// How many durations there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The median.
    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }
}

/// Times `op` `repeat.runs` times after `repeat.warmup` untimed runs. `op` returns a value
/// that is kept from the optimiser; the value of the last run is returned with the timings.
pub fn time_sync<T>(repeat: Repeat, mut op: impl FnMut() -> T) -> (Samples, Option<T>) {
    for _ in 0..repeat.warmup {
        std::hint::black_box(op());
    }
    let mut durations = Vec::with_capacity(repeat.runs);
    let mut last = None;
    for _ in 0..repeat.runs {
        let started = Instant::now();
        let value = std::hint::black_box(op());
        durations.push(started.elapsed());
        last = Some(value);
    }
    (Samples::new(durations), last)
}

/// Microseconds, for tables.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Milliseconds, for tables.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples = Samples::new((1..=200).rev().map(Duration::from_micros).collect());
        assert_eq!(samples.p50(), Duration::from_micros(100));
        assert_eq!(samples.p99(), Duration::from_micros(198));
        assert_eq!(samples.percentile(100.0), Duration::from_micros(200));
        let one = Samples::new(vec![Duration::from_micros(5)]);
        assert_eq!(one.p50(), Duration::from_micros(5));
        assert_eq!(one.p99(), Duration::from_micros(5));
    }
}
