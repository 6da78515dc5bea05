//! Giving up on calls: dropping handles, `abort`, `cancel`, `detach`, and the task's `Signal`.

mod common;

use common::{pool, LONG};

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use knitting::{Signal, Task as _};

/// Waits (at most 10 s) until `flag` is set.
fn wait_for(flag: &AtomicBool, what: &str) {
    let start = Instant::now();
    while !flag.load(Ordering::SeqCst) {
        assert!(start.elapsed() < LONG, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Flags, one set per test so that parallel tests stay apart.
const FLAGS_PER_TEST: usize = 4;
static FLAGS: [AtomicBool; 8 * FLAGS_PER_TEST] =
    [const { AtomicBool::new(false) }; 8 * FLAGS_PER_TEST];

fn flag(test: usize, which: usize) -> &'static AtomicBool {
    &FLAGS[test * FLAGS_PER_TEST + which]
}

/// Holds its worker until `flag(test, 0)` is set (or 10 s pass).
#[knitting::task]
fn blocker(test: usize) -> &'static str {
    flag(test, 1).store(true, Ordering::SeqCst);
    let start = Instant::now();
    while !flag(test, 0).load(Ordering::SeqCst) && start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(1));
    }
    "unblocked"
}

/// Spins until its signal is raised (or 10 s pass), records that it saw
/// the signal in `flag(test, 2)`, then waits for `flag(test, 3)` before it
/// returns.
#[knitting::task]
fn watcher(test: usize, signal: &Signal) -> &'static str {
    flag(test, 1).store(true, Ordering::SeqCst);
    let start = Instant::now();
    while !signal.aborted() && start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(1));
    }
    if !signal.aborted() {
        return "never aborted";
    }
    flag(test, 2).store(true, Ordering::SeqCst);
    while !flag(test, 3).load(Ordering::SeqCst) && start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(1));
    }
    "stopped"
}

#[knitting::task]
fn saw_abort_at_start(signal: &Signal) -> bool {
    signal.aborted()
}

static COUNTED_RUNS: AtomicUsize = AtomicUsize::new(0);
static PAYLOAD_DROPS: AtomicUsize = AtomicUsize::new(0);

/// Counts its drops: the arguments of a call that never runs must still be
/// dropped, once.
struct Payload;

impl Drop for Payload {
    fn drop(&mut self) {
        PAYLOAD_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[knitting::task]
fn counted(_payload: Payload) -> usize {
    COUNTED_RUNS.fetch_add(1, Ordering::SeqCst) + 1
}

#[test]
fn dropping_a_queued_call_means_it_never_runs() {
    const T: usize = 0;
    let pool = pool(1);
    let block = pool.call(blocker, T);
    wait_for(flag(T, 1), "the blocker to start");

    let queued = pool.call(counted, Payload);
    let also_queued = pool.call(counted, Payload);
    assert!(!queued.is_finished());
    drop(queued);
    drop(also_queued);
    // The arguments of the dropped calls are released with them.
    assert_eq!(PAYLOAD_DROPS.load(Ordering::SeqCst), 2);

    flag(T, 0).store(true, Ordering::SeqCst);
    assert_eq!(block.wait().unwrap(), "unblocked");
    // One lane, first in first out: this call runs after the dropped ones
    // would have, and it is the first to run.
    assert_eq!(pool.call(counted, Payload).wait().unwrap(), 1);
    pool.shutdown();
    assert_eq!(COUNTED_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(PAYLOAD_DROPS.load(Ordering::SeqCst), 3);
}

#[test]
fn abort_is_seen_by_a_running_task_that_watches_its_signal() {
    const T: usize = 1;
    let pool = pool(1);
    let call = pool.call(watcher, T);
    wait_for(flag(T, 1), "the watcher to start");
    assert!(!flag(T, 2).load(Ordering::SeqCst), "aborted before abort()");
    call.abort();
    wait_for(flag(T, 2), "the watcher to see the abort");
    assert!(!call.is_finished());
    flag(T, 3).store(true, Ordering::SeqCst);
    // The call ends with whatever the task returned.
    assert_eq!(call.wait().unwrap(), "stopped");
}

#[test]
fn abort_does_not_stop_a_call_that_ignores_its_signal() {
    const T: usize = 2;
    let pool = pool(1);
    let block = pool.call(blocker, T);
    wait_for(flag(T, 1), "the blocker to start");
    block.abort();
    // A queued call that is aborted still runs, and sees its signal raised.
    let queued = pool.call(saw_abort_at_start, ());
    queued.abort();
    let fresh = pool.call(saw_abort_at_start, ());
    flag(T, 0).store(true, Ordering::SeqCst);
    assert_eq!(block.wait().unwrap(), "unblocked");
    assert!(queued.wait().unwrap());
    assert!(!fresh.wait().unwrap());
}

#[test]
fn cancel_ends_the_call_at_once_and_raises_the_signal() {
    const T: usize = 3;
    let pool = pool(1);
    let call = pool.call(watcher, T);
    wait_for(flag(T, 1), "the watcher to start");
    // The watcher only returns once flag 3 is set, which happens after
    // `cancel` returned: so `cancel` cannot have waited for the task.
    let err = call.cancel().unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert_eq!(err.kind(), knitting::ErrorKind::Cancelled);
    assert!(!err.is_closed());
    assert_eq!(err.task(), Some(watcher.info().name()));
    wait_for(flag(T, 2), "the cancelled task to see its signal");
    flag(T, 3).store(true, Ordering::SeqCst);
    // The worker is free again afterwards.
    assert!(!pool.call(saw_abort_at_start, ()).wait().unwrap());
}

#[test]
fn cancel_of_a_queued_call_never_runs_it_and_cancel_of_a_finished_call_returns_its_value() {
    const T: usize = 4;
    // Should the cancelled watcher run anyway, it must not hold the worker.
    flag(T, 3).store(true, Ordering::SeqCst);
    let pool = pool(1);
    let block = pool.call(blocker, T);
    wait_for(flag(T, 1), "the blocker to start");
    let queued = pool.call(watcher, T);
    let err = queued.cancel().unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    flag(T, 0).store(true, Ordering::SeqCst);
    assert_eq!(block.wait().unwrap(), "unblocked");

    let done = pool.call(saw_abort_at_start, ());
    let start = Instant::now();
    while !done.is_finished() {
        assert!(start.elapsed() < LONG, "never finished");
        std::thread::yield_now();
    }
    // Too late to cancel: the outcome is the value.
    assert!(!done.cancel().unwrap());

    pool.shutdown();
    // The cancelled watcher never ran: it would have seen its raised signal
    // and set flag 2 (flag 1 was set by the blocker, so it tells nothing).
    assert!(!flag(T, 2).load(Ordering::SeqCst));
}

#[test]
fn dropping_a_running_call_raises_its_signal() {
    const T: usize = 5;
    let pool = pool(1);
    let call = pool.call(watcher, T);
    wait_for(flag(T, 1), "the watcher to start");
    drop(call);
    wait_for(flag(T, 2), "the dropped call's task to see its signal");
    flag(T, 3).store(true, Ordering::SeqCst);
    assert!(!pool.call(saw_abort_at_start, ()).wait().unwrap());
}

static DETACHED_EFFECT: AtomicBool = AtomicBool::new(false);

#[knitting::task]
fn slow_effect(ms: u64, signal: &Signal) -> bool {
    std::thread::sleep(Duration::from_millis(ms));
    let aborted = signal.aborted();
    DETACHED_EFFECT.store(!aborted, Ordering::SeqCst);
    aborted
}

#[test]
fn detach_lets_the_call_run_to_completion() {
    let pool = pool(1);
    pool.call(slow_effect, 20).detach();
    // Detaching neither cancels nor aborts: the task runs to its end with
    // its signal down.
    wait_for(&DETACHED_EFFECT, "the detached call's side effect");
}

/// Waits (at most 10 s) until `flag` is set, without blocking the runtime.
async fn wait_for_async(flag: &AtomicBool, what: &str) {
    let start = Instant::now();
    while !flag.load(Ordering::SeqCst) {
        assert!(start.elapsed() < LONG, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_dropped_by_select_is_cancelled() {
    const T: usize = 6;
    let pool = pool(1);
    let call = pool.call(watcher, T);
    tokio::select! {
        result = call => panic!("the watcher cannot finish without an abort: {result:?}"),
        () = wait_for_async(flag(T, 1), "the watcher to start") => {}
    }
    // The losing branch's `Call` was dropped: the running task sees its signal.
    wait_for_async(flag(T, 2), "the dropped call's task to see its signal").await;
    flag(T, 3).store(true, Ordering::SeqCst);
    assert!(!pool.call(saw_abort_at_start, ()).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_by_a_timed_out_future_is_cancelled() {
    const T: usize = 7;
    let pool = pool(1);
    let block = pool.call(blocker, T);
    wait_for_async(flag(T, 1), "the blocker to start").await;
    // Queued behind the blocker, so it cannot finish before the timeout.
    let outcome =
        tokio::time::timeout(Duration::from_millis(20), pool.call(counted_elsewhere, ())).await;
    assert!(outcome.is_err());
    flag(T, 0).store(true, Ordering::SeqCst);
    assert_eq!(block.await.unwrap(), "unblocked");
    assert_eq!(pool.call(counted_elsewhere, ()).await.unwrap(), 1);
    assert_eq!(ELSEWHERE_RUNS.load(Ordering::SeqCst), 1);
}

static ELSEWHERE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[knitting::task]
fn counted_elsewhere() -> usize {
    ELSEWHERE_RUNS.fetch_add(1, Ordering::SeqCst) + 1
}
