//! The workloads of BENCHMARKS.md, and the loop that measures every runtime
//! of a workload side by side.
//!
//! A workload is a list of [`Runner`]s, one per runtime, each built (pool
//! started, runtime created, correctness checked) before any measurement.
//! [`measure`] then takes every point in `rounds` interleaved blocks: in
//! each round, every runtime measures every batch size once, the order of
//! runtimes rotating from round to round. Idle runtimes sit parked while
//! the others run.

pub mod w1;
pub mod w2;

use std::time::Duration;

use crate::{
    measure::{Sampler, Summary},
    mode::Mode,
    report::Record,
    Result,
};

/// Worker threads of every pool-like runtime (knitting, tokio-mt): one per
/// core, less the core the calling thread runs on (at least one). A pool
/// with as many workers as cores plus a busy caller oversubscribes the
/// machine, and every runtime then measures the scheduler more than itself.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .saturating_sub(1)
        .max(1)
}

/// The batch sizes of W1 and W2.
pub const BATCHES: &[usize] = &[1, 10, 100];

/// Capacity of the bounded request and reply channels of the baselines:
/// at least the largest batch, so a batch never waits for room.
pub const CHANNEL_CAPACITY: usize = 128;

/// One workload: what is measured, at which sizes, on which runtimes.
pub struct Workload {
    pub id: &'static str,
    pub title: &'static str,
    /// Payload size of one call, in bytes.
    pub bytes: usize,
    pub batches: &'static [usize],
    pub runners: Vec<Runner>,
}

type MeasureFn = Box<dyn FnMut(usize, &mut Sampler) -> Result<()>>;

/// One runtime of a workload: measures a batch size into a sampler.
pub struct Runner {
    pub runtime: &'static str,
    only: Option<&'static [usize]>,
    measure: MeasureFn,
}

impl Runner {
    /// `measure(batch, sampler)` must drive `sampler` to its end, timing
    /// one whole batch of `batch` calls per sample.
    pub fn new(
        runtime: &'static str,
        measure: impl FnMut(usize, &mut Sampler) -> Result<()> + 'static,
    ) -> Self {
        Self {
            runtime,
            only: None,
            measure: Box::new(measure),
        }
    }

    /// Restricts the runner to some batch sizes (a limit that only has a
    /// meaning at one size).
    pub fn only_batches(mut self, batches: &'static [usize]) -> Self {
        self.only = Some(batches);
        self
    }

    fn measures(&self, batch: usize) -> bool {
        self.only.is_none_or(|only| only.contains(&batch))
    }
}

/// Measures every point of `workload`; records come out grouped by batch
/// size, in the order of the workload's runners.
pub fn measure(workload: &mut Workload, mode: &Mode) -> Result<Vec<Record>> {
    let runners = workload.runners.len();
    // samples[runner][batch index]
    let mut samples: Vec<Vec<Vec<Duration>>> =
        vec![vec![Vec::new(); workload.batches.len()]; runners];
    for round in 0..mode.rounds {
        let order: Vec<usize> = (0..runners).map(|step| (round + step) % runners).collect();
        let names: Vec<&str> = order.iter().map(|&i| workload.runners[i].runtime).collect();
        eprintln!(
            "  {} round {}/{}: {}",
            workload.id,
            round + 1,
            mode.rounds,
            names.join(", ")
        );
        for index in order {
            let runner = &mut workload.runners[index];
            for (b, &batch) in workload.batches.iter().enumerate() {
                if !runner.measures(batch) {
                    continue;
                }
                let mut sampler = Sampler::new(mode.plan);
                (runner.measure)(batch, &mut sampler).map_err(|err| {
                    format!("{} {} batch {batch}: {err}", workload.id, runner.runtime)
                })?;
                samples[index][b].extend(sampler.into_samples());
            }
        }
    }
    let mut records = Vec::new();
    for (b, &batch) in workload.batches.iter().enumerate() {
        for (runner, per_batch) in workload.runners.iter().zip(&mut samples) {
            if let Some(summary) = Summary::of(&mut per_batch[b]) {
                records.push(Record::new(workload, runner.runtime, batch, summary));
            }
        }
    }
    Ok(records)
}

/// Fails with `what` unless `ok`: the sanity check of a runner's setup.
pub fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("sanity check failed: {what}").into())
    }
}
