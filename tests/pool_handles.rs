//! A `Pool` is a handle: clones share one pool, which shuts down when the
//! last handle goes or on an explicit shutdown through any of them; and
//! the same calling code serves every runtime.

knitting::init_before_main!();

use std::time::Duration;

use knitting::{AnyRuntime, Pool, Runs, RuntimeKind};

#[knitting::task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[knitting::task]
fn pid() -> u32 {
    std::process::id()
}

#[test]
fn clones_share_one_pool_and_a_shutdown_through_one_closes_all() {
    let pool = Pool::builder().threads(2).build().unwrap();
    let other = pool.clone();
    assert_eq!(other.call(nap, 1).wait().unwrap(), 1);
    other.shutdown();
    assert!(pool.is_closed());
    // The call made through the clone counts in the original's stats (read
    // after the shutdown joined the workers: a worker counts a call just
    // after it publishes the result).
    let done: usize = pool.stats().lanes.iter().map(|l| l.completed).sum();
    assert_eq!(done, 1);
    assert!(pool.call(nap, 1).wait().unwrap_err().is_closed());
}

#[test]
fn dropping_one_handle_leaves_the_pool_running() {
    let pool = Pool::builder().threads(1).build().unwrap();
    drop(pool.clone());
    assert!(!pool.is_closed());
    assert_eq!(pool.call(nap, 2).wait().unwrap(), 2);
}

#[test]
fn the_last_handle_dropped_starts_a_shutdown_that_finishes_queued_calls() {
    let pool = Pool::builder().processes(1).build().unwrap();
    let clone = pool.clone();
    let calls: Vec<_> = (0..3).map(|i| clone.call(nap, 10 + i)).collect();
    drop(pool);
    drop(clone);
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.wait().unwrap(), 10 + i as u64);
    }
}

/// Calling code written once, generic over the runtime.
fn served_by<R: Runs<pid>>(pool: &Pool<R>) -> u32 {
    pool.call(pid, ()).wait().unwrap()
}

#[test]
fn one_generic_caller_serves_both_runtimes() {
    let threads = Pool::builder().threads(1).build().unwrap();
    let processes = Pool::builder().processes(1).build().unwrap();
    assert_eq!(served_by(&threads), std::process::id());
    let worker = served_by(&processes);
    assert_ne!(worker, std::process::id());
    assert_eq!(processes.worker_pids(), [Some(worker)]);
}

#[test]
fn a_runtime_chosen_at_run_time_keeps_what_it_was_made_from() {
    let pools: [Pool<AnyRuntime>; 2] = [
        Pool::builder().threads(2).build().unwrap().into(),
        Pool::builder().processes(2).build().unwrap().into(),
    ];
    assert_eq!(pools[0].runtime(), RuntimeKind::Threads);
    assert_eq!(pools[1].runtime(), RuntimeKind::Processes);
    for pool in &pools {
        assert_eq!(pool.workers(), 2);
        let here = pool.call(pid, ()).wait().unwrap() == std::process::id();
        assert_eq!(here, pool.runtime() == RuntimeKind::Threads);
        let stats = pool.stats();
        let pids = stats.lanes.iter().filter(|l| l.pid.is_some()).count();
        assert_eq!(pids, if here { 0 } else { 2 });
    }
}

#[knitting::task]
fn stats_noop() {}

/// A call that `wait` saw end is already counted in `stats()`: a lane
/// counts it before it publishes the result, on both runtimes.
#[test]
fn a_finished_call_is_in_the_stats_as_soon_as_wait_returns() {
    let mut pools: Vec<knitting::Pool<knitting::AnyRuntime>> =
        vec![knitting::Pool::builder().threads(2).build().unwrap().into()];
    if cfg!(target_os = "linux") {
        pools.push(
            knitting::Pool::builder()
                .processes(2)
                .build()
                .unwrap()
                .into(),
        );
    }
    for pool in pools {
        for done in 1..=2_000usize {
            pool.call(stats_noop, ()).wait().unwrap();
            let counted: usize = pool.stats().lanes.iter().map(|l| l.completed).sum();
            assert_eq!(counted, done, "on {:?}", pool.runtime());
        }
    }
}
