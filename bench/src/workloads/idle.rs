//! W7: idle cost. One sample is the CPU time an idle 2-worker pool uses
//! over one second, once its spin budget is spent (the pool answered a call,
//! then sat for `SETTLE` before the second began).
//!
//! CPU time comes from `/proc/<pid>/task/<tid>/schedstat` (nanoseconds on
//! a CPU): for a thread pool, its worker threads (found by their name); for
//! a process pool, every thread of each worker process (pids from
//! `pool.stats()`). The sample's duration *is* that CPU time.

use std::{thread::sleep, time::Duration};

use knitting::Pool;

use super::{check, Runner, Workload};
use crate::{
    measure::{Plan, Sampler},
    mode::Mode,
    report::{KNITTING, KNITTING_PROCESSES},
    Result,
};

const WORKERS: usize = 2;

/// Longer than any spin budget: the workers have parked by then.
const SETTLE: Duration = Duration::from_millis(20);

/// The idle span one sample covers.
const SPAN: Duration = Duration::from_secs(1);

/// The prefix of the W7 thread pool's worker thread names.
const THREAD_NAME: &str = "w7-idle";

#[knitting::task]
fn nop() -> u32 {
    1
}

pub fn workload(mode: &Mode) -> Result<Workload> {
    let samples = if mode.name == "full" { 2 } else { 1 };
    Ok(Workload {
        id: "W7",
        title: "idle cost: CPU over 1 s of an idle 2-worker pool",
        sizes: &[0],
        batches: &[WORKERS],
        plan: Some(Plan {
            warmup_iters: 0,
            warmup_time: Duration::ZERO,
            min_samples: samples,
            max_samples: samples,
            budget: Duration::ZERO,
        }),
        runners: vec![threads()?, processes()?],
    })
}

fn threads() -> Result<Runner> {
    let pool = Pool::builder()
        .threads(WORKERS)
        .thread_name(THREAD_NAME)
        .build()?;
    check(pool.call(nop, ()).wait()? == 1, "knitting answers")?;
    let tasks = || -> Result<Vec<String>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc/self/task")? {
            let dir = entry?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.starts_with(THREAD_NAME) {
                found.push(dir.join("schedstat").display().to_string());
            }
        }
        Ok(found)
    };
    // A worker thread names itself once it runs, which on a loaded machine
    // can be after the first call came back: look again for a while.
    let started = std::time::Instant::now();
    let mut files = tasks()?;
    while files.len() < WORKERS && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(10));
        files = tasks()?;
    }
    check(files.len() == WORKERS, "W7 finds the pool's worker threads")?;
    Ok(Runner::new(KNITTING, move |_, sampler| {
        idle_second(sampler, || pool.call(nop, ()).wait().map(drop), &files)
    }))
}

fn processes() -> Result<Runner> {
    let pool = Pool::builder().processes(WORKERS).build()?;
    check(pool.call(nop, ()).wait()? == 1, "knitting processes answer")?;
    Ok(Runner::new(KNITTING_PROCESSES, move |_, sampler| {
        let mut files = Vec::new();
        for lane in pool.stats().lanes {
            let pid = lane.pid.ok_or("a worker process has no pid")?;
            for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
                files.push(entry?.path().join("schedstat").display().to_string());
            }
        }
        idle_second(sampler, || pool.call(nop, ()).wait().map(drop), &files)
    }))
}

/// Samples the CPU time of `files`' threads over [`SPAN`] after a call
/// (`wake`) and [`SETTLE`].
fn idle_second(
    sampler: &mut Sampler,
    mut wake: impl FnMut() -> Result<(), knitting::Error>,
    files: &[String],
) -> Result<()> {
    while sampler.more() {
        wake()?;
        sleep(SETTLE);
        let before = cpu_ns(files)?;
        sleep(SPAN);
        let used = cpu_ns(files)?.saturating_sub(before);
        sampler.record(Duration::from_nanos(used));
    }
    Ok(())
}

/// Total nanoseconds on a CPU of the threads whose `schedstat` files these
/// are.
fn cpu_ns(files: &[String]) -> Result<u64> {
    let mut total = 0;
    for file in files {
        let text = std::fs::read_to_string(file)?;
        let ns: u64 = text
            .split_whitespace()
            .next()
            .ok_or("empty schedstat")?
            .parse()?;
        total += ns;
    }
    Ok(total)
}
