//! W8: process call latency. W1's `f64` echo, at batch 1 and 100, against
//! the existing process pool: a `procspawn::Pool` of [`workers`] processes,
//! each batch spawning its `n` calls, then joining them in order.
//! Knitting's process workers run W1's echo task.

use knitting::Pool;

use super::{check, echo, knitting_batches, workers, Runner, Workload};
use crate::{baselines::procspawn, mode::Mode, Result};

/// procspawn's side of the echo: a plain `fn`, run in a worker process.
fn procspawn_echo(value: f64) -> f64 {
    value
}

pub fn workload(_mode: &Mode) -> Result<Workload> {
    Ok(Workload {
        id: "W8",
        title: "process echo one f64",
        sizes: &[std::mem::size_of::<f64>()],
        batches: &[1, 100],
        plan: None,
        runners: vec![knitting_processes()?, procspawn()?],
    })
}

fn knitting_processes() -> Result<Runner> {
    let pool = Pool::builder().processes(workers()).build()?;
    check(
        pool.call(echo::echo, 1.5).wait()? == 1.5,
        "knitting processes echo their argument",
    )?;
    Ok(Runner::new("knitting-processes", move |point, sampler| {
        knitting_batches(point.batch, sampler, |i| pool.call(echo::echo, i as f64))
    }))
}

fn procspawn() -> Result<Runner> {
    let mut service = procspawn::Service::start(workers(), procspawn_echo)?;
    // The first call also waits for a worker process to be up.
    check(service.call(1.5)? == 1.5, "procspawn echoes its argument")?;
    Ok(Runner::new("procspawn", move |point, sampler| {
        service.measure(point.batch, sampler, |i| i as f64)
    }))
}
