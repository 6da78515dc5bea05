//! W10: how long a call takes to end after [`Call::abort`], after
//! [`Call::cancel`], and past its hard time limit, on knitting's thread and
//! process pools (one worker each, so that the untimed echo before every
//! sample reaches the very worker the sample uses).
//!
//! `results.json` has no field for the way a call is ended, so each one is
//! its own workload id:
//!
//! | id | one sample |
//! |---|---|
//! | W10a | abort latency: a task spins until its `&Signal` is raised; 2 ms after the call (it is running by then), the clock starts, `call.abort()`, and `call.wait()` returns what the task returns. A sample where the task had not started (it returns having spun 0 times) is dropped. |
//! | W10b | cancel latency: the same, ended with `call.cancel()` (the call fails with `Cancelled` at once on the caller's side, and the signal is raised). |
//! | W10c | hard-limit overshoot: a task with `hard_timeout = "20ms"` spins until its signal is raised; the sample is the time from the call to its `HardTimeout` error, less 20 ms. A process worker is killed and replaced every sample; a thread lane gets a fresh thread, and the runaway one stops as the library raises its signal. |
//!
//! Every record: runtime `knitting-threads` or `knitting-processes`,
//! `batch` 1, `bytes` 0; `median_ns` and `p99_ns` are the latency (W10c: the
//! overshoot). Before every sample, timed or not, an untimed echo makes
//! sure the worker is up and idle (after a W10c kill: its replacement has
//! started; after a W10b cancel: the cancelled task has stopped). Each
//! runtime takes the mode's [`aborts`](crate::mode::Mode::aborts) samples
//! per workload, spread over the rounds, after one untimed sample per
//! block. `KNITTING_BENCH_ONLY=W10` selects all three.

use std::{
    thread,
    time::{Duration, Instant},
};

use knitting::{Call, ErrorKind, Pool, ProcessPool, Task as _};

use super::{check, echo, Runner, Workload};
use crate::{
    measure::{Plan, Sampler},
    mode::Mode,
    Result,
};

/// The hard time limit of [`spin_hard`]; keep the two equal (checked when
/// the runners are built).
const HARD_LIMIT: Duration = Duration::from_millis(20);

/// How long after the call W10a and W10b wait before ending it, so that
/// the task is surely running.
const RUNNING: Duration = Duration::from_millis(2);

/// W10a samples dropped in a row (task not yet running when aborted)
/// before the harness gives up.
const MAX_MISSES: usize = 10;

/// Spins until the call is aborted; returns how many times it looked.
fn spin_until_aborted(signal: &knitting::Signal) -> u64 {
    let mut spins = 0;
    loop {
        if signal.aborted() {
            return spins;
        }
        spins += 1;
        std::hint::spin_loop();
    }
}

#[knitting::task]
fn spin(signal: &knitting::Signal) -> u64 {
    spin_until_aborted(signal)
}

#[knitting::task(hard_timeout = "20ms")]
fn spin_hard(signal: &knitting::Signal) -> u64 {
    spin_until_aborted(signal)
}

/// How a W10 call is ended.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Abort,
    Cancel,
    HardLimit,
}

impl Kind {
    fn id(self) -> &'static str {
        match self {
            Self::Abort => "W10a",
            Self::Cancel => "W10b",
            Self::HardLimit => "W10c",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Abort => "abort() until the call ends",
            Self::Cancel => "cancel() until the call ends",
            Self::HardLimit => "overshoot of a 20 ms hard limit",
        }
    }
}

pub fn abort(mode: &Mode) -> Result<Workload> {
    workload(Kind::Abort, mode)
}

pub fn cancel(mode: &Mode) -> Result<Workload> {
    workload(Kind::Cancel, mode)
}

pub fn hard_limit(mode: &Mode) -> Result<Workload> {
    workload(Kind::HardLimit, mode)
}

fn workload(kind: Kind, mode: &Mode) -> Result<Workload> {
    check(
        spin_hard.info().hard_timeout() == Some(HARD_LIMIT),
        "spin_hard's hard_timeout is HARD_LIMIT",
    )?;
    let per_block = mode.aborts.div_ceil(mode.rounds).max(1);
    Ok(Workload {
        id: kind.id(),
        title: kind.title(),
        sizes: &[0],
        batches: &[1],
        plan: Some(Plan {
            warmup_iters: 1,
            warmup_time: Duration::ZERO,
            min_samples: per_block,
            max_samples: per_block,
            budget: Duration::ZERO,
        }),
        runners: vec![
            runner(
                "knitting-threads",
                Pool::builder().threads(1).build()?,
                kind,
            )?,
            runner(
                "knitting-processes",
                Pool::builder().processes(1).build()?,
                kind,
            )?,
        ],
    })
}

/// The calls of one sample, on either kind of knitting pool.
trait Calls: 'static {
    /// An untimed echo: the worker is up and idle once it returns.
    fn settle(&self) -> Result<()>;
    fn spin(&self) -> Call<u64>;
    fn spin_hard(&self) -> Call<u64>;
}

impl Calls for Pool {
    fn settle(&self) -> Result<()> {
        check(self.call(echo::echo, 1.5).wait()? == 1.5, "knitting echoes")
    }

    fn spin(&self) -> Call<u64> {
        self.call(spin, ())
    }

    fn spin_hard(&self) -> Call<u64> {
        self.call(spin_hard, ())
    }
}

impl Calls for ProcessPool {
    fn settle(&self) -> Result<()> {
        check(
            self.call(echo::echo, 1.5).wait()? == 1.5,
            "knitting processes echo",
        )
    }

    fn spin(&self) -> Call<u64> {
        self.call(spin, ())
    }

    fn spin_hard(&self) -> Call<u64> {
        self.call(spin_hard, ())
    }
}

fn runner(runtime: &'static str, pool: impl Calls, kind: Kind) -> Result<Runner> {
    pool.settle()?;
    Ok(Runner::new(runtime, move |_point, sampler| {
        measure(&pool, kind, sampler)
    }))
}

/// Drives `sampler` to its end, one call ended per iteration.
fn measure(pool: &impl Calls, kind: Kind, sampler: &mut Sampler) -> Result<()> {
    let mut misses = 0;
    while sampler.more() {
        match sample(pool, kind)? {
            Some(latency) => {
                misses = 0;
                sampler.record(latency);
            }
            None => {
                misses += 1;
                check(
                    misses < MAX_MISSES,
                    "the spinning task runs within 2 ms of its call",
                )?;
            }
        }
    }
    Ok(())
}

/// One sample: how long the call took to end; `None` when it does not
/// count (the task was aborted before it ran).
fn sample(pool: &impl Calls, kind: Kind) -> Result<Option<Duration>> {
    pool.settle()?;
    match kind {
        Kind::Abort => {
            let call = pool.spin();
            thread::sleep(RUNNING);
            let start = Instant::now();
            call.abort();
            let spins = call.wait()?;
            let latency = start.elapsed();
            Ok((spins > 0).then_some(latency))
        }
        Kind::Cancel => {
            let call = pool.spin();
            thread::sleep(RUNNING);
            let start = Instant::now();
            let outcome = call.cancel();
            let latency = start.elapsed();
            match outcome {
                Err(err) if err.is_cancelled() => Ok(Some(latency)),
                Err(err) => Err(err.into()),
                Ok(_) => Err("a cancelled call that spins until aborted returned a value".into()),
            }
        }
        Kind::HardLimit => {
            let start = Instant::now();
            let outcome = pool.spin_hard().wait();
            let took = start.elapsed();
            match outcome {
                Err(err) if err.kind() == ErrorKind::HardTimeout => {
                    Ok(Some(took.saturating_sub(HARD_LIMIT)))
                }
                Err(err) => Err(err.into()),
                Ok(_) => Err("a call past its hard limit returned a value".into()),
            }
        }
    }
}
