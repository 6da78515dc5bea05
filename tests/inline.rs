//! The inline lane: calls a thread pool runs on the waiting caller's
//! thread (`#[task(inline)]`, or past the inline threshold), and what an
//! inline call does when it is awaited, polled, detached, cancelled or
//! outlives its pool.

knitting::init_before_main!();

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use common::LONG;
use knitting::Pool;

/// The name of the thread the task runs on.
#[knitting::task(inline)]
fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

/// The same, not inline.
#[knitting::task]
fn worker_thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

fn here() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

#[test]
fn an_inline_task_runs_on_the_waiting_thread() {
    let pool = Pool::builder().threads(2).build().unwrap();
    assert_eq!(pool.call(thread_name, ()).wait().unwrap(), here());
    assert!(pool
        .call(worker_thread_name, ())
        .wait()
        .unwrap()
        .starts_with("knitting-worker"));
    let stats = pool.stats();
    assert_eq!(stats.inlined, 1);
    assert_eq!(stats.lanes.iter().map(|l| l.completed).sum::<usize>(), 1);
}

/// Waits (bounded) until `FLAG` is set; true if it was.
static FLAG: AtomicBool = AtomicBool::new(false);

#[knitting::task(inline)]
fn wait_for_flag() -> bool {
    let started = Instant::now();
    while !FLAG.load(Ordering::SeqCst) {
        if started.elapsed() > LONG {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn an_awaited_inline_call_does_not_block_the_executor() {
    let pool = Pool::builder().threads(1).build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (saw_flag, name) = rt.block_on(async {
        let waiter = tokio::spawn({
            let call = pool.call(wait_for_flag, ());
            async move { call.await.unwrap() }
        });
        // Runs only if the executor's one thread is free while the call
        // waits for it.
        let setter = tokio::spawn(async {
            FLAG.store(true, Ordering::SeqCst);
        });
        setter.await.unwrap();
        let name = pool.call(thread_name, ()).await.unwrap();
        (waiter.await.unwrap(), name)
    });
    assert!(saw_flag, "the inline call blocked the executor");
    assert!(name.starts_with("knitting-worker"), "{name}");
    assert_eq!(pool.stats().inlined, 0);
}

static GATE: Mutex<()> = Mutex::new(());
static GATED: AtomicBool = AtomicBool::new(false);

/// Holds its worker until the test drops its guard of `GATE`.
#[knitting::task]
fn gated() {
    GATED.store(true, Ordering::SeqCst);
    drop(GATE.lock().unwrap_or_else(|e| e.into_inner()));
}

#[test]
fn past_the_threshold_calls_run_on_the_waiting_thread() {
    let pool = Pool::builder()
        .threads(1)
        .inline_threshold(2)
        .build()
        .unwrap();
    let gate = GATE.lock().unwrap();
    let first = pool.call(gated, ());
    while !GATED.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // One call in flight: below the threshold, so it queues behind.
    let second = pool.call(worker_thread_name, ());
    // Two in flight: this one and the next are kept for their waiter.
    let third = pool.call(worker_thread_name, ());
    let fourth = pool.call(worker_thread_name, ());
    assert_eq!(third.wait().unwrap(), here());
    assert_eq!(fourth.wait().unwrap(), here());
    drop(gate);
    assert!(second.wait().unwrap().starts_with("knitting-worker"));
    first.wait().unwrap();
    assert_eq!(pool.stats().inlined, 2);
    // Below the threshold again: calls go to the worker.
    assert!(pool
        .call(worker_thread_name, ())
        .wait()
        .unwrap()
        .starts_with("knitting-worker"));
}

#[test]
fn process_pools_and_hard_limits_never_run_inline() {
    #[knitting::task(inline)]
    fn pid() -> u32 {
        std::process::id()
    }
    let processes = Pool::builder().processes(1).build().unwrap();
    assert_ne!(processes.call(pid, ()).wait().unwrap(), std::process::id());
    assert_eq!(processes.stats().inlined, 0);

    let limited = Pool::builder()
        .threads(1)
        .hard_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    assert!(limited
        .call(thread_name, ())
        .wait()
        .unwrap()
        .starts_with("knitting-worker"));
    assert_eq!(limited.stats().inlined, 0);

    #[knitting::task(inline, hard_timeout = "60s")]
    fn limited_name() -> String {
        std::thread::current().name().unwrap_or("?").to_owned()
    }
    let pool = Pool::builder().threads(1).build().unwrap();
    assert!(pool
        .call(limited_name, ())
        .wait()
        .unwrap()
        .starts_with("knitting-worker"));
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[knitting::task(inline)]
fn count_run() -> usize {
    RUNS.fetch_add(1, Ordering::SeqCst) + 1
}

#[test]
fn a_kept_call_is_cancelled_by_drop_and_cancel_and_runs_when_detached_or_polled() {
    let pool = Pool::builder().threads(1).build().unwrap();
    let before = RUNS.load(Ordering::SeqCst);
    drop(pool.call(count_run, ()));
    assert!(pool
        .call(count_run, ())
        .cancel()
        .unwrap_err()
        .is_cancelled());
    assert_eq!(RUNS.load(Ordering::SeqCst), before, "a cancelled call ran");

    // Detached: a worker runs it, and a shutdown waits for it.
    pool.call(count_run, ()).detach();
    // Polled without blocking: a worker runs it, and the polls see it end.
    let mut call = pool.call(count_run, ());
    let started = Instant::now();
    let result = loop {
        if let Some(result) = call.try_wait() {
            break result;
        }
        assert!(started.elapsed() < LONG, "a polled inline call never ran");
        std::thread::yield_now();
    };
    result.unwrap();
    let watched = pool.call(count_run, ());
    while !watched.is_finished() {
        assert!(started.elapsed() < LONG, "a watched inline call never ran");
        std::thread::yield_now();
    }
    watched.wait().unwrap();
    pool.shutdown();
    assert_eq!(RUNS.load(Ordering::SeqCst), before + 3);
    assert_eq!(pool.stats().inlined, 0);
}

static OTHER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[knitting::task(inline)]
fn count_other() -> usize {
    OTHER_RUNS.fetch_add(1, Ordering::SeqCst) + 1
}

#[test]
fn a_kept_call_keeps_its_deadline_and_fails_once_its_pool_is_gone() {
    let pool = Pool::builder().threads(1).build().unwrap();
    let before = OTHER_RUNS.load(Ordering::SeqCst);
    let late = pool.call(count_other, ()).timeout(Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(50));
    assert!(late.wait().unwrap_err().is_timeout());
    assert_eq!(
        OTHER_RUNS.load(Ordering::SeqCst),
        before,
        "a timed-out call ran"
    );

    let orphan = pool.call(count_other, ());
    pool.shutdown();
    assert!(orphan.wait().unwrap_err().is_closed());
    let orphan = {
        let pool = Pool::builder().threads(1).build().unwrap();
        pool.call(count_other, ())
    };
    assert!(orphan.wait().unwrap_err().is_closed());
    assert_eq!(
        OTHER_RUNS.load(Ordering::SeqCst),
        before,
        "a call outlived its pool"
    );
}

#[test]
fn an_inline_task_that_panics_or_calls_the_pool_behaves_as_on_a_worker() {
    #[knitting::task(inline)]
    fn boom() -> u32 {
        panic!("inline boom")
    }
    static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    #[knitting::task(inline)]
    fn fib(n: u64) -> u64 {
        if n < 2 {
            return n;
        }
        let pool = POOL.get().unwrap();
        let (a, b) = (pool.call(fib, n - 1), pool.call(fib, n - 2));
        a.wait().unwrap() + b.wait().unwrap()
    }
    let pool = POOL.get_or_init(|| Pool::builder().threads(1).build().unwrap());
    let err = pool.call(boom, ()).wait().unwrap_err();
    assert!(
        err.is_panic() && err.message().contains("inline boom"),
        "{err}"
    );
    assert_eq!(pool.call(fib, 12).wait().unwrap(), 144);
}
