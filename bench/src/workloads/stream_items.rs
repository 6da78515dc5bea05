//! W13: a stream of items from a worker to the host. A streaming task
//! sends the `u64`s `0..1_000_000` on its `knitting::Sender`, and the host
//! reads them all from the `knitting::Stream`, then takes the task's final
//! value; one sample is the time for all the items, from the call made to
//! its final value (`median_ns` is the time for 1,000,000 items).
//!
//! The peer is a bounded crossbeam channel between two threads: a producer
//! thread, started once, sends `0..1_000_000` each time the host asks, and
//! the host thread receives them. Every row streams through a bound of
//! 1,024 items (`stream_bound(1024)` on both knitting pools, a
//! `crossbeam_channel::bounded(1024)` for the peer), so that each row
//! holds back its producer at the same depth. Each knitting pool has one
//! worker.
//!
//! The targets compare items per second: knitting's thread pool at least
//! half crossbeam's, its process pool (every item encoded with serde and
//! written into the worker's shared mapping, then read and decoded by the
//! host) at least a quarter.
//!
//! Records: workload `"W13"`, runtimes `knitting-threads`,
//! `knitting-processes` and `crossbeam`, `bytes` 8 (one `u64` item),
//! `batch` 1,000,000 (the items of a sample).

use std::{hint::black_box, time::Duration};

use knitting::{Pool, Runs, Sender};

use super::{check, unless_unenforceable, Runner, Workload};
use crate::{
    baselines::crossbeam::Producer,
    measure::Plan,
    mode::Mode,
    report::{KNITTING, KNITTING_PROCESSES},
    Result,
};

/// The items of one sample.
pub const ITEMS: usize = 1_000_000;

/// The items a stream holds that its reader has not taken yet, on every
/// row: knitting's `stream_bound` and the crossbeam channel's capacity.
const BOUND: usize = 1024;

/// Sends `0..n`; returns how many items it sent (fewer only when the
/// reader dropped the stream).
#[knitting::task]
fn produce(n: u64, out: Sender<u64>) -> u64 {
    for i in 0..n {
        if out.send(i).is_err() {
            return i;
        }
    }
    n
}

pub fn workload(mode: &Mode) -> Result<Workload> {
    let threads = Pool::builder().threads(1).stream_bound(BOUND).build()?;
    let processes = Pool::builder().processes(1).stream_bound(BOUND).build();
    Ok(Workload {
        id: "W13",
        title: "1,000,000 u64 items streamed from a worker to the host",
        sizes: &[std::mem::size_of::<u64>()],
        batches: &[ITEMS],
        plan: Some(plan(mode)),
        runners: vec![
            knitting(KNITTING, threads)?,
            unless_unenforceable(
                KNITTING_PROCESSES,
                processes
                    .map_err(Into::into)
                    .and_then(|pool| knitting(KNITTING_PROCESSES, pool)),
            )?,
            crossbeam()?,
        ],
    })
}

/// A sample streams a million items, tens to hundreds of milliseconds: a
/// few of them per block, fewer in `--quick` and `--smoke`.
fn plan(mode: &Mode) -> Plan {
    let (min_samples, max_samples) = match mode.name {
        "smoke" => (2, 2),
        "quick" => (3, 5),
        _ => (5, 50),
    };
    Plan {
        warmup_iters: 1,
        warmup_time: Duration::ZERO,
        min_samples,
        max_samples,
        budget: mode.plan.budget,
    }
}

/// The runner of a knitting pool of either runtime.
fn knitting<R: Runs<produce>>(runtime: &'static str, pool: Pool<R>) -> Result<Runner> {
    let mut stream = pool.stream(produce, 10_000);
    check(
        stream.bound() == BOUND,
        "knitting streams with a bound of 1,024",
    )?;
    let mut expected = 0;
    for item in stream.by_ref() {
        check(item? == expected, "knitting streams 0..n in order")?;
        expected += 1;
    }
    check(
        expected == 10_000 && stream.finish()? == 10_000,
        "knitting streams every item, then its final value",
    )?;
    Ok(Runner::new(runtime, move |point, sampler| {
        sampler.run(|| {
            let mut stream = pool.stream(produce, point.batch as u64);
            let mut items = 0;
            for item in stream.by_ref() {
                black_box(item?);
                items += 1;
            }
            check(
                stream.finish()? == point.batch as u64 && items == point.batch,
                "knitting streams all the items of a sample",
            )
        })
    }))
}

fn crossbeam() -> Result<Runner> {
    let mut producer = Producer::start(BOUND)?;
    check(
        producer.stream(10_000)? == Some(9_999),
        "crossbeam streams 0..n",
    )?;
    Ok(Runner::new("crossbeam", move |point, sampler| {
        sampler.run(|| {
            let last = producer.stream(point.batch as u64)?;
            check(
                last == Some(point.batch as u64 - 1),
                "crossbeam streams all the items of a sample",
            )
        })
    }))
}
