//! Shutdown and drop under load, on both runtimes: `shutdown_timeout` with
//! thousands of calls in flight and streams open ends every call within
//! the timeout plus a small bound, and leaves no worker process or shared
//! object; dropping the last pool handle while other threads wait for
//! their calls never hangs them.

knitting::init_before_main!();

mod common;

use std::time::{Duration, Instant};

use common::LONG;
use knitting::{AnyRuntime, ErrorKind, Pool, RuntimeKind, Sender};

#[knitting::task]
fn nap(v: u64, ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    v
}

#[knitting::task]
async fn async_nap(v: u64, ms: u64) -> u64 {
    knitting::sleep(Duration::from_millis(ms)).await;
    v
}

#[knitting::task]
fn count(n: u64, out: Sender<u64>) -> u64 {
    for i in 0..n {
        if out.send(i).is_err() {
            return i;
        }
    }
    n
}

/// How long past its timeout `shutdown_timeout` may take to end every
/// call and stop every worker: a loaded 2-core machine included.
const BOUND: Duration = Duration::from_secs(2);

fn pool(runtime: RuntimeKind) -> Pool<AnyRuntime> {
    match runtime {
        RuntimeKind::Threads => Pool::builder().threads(2).build().unwrap().into(),
        _ => Pool::builder()
            .processes(2)
            .named_shared_memory(true)
            .build()
            .unwrap()
            .into(),
    }
}

fn shutdown_timeout_ends_thousands_of_calls_and_open_streams(runtime: RuntimeKind) {
    let pool = pool(runtime);
    let pids: Vec<u32> = pool.stats().lanes.iter().filter_map(|l| l.pid).collect();
    let calls: Vec<_> = (0..3000u64)
        .map(|i| {
            if i % 2 == 0 {
                pool.call(nap, (i, 1 + i % 3))
            } else {
                pool.call(async_nap, (i, 1 + i % 5))
            }
        })
        .collect();
    // Open, and never read: their tasks wait at the bound.
    let streams: Vec<_> = (0..4).map(|_| pool.stream(count, u64::MAX)).collect();
    let timeout = Duration::from_millis(200);
    let start = Instant::now();
    let result = pool.shutdown_timeout(timeout);
    let took = start.elapsed();
    assert!(took < timeout + BOUND, "shutdown_timeout took {took:?}");
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
    let (mut ok, mut closed) = (0, 0);
    for (i, mut call) in calls.into_iter().enumerate() {
        match call.wait_timeout(BOUND) {
            Some(Ok(v)) => {
                assert_eq!(v, i as u64);
                ok += 1;
            }
            Some(Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::Closed, "call {i}: {e}");
                closed += 1;
            }
            None => panic!("call {i} did not end after the shutdown"),
        }
    }
    assert_eq!(ok + closed, 3000);
    for mut stream in streams {
        let ended = stream.by_ref().find_map(Result::err);
        assert_eq!(
            ended.map(|e| e.kind()),
            Some(ErrorKind::Closed),
            "an open stream ends with the shutdown"
        );
    }
    println!("{runtime:?}: {ok} calls finished, {closed} closed, shut down in {took:?}");
    // No worker process, and no shared object of theirs, is left.
    let me = std::process::id();
    let start = Instant::now();
    while pids
        .iter()
        .any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        || !knitting::shared_memory_objects_of(me).is_empty()
    {
        assert!(
            start.elapsed() < BOUND,
            "left behind: workers {pids:?} or objects {:?}",
            knitting::shared_memory_objects_of(me)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn dropping_the_last_handle_never_hangs_waiting_callers(runtime: RuntimeKind) {
    let pool = pool(runtime);
    std::thread::scope(|s| {
        let callers: Vec<_> = (0..4u64)
            .map(|t| {
                let calls: Vec<_> = (0..50u64)
                    .map(|i| (t * 100 + i, pool.call(nap, (t * 100 + i, 2))))
                    .collect();
                s.spawn(move || {
                    for (v, mut call) in calls {
                        // Queued calls still run after the last handle goes.
                        match call.wait_timeout(LONG) {
                            Some(Ok(got)) => assert_eq!(got, v),
                            other => panic!("call {v}: {other:?}"),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(5));
        drop(pool);
        for caller in callers {
            caller.join().expect("a caller hung or failed");
        }
    });
}

for_each_runtime!(
    shutdown_timeout_ends_thousands_of_calls_and_open_streams,
    dropping_the_last_handle_never_hangs_waiting_callers,
);
