//! `async fn` tasks on both runtimes: many calls in flight per worker,
//! `knitting::sleep`, cancellation that drops the task's future (its
//! destructors run, the worker's slot is free at once), `Signal` as a
//! future, and the clear error of a task that needs a tokio reactor the
//! worker does not run.

knitting::init_before_main!();

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::LONG;
use knitting::{AnyRuntime, ErrorKind, Pool, RuntimeKind, Signal};

/// Writes its file when dropped: how a test sees, from outside the
/// worker (thread or process), that a task's future was dropped.
struct Guard(PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, b"dropped");
    }
}

#[knitting::task]
async fn nap(ms: u64) -> u64 {
    knitting::sleep(Duration::from_millis(ms)).await;
    ms
}

#[knitting::task]
fn double(value: u32) -> u32 {
    value * 2
}

/// Holds a guard across a long sleep.
#[knitting::task]
async fn guarded(path: String, ms: u64) -> u64 {
    let _guard = Guard(PathBuf::from(path));
    knitting::sleep(Duration::from_millis(ms)).await;
    ms
}

/// Returns its own answer once asked to stop.
#[knitting::task]
async fn until_stopped(signal: &Signal) -> String {
    let started = Instant::now();
    signal.until_aborted().await;
    format!("stopped after {:?}", started.elapsed())
}

#[knitting::task(hard_timeout = "100ms")]
async fn over_its_limit(path: String) {
    let _guard = Guard(PathBuf::from(path));
    knitting::sleep(LONG).await;
}

/// Needs tokio's timer (a reactor).
#[knitting::task]
async fn tokio_nap(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

/// A fresh file path for one test's guard.
fn marker(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "knitting-async-{}-{name}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// Waits (at most [`LONG`]) until `path` exists.
fn wait_for_file(path: &Path, what: &str) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < LONG, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = std::fs::remove_file(path);
}

fn pool(runtime: RuntimeKind, workers: usize, concurrency: usize) -> Pool<AnyRuntime> {
    match runtime {
        RuntimeKind::Threads => Pool::builder()
            .threads(workers)
            .async_concurrency(concurrency)
            .build()
            .expect("thread pool")
            .into(),
        // A process worker holds at most `ring_slots` calls at once.
        _ => Pool::builder()
            .processes(workers)
            .async_concurrency(concurrency)
            .ring_slots(concurrency.max(16))
            // The guards write their marker files.
            .permissions(knitting::Permissions::unrestricted().allow_write(std::env::temp_dir()))
            .build()
            .expect("process pool")
            .into(),
    }
}

fn an_async_task_awaits_a_timer(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 16);
    let start = Instant::now();
    assert_eq!(pool.call(nap, 30).wait().unwrap(), 30);
    assert!(start.elapsed() >= Duration::from_millis(30));
}

fn a_thousand_calls_on_two_workers_interleave(runtime: RuntimeKind) {
    let pool = pool(runtime, 2, 1000);
    let start = Instant::now();
    let calls: Vec<_> = (0..1000).map(|_| pool.call(nap, 50)).collect();
    for call in calls {
        assert_eq!(call.wait().unwrap(), 50);
    }
    // One after another on two workers: 1,000 x 50 ms / 2 = 25 s.
    let took = start.elapsed();
    assert!(took < Duration::from_secs(8), "1,000 calls took {took:?}");
}

fn the_concurrency_limit_holds(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 2);
    let start = Instant::now();
    let calls: Vec<_> = (0..4).map(|_| pool.call(nap, 100)).collect();
    for call in calls {
        assert_eq!(call.wait().unwrap(), 100);
    }
    // Two at a time: two rounds of 100 ms at least.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(195), "4 calls took {took:?}");
}

/// A sync call that a worker takes while async calls wait there gets its
/// own answer, and the async calls theirs.
fn a_sync_call_between_async_ones_keeps_its_answer(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 64);
    let before: Vec<_> = (0..10).map(|_| pool.call(nap, 50)).collect();
    let sync = pool.call(double, 21);
    let after: Vec<_> = (0..10).map(|_| pool.call(nap, 20)).collect();
    assert_eq!(sync.wait().unwrap(), 42);
    for call in before.into_iter().chain(after) {
        assert!(matches!(call.wait(), Ok(50 | 20)));
    }
}

/// After `end` ended a guarded call on a worker with room for one async
/// call: the guard was dropped, and the next call runs at once.
fn ends_drop_the_future(runtime: RuntimeKind, name: &str, end: fn(knitting::Call<u64>)) {
    let pool = pool(runtime, 1, 1);
    let path = marker(name);
    let call = pool.call(guarded, (path.display().to_string(), 60_000));
    // Let it start.
    std::thread::sleep(Duration::from_millis(50));
    end(call);
    wait_for_file(&path, "the task's guard to be dropped");
    let start = Instant::now();
    assert_eq!(pool.call(nap, 1).wait().unwrap(), 1);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the next call waited {took:?}"
    );
}

fn a_deadline_drops_the_future(runtime: RuntimeKind) {
    ends_drop_the_future(runtime, "deadline", |call| {
        let err = call.timeout(Duration::from_millis(20)).wait().unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
    });
}

fn cancel_drops_the_future(runtime: RuntimeKind) {
    ends_drop_the_future(runtime, "cancel", |call| {
        assert!(call.cancel().unwrap_err().is_cancelled());
    });
}

fn dropping_the_handle_drops_the_future(runtime: RuntimeKind) {
    ends_drop_the_future(runtime, "drop", drop);
}

fn a_hard_limit_drops_the_future(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 4);
    let path = marker("hard");
    let err = pool
        .call(over_its_limit, path.display().to_string())
        .wait()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HardTimeout, "{err:?}");
    wait_for_file(&path, "the task's guard to be dropped");
    assert_eq!(pool.call(nap, 1).wait().unwrap(), 1);
}

/// An async call behind another one keeps its own hard limit: its future
/// is dropped as the limit passes, not once the call ahead is done, and
/// the call ahead is left alone.
fn an_async_call_behind_another_keeps_its_hard_limit(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 4);
    let ahead = pool.call(nap, 2_000);
    std::thread::sleep(Duration::from_millis(20));
    let path = marker("behind");
    let start = Instant::now();
    let err = pool
        .call(over_its_limit, path.display().to_string())
        .wait()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HardTimeout, "{err:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1_500),
        "cut after {:?}",
        start.elapsed()
    );
    wait_for_file(&path, "the task's guard to be dropped");
    assert_eq!(ahead.wait().unwrap(), 2_000);
}

fn abort_lets_the_task_answer(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 4);
    let call = pool.call(until_stopped, ());
    std::thread::sleep(Duration::from_millis(30));
    call.abort();
    let answer = call.wait().unwrap();
    assert!(answer.starts_with("stopped after"), "{answer}");
}

fn shutdown_timeout_drops_the_futures(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 4);
    let path = marker("shutdown");
    let call = pool.call(guarded, (path.display().to_string(), 60_000));
    std::thread::sleep(Duration::from_millis(50));
    let err = pool
        .shutdown_timeout(Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(call.wait().unwrap_err().is_closed());
    wait_for_file(&path, "the task's guard to be dropped");
}

/// Sleeps, holding its worker thread, without looking at its signal.
#[knitting::task]
fn blocks(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// A worker busy with a long sync task cannot look at its async calls: a
/// shutdown that stops waiting ends them all the same, at once.
fn shutdown_timeout_ends_the_async_calls_of_a_busy_worker(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 4);
    let asleep = pool.call(nap, 60_000);
    std::thread::sleep(Duration::from_millis(50));
    let busy = pool.call(blocks, 4_000);
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let err = pool
        .shutdown_timeout(Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(asleep.wait().unwrap_err().is_closed());
    assert!(busy.wait().unwrap_err().is_closed());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the calls ended {:?} after the shutdown began",
        start.elapsed()
    );
}

#[cfg(not(feature = "tokio"))]
fn tokio_timers_need_the_feature(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 4);
    let err = pool.call(tokio_nap, 1).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err:?}");
    assert!(err.message().contains("`tokio` feature"), "{err}");
    // The worker lives on.
    assert_eq!(pool.call(nap, 1).wait().unwrap(), 1);
}

#[cfg(feature = "tokio")]
fn tokio_timers_work_with_the_feature(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 100);
    let start = Instant::now();
    let calls: Vec<_> = (0..100).map(|_| pool.call(tokio_nap, 30)).collect();
    for call in calls {
        assert_eq!(call.wait().unwrap(), 30);
    }
    // Interleaved: about 30 ms, far from 100 x 30 ms.
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

// One `#[test]` on thread pools and one on process pools (Linux) for
// each test above.

for_each_runtime!(
    an_async_task_awaits_a_timer,
    a_thousand_calls_on_two_workers_interleave,
    the_concurrency_limit_holds,
    a_sync_call_between_async_ones_keeps_its_answer,
    a_deadline_drops_the_future,
    cancel_drops_the_future,
    dropping_the_handle_drops_the_future,
    a_hard_limit_drops_the_future,
    an_async_call_behind_another_keeps_its_hard_limit,
    abort_lets_the_task_answer,
    shutdown_timeout_drops_the_futures,
    shutdown_timeout_ends_the_async_calls_of_a_busy_worker,
    a_sync_call_behind_an_async_one_keeps_its_hard_limit,
    #[cfg(not(feature = "tokio"))]
    tokio_timers_need_the_feature,
    #[cfg(feature = "tokio")]
    tokio_timers_work_with_the_feature,
);

#[knitting::task(hard_timeout = "100ms")]
fn sync_over_its_limit() {
    std::thread::sleep(Duration::from_secs(3));
}

/// A sync call that a worker took behind an async one runs on the
/// worker's thread while the async call's future waits: its hard limit
/// holds all the same. The worker (process, or thread) is given up, and
/// the async call it held ends at once with `WorkerDied`, never run again.
fn a_sync_call_behind_an_async_one_keeps_its_hard_limit(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 16);
    let ahead = pool.call(nap, 2_000);
    let start = Instant::now();
    let err = pool.call(sync_over_its_limit, ()).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HardTimeout, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let err = ahead.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the async call ended after {:?}",
        start.elapsed()
    );
    assert_eq!(pool.call(double, 4).wait().unwrap(), 8);
}
