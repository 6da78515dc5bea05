//! Closures on thread pools (`Pool::run`, `Pool::run_with_signal`): the
//! same `Call` as a task call, with its deadlines, cancellation, panics,
//! shutdown and nested calls.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread,
    time::{Duration, Instant},
};

use common::LONG;
use knitting::{ErrorKind, Pool, Signal};

#[knitting::task]
fn square(v: u64) -> u64 {
    v * v
}

/// Holds a worker until the returned sender sends or is dropped; the
/// closure has started once `started` is true.
struct Gate {
    open: mpsc::Sender<()>,
    started: Arc<AtomicBool>,
}

impl Gate {
    /// Runs a gated closure on `pool` and waits until it holds its worker.
    fn hold(pool: &Pool) -> (Self, knitting::Call<()>) {
        let (open, shut) = mpsc::channel::<()>();
        let started = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&started);
        let call = pool.run(move || {
            flag.store(true, Ordering::SeqCst);
            let _ = shut.recv_timeout(LONG);
        });
        let gate = Self { open, started };
        let since = Instant::now();
        while !gate.started.load(Ordering::SeqCst) {
            assert!(since.elapsed() < LONG, "the gated closure never started");
            thread::yield_now();
        }
        (gate, call)
    }

    fn open(self) {
        let _ = self.open.send(());
    }
}

/// Waits (at most `LONG`) until `flag` is set.
fn wait_for(flag: &AtomicBool, what: &str) {
    let since = Instant::now();
    while !flag.load(Ordering::SeqCst) {
        assert!(since.elapsed() < LONG, "{what} did not happen in time");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Waits (at most `LONG`) until `signal` is raised; true if it was.
fn until_aborted(signal: &Signal) -> bool {
    let since = Instant::now();
    while !signal.aborted() && since.elapsed() < LONG {
        thread::sleep(Duration::from_millis(1));
    }
    signal.aborted()
}

#[test]
fn a_closure_returns_its_value_blocking_and_awaited() {
    let pool = common::pool(2);
    let name = String::from("knitting");
    let words: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let call = pool.run(move || format!("{name}: {}", words.join(",")));
    assert_eq!(call.wait().unwrap(), "knitting: a,b,c");

    let x = 21_u64;
    assert_eq!(pollster::block_on(pool.run(move || x * 2)).unwrap(), 42);
}

#[test]
fn many_closures_run_on_the_workers_and_are_counted() {
    let pool = common::pool(2);
    let calls: Vec<_> = (0..200_u64).map(|i| pool.run(move || i * 3)).collect();
    let sum: u64 = calls.into_iter().map(|c| c.wait().unwrap()).sum();
    assert_eq!(sum, 3 * (0..200).sum::<u64>());
    let main = thread::current().id();
    assert_ne!(
        pool.run(move || thread::current().id()).wait().unwrap(),
        main
    );
    let completed: usize = pool.stats().lanes.iter().map(|l| l.completed).sum();
    assert_eq!(completed, 201);
}

#[test]
fn a_panicking_closure_fails_its_call_and_the_worker_goes_on() {
    let pool = common::pool(1);
    let n = 7;
    let err = pool
        .run(move || -> u32 { panic!("boom {n}") })
        .wait()
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert_eq!(err.message(), "boom 7");
    let location = err.location().expect("a panic has a location");
    assert!(location.contains("closures.rs"), "{location}");
    let task = err.task().expect("the error names the closure");
    assert!(task.contains("{{closure}}"), "{task}");

    // The same worker serves the next call.
    assert_eq!(pool.run(|| 5).wait().unwrap(), 5);
}

#[test]
fn a_deadline_passing_while_queued_fails_the_call_and_the_closure_never_runs() {
    let pool = common::pool(1);
    let (gate, held) = Gate::hold(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let call = pool
        .run(move || flag.store(true, Ordering::SeqCst))
        .timeout(Duration::from_millis(20));
    let err = call.wait().unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Timeout);

    gate.open();
    held.wait().unwrap();
    // One lane, in order: a later call ending means the late one was
    // skipped, not merely slow.
    assert_eq!(pool.run(|| 1).wait().unwrap(), 1);
    assert!(
        !ran.load(Ordering::SeqCst),
        "a timed-out queued closure ran"
    );
    assert_eq!(Arc::strong_count(&ran), 1, "its captures were dropped");
}

#[test]
fn a_deadline_raises_the_signal_of_a_running_closure() {
    let pool = common::pool(1);
    let saw = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&saw);
    let call = pool
        .run_with_signal(move |signal| {
            flag.store(until_aborted(signal), Ordering::SeqCst);
            "finished"
        })
        .deadline(Instant::now() + Duration::from_millis(20));
    let err = call.wait().unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    wait_for(&saw, "the closure seeing its signal");
}

#[test]
fn abort_lets_the_closure_decide_what_to_return() {
    let pool = common::pool(1);
    let call = pool.run_with_signal(|signal| {
        if until_aborted(signal) {
            "stopped"
        } else {
            "never told"
        }
    });
    call.abort();
    assert_eq!(call.wait().unwrap(), "stopped");
}

#[test]
fn cancel_ends_a_running_closure_at_once_and_raises_its_signal() {
    let pool = common::pool(1);
    let started = Arc::new(AtomicBool::new(false));
    let stopped = Arc::new(AtomicBool::new(false));
    let (start, stop) = (Arc::clone(&started), Arc::clone(&stopped));
    let call = pool.run_with_signal(move |signal| {
        start.store(true, Ordering::SeqCst);
        stop.store(until_aborted(signal), Ordering::SeqCst);
        42
    });
    wait_for(&started, "the closure starting");
    let err = call.cancel().unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    wait_for(&stopped, "the closure seeing its signal");
}

#[test]
fn dropping_the_handle_cancels_a_queued_closure() {
    let pool = common::pool(1);
    let (gate, held) = Gate::hold(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    drop(pool.run(move || flag.store(true, Ordering::SeqCst)));
    assert_eq!(
        Arc::strong_count(&ran),
        1,
        "the cancelled closure was dropped"
    );

    gate.open();
    held.wait().unwrap();
    assert_eq!(pool.run(|| 2).wait().unwrap(), 2);
    assert!(!ran.load(Ordering::SeqCst), "a dropped queued closure ran");
}

#[test]
fn shutdown_timeout_fails_the_queued_closures_with_closed() {
    let pool = common::pool(1);
    let (gate, held) = Gate::hold(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let queued = pool.run(move || flag.store(true, Ordering::SeqCst));

    let err = pool
        .shutdown_timeout(Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let err = queued.wait().unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    assert!(held.wait().unwrap_err().is_closed());
    assert!(!ran.load(Ordering::SeqCst), "a failed queued closure ran");
    assert_eq!(Arc::strong_count(&ran), 1, "its captures were dropped");
    // Let the stuck worker thread finish on its own.
    gate.open();
}

#[test]
fn dropping_the_pool_still_runs_the_queued_closures() {
    let pool = common::pool(2);
    let calls: Vec<_> = (0..40_u64)
        .map(|i| {
            pool.run(move || {
                thread::sleep(Duration::from_millis(1));
                i
            })
        })
        .collect();
    drop(pool);
    for (i, mut call) in (0..40).zip(calls) {
        let value = call.wait_timeout(LONG).expect("ended in time").unwrap();
        assert_eq!(value, i);
    }
}

#[test]
fn a_closure_after_shutdown_fails_at_once_with_closed() {
    let pool = common::pool(1);
    pool.shutdown();
    let mut call = pool.run(|| 1);
    let err = call.try_wait().expect("ready without waiting").unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    assert!(
        err.task().is_some_and(|t| t.contains("{{closure}}")),
        "{err:?}"
    );
}

/// `fib(n)` as a tree of closures on `pool`, each waited for by its parent.
fn fib(pool: Pool, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (left, right) = (pool.clone(), pool.clone());
    let a = pool.run(move || fib(left, n - 1));
    let b = pool.run(move || fib(right, n - 2));
    a.wait().unwrap() + b.wait().unwrap()
}

#[test]
fn a_closure_calls_its_own_pool_and_waits_on_one_thread() {
    let pool = common::pool(1);
    let inner = pool.clone();
    let mut call = pool.run(move || {
        let squared = inner.call(square, 7).wait().unwrap();
        let doubled = inner.run(move || squared * 2).wait().unwrap();
        (squared, doubled)
    });
    let result = call.wait_timeout(LONG).expect("no deadlock").unwrap();
    assert_eq!(result, (49, 98));

    let inner = pool.clone();
    let mut tree = pool.run(move || fib(inner, 12));
    assert_eq!(tree.wait_timeout(LONG).expect("no deadlock").unwrap(), 144);
}

#[test]
fn a_tree_of_closures_finishes_on_two_threads() {
    let pool = common::pool(2);
    let inner = pool.clone();
    let mut tree = pool.run(move || fib(inner, 14));
    assert_eq!(tree.wait_timeout(LONG).expect("no deadlock").unwrap(), 377);
}

#[test]
fn the_inline_threshold_applies_to_closures() {
    let pool = Pool::builder()
        .threads(1)
        .inline_threshold(1)
        .build()
        .unwrap();
    let (gate, held) = Gate::hold(&pool);
    // One call in flight: this one stays with its waiter, this thread.
    let here = thread::current().id();
    let ran_on = pool.run(move || thread::current().id()).wait().unwrap();
    assert_eq!(ran_on, here);
    assert_eq!(pool.stats().inlined, 1);
    gate.open();
    held.wait().unwrap();
}

#[test]
fn the_pools_hard_time_limit_holds_for_closures() {
    let pool = Pool::builder()
        .threads(1)
        .hard_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    // A function item is a closure too.
    let call = pool.run_with_signal(until_aborted);
    let err = call.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HardTimeout, "{err:?}");
    // The lane goes on, on a fresh thread.
    assert_eq!(pool.run(|| 3).wait().unwrap(), 3);
}
