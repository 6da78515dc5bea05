//! Shutting a pool down: `shutdown`, `shutdown_timeout`, dropping the pool, and calls made afterwards.

mod common;

use common::LONG;

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use knitting::{ErrorKind, Pool, Task as _};

#[knitting::task]
fn nap_then_echo(ms: u64, value: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    value
}

#[knitting::task]
fn noop() {}

#[test]
fn shutdown_finishes_every_call_in_flight() {
    let pool = Pool::builder().threads(2).build().unwrap();
    let calls: Vec<_> = (0..50).map(|i| pool.call(nap_then_echo, (2, i))).collect();
    pool.shutdown();
    assert!(pool.is_closed());
    // `shutdown` waited for the workers: every call has already ended.
    for (i, mut call) in (0..50).zip(calls) {
        assert!(call.is_finished(), "call {i} still pending after shutdown");
        let result = call.try_wait().expect("a result is ready");
        assert_eq!(result.unwrap(), i);
    }
    let stats = pool.stats();
    assert!(stats.closed);
    assert_eq!(stats.lanes.iter().map(|l| l.completed).sum::<usize>(), 50);
    assert!(stats.lanes.iter().all(|l| l.in_flight == 0));
}

#[test]
fn a_call_after_shutdown_fails_at_once_with_closed() {
    let pool = Pool::builder().threads(2).build().unwrap();
    assert_eq!(pool.call(nap_then_echo, (0, 1)).wait().unwrap(), 1);
    pool.shutdown();

    let mut call = pool.call(nap_then_echo, (0, 2));
    assert!(call.is_finished(), "a refused call is finished at once");
    let err = call.try_wait().expect("ready without waiting").unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(err.task(), Some(nap_then_echo.info().name()));

    let err = pool.call(noop, ()).wait().unwrap_err();
    assert!(err.is_closed(), "{err:?}");

    // Shutting down twice is fine.
    pool.shutdown();
    assert!(pool.call(noop, ()).wait().unwrap_err().is_closed());
}

#[test]
fn a_call_after_shutdown_timeout_fails_with_closed() {
    let pool = Pool::builder().threads(2).build().unwrap();
    assert_eq!(pool.call(nap_then_echo, (1, 3)).wait().unwrap(), 3);
    // Nothing is running: the shutdown finishes in time.
    pool.shutdown_timeout(LONG).unwrap();
    assert!(pool.is_closed());
    let err = pool.call(noop, ()).wait().unwrap_err();
    assert!(err.is_closed(), "{err:?}");
}

#[test]
fn dropping_the_pool_drains_queued_calls() {
    let pool = Pool::builder().threads(2).build().unwrap();
    let calls: Vec<_> = (0..40).map(|i| pool.call(nap_then_echo, (2, i))).collect();
    let dropped_at = Instant::now();
    drop(pool);
    // Dropping only starts the shutdown; the queued calls still run.
    for (i, mut call) in (0..40).zip(calls) {
        let result = call
            .wait_timeout(LONG)
            .unwrap_or_else(|| panic!("call {i} did not resolve after the pool was dropped"));
        assert_eq!(result.unwrap(), i);
    }
    assert!(dropped_at.elapsed() < LONG);
}

static LONG_STARTED: AtomicBool = AtomicBool::new(false);
static QUEUED_RAN: AtomicUsize = AtomicUsize::new(0);

#[knitting::task]
fn long_sleep() -> &'static str {
    LONG_STARTED.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(3));
    "woke up"
}

#[knitting::task]
fn queued_behind(value: u32) -> u32 {
    QUEUED_RAN.fetch_add(1, Ordering::SeqCst);
    value
}

#[test]
fn shutdown_timeout_fails_the_running_and_queued_calls() {
    let pool = Pool::builder().threads(1).build().unwrap();
    let mut running = pool.call(long_sleep, ());
    let started = Instant::now();
    while !LONG_STARTED.load(Ordering::SeqCst) {
        assert!(started.elapsed() < LONG, "the long call never started");
        std::thread::yield_now();
    }
    let mut queued: Vec<_> = (0..5).map(|i| pool.call(queued_behind, i)).collect();

    let before = Instant::now();
    let err = pool
        .shutdown_timeout(Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // It says how many calls it failed: the running one and the five queued.
    let numbers: Vec<&str> = err
        .message()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(numbers.contains(&"6"), "{}", err.message());
    assert!(pool.is_closed());

    // Every call ended already: nothing waits for the 3 s task.
    assert!(running.is_finished());
    let err = running.try_wait().expect("failed at once").unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    assert_eq!(err.task(), Some(long_sleep.info().name()));
    for call in &mut queued {
        assert!(call.is_finished());
        let err = call.wait_timeout(LONG).unwrap().unwrap_err();
        assert!(err.is_closed(), "{err:?}");
    }
    assert_eq!(QUEUED_RAN.load(Ordering::SeqCst), 0, "queued calls ran");
    assert!(
        before.elapsed() < Duration::from_secs(2),
        "shutdown_timeout waited for the long task: {:?}",
        before.elapsed()
    );

    // New calls are refused too.
    assert!(pool.call(queued_behind, 9).wait().unwrap_err().is_closed());
}

static DETACHED_DONE: AtomicUsize = AtomicUsize::new(0);

#[knitting::task]
fn slow_side_effect(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    DETACHED_DONE.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn shutdown_waits_for_detached_calls() {
    let pool = Pool::builder().threads(2).build().unwrap();
    for _ in 0..6 {
        pool.call(slow_side_effect, 5).detach();
    }
    pool.shutdown();
    assert_eq!(DETACHED_DONE.load(Ordering::SeqCst), 6);
}

#[test]
fn shutdown_timeout_returns_ok_when_everything_finishes_in_time() {
    let pool = Pool::builder().threads(2).build().unwrap();
    let calls: Vec<_> = (0..20).map(|i| pool.call(nap_then_echo, (1, i))).collect();
    pool.shutdown_timeout(LONG).unwrap();
    for (i, mut call) in (0..20).zip(calls) {
        let result = call.try_wait().expect("finished before shutdown returned");
        assert_eq!(result.unwrap(), i);
    }
}

#[knitting::task]
fn echo(value: u64) -> u64 {
    value
}

/// Callers keep calling while another thread shuts the pool down: every
/// call ends, with its value or a `Closed` error, and none hangs; a call made
/// once the pool was seen closed is refused.
fn race_callers_against(stop: impl Fn(&Pool) + Sync) {
    for round in 0..20 {
        let pool = Pool::builder().threads(2).build().unwrap();
        std::thread::scope(|scope| {
            let callers: Vec<_> = (0..3u64)
                .map(|t| {
                    let pool = &pool;
                    scope.spawn(move || {
                        let mut calls = Vec::new();
                        let mut refused = 0;
                        let mut i = 0;
                        // Call until the pool is closed, then a few more.
                        while refused < 10 {
                            let closed_before = pool.is_closed();
                            let value = t << 32 | i;
                            calls.push((value, closed_before, pool.call(echo, value)));
                            refused += usize::from(closed_before);
                            i += 1;
                        }
                        for (value, closed_before, mut call) in calls {
                            let result = call.wait_timeout(LONG).unwrap_or_else(|| {
                                panic!("round {round}: call {value:#x} never ended")
                            });
                            match result {
                                Ok(v) => {
                                    assert!(!closed_before, "round {round}: ran after close");
                                    assert_eq!(v, value);
                                }
                                Err(e) => assert!(e.is_closed(), "round {round}: {e:?}"),
                            }
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(2));
            stop(&pool);
            for caller in callers {
                caller.join().unwrap();
            }
        });
    }
}

#[test]
fn calls_racing_shutdown_all_end() {
    race_callers_against(|pool| pool.shutdown());
}

#[test]
fn calls_racing_shutdown_timeout_all_end() {
    race_callers_against(|pool| {
        // The calls are instant, but a busy machine may still make this
        // time out; either way every call must end.
        let _ = pool.shutdown_timeout(Duration::from_millis(1));
    });
}
