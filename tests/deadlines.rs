//! Deadlines, cooperative abort and hard time limits, on thread workers and
//! on process workers: the same tests for both. Timings are checked only
//! against generous bounds.

knitting::init_before_main!();

mod common;

use std::{
    fmt,
    time::{Duration, Instant},
};

use knitting::{ErrorKind, Signal};

/// Sleeps `ms` (in small steps, stopping early when aborted).
fn nap(ms: u64, signal: &Signal) {
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end && !signal.aborted() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[knitting::task(timeout = "100ms", default = "timed out")]
fn maybe_slow(ms: u64) -> String {
    std::thread::sleep(Duration::from_millis(ms));
    "hello".to_owned()
}

#[knitting::task(timeout = "5s", default = "gave up")]
fn patient(ms: u64, signal: &Signal) -> String {
    nap(ms, signal);
    "done".to_owned()
}

#[derive(Debug)]
struct TooSlow;

impl fmt::Display for TooSlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too slow for the report")
    }
}

impl std::error::Error for TooSlow {}

#[knitting::task(timeout = "50ms", error = TooSlow)]
fn report(ms: u64, signal: &Signal) -> u32 {
    nap(ms, signal);
    7
}

#[knitting::task(timeout = "50ms")]
fn plain_deadline(ms: u64, signal: &Signal) -> u32 {
    nap(ms, signal);
    8
}

#[knitting::task]
fn sleepy(ms: u64, signal: &Signal) -> u64 {
    nap(ms, signal);
    ms
}

/// Counts until aborted, or up to `limit` (a millisecond per step).
#[knitting::task]
fn count_until_stopped(limit: u64, signal: &Signal) -> u64 {
    let mut n = 0;
    while !signal.aborted() && n < limit {
        n += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    n
}

#[knitting::task(timeout = "50ms", default = u64::MAX)]
fn count_with_deadline(limit: u64, signal: &Signal) -> u64 {
    let mut n = 0;
    while !signal.aborted() && n < limit {
        n += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    n
}

/// Never returns unless its call is cut (its signal is raised then).
#[knitting::task(hard_timeout = "100ms")]
fn runaway(signal: &Signal) -> u64 {
    let mut n = 0u64;
    while !signal.aborted() {
        n = n.wrapping_add(1);
        std::hint::spin_loop();
    }
    n
}

#[knitting::task]
fn spin_until_stopped(signal: &Signal) -> u64 {
    let mut n = 0u64;
    while !signal.aborted() {
        n = n.wrapping_add(1);
        std::hint::spin_loop();
    }
    n
}

#[knitting::task]
fn whoami() -> (u32, String) {
    (
        std::process::id(),
        format!("{:?}", std::thread::current().id()),
    )
}

#[knitting::task]
fn clock(signal: &Signal) -> Duration {
    signal.now()
}

/// Waits at most 10 s: a call that does not end fails instead of hanging.
fn within<T: Send + 'static>(mut call: knitting::Call<T>) -> Result<T, knitting::Error> {
    call.wait_timeout(Duration::from_secs(10))
        .expect("the call ended within 10 s")
}

macro_rules! deadlines {
    ($runtime:ident, $make:expr, $make_hard:expr) => {
        mod $runtime {
            use super::*;

            #[test]
            fn a_deadline_gives_the_default_value() {
                let pool = $make;
                let started = Instant::now();
                assert_eq!(within(pool.call(maybe_slow, 2_000)).unwrap(), "timed out");
                let took = started.elapsed();
                assert!(took >= Duration::from_millis(90), "{took:?}");
                assert!(took < Duration::from_millis(1_500), "{took:?}");
                // A call that beats its deadline gives its own value.
                let fast = pool.call(maybe_slow, 0);
                assert_eq!(within(fast).unwrap(), "hello");
            }

            #[test]
            fn a_deadline_gives_the_declared_error() {
                let pool = $make;
                let err = within(pool.call(report, 5_000)).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
                assert_eq!(err.message(), "too slow for the report");
                assert!(err.task().unwrap().ends_with("::report"));
                let err = within(pool.call(plain_deadline, 5_000)).unwrap_err();
                assert!(err.is_timeout(), "{err:?}");
                assert_eq!(err.message(), "the call's deadline passed");
                assert_eq!(within(pool.call(report, 0)).unwrap(), 7);
            }

            #[test]
            fn a_per_call_deadline_replaces_the_tasks_own() {
                let pool = $make;
                // A task without a deadline, given one.
                let err = within(pool.call(sleepy, 5_000).timeout(Duration::from_millis(50)))
                    .unwrap_err();
                assert!(err.is_timeout(), "{err:?}");
                // A task with a 50 ms deadline, given a longer one.
                let call = pool
                    .call(plain_deadline, 150)
                    .deadline(Instant::now() + Duration::from_secs(5));
                assert_eq!(within(call).unwrap(), 8);
                // And a shorter one.
                let started = Instant::now();
                let call = pool.call(patient, 8_000).timeout(Duration::from_millis(10));
                assert_eq!(within(call).unwrap(), "gave up");
                let took = started.elapsed();
                assert!(
                    took < Duration::from_secs(3),
                    "the task's own 5 s deadline ruled: {took:?}"
                );
            }

            #[test]
            fn a_deadline_counts_from_the_call_including_the_queue() {
                // Every worker busy for 400 ms: the 100 ms deadline of the
                // call queued behind passes while it waits.
                let pool = $make;
                let busy: Vec<_> = (0..2).map(|_| pool.call(sleepy, 400)).collect();
                // Both running, one per lane, before the call that must
                // queue behind them (under load a worker can take a while
                // to start its call).
                let until = Instant::now() + Duration::from_secs(10);
                while !pool
                    .stats()
                    .lanes
                    .iter()
                    .all(|lane| lane.in_flight == 1 && lane.queued == 0)
                {
                    assert!(Instant::now() < until, "the busy calls did not start");
                    std::thread::sleep(Duration::from_millis(1));
                }
                let started = Instant::now();
                assert_eq!(within(pool.call(maybe_slow, 0)).unwrap(), "timed out");
                let took = started.elapsed();
                assert!(took < Duration::from_millis(350), "{took:?}");
                for b in busy {
                    assert_eq!(within(b).unwrap(), 400);
                }
            }

            #[test]
            fn a_passed_deadline_raises_the_signal_so_the_task_stops() {
                let pool = $make;
                let started = Instant::now();
                let calls: Vec<_> = (0..2)
                    .map(|_| pool.call(count_with_deadline, 1_000_000))
                    .collect();
                for call in calls {
                    assert_eq!(within(call).unwrap(), u64::MAX);
                }
                // The tasks saw their signal: both workers are free again
                // (left alone they would count for a quarter of an hour).
                for v in 0..4 {
                    assert_eq!(within(pool.call(sleepy, v)).unwrap(), v);
                }
                assert!(started.elapsed() < Duration::from_secs(5));
            }

            #[test]
            fn abort_ends_the_call_with_what_the_task_returns() {
                let pool = $make;
                let call = pool.call(count_until_stopped, 1_000_000_000);
                call.abort();
                let counted = within(call).unwrap();
                assert!(counted < 1_000, "{counted}");
            }

            #[test]
            fn cancel_ends_the_call_at_once_and_the_task_stops() {
                let pool = $make;
                let calls: Vec<_> = (0..2).map(|_| pool.call(spin_until_stopped, ())).collect();
                std::thread::sleep(Duration::from_millis(20));
                for call in calls {
                    let started = Instant::now();
                    let err = call.cancel().unwrap_err();
                    assert!(err.is_cancelled(), "{err:?}");
                    assert!(started.elapsed() < Duration::from_secs(1));
                }
                // Both tasks stopped spinning: the workers answer again.
                for v in 0..4 {
                    assert_eq!(within(pool.call(sleepy, v)).unwrap(), v);
                }
            }

            #[test]
            fn many_concurrent_aborts_all_arrive() {
                // Unbounded: every call carries its own abort word.
                let pool = $make;
                let calls: Vec<_> = (0..1_000)
                    .map(|_| pool.call(count_until_stopped, 1_000_000))
                    .collect();
                for call in &calls {
                    call.abort();
                }
                for call in calls {
                    assert!(within(call).unwrap() < 1_000_000);
                }
            }

            #[test]
            fn a_task_hard_limit_cuts_the_call_and_the_lane_goes_on() {
                let pool = $make;
                let started = Instant::now();
                let err = within(pool.call(runaway, ())).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::HardTimeout, "{err:?}");
                assert!(err.message().contains("100ms"), "{err}");
                let took = started.elapsed();
                assert!(took >= Duration::from_millis(90), "{took:?}");
                assert!(took < Duration::from_secs(5), "{took:?}");
                for v in 0..4 {
                    assert_eq!(within(pool.call(sleepy, v)).unwrap(), v);
                }
            }

            #[test]
            fn other_lanes_are_untouched_by_a_hard_limit() {
                let pool = $make;
                // Lane 0 busy with a long, well-behaved call; the runaway
                // goes to lane 1.
                let busy = pool.call(sleepy, 400);
                std::thread::sleep(Duration::from_millis(30));
                let err = within(pool.call(runaway, ())).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::HardTimeout, "{err:?}");
                assert_eq!(within(busy).unwrap(), 400);
                let restarts: Vec<usize> = pool.stats().lanes.iter().map(|l| l.restarts).collect();
                assert_eq!(restarts.iter().sum::<usize>(), 1, "{restarts:?}");
            }

            #[test]
            fn a_pool_hard_limit_applies_to_every_call() {
                let pool = $make_hard;
                let err = within(pool.call(spin_until_stopped, ())).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::HardTimeout, "{err:?}");
                assert_eq!(within(pool.call(sleepy, 1)).unwrap(), 1);
            }

            #[test]
            fn workers_read_the_hosts_clock() {
                let pool = $make;
                let threads = knitting::Pool::builder().threads(1).build().unwrap();
                let here = within(threads.call(clock, ())).unwrap();
                let there = within(pool.call(clock, ())).unwrap();
                let gap = there.abs_diff(here);
                assert!(gap < Duration::from_secs(2), "{here:?} vs {there:?}");
            }
        }
    };
}

deadlines!(
    threads,
    knitting::Pool::builder()
        .threads(2)
        .build()
        .expect("thread pool"),
    knitting::Pool::builder()
        .threads(1)
        .hard_timeout(Duration::from_millis(50))
        .build()
        .expect("thread pool")
);
deadlines!(
    processes,
    knitting::Pool::builder()
        .processes(2)
        .build()
        .expect("process pool"),
    knitting::Pool::builder()
        .processes(1)
        .hard_timeout(Duration::from_millis(50))
        .build()
        .expect("process pool")
);

#[test]
fn a_hard_limit_kills_and_replaces_a_process_worker_and_requeues_the_calls_behind() {
    let pool = knitting::Pool::builder()
        .processes(1)
        .build()
        .expect("process pool");
    let (before, _) = within(pool.call(whoami, ())).unwrap();
    let cut = pool.call(runaway, ());
    let behind: Vec<_> = (0..5).map(|v| pool.call(sleepy, v)).collect();
    assert_eq!(within(cut).unwrap_err().kind(), ErrorKind::HardTimeout);
    for (v, call) in (0..5).zip(behind) {
        assert_eq!(within(call).unwrap(), v, "a call queued behind the runaway");
    }
    let (after, _) = within(pool.call(whoami, ())).unwrap();
    assert_ne!(before, after, "a new worker process took the lane");
    assert!(common::wait_gone(before), "the runaway worker was killed");
    assert_eq!(pool.stats().lanes[0].restarts, 1);
}

#[test]
fn a_hard_limit_gives_a_thread_lane_a_fresh_thread() {
    let pool = knitting::Pool::builder().threads(1).build().unwrap();
    let (_, before) = within(pool.call(whoami, ())).unwrap();
    assert_eq!(
        within(pool.call(runaway, ())).unwrap_err().kind(),
        ErrorKind::HardTimeout
    );
    let (_, after) = within(pool.call(whoami, ())).unwrap();
    assert_ne!(before, after, "the lane is served by a new thread");
    // The runaway was told to stop (its signal) and has exited: shutdown
    // joins the current thread only and returns.
    pool.shutdown();
}
