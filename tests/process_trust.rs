//! The trust boundary, one test per way a worker process could fool the
//! host: its tasks write over the words of their own worker's mapping (as
//! a compromised worker, or a C library scribbling memory, could), stop
//! it, or kill it, and every call must still end exactly once with its own
//! value or a precise error.
//!
//! The tasks find the mapping in `/proc/self/maps` and use the layout a
//! reader of `src/process/shm.rs` knows: an attacker knows it too.

knitting::init_before_main!();

mod common;

use std::{
    sync::atomic::{AtomicU8, Ordering},
    time::{Duration, Instant},
};

use common::{lane_mapping, lane_word, LONG};
use knitting::{ErrorKind, Pool};

/// The default ring slots and arena of a process pool.
const SLOTS: usize = 128;
const ARENA: u64 = 64 << 20;
/// The control block: one 64-byte line per word.
const CONTROL_BYTES: usize = 16 * 64;
/// The word the worker reads to know how many of its responses the host
/// consumed (and so which payloads it may write over).
const CONSUMED: usize = 8 * 64;
const REQ_SLOTS: usize = CONTROL_BYTES;
/// Request arena: after both slot arrays and the abort words, page aligned.
const REQ_ARENA: usize = (CONTROL_BYTES + SLOTS * 64 * 2 + SLOTS * 4).div_ceil(4096) * 4096;

fn byte(offset: usize) -> &'static AtomicU8 {
    // SAFETY: the offset lies inside the request arena of the mapping,
    // which stays mapped for the worker's life; a byte is always aligned.
    unsafe { &*(lane_mapping().add(offset).cast::<AtomicU8>()) }
}

#[knitting::task]
fn echo(v: u64) -> u64 {
    v
}

#[knitting::task]
fn byte_echo(v: u8) -> u8 {
    v
}

#[knitting::task]
fn worker_pid() -> u32 {
    std::process::id()
}

/// From a thread of its own, keeps writing `u64::MAX` over the consumed
/// count for `ms` milliseconds; returns at once.
#[knitting::task]
fn scribble_consumed(ms: u64) {
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end {
            lane_word(CONSUMED).store(u64::MAX, Ordering::SeqCst);
            std::thread::yield_now();
        }
    });
}

/// Adds 64 to the one-byte arguments of every request in the ring (the
/// calls queued behind this one), then sleeps past its hard limit.
#[knitting::task(hard_timeout = "300ms")]
fn tamper_then_hang() {
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..SLOTS {
        let slot = REQ_SLOTS + i * 64;
        if lane_word(slot + 24).load(Ordering::SeqCst) == 1 {
            let offset = (lane_word(slot + 16).load(Ordering::SeqCst) % ARENA) as usize;
            byte(REQ_ARENA + offset).fetch_add(64, Ordering::SeqCst);
        }
    }
    std::thread::sleep(Duration::from_secs(10));
}

/// Waits until the calls behind it are sent, then unpublishes every
/// request slot (the slot's number is what tells the worker a request is
/// there): the worker, alive, waits for a request it never sees.
#[knitting::task]
fn unpublish_requests() {
    std::thread::sleep(Duration::from_millis(50));
    for i in 0..SLOTS {
        lane_word(REQ_SLOTS + i * 64).store(0, Ordering::SeqCst);
    }
}

/// Exits the worker after `ms` milliseconds.
#[knitting::task]
fn exit_after(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::exit(3);
}

/// Stops its own worker process (`SIGSTOP`).
#[knitting::task]
fn freeze() {
    let me = rustix::process::getpid();
    rustix::process::kill_process(me, rustix::process::Signal::STOP).unwrap();
}

fn kill(pid: u32, signal: &str) {
    std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
}

#[test]
fn a_stray_consumed_count_cannot_swap_results_between_calls() {
    let pool = Pool::builder().processes(1).build().unwrap();
    pool.call(scribble_consumed, 300).wait().unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pool = &pool;
            s.spawn(move || {
                for round in 0..10u64 {
                    let calls: Vec<_> = (0..20)
                        .map(|i| {
                            let v = t * 1_000_000 + round * 1000 + i;
                            (v, pool.call(echo, v))
                        })
                        .collect();
                    for (v, mut call) in calls {
                        let got = call.wait_timeout(LONG).expect("in time");
                        assert_eq!(got.unwrap(), v, "a call got another call's value");
                    }
                }
            });
        }
    });
    assert_eq!(
        pool.stats().lanes[0].restarts,
        0,
        "nothing was wrong enough to kill"
    );
}

/// A worker that stopped taking calls while its heartbeat goes on is
/// given up after the liveness timeout: the call it held fails, the
/// calls behind it run on the replacement.
#[test]
fn a_worker_that_takes_no_calls_is_replaced() {
    let pool = Pool::builder()
        .processes(1)
        .liveness_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let first = pool.call(worker_pid, ()).wait().unwrap();
    let saboteur = pool.call(unpublish_requests, ());
    let mut held = pool.call(echo, 1);
    let start = Instant::now();
    saboteur.wait().unwrap();
    let err = held
        .wait_timeout(LONG)
        .expect("the call ends: its worker is given up")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err}");
    assert!(err.message().contains("took none of the calls"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let mut behind = pool.call(echo, 2);
    assert_eq!(behind.wait_timeout(LONG).expect("in time").unwrap(), 2);
    assert_ne!(pool.call(worker_pid, ()).wait().unwrap(), first);
}

#[test]
fn replayed_calls_carry_what_their_callers_sent() {
    let pool = Pool::builder().processes(1).build().unwrap();
    let first = pool.call(worker_pid, ()).wait().unwrap();
    let runaway = pool.call(tamper_then_hang, ());
    let behind: Vec<_> = (0..150u8).map(|v| (v, pool.call(byte_echo, v))).collect();
    let err = runaway.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HardTimeout, "{err}");
    for (v, mut call) in behind {
        let got = call.wait_timeout(LONG).expect("in time").unwrap();
        assert_eq!(got, v, "the worker rewrote a replayed call's argument");
    }
    assert_ne!(pool.call(worker_pid, ()).wait().unwrap(), first);
}

#[test]
fn calls_behind_a_crash_run_on_the_replacement() {
    // The default ring: the calls behind the crash were sent to the worker
    // that died; it serves in order, so none of them had started.
    let pool = Pool::builder().processes(1).build().unwrap();
    let crash = pool.call(exit_after, 50);
    let behind: Vec<_> = (0..50).map(|v| (v, pool.call(echo, v))).collect();
    let err = crash.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied);
    assert!(
        err.message()
            .contains("exited with code 3 while running this call"),
        "{err}"
    );
    for (v, mut call) in behind {
        assert_eq!(call.wait_timeout(LONG).expect("in time").unwrap(), v);
    }
    assert_eq!(pool.stats().lanes[0].restarts, 1);
}

#[test]
fn calls_sent_to_a_worker_that_just_died_are_not_lost() {
    let pool = Pool::builder().processes(1).build().unwrap();
    let pid = pool.call(worker_pid, ()).wait().unwrap();
    kill(pid, "-KILL");
    let calls: Vec<_> = (0..10).map(|v| (v, pool.call(echo, v))).collect();
    let mut failed = 0;
    for (v, mut call) in calls {
        match call.wait_timeout(LONG).expect("in time") {
            Ok(got) => assert_eq!(got, v),
            Err(err) => {
                // Only the call at the front may have started.
                assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err}");
                failed += 1;
            }
        }
    }
    assert!(
        failed <= 1,
        "{failed} calls the dead worker never started failed"
    );
}

#[test]
fn worker_pids_never_show_a_worker_whose_calls_failed() {
    let pool = Pool::builder().processes(1).build().unwrap();
    for _ in 0..10 {
        let pid = pool.call(worker_pid, ()).wait().unwrap();
        assert!(pool.call(exit_after, 0).wait().is_err());
        assert_ne!(pool.worker_pids()[0], Some(pid), "a dead worker's pid");
    }
}

#[test]
fn a_stopped_worker_is_replaced_and_later_calls_end() {
    let pool = Pool::builder()
        .processes(1)
        .liveness_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let pid = pool.call(worker_pid, ()).wait().unwrap();
    let err = pool
        .call(freeze, ())
        .timeout(Duration::from_millis(100))
        .wait()
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // No deadline: it must still end, on the replacement.
    let mut later = pool.call(echo, 5);
    assert_eq!(
        later.wait_timeout(LONG).expect("the call ended").unwrap(),
        5
    );
    assert_ne!(pool.call(worker_pid, ()).wait().unwrap(), pid);
    assert_eq!(pool.stats().lanes[0].restarts, 1);
}

#[test]
fn a_stopped_worker_with_a_call_fails_that_call_clearly() {
    let pool = Pool::builder()
        .processes(1)
        .liveness_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut frozen = pool.call(freeze, ());
    let err = frozen
        .wait_timeout(LONG)
        .expect("the call ended")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err}");
    assert!(err.message().contains("no sign of life"), "{err}");
    assert_eq!(pool.call(echo, 7).wait().unwrap(), 7);
}
