//! W6: start-up. One sample times a 2-worker pool from nothing to the answer
//! of its first call (an `f64` echo); the pool is then shut down (workers
//! joined, processes reaped) after the clock stops, so teardown is not part
//! of any sample.
//!
//! Each sample starts a whole pool, so the mode's
//! [`startups`](crate::mode::Mode::startups) sets a small fixed number of
//! samples, spread over the rounds, after one untimed start per block.
//!
//! Two process pools: `knitting-processes` with an explicit
//! `Permissions::strict()` (each worker locks itself down before its first
//! task, so its start-up includes that), and
//! `knitting-processes-unrestricted` with an explicit
//! `Permissions::unrestricted()`. The strict runtime starts one pool
//! (untimed) when the workload is built: where the kernel cannot enforce
//! the permissions, it is reported as not measured.

use std::{hint::black_box, time::Duration};

use knitting::{Permissions, Pool};

use super::{check, unless_unenforceable, Runner, Workload};
use crate::{
    baselines::procspawn,
    measure::Plan,
    mode::Mode,
    report::{KNITTING_PROCESSES, KNITTING_PROCESSES_UNRESTRICTED},
    Result,
};

/// Workers (threads or processes) of every pool started.
const WORKERS: usize = 2;

#[knitting::task]
fn echo(value: f64) -> f64 {
    value
}

/// procspawn's side of the echo: a plain `fn`, run in a worker process.
fn procspawn_echo(value: f64) -> f64 {
    value
}

pub fn workload(mode: &Mode) -> Result<Workload> {
    let per_block = mode.startups.div_ceil(mode.rounds).max(1);
    Ok(Workload {
        id: "W6",
        title: "start-up, 2 workers",
        sizes: &[std::mem::size_of::<f64>()],
        batches: &[1],
        plan: Some(Plan {
            warmup_iters: 1,
            warmup_time: Duration::ZERO,
            min_samples: per_block,
            max_samples: per_block,
            budget: Duration::ZERO,
        }),
        runners: vec![
            knitting_threads(),
            unless_unenforceable(KNITTING_PROCESSES, strict_can_start())?,
            knitting_processes(KNITTING_PROCESSES_UNRESTRICTED, Permissions::unrestricted),
            procspawn(),
        ],
    })
}

fn knitting_threads() -> Runner {
    Runner::new("knitting-threads", |_point, sampler| {
        sampler.run_with_teardown(
            || {
                let pool = Pool::builder().threads(WORKERS).build()?;
                let answer = black_box(pool.call(echo, 1.5).wait()?);
                check(answer == 1.5, "knitting echoes its argument")?;
                Ok(pool)
            },
            |pool| {
                pool.shutdown();
                Ok(())
            },
        )
    })
}

/// The strict runner, once a strict pool has started and answered here.
fn strict_can_start() -> Result<Runner> {
    let pool = Pool::builder()
        .processes(1)
        .permissions(Permissions::strict())
        .build()?;
    check(
        pool.call(echo, 1.5).wait()? == 1.5,
        "a strict knitting process echoes its argument",
    )?;
    pool.shutdown();
    Ok(knitting_processes(KNITTING_PROCESSES, Permissions::strict))
}

/// Process pools whose workers have `permissions()`.
fn knitting_processes(runtime: &'static str, permissions: fn() -> Permissions) -> Runner {
    Runner::new(runtime, move |_point, sampler| {
        sampler.run_with_teardown(
            || {
                let pool = Pool::builder()
                    .processes(WORKERS)
                    .permissions(permissions())
                    .build()?;
                let answer = black_box(pool.call(echo, 1.5).wait()?);
                check(answer == 1.5, "knitting processes echo their argument")?;
                Ok(pool)
            },
            |pool| {
                pool.shutdown();
                Ok(())
            },
        )
    })
}

fn procspawn() -> Runner {
    Runner::new("procspawn", |_point, sampler| {
        sampler.run_with_teardown(
            || {
                let service = procspawn::Service::start(WORKERS, procspawn_echo)?;
                let answer = black_box(service.call(1.5)?);
                check(answer == 1.5, "procspawn echoes its argument")?;
                Ok(service)
            },
            |service| {
                service.shutdown();
                Ok(())
            },
        )
    })
}
