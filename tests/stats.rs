//! `pool.stats()` after a known sequence of calls, crashes and restarts,
//! on both runtimes.

knitting::init_before_main!();

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use common::LONG;
use knitting::{CrashKind, Pool};

static GATE: Mutex<()> = Mutex::new(());
static HELD: AtomicBool = AtomicBool::new(false);

/// Holds its worker thread until the test drops its guard of `GATE`.
#[knitting::task]
fn gated() {
    HELD.store(true, Ordering::SeqCst);
    drop(GATE.lock().unwrap_or_else(|e| e.into_inner()));
}

#[knitting::task]
fn noop() {}

/// Sleeps `ms` (in a worker process).
#[knitting::task]
fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[knitting::task]
fn abort() {
    std::process::abort()
}

#[knitting::task]
fn exit(code: i32) {
    std::process::exit(code)
}

/// Waits (bounded) until `done` says so.
fn until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < LONG, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_thread_lane_counts_what_is_queued_running_done_and_retired() {
    let pool = Pool::builder().threads(1).build().unwrap();
    let gate = GATE.lock().unwrap();
    let held = pool.call(gated, ());
    until("the gated call starting", || HELD.load(Ordering::SeqCst));
    let behind: Vec<_> = (0..3).map(|_| pool.call(noop, ())).collect();
    let lane = pool.stats().lanes[0];
    assert_eq!((lane.in_flight, lane.queued, lane.completed), (4, 3, 0));
    assert_eq!(lane.last_crash, None);
    drop(gate);
    held.wait().unwrap();
    for call in behind {
        call.wait().unwrap();
    }
    let lane = pool.stats().lanes[0];
    assert_eq!((lane.in_flight, lane.queued, lane.completed), (0, 0, 4));
    assert_eq!(lane.restarts, 0);

    #[knitting::task(hard_timeout = "20ms")]
    fn runaway() {
        std::thread::sleep(Duration::from_millis(300));
    }
    let before = std::time::SystemTime::now();
    let err = pool.call(runaway, ()).wait().unwrap_err();
    assert_eq!(err.kind(), knitting::ErrorKind::HardTimeout);
    pool.call(noop, ()).wait().unwrap();
    let lane = pool.stats().lanes[0];
    assert_eq!(lane.restarts, 1);
    let crash = lane.last_crash.expect("the retirement is recorded");
    assert_eq!(crash.how, CrashKind::HardTimeout);
    assert!(crash.at >= before);
}

#[test]
fn a_process_lane_counts_its_queue_and_its_crashes() {
    let pool = Pool::builder().processes(1).build().unwrap();
    let first = pool.stats().lanes[0].pid.unwrap();
    let sleeping = pool.call(nap, 300);
    until("the nap starting", || pool.stats().lanes[0].in_flight == 1);
    let behind: Vec<_> = (0..3).map(|_| pool.call(noop, ())).collect();
    let lane = pool.stats().lanes[0];
    assert_eq!((lane.in_flight, lane.queued), (4, 3));
    sleeping.wait().unwrap();
    for call in behind {
        call.wait().unwrap();
    }
    let lane = pool.stats().lanes[0];
    assert_eq!((lane.in_flight, lane.queued, lane.completed), (0, 0, 4));
    assert_eq!((lane.restarts, lane.last_crash), (0, None));

    pool.call(abort, ()).wait().unwrap_err();
    pool.call(noop, ()).wait().unwrap();
    let lane = pool.stats().lanes[0];
    assert_eq!(lane.restarts, 1);
    assert_eq!(lane.last_crash.unwrap().how, CrashKind::Signal(6));
    assert_ne!(lane.pid, Some(first));

    pool.call(exit, 3).wait().unwrap_err();
    pool.call(noop, ()).wait().unwrap();
    let lane = pool.stats().lanes[0];
    assert_eq!(lane.restarts, 2);
    let crash = lane.last_crash.unwrap();
    assert_eq!(crash.how, CrashKind::Exit(3));
    assert!(
        crash.to_string().starts_with("exited with code 3"),
        "{crash}"
    );
    assert_eq!(lane.completed, 6, "only the calls that answered count");
}

#[test]
fn the_latency_histogram_counts_each_call_as_its_caller_saw_it() {
    let off = Pool::builder().threads(1).build().unwrap();
    off.call(noop, ()).wait().unwrap();
    assert!(off.stats().latency.is_none());

    let threads = Pool::builder()
        .threads(1)
        .latency_histogram(true)
        .build()
        .unwrap();
    for _ in 0..50 {
        threads.call(noop, ()).wait().unwrap();
    }
    // Dropped (cancelled) and detached calls are not waited for: no count.
    drop(threads.call(noop, ()));
    threads.call(noop, ()).detach();
    let latency = threads.stats().latency.unwrap();
    assert_eq!(latency.len(), 50);
    assert!(latency.min() >= 1);

    let processes = Pool::builder()
        .processes(1)
        .latency_histogram(true)
        .build()
        .unwrap();
    for _ in 0..5 {
        processes.call(nap, 20).wait().unwrap();
    }
    let latency = processes.stats().latency.unwrap();
    assert_eq!(latency.len(), 5);
    // Each call slept 20 ms in the worker (1 % precision).
    assert!(latency.min() >= 19_800_000, "{}", latency.min());
    assert!(latency.value_at_quantile(0.5) < LONG.as_nanos() as u64);
}

/// Keeps its worker busy (on the CPU, not asleep) for `ms`.
#[knitting::task]
fn spin(ms: u64) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(ms) {
        std::hint::spin_loop();
    }
}

/// Busy time grows by what the calls ran, not by the time the lane waited
/// for them, and no snapshot claims more than the pool has lived.
fn busy_follows_the_calls<R: knitting::Runtime + knitting::Runs<spin>>(pool: &Pool<R>) {
    let born = Instant::now();
    let busy = || pool.stats().lanes.iter().map(|l| l.busy).sum::<Duration>();
    // Idle: a worker that only waits (spinning included) is not busy.
    std::thread::sleep(Duration::from_millis(100));
    let idle = busy();
    assert!(
        idle < Duration::from_millis(20),
        "an idle pool was busy {idle:?}"
    );
    pool.call(spin, 150).wait().unwrap();
    let after = busy();
    assert!(
        after >= idle + Duration::from_millis(150),
        "150 ms of work counted as {:?}",
        after - idle
    );
    assert!(
        after <= born.elapsed(),
        "{after:?} busy in {:?}",
        born.elapsed()
    );
    // Idle again: busy time stays put.
    std::thread::sleep(Duration::from_millis(100));
    let later = busy();
    assert!(
        later < after + Duration::from_millis(20),
        "an idle pool went on counting: {after:?} then {later:?}"
    );
}

#[test]
fn a_thread_lane_counts_its_busy_time() {
    let pool = Pool::builder().threads(1).build().unwrap();
    busy_follows_the_calls(&pool);
}

#[test]
fn a_process_lane_counts_its_busy_time_across_replacements() {
    let pool = Pool::builder().processes(1).build().unwrap();
    busy_follows_the_calls(&pool);
    // The busy time of a worker that died stays with its lane.
    let before = pool.stats().lanes[0].busy;
    pool.call(abort, ()).wait().unwrap_err();
    until("the lane's worker is replaced", || {
        pool.stats().lanes[0].pid.is_some()
    });
    pool.call(spin, 50).wait().unwrap();
    let after = pool.stats().lanes[0].busy;
    assert!(
        after >= before + Duration::from_millis(50),
        "{before:?} then {after:?} after another 50 ms"
    );
}
