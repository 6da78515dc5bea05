//! The workloads of `bench/README.md`, and the loop that measures every
//! runtime of a workload side by side.
//!
//! A workload is a list of [`Runner`]s, one per runtime, each built (pool
//! started, runtime created, correctness checked) before any measurement.
//! [`measure`] then takes every point (payload size × batch size) in
//! `rounds` interleaved blocks: in each round, every runtime measures every
//! point once, the order of runtimes rotating from round to round. Idle
//! runtimes sit parked while the others run. Workloads compared with each
//! other (W9 with W1) are measured as one group, their rounds in turn.
//!
//! Each runtime of a workload is one function returning its [`Runner`]
//! (`knitting_threads()`, `tokio(..)`, `procspawn()`, ...); a knitting
//! runner measures with [`knitting_batches`], whatever kind of pool it
//! calls into. A runtime that cannot run on this machine (a strict process
//! pool where the kernel cannot enforce `Permissions::strict()`) is a
//! runner that says why ([`Runner::unavailable`]): it is never measured,
//! and the report names it and the reason.

// One module per workload, named after what it measures; the W-ids of
// bench/README.md are the ids of the output (table, `results.json`,
// `KNITTING_BENCH_ONLY`).
/// W9: the cost of an abort-aware call.
pub mod abort_aware;
/// W12: async calls awaiting timers, makespan.
pub mod async_timers;
/// W10a, W10b, W10c: how long a call takes to end after abort, cancel or
/// its hard time limit.
pub mod abort_latency;
/// W1: echo one `f64`.
pub mod echo;
/// W7: the CPU an idle pool uses.
pub mod idle;
/// W8: process call latency against procspawn.
pub mod process_echo;
/// W15: remote echo over NATS against bare request/reply.
pub mod remote_echo;
/// W2: 1 MiB byte round copy.
pub mod round_copy;
/// W11: a worker sums a `SharedBuffer`, against sending the bytes.
pub mod shared_buffer;
/// W14: a saturated service, per-call latency and calls/s.
pub mod saturated;
/// W3: the round copy over a sweep of payload sizes.
pub mod size_sweep;
/// W6: start-up of a pool up to its first answer.
pub mod startup;
/// W13: a million items streamed from a worker to the host.
pub mod stream_items;
/// W4: throughput of trivial calls; W5: skewed work.
pub mod throughput;

use std::{
    cell::RefCell,
    hint::black_box,
    rc::{Rc, Weak},
    time::Duration,
};

use knitting::{Call, ErrorKind, Permissions, Pool, ProcessPool};

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

thread_local! {
    static THREADS: RefCell<Weak<Pool>> = const { RefCell::new(Weak::new()) };
    static PROCESSES: RefCell<Weak<ProcessPool>> = const { RefCell::new(Weak::new()) };
    static STRICT: RefCell<Weak<ProcessPool>> = const { RefCell::new(Weak::new()) };
}

/// knitting's thread pool of [`workers`] threads, shared by every runner
/// that holds it: a runner built while another one holds the pool gets
/// that same pool. W1 and W9 measure on the same pools, so that their ratio
/// is the tasks' difference alone, not that of two pools (two pools of the
/// same size can differ by tens of percent on a 2-core machine, as their
/// threads land on cores). Dropped with its last runner.
pub fn shared_threads() -> Result<Rc<Pool>> {
    shared(&THREADS, || Pool::builder().threads(workers()).build())
}

/// knitting's process pool of [`workers`] processes, shared as
/// [`shared_threads`] is.
pub fn shared_processes() -> Result<Rc<ProcessPool>> {
    shared(&PROCESSES, || Pool::builder().processes(workers()).build())
}

/// knitting's process pool of [`workers`] processes locked down with an
/// explicit `Permissions::strict()`, shared as [`shared_threads`] is (W1's
/// and W9's `knitting-processes` rows). Fails with a `Startup` error where
/// the kernel cannot enforce it (see [`unless_unenforceable`]).
pub fn shared_strict_processes() -> Result<Rc<ProcessPool>> {
    shared(&STRICT, || {
        Pool::builder()
            .processes(workers())
            .permissions(Permissions::strict())
            .build()
    })
}

/// `runner`, or, where it failed because the kernel cannot enforce the
/// permissions of its process pool (no Landlock, or one without TCP rules;
/// `build()` fails with a `Startup` error that says so), a runner of
/// `runtime` that is reported as not measured, with the reason. Any other
/// error stops the run, as before.
pub fn unless_unenforceable(runtime: &'static str, runner: Result<Runner>) -> Result<Runner> {
    let err = match runner {
        Ok(runner) => return Ok(runner),
        Err(err) => err,
    };
    match err.downcast_ref::<knitting::Error>() {
        Some(e)
            if e.kind() == ErrorKind::Startup
                && (e.message().contains("Landlock") || e.message().contains("seccomp")) =>
        {
            Ok(Runner::unavailable(
                runtime,
                format!(
                    "Permissions::strict() cannot be enforced here: {}",
                    e.message()
                ),
            ))
        }
        _ => Err(err),
    }
}

fn shared<P>(
    cache: &'static std::thread::LocalKey<RefCell<Weak<P>>>,
    build: impl FnOnce() -> Result<P, knitting::Error>,
) -> Result<Rc<P>> {
    cache.with(|cache| {
        if let Some(pool) = cache.borrow().upgrade() {
            return Ok(pool);
        }
        let pool = Rc::new(build()?);
        *cache.borrow_mut() = Rc::downgrade(&pool);
        Ok(pool)
    })
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

/// Builds a workload: starts its runtimes and checks them.
pub type Builder = fn(&Mode) -> Result<Workload>;

type MeasureFn = Box<dyn FnMut(Point, &mut Sampler) -> Result<()>>;

/// One runtime of a workload: measures a point into a sampler.
pub struct Runner {
    pub runtime: &'static str,
    only: Option<&'static [usize]>,
    measure: MeasureFn,
    /// Why the runtime cannot run here; `None` for one that can.
    unavailable: Option<String>,
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
            unavailable: None,
        }
    }

    /// A runtime that cannot run on this machine, for `reason`: it measures
    /// nothing, and the report says it was not measured, and why.
    pub fn unavailable(runtime: &'static str, reason: String) -> Self {
        Self {
            unavailable: Some(reason),
            ..Self::new(runtime, |_, _| {
                Err("an unavailable runtime cannot measure".into())
            })
        }
    }

    /// Why the runtime cannot run here, if it cannot.
    pub fn why_unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// Restricts the runner to some batch sizes (a limit that only has a
    /// meaning at one size).
    pub fn only_batches(mut self, batches: &'static [usize]) -> Self {
        self.only = Some(batches);
        self
    }

    fn measures(&self, batch: usize) -> bool {
        self.unavailable.is_none() && self.only.is_none_or(|only| only.contains(&batch))
    }
}

/// Measures every point of every workload of `group`; records come out
/// workload by workload, each grouped by point (size, then batch), in the
/// order of the workload's runners.
///
/// The workloads of a group take their rounds in turn (round 1 of each,
/// then round 2 of each, ...), so that workloads compared with each other
/// (W9 with W1) see the same drift of a shared machine; a group of one is
/// a workload measured on its own.
pub fn measure(group: &mut [Workload], mode: &Mode) -> Result<Vec<Record>> {
    let mut states: Vec<Samples> = group.iter().map(Samples::new).collect();
    for round in 0..mode.rounds {
        for (workload, state) in group.iter_mut().zip(&mut states) {
            state.round(workload, mode, round)?;
        }
    }
    Ok(group
        .iter()
        .zip(states)
        .flat_map(|(workload, state)| state.records(workload))
        .collect())
}

/// The samples of one workload so far.
struct Samples {
    points: Vec<Point>,
    /// `by_runner[runner][point index]`
    by_runner: Vec<Vec<Vec<Duration>>>,
    /// The wall time the samples cover, when the runner says (W14), in
    /// the same order.
    wall_by_runner: Vec<Vec<Duration>>,
}

impl Samples {
    fn new(workload: &Workload) -> Self {
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
        let by_runner = vec![vec![Vec::new(); points.len()]; workload.runners.len()];
        let wall_by_runner = vec![vec![Duration::ZERO; points.len()]; workload.runners.len()];
        Self {
            points,
            by_runner,
            wall_by_runner,
        }
    }

    /// One round: every runtime measures every point once, the order of
    /// runtimes rotating from round to round.
    fn round(&mut self, workload: &mut Workload, mode: &Mode, round: usize) -> Result<()> {
        let runners = workload.runners.len();
        let plan = workload.plan.unwrap_or(mode.plan);
        let order: Vec<usize> = (0..runners).map(|step| (round + step) % runners).collect();
        let names: Vec<&str> = order
            .iter()
            .map(|&i| &workload.runners[i])
            .filter(|runner| runner.unavailable.is_none())
            .map(|runner| runner.runtime)
            .collect();
        eprintln!(
            "  {} round {}/{}: {}",
            workload.id,
            round + 1,
            mode.rounds,
            names.join(", ")
        );
        for index in order {
            let runner = &mut workload.runners[index];
            for (p, &point) in self.points.iter().enumerate() {
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
                self.wall_by_runner[index][p] += sampler.wall();
                self.by_runner[index][p].extend(sampler.into_samples());
            }
        }
        Ok(())
    }

    fn records(mut self, workload: &Workload) -> Vec<Record> {
        let mut records = Vec::new();
        for (p, &point) in self.points.iter().enumerate() {
            let runners = workload.runners.iter().zip(&self.wall_by_runner);
            for ((runner, wall), per_point) in runners.zip(&mut self.by_runner) {
                if let Some(summary) = Summary::of(&mut per_point[p]) {
                    let mut record = Record::new(workload, runner.runtime, point, summary);
                    if !wall[p].is_zero() {
                        record.calls_per_s = Some(summary.samples as f64 / wall[p].as_secs_f64());
                    }
                    records.push(record);
                }
            }
        }
        records
    }
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
