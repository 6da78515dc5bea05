//! W12: async calls that wait on timers, not on threads. 1,000 calls of
//! an `async fn` task that awaits a 1 ms `knitting::sleep`, all submitted
//! at once to a pool of 2 workers, then awaited in order; one sample is the
//! makespan, from the first call made to the last one ended.
//!
//! If each call held its worker for its millisecond, the makespan would be
//! about 1,000 × 1 ms ÷ 2 workers = 500 ms. A worker that drives many
//! async calls at once (its executor, up to `async_concurrency` of them)
//! parks them all on their timers together, so the makespan is one
//! millisecond plus what it costs to make, start and end 1,000 calls: the
//! target is under 20 ms.
//!
//! Records: workload `"W12"`, runtimes `knitting-threads` (a thread pool
//! with `async_concurrency(1_000)`, so that every call of a sample may be
//! in flight on one worker) and `knitting-processes` (the process pool's
//! default; a process worker may run its async calls one after the other:
//! the row measures what the process runtime does), `bytes` 8 (the `u64`
//! argument), `batch` 1,000.

use std::time::Duration;

use knitting::{Pool, Runs};

use super::{check, knitting_batches, unless_unenforceable, Runner, Workload};
use crate::{
    measure::Plan,
    mode::Mode,
    report::{KNITTING, KNITTING_PROCESSES},
    Result,
};

/// The calls of one sample.
pub const CALLS: usize = 1_000;

/// Every pool of W12 has two workers, whatever the machine: the target is
/// stated for two.
const WORKERS: usize = 2;

/// The timer each call awaits.
const NAP: Duration = Duration::from_millis(1);

#[knitting::task]
async fn nap(id: u64) -> u64 {
    knitting::sleep(NAP).await;
    id
}

pub fn workload(mode: &Mode) -> Result<Workload> {
    let threads = Pool::builder()
        .threads(WORKERS)
        .async_concurrency(CALLS)
        .build()?;
    let processes = Pool::builder().processes(WORKERS).build();
    Ok(Workload {
        id: "W12",
        title: "1,000 async calls awaiting a 1 ms timer, 2 workers: makespan",
        sizes: &[std::mem::size_of::<u64>()],
        batches: &[CALLS],
        plan: Some(plan(mode)),
        runners: vec![
            knitting(KNITTING, threads)?,
            unless_unenforceable(
                KNITTING_PROCESSES,
                processes
                    .map_err(Into::into)
                    .and_then(|pool| knitting(KNITTING_PROCESSES, pool)),
            )?,
        ],
    })
}

/// A sample is a whole makespan, up to half a second where calls hold
/// their worker: a few of them per block, and the mode's budget for more
/// when they are short.
fn plan(mode: &Mode) -> Plan {
    let smoke = mode.name == "smoke";
    Plan {
        warmup_iters: 1,
        warmup_time: Duration::ZERO,
        min_samples: if smoke { 2 } else { 3 },
        max_samples: if smoke { 2 } else { 200 },
        budget: mode.plan.budget,
    }
}

/// The runner of a knitting pool of either runtime.
fn knitting<R: Runs<nap>>(runtime: &'static str, pool: Pool<R>) -> Result<Runner> {
    check(pool.call(nap, 7).wait()? == 7, "knitting naps")?;
    Ok(Runner::new(runtime, move |point, sampler| {
        knitting_batches(point.batch, sampler, |i| pool.call(nap, i as u64))
    }))
}
