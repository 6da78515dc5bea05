//! W14: a saturated service in miniature. Four caller threads keep 32
//! calls in flight (8 each) on a 2-worker pool; each call spins the CPU for
//! 1 to 5 ms, a duration drawn from the call's number (the same sequence on
//! every runtime). A sample is one call's latency, from its submission to
//! when its caller sees it done; the record also has the calls completed
//! per second.
//!
//! A caller waits for its oldest call, then takes every other call of its
//! window that has ended meanwhile (timed as ending then), and tops its
//! window up to 8 again. Only calls that end within the timed span count:
//! a warm-up of an eighth of it comes first (the service saturated
//! already), and the calls still out when it ends are drained untimed.
//!
//! Two workers whatever the machine (as W6): lane choice needs more than
//! one lane, and the four callers mostly sleep in `wait`. The knitting
//! rows use the default balancer (`Balancer::LeastLoaded`), the
//! `-first-idle` rows `Balancer::FirstIdle` (the rule before balancers
//! could be chosen); `rayon` is a rayon pool of two threads, each call a
//! `spawn` replying on a one-shot channel.

use std::{
    collections::VecDeque,
    hint::black_box,
    time::{Duration, Instant},
};

use knitting::{Balancer, Call, Pool, Runs, Runtime};

use super::{check, unless_unenforceable, Runner, Workload};
use crate::{
    baselines::rayon::Rayon,
    measure::Sampler,
    mode::Mode,
    report::{KNITTING, KNITTING_PROCESSES},
    Result,
};

/// Calls in flight at once, over all callers (the point's batch).
pub const IN_FLIGHT: usize = 32;
/// Caller threads.
const CALLERS: usize = 4;
/// Workers of every runtime.
const WORKERS: usize = 2;

/// How long call number `call` spins: 1 to 5 ms, from a splitmix64 hash of
/// the number (Steele, Lea and Flood, 2014).
pub fn work(call: u64) -> Duration {
    let mut z = call.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    Duration::from_micros(1_000 + z % 4_001)
}

/// Spins the CPU (no sleep) for `work(call)`; returns `call`.
fn spin(call: u64) -> u64 {
    let end = Instant::now() + work(call);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
    call
}

#[knitting::task]
fn burn(call: u64) -> u64 {
    spin(call)
}

pub fn workload(mode: &Mode) -> Result<Workload> {
    let service = mode.service;
    Ok(Workload {
        id: "W14",
        title: "saturated service, 1–5 ms CPU calls, 4 callers",
        sizes: &[std::mem::size_of::<u64>()],
        batches: &[IN_FLIGHT],
        plan: None,
        runners: vec![
            knitting(KNITTING, Pool::builder().threads(WORKERS).build()?, service)?,
            unless_unenforceable(
                KNITTING_PROCESSES,
                Pool::builder()
                    .processes(WORKERS)
                    .build()
                    .map_err(Into::into)
                    .and_then(|pool| knitting(KNITTING_PROCESSES, pool, service)),
            )?,
            knitting(
                "knitting-threads-first-idle",
                Pool::builder()
                    .threads(WORKERS)
                    .balancer(Balancer::FirstIdle)
                    .build()?,
                service,
            )?,
            unless_unenforceable(
                "knitting-processes-first-idle",
                Pool::builder()
                    .processes(WORKERS)
                    .balancer(Balancer::FirstIdle)
                    .build()
                    .map_err(Into::into)
                    .and_then(|pool| knitting("knitting-processes-first-idle", pool, service)),
            )?,
            rayon(service)?,
        ],
    })
}

/// What the callers need of a runtime: send a call, tell whether it has
/// ended without blocking, and wait for it.
trait Service: Sync {
    type Pending: Send;
    fn submit(&self, call: u64) -> Self::Pending;
    fn is_done(&self, pending: &Self::Pending) -> bool;
    fn finish(&self, pending: Self::Pending) -> Result<u64>;
}

struct Knitting<R: Runtime>(Pool<R>);

impl<R: Runtime + Runs<burn>> Service for Knitting<R> {
    type Pending = Call<u64>;
    fn submit(&self, call: u64) -> Call<u64> {
        self.0.call(burn, call)
    }
    fn is_done(&self, pending: &Call<u64>) -> bool {
        pending.is_finished()
    }
    fn finish(&self, pending: Call<u64>) -> Result<u64> {
        Ok(pending.wait()?)
    }
}

impl Service for Rayon {
    type Pending = crossbeam_channel::Receiver<u64>;
    fn submit(&self, call: u64) -> Self::Pending {
        self.call(move || spin(call))
    }
    fn is_done(&self, pending: &Self::Pending) -> bool {
        !pending.is_empty()
    }
    fn finish(&self, pending: Self::Pending) -> Result<u64> {
        Ok(pending.recv()?)
    }
}

fn knitting<R: Runtime + Runs<burn>>(
    runtime: &'static str,
    pool: Pool<R>,
    service: Duration,
) -> Result<Runner> {
    runner(runtime, Knitting(pool), service)
}

fn rayon(service: Duration) -> Result<Runner> {
    runner("rayon", Rayon::new(WORKERS)?, service)
}

fn runner<S: Service + 'static>(
    runtime: &'static str,
    service: S,
    span: Duration,
) -> Result<Runner> {
    check(
        service.finish(service.submit(7))? == 7,
        &format!("W14 {runtime} returns the call's number"),
    )?;
    Ok(Runner::new(runtime, move |_, sampler| {
        drive(&service, span, sampler)
    }))
}

/// Saturates `service` for `span` (after a warm-up) and hands the timed
/// calls' latencies to `sampler`.
fn drive<S: Service>(service: &S, span: Duration, sampler: &mut Sampler) -> Result<()> {
    let from = Instant::now() + span / 8;
    let until = from + span;
    let outcomes: Vec<Result<Vec<Duration>>> = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..CALLERS)
            .map(|c| scope.spawn(move || caller(service, c as u64, from, until)))
            .collect();
        callers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a W14 caller panicked".into()))
            })
            .collect()
    });
    let mut latencies = Vec::new();
    for outcome in outcomes {
        latencies.extend(outcome?);
    }
    sampler.take(latencies, span);
    Ok(())
}

/// One caller: keeps `IN_FLIGHT / CALLERS` calls out until `until`; returns
/// the latencies of its calls that ended in `from..until`.
fn caller<S: Service>(
    service: &S,
    index: u64,
    from: Instant,
    until: Instant,
) -> Result<Vec<Duration>> {
    let window = IN_FLIGHT / CALLERS;
    let mut number = index << 32;
    let mut send = || {
        number += 1;
        (Instant::now(), service.submit(number))
    };
    let mut out: VecDeque<_> = (0..window).map(|_| send()).collect();
    let mut latencies = Vec::new();
    while let Some((sent, oldest)) = out.pop_front() {
        black_box(service.finish(oldest)?);
        let now = Instant::now();
        let timed = (from..until).contains(&now);
        if timed {
            latencies.push(now - sent);
        }
        let mut i = 0;
        while i < out.len() {
            if service.is_done(&out[i].1) {
                let (sent, done) = out.remove(i).expect("in range");
                black_box(service.finish(done)?);
                if timed {
                    latencies.push(now - sent);
                }
            } else {
                i += 1;
            }
        }
        if now < until {
            while out.len() < window {
                out.push_back(send());
            }
        }
    }
    Ok(latencies)
}
