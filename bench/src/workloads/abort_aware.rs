//! W9: the cost of an abort-aware call. W1's `f64` echo, at batch 1 and
//! 100, with a task that also takes `&knitting::Signal` and checks it once;
//! the plain echo is W1's, in the same run.
//!
//! Records: workload `"W9"`, runtimes `knitting-threads` and
//! `knitting-processes`, `bytes` 8. The comparison is W9 against W1 at the
//! same runtime and batch; the targets section prints that ratio as
//! information ("cost of an abort-aware call"), never as a pass or fail.
//! The harness measures W1 and W9 as one group, their rounds in turn, so
//! that both see the same drift of a shared machine, and on the same pools
//! ([`shared_threads`], [`shared_strict_processes`]: W1's
//! `knitting-processes` pool, under `Permissions::strict()`), so that only
//! the task differs.
//!
//! Read the ratio with its noise in mind: on a shared 2-core machine, an
//! A/A run (W9 calling W1's plain echo) in `--quick` reads within a few
//! percent of 1 in most runs, but 0.4–1.7 now and then, most often at
//! processes n=100, whose latency flips between two levels from block to
//! block (a full run moves less, but has read 0.79 at threads n=1). A
//! cost of a few percent is below that noise: compare several runs
//! (`KNITTING_BENCH_ONLY=W1,W9`, full mode).

use super::{
    check, knitting_batches, shared_strict_processes, shared_threads, unless_unenforceable, Runner,
    Workload,
};
use crate::{mode::Mode, Result};

/// The W1 batch sizes that W9 repeats.
pub const BATCHES: &[usize] = &[1, 100];

/// W1's echo, abort-aware: one look at the signal, which is never raised
/// here.
#[knitting::task]
fn echo_aware(value: f64, signal: &knitting::Signal) -> f64 {
    if signal.aborted() {
        -value
    } else {
        value
    }
}

pub fn workload(_mode: &Mode) -> Result<Workload> {
    Ok(Workload {
        id: "W9",
        title: "abort-aware echo one f64",
        sizes: &[std::mem::size_of::<f64>()],
        batches: BATCHES,
        plan: None,
        runners: vec![
            knitting_threads()?,
            unless_unenforceable("knitting-processes", knitting_processes())?,
        ],
    })
}

fn knitting_threads() -> Result<Runner> {
    let pool = shared_threads()?;
    check(
        pool.call(echo_aware, 1.5).wait()? == 1.5,
        "an abort-aware knitting task echoes its argument",
    )?;
    Ok(Runner::new("knitting-threads", move |point, sampler| {
        knitting_batches(point.batch, sampler, |i| pool.call(echo_aware, i as f64))
    }))
}

fn knitting_processes() -> Result<Runner> {
    let pool = shared_strict_processes()?;
    check(
        pool.call(echo_aware, 1.5).wait()? == 1.5,
        "an abort-aware knitting process task echoes its argument",
    )?;
    Ok(Runner::new("knitting-processes", move |point, sampler| {
        knitting_batches(point.batch, sampler, |i| pool.call(echo_aware, i as f64))
    }))
}
