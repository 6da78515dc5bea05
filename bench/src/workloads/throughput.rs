//! W4: throughput, and W5: skewed work, on pools of one worker per core.
//!
//! W4 makes many calls of a trivial `add` (1,000,000 in the full mode) and
//! times them all: calls go out in windows of `WINDOW`, each window
//! submitted whole and then awaited, so that the caller never holds a
//! million handles. Every peer makes one job per call: rayon a
//! `Scope::spawn`, tokio a `spawn_blocking`.
//!
//! W5 makes 10,000 CPU-bound calls, 1 % of them 100× longer, all submitted
//! at once, and times the makespan: with calls spread over the lanes up
//! front, a lane that drew long calls holds the short ones queued behind
//! them unless another worker takes them (work stealing). The
//! `knitting-threads-no-stealing` row is the same pool with
//! `.work_stealing(false)`, for comparison (information, no target).

use std::{
    hint::black_box,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use knitting::Pool;

use super::{check, knitting_batches, Runner, Workload};
use crate::{measure::Plan, mode::Mode, report::KNITTING, Result};

/// Calls in flight at once in W4.
const WINDOW: usize = 1024;

/// The row of W4 and W5 for a thread pool without work stealing.
pub const NO_STEALING: &str = "knitting-threads-no-stealing";

/// One worker per core: these workloads measure the whole machine.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[knitting::task]
fn add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

/// `units` units of CPU work (about a microsecond each), not optimised away.
#[knitting::task]
fn work(units: u64) -> u64 {
    spin(units)
}

fn spin(units: u64) -> u64 {
    let mut x = units;
    for _ in 0..units * 300 {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    x
}

/// Units of the calls of W5: 1 % (every 100th, from the 37th) 100× longer.
fn skewed(calls: usize) -> Vec<u64> {
    (0..calls)
        .map(|i| if i % 100 == 37 { 1_000 } else { 10 })
        .collect()
}

fn calls(mode: &Mode, full: usize) -> usize {
    match mode.name {
        "full" => full,
        "quick" => full / 10,
        _ => full / 100,
    }
}

/// A few whole runs per block: each is long.
fn plan(mode: &Mode) -> Plan {
    Plan {
        warmup_iters: 1,
        warmup_time: Duration::ZERO,
        min_samples: if mode.name == "smoke" { 1 } else { 2 },
        max_samples: if mode.name == "smoke" { 1 } else { 5 },
        budget: Duration::ZERO,
    }
}

pub fn throughput(mode: &Mode) -> Result<Workload> {
    let n = calls(mode, 1_000_000);
    let batches: &'static [usize] = Box::leak(Box::new([n]));
    Ok(Workload {
        id: "W4",
        title: "throughput: trivial add, one worker per core",
        sizes: &[16],
        batches,
        plan: Some(plan(mode)),
        runners: vec![
            knitting_add(KNITTING, thread_pool(true)?)?,
            knitting_add(NO_STEALING, thread_pool(false)?)?,
            knitting_processes_add()?,
            rayon_add()?,
            tokio_blocking_add()?,
        ],
    })
}

pub fn skew(mode: &Mode) -> Result<Workload> {
    // About 0.2 s of CPU in all: the quick mode keeps the full count.
    let n = if mode.name == "smoke" { 1_000 } else { 10_000 };
    let batches: &'static [usize] = Box::leak(Box::new([n]));
    Ok(Workload {
        id: "W5",
        title: "skewed work: 1 % of calls 100× longer, makespan",
        sizes: &[8],
        batches,
        plan: Some(plan(mode)),
        runners: vec![
            knitting_skew(KNITTING, thread_pool(true)?)?,
            knitting_skew(NO_STEALING, thread_pool(false)?)?,
            rayon_skew()?,
        ],
    })
}

fn thread_pool(stealing: bool) -> Result<Pool> {
    Ok(Pool::builder()
        .threads(cores())
        .work_stealing(stealing)
        .build()?)
}

fn knitting_add(runtime: &'static str, pool: Pool) -> Result<Runner> {
    check(pool.call(add, (2, 3)).wait()? == 5, "knitting adds")?;
    Ok(Runner::new(runtime, move |point, sampler| {
        windows(point.batch, sampler, |batch, sampler| {
            knitting_batches(batch, sampler, |i| pool.call(add, (i as u64, 1)))
        })
    }))
}

fn knitting_processes_add() -> Result<Runner> {
    let pool = Pool::builder().processes(cores()).build()?;
    check(
        pool.call(add, (2, 3)).wait()? == 5,
        "knitting processes add",
    )?;
    Ok(Runner::new(
        crate::report::KNITTING_PROCESSES,
        move |point, sampler| {
            windows(point.batch, sampler, |batch, sampler| {
                knitting_batches(batch, sampler, |i| pool.call(add, (i as u64, 1)))
            })
        },
    ))
}

/// Times `n` calls as one sample, made window by window by `window(batch,
/// sampler)`, which times one window into a scratch sampler.
fn windows(
    n: usize,
    sampler: &mut crate::measure::Sampler,
    mut window: impl FnMut(usize, &mut crate::measure::Sampler) -> Result<()>,
) -> Result<()> {
    let once = Plan {
        warmup_iters: 0,
        warmup_time: Duration::ZERO,
        min_samples: 1,
        max_samples: 1,
        budget: Duration::ZERO,
    };
    sampler.run(|| {
        let mut left = n;
        while left > 0 {
            let batch = left.min(WINDOW);
            window(batch, &mut crate::measure::Sampler::new(once))?;
            left -= batch;
        }
        Ok(())
    })
}

fn rayon_pool() -> Result<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(cores())
        .build()?)
}

fn rayon_add() -> Result<Runner> {
    let pool = rayon_pool()?;
    let sums: Arc<Vec<AtomicU64>> = Arc::new((0..WINDOW).map(|_| AtomicU64::new(0)).collect());
    Ok(Runner::new("rayon", move |point, sampler| {
        sampler.run(|| {
            let mut left = point.batch;
            while left > 0 {
                let batch = left.min(WINDOW);
                pool.scope(|s| {
                    for (i, slot) in sums.iter().take(batch).enumerate() {
                        s.spawn(move |_| slot.store(black_box(i as u64 + 1), Ordering::Relaxed));
                    }
                });
                left -= batch;
            }
            check(sums[0].load(Ordering::Relaxed) == 1, "rayon adds")
        })
    }))
}

fn tokio_blocking_add() -> Result<Runner> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(cores())
        .build()?;
    Ok(Runner::new("tokio-blocking", move |point, sampler| {
        sampler.run(|| {
            rt.block_on(async {
                let mut left = point.batch;
                let mut handles = Vec::with_capacity(WINDOW);
                while left > 0 {
                    let batch = left.min(WINDOW);
                    handles.extend((0..batch as u64).map(|i| {
                        tokio::task::spawn_blocking(move || black_box(i).wrapping_add(1))
                    }));
                    for h in handles.drain(..) {
                        black_box(h.await?);
                    }
                    left -= batch;
                }
                Ok(())
            })
        })
    }))
}

fn knitting_skew(runtime: &'static str, pool: Pool) -> Result<Runner> {
    check(pool.call(work, 1).wait()? == spin(1), "knitting works")?;
    Ok(Runner::new(runtime, move |point, sampler| {
        let units = skewed(point.batch);
        knitting_batches(units.len(), sampler, |i| pool.call(work, units[i]))
    }))
}

fn rayon_skew() -> Result<Runner> {
    let pool = rayon_pool()?;
    Ok(Runner::new("rayon", move |point, sampler| {
        let units = skewed(point.batch);
        let out: Vec<AtomicU64> = units.iter().map(|_| AtomicU64::new(0)).collect();
        sampler.run(|| {
            pool.scope(|s| {
                for (slot, &u) in out.iter().zip(&units) {
                    s.spawn(move |_| slot.store(spin(u), Ordering::Relaxed));
                }
            });
            check(
                out[0].load(Ordering::Relaxed) == spin(units[0]),
                "rayon works",
            )
        })
    }))
}
