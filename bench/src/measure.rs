//! Sampling: warm up, then time one operation (one whole batch) per sample
//! until the block's budget is spent, and summarize as median and p99.
//!
//! A [`Sampler`] is driven by a loop the caller writes, so the same code
//! serves synchronous runtimes ([`Sampler::run`]) and async ones that must
//! keep their loop inside one `block_on` ([`Sampler::more`] and
//! [`Sampler::record`]).

use std::time::{Duration, Instant};

use crate::Result;

/// How one block of samples is taken.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Untimed iterations before sampling, at least.
    pub warmup_iters: usize,
    /// Untimed time before sampling, at least (both warm-up bounds apply).
    pub warmup_time: Duration,
    /// Samples taken whatever the budget.
    pub min_samples: usize,
    /// Samples never exceeded, whatever the budget.
    pub max_samples: usize,
    /// Sampling time of one block, once `min_samples` are in.
    pub budget: Duration,
}

/// Collects the samples of one block, following a [`Plan`].
#[derive(Debug)]
pub struct Sampler {
    plan: Plan,
    warmed: usize,
    warmup_start: Instant,
    sampling_start: Option<Instant>,
    samples: Vec<Duration>,
    /// The wall time that samples handed in with [`take`](Self::take)
    /// cover (zero for one-sample-per-operation workloads).
    wall: Duration,
}

impl Sampler {
    pub fn new(plan: Plan) -> Self {
        Self {
            plan,
            warmed: 0,
            warmup_start: Instant::now(),
            sampling_start: None,
            samples: Vec::new(),
            wall: Duration::ZERO,
        }
    }

    /// True while another iteration (warm-up or timed) is wanted.
    pub fn more(&mut self) -> bool {
        let plan = &self.plan;
        let start = match self.sampling_start {
            Some(start) => start,
            None => {
                if self.warmed < plan.warmup_iters || self.warmup_start.elapsed() < plan.warmup_time
                {
                    return true;
                }
                *self.sampling_start.insert(Instant::now())
            }
        };
        let taken = self.samples.len();
        taken < plan.min_samples || (taken < plan.max_samples && start.elapsed() < plan.budget)
    }

    /// Records one iteration's duration; warm-up iterations are dropped.
    pub fn record(&mut self, elapsed: Duration) {
        if self.sampling_start.is_some() {
            self.samples.push(elapsed);
        } else {
            self.warmed += 1;
        }
    }

    /// Runs and times `op` once per iteration until the block is done.
    pub fn run(&mut self, mut op: impl FnMut() -> Result<()>) -> Result<()> {
        while self.more() {
            let start = Instant::now();
            op()?;
            self.record(start.elapsed());
        }
        Ok(())
    }

    /// Like [`run`](Self::run), but what `op` returns is handed to
    /// `teardown` after the clock stops: a pool built in the timed region
    /// is shut down outside it.
    pub fn run_with_teardown<T>(
        &mut self,
        mut op: impl FnMut() -> Result<T>,
        mut teardown: impl FnMut(T) -> Result<()>,
    ) -> Result<()> {
        while self.more() {
            let start = Instant::now();
            let done = op()?;
            let elapsed = start.elapsed();
            teardown(done)?;
            self.record(elapsed);
        }
        Ok(())
    }

    /// Takes samples timed elsewhere, by callers that time each call
    /// themselves (W14), with the wall time they were taken in: the record
    /// then has a rate, samples per second of wall time. The plan is not
    /// consulted; the caller warmed up and sized the block itself.
    pub fn take(&mut self, samples: impl IntoIterator<Item = Duration>, wall: Duration) {
        self.samples.extend(samples);
        self.wall += wall;
    }

    /// The wall time of the samples handed in with [`take`](Self::take).
    pub fn wall(&self) -> Duration {
        self.wall
    }

    pub fn into_samples(self) -> Vec<Duration> {
        self.samples
    }
}

/// Median and p99 of a set of samples, in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub median_ns: u64,
    pub p99_ns: u64,
    pub samples: usize,
}

impl Summary {
    /// Summarizes `samples` (sorted in place); `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2
        };
        // Nearest rank: the smallest sample with at least 99 % at or below it.
        let p99 = samples[(n * 99).div_ceil(100) - 1];
        Some(Self {
            median_ns: nanos(median),
            p99_ns: nanos(p99),
            samples: n,
        })
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p99() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_nanos).collect();
        let summary = Summary::of(&mut samples).unwrap();
        assert_eq!(summary.median_ns, 50); // (50 + 51) / 2, rounded down
        assert_eq!(summary.p99_ns, 99);
        assert_eq!(summary.samples, 100);

        let mut one = vec![Duration::from_nanos(7)];
        let summary = Summary::of(&mut one).unwrap();
        assert_eq!((summary.median_ns, summary.p99_ns), (7, 7));
        assert!(Summary::of(&mut []).is_none());
    }

    #[test]
    fn sampler_warms_up_then_stops_at_max() {
        let plan = Plan {
            warmup_iters: 3,
            warmup_time: Duration::ZERO,
            min_samples: 2,
            max_samples: 5,
            budget: Duration::from_secs(60),
        };
        let mut sampler = Sampler::new(plan);
        let mut runs = 0;
        sampler
            .run(|| {
                runs += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(runs, 8);
        assert_eq!(sampler.into_samples().len(), 5);
    }

    #[test]
    fn teardown_is_not_timed() {
        let plan = Plan {
            warmup_iters: 1,
            warmup_time: Duration::ZERO,
            min_samples: 3,
            max_samples: 3,
            budget: Duration::ZERO,
        };
        let mut sampler = Sampler::new(plan);
        let mut torn_down = 0;
        sampler
            .run_with_teardown(
                || Ok(Duration::from_millis(20)),
                |nap| {
                    std::thread::sleep(nap);
                    torn_down += 1;
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(torn_down, 4);
        let samples = sampler.into_samples();
        assert_eq!(samples.len(), 3);
        assert!(samples.iter().all(|s| *s < Duration::from_millis(20)));
    }
}
