//! W1: echo one `f64`; the latency of a whole batch of `n` calls, all
//! submitted first, then all waited for.
//!
//! `knitting-inline` runs an `#[task(inline)]` echo on the thread pool:
//! the calls run on the harness's thread as the batch waits for them.
//!
//! `knitting-threads-debug` is a thread pool like `knitting-threads` with
//! `debug(Diagnostics::ALL)` and no `tracing` subscriber: every event's
//! namespace is on and nobody listens (the default row has diagnostics
//! compiled in and off).
//!
//! Two process pools: `knitting-processes`, locked down with an explicit
//! `Permissions::strict()` (the pool W9 shares), and
//! `knitting-processes-unrestricted`, with an explicit
//! `Permissions::unrestricted()`, so that the per-call cost of a strict
//! worker reads off one run. Where the kernel cannot enforce the strict
//! permissions, the strict row is reported as not measured.

use knitting::{Diagnostics, Permissions, Pool};

use super::{
    check, knitting_batches, shared_strict_processes, shared_threads, unless_unenforceable,
    workers, Runner, Workload, BATCHES,
};
use crate::{
    baselines::{crossbeam, limits::PingPong, tokio},
    mode::Mode,
    report::{KNITTING_DEBUG, KNITTING_PROCESSES, KNITTING_PROCESSES_UNRESTRICTED},
    Result,
};

/// One `f64`.
const BYTES: usize = std::mem::size_of::<f64>();

#[knitting::task]
pub(super) fn echo(value: f64) -> f64 {
    value
}

/// The same echo, run on the waiting caller's thread (the inline lane).
#[knitting::task(inline)]
fn echo_inline(value: f64) -> f64 {
    value
}

pub fn workload(_mode: &Mode) -> Result<Workload> {
    Ok(Workload {
        id: "W1",
        title: "echo one f64",
        sizes: &[BYTES],
        batches: BATCHES,
        plan: None,
        runners: vec![
            knitting_threads()?,
            knitting_inline()?,
            knitting_debug()?,
            unless_unenforceable(KNITTING_PROCESSES, knitting_processes())?,
            knitting_processes_unrestricted()?,
            tokio(tokio::Flavor::CurrentThread)?,
            tokio(tokio::Flavor::MultiThread { workers: workers() })?,
            crossbeam()?,
            spin_ping_pong(),
        ],
    })
}

fn knitting_threads() -> Result<Runner> {
    let pool = shared_threads()?;
    check(
        pool.call(echo, 1.5).wait()? == 1.5,
        "knitting echoes its argument",
    )?;
    Ok(Runner::new("knitting-threads", move |point, sampler| {
        knitting_batches(point.batch, sampler, |i| pool.call(echo, i as f64))
    }))
}

/// `#[task(inline)]` on the shared thread pool: each call runs when the
/// batch waits for it, on the harness's thread (the row the
/// `current_thread` Tokio baseline is a fair race for).
fn knitting_inline() -> Result<Runner> {
    let pool = shared_threads()?;
    check(
        pool.call(echo_inline, 1.5).wait()? == 1.5,
        "knitting's inline lane echoes its argument",
    )?;
    Ok(Runner::new("knitting-inline", move |point, sampler| {
        knitting_batches(point.batch, sampler, |i| pool.call(echo_inline, i as f64))
    }))
}

/// A thread pool of its own with every diagnostic namespace on.
fn knitting_debug() -> Result<Runner> {
    let pool = Pool::builder()
        .threads(workers())
        .debug(Diagnostics::ALL)
        .build()?;
    check(
        pool.call(echo, 1.5).wait()? == 1.5,
        "knitting with diagnostics on echoes its argument",
    )?;
    Ok(Runner::new(KNITTING_DEBUG, move |point, sampler| {
        knitting_batches(point.batch, sampler, |i| pool.call(echo, i as f64))
    }))
}

fn knitting_processes() -> Result<Runner> {
    let pool = shared_strict_processes()?;
    check(
        pool.call(echo, 1.5).wait()? == 1.5,
        "strict knitting processes echo their argument",
    )?;
    Ok(Runner::new(KNITTING_PROCESSES, move |point, sampler| {
        knitting_batches(point.batch, sampler, |i| pool.call(echo, i as f64))
    }))
}

fn knitting_processes_unrestricted() -> Result<Runner> {
    let pool = Pool::builder()
        .processes(workers())
        .permissions(Permissions::unrestricted())
        .build()?;
    check(
        pool.call(echo, 1.5).wait()? == 1.5,
        "unrestricted knitting processes echo their argument",
    )?;
    Ok(Runner::new(
        KNITTING_PROCESSES_UNRESTRICTED,
        move |point, sampler| knitting_batches(point.batch, sampler, |i| pool.call(echo, i as f64)),
    ))
}

fn tokio(flavor: tokio::Flavor) -> Result<Runner> {
    let mut service = tokio::Service::start(flavor, |value: f64| value)?;
    check(service.call(1.5)? == 1.5, "tokio echoes its argument")?;
    Ok(Runner::new(flavor.runtime(), move |point, sampler| {
        service.measure(point.batch, sampler, |i| i as f64)
    }))
}

fn crossbeam() -> Result<Runner> {
    let mut service = crossbeam::Service::start(|value: f64| value)?;
    check(service.call(1.5)? == 1.5, "crossbeam echoes its argument")?;
    Ok(Runner::new("crossbeam", move |point, sampler| {
        service.measure(point.batch, sampler, |i| i as f64)
    }))
}

/// The spin ping-pong round trip: only meaningful for one call at a time.
fn spin_ping_pong() -> Runner {
    Runner::new("limit", |_point, sampler| {
        let mut pair = PingPong::start()?;
        sampler.run(|| {
            pair.round_trip();
            Ok(())
        })
    })
    .only_batches(&[1])
}
