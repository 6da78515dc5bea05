//! The workloads of BENCHMARKS.md, and the loop that measures every runtime
//! of a workload side by side.
//!
//! A workload is a list of [`Runner`]s, one per runtime, each built (pool
//! started, runtime created, correctness checked) before any measurement.
//! [`measure`] then takes every point (payload size × batch size) in
//! `rounds` interleaved blocks: in each round, every runtime measures every
//! point once, the order of runtimes rotating from round to round. Idle
//! runtimes sit parked while the others run.
//!
//! Each runtime of a workload is one function returning its [`Runner`]
//! (`knitting_threads()`, `tokio(..)`, `procspawn()`, ...); a knitting
//! runner measures with [`knitting_batches`], whatever kind of pool it
//! calls into.

pub mod w1;
pub mod w2;
pub mod w3;
pub mod w6;
pub mod w8;

use std::{hint::black_box, time::Duration};

use knitting::Call;

use crate::{
    measure::{Plan, Sampler, Summary},
    mode::Mode,
    report::{self, Record},
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
    /// Payload sizes of one call, in bytes (one for most workloads; W3
    /// sweeps them).
    pub sizes: &'static [usize],
    pub batches: &'static [usize],
    /// The plan of one block, when the mode's does not fit (start-ups are
    /// timed a fixed, small number of times).
    pub plan: Option<Plan>,
    pub runners: Vec<Runner>,
}

/// One measured point of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    /// Payload size of one call, in bytes.
    pub bytes: usize,
    /// Calls in flight.
    pub batch: usize,
}

type MeasureFn = Box<dyn FnMut(Point, &mut Sampler) -> Result<()>>;

/// One runtime of a workload: measures a point into a sampler.
pub struct Runner {
    pub runtime: &'static str,
    only: Option<&'static [usize]>,
    measure: MeasureFn,
}

impl Runner {
    /// `measure(point, sampler)` must drive `sampler` to its end, timing
    /// one whole batch of `point.batch` calls per sample.
    pub fn new(
        runtime: &'static str,
        measure: impl FnMut(Point, &mut Sampler) -> Result<()> + 'static,
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

/// Measures every point of `workload`; records come out grouped by point
/// (size, then batch), in the order of the workload's runners.
pub fn measure(workload: &mut Workload, mode: &Mode) -> Result<Vec<Record>> {
    let runners = workload.runners.len();
    let plan = workload.plan.unwrap_or(mode.plan);
    let points: Vec<Point> = workload
        .sizes
        .iter()
        .flat_map(|&bytes| {
            workload
                .batches
                .iter()
                .map(move |&batch| Point { bytes, batch })
        })
        .collect();
    // samples[runner][point index]
    let mut samples: Vec<Vec<Vec<Duration>>> = vec![vec![Vec::new(); points.len()]; runners];
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
            for (p, &point) in points.iter().enumerate() {
                if !runner.measures(point.batch) {
                    continue;
                }
                let mut sampler = Sampler::new(plan);
                (runner.measure)(point, &mut sampler).map_err(|err| {
                    format!(
                        "{} {} {} batch {}: {err}",
                        workload.id,
                        runner.runtime,
                        report::bytes(point.bytes),
                        point.batch
                    )
                })?;
                samples[index][p].extend(sampler.into_samples());
            }
        }
    }
    let mut records = Vec::new();
    for (p, &point) in points.iter().enumerate() {
        for (runner, per_point) in workload.runners.iter().zip(&mut samples) {
            if let Some(summary) = Summary::of(&mut per_point[p]) {
                records.push(Record::new(workload, runner.runtime, point, summary));
            }
        }
    }
    Ok(records)
}

/// Times batches of `batch` knitting calls, the `i`-th submitted by
/// `call(i)`: all submitted first, then all waited for in order. The same
/// loop serves every kind of knitting pool.
pub fn knitting_batches<T: Send + 'static>(
    batch: usize,
    sampler: &mut Sampler,
    mut call: impl FnMut(usize) -> Call<T>,
) -> Result<()> {
    let mut calls = Vec::with_capacity(batch);
    sampler.run(|| {
        calls.extend((0..batch).map(&mut call));
        for call in calls.drain(..) {
            black_box(call.wait()?);
        }
        Ok(())
    })
}

/// Fails with `what` unless `ok`: the sanity check of a runner's setup.
pub fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("sanity check failed: {what}").into())
    }
}
