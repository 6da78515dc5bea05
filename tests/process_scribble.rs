//! The hostile worker at random, with real processes: a task writes a
//! chosen value over a chosen word or byte of its own worker's mapping
//! (control words, slot fields, abort words, payload and stream bytes),
//! once or many times from a thread of its own, while other calls, an
//! async call and a stream share the worker. The host is the oracle:
//!
//! - it never crashes (the test process would) nor hangs: every call ends
//!   exactly once, by its deadline at the latest;
//! - a call that ends `Ok` carries its own value, unless the scribble hit
//!   payload bytes (a worker may lie about its own results: the host
//!   cannot tell, and a lie must still be a well-formed value of the type);
//! - a call fails only with an error that says what happened;
//! - afterwards the pool answers again (a worker that broke the protocol
//!   was replaced).
//!
//! The offsets follow the layout of `src/runtime/process/shm.rs` for the
//! pool built here (16 ring slots, 64 KiB arenas): an attacker knows it
//! too. `PROPTEST_CASES` sets how many cases run (default 100);
//! `SCRIBBLE_TRACE=1` prints each case and how its calls ended.

knitting::init_before_main!();

mod common;

use std::{
    sync::atomic::{AtomicU64, AtomicU8, Ordering},
    time::{Duration, Instant},
};

use common::{lane_mapping, LONG};
use knitting::{Error, ErrorKind, Pool, ProcessPool, Sender};
use proptest::prelude::*;

const SLOTS: usize = 16;
const ARENA: usize = 64 << 10;
/// The control block: sixteen 64-byte lines.
const CONTROL_BYTES: usize = 16 * 64;
const REQ_SLOTS: usize = CONTROL_BYTES;
const RESP_SLOTS: usize = REQ_SLOTS + SLOTS * 64;
const ABORTS: usize = RESP_SLOTS + SLOTS * 64;
const REQ_ARENA: usize = (ABORTS + SLOTS * 4).div_ceil(4096) * 4096;
const RESP_ARENA: usize = REQ_ARENA + ARENA;
const STREAM_AREA: usize = RESP_ARENA + ARENA;
const STREAM_BYTES: usize = ARENA / 4;

/// Where a scribble lands.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// Word `word` (of eight) of control line `line` (of sixteen).
    Control { line: usize, word: usize },
    /// Field `field` of request slot `slot` (the worker reads these).
    ReqSlot { slot: usize, field: usize },
    /// Field `field` of response slot `slot` (the host reads these).
    RespSlot { slot: usize, field: usize },
    /// The abort words of slots `slot` and `slot + 1`.
    Abort { slot: usize },
    /// Byte `at` of the request arena.
    ReqArena { at: usize },
    /// Byte `at` of the response arena.
    RespArena { at: usize },
    /// Byte `at` of the stream area.
    Stream { at: usize },
}

impl Target {
    /// The offset in the mapping, and whether it is a byte (else a word).
    fn offset(self) -> (usize, bool) {
        match self {
            Target::Control { line, word } => (line * 64 + word * 8, false),
            Target::ReqSlot { slot, field } => (REQ_SLOTS + slot * 64 + field * 8, false),
            Target::RespSlot { slot, field } => (RESP_SLOTS + slot * 64 + field * 8, false),
            Target::Abort { slot } => ((ABORTS + slot * 4) & !7, false),
            Target::ReqArena { at } => (REQ_ARENA + at, true),
            Target::RespArena { at } => (RESP_ARENA + at, true),
            Target::Stream { at } => (STREAM_AREA + at, true),
        }
    }

    /// True if the scribble may change what a call's task computed or
    /// returned: its arguments, its result, its items (the words the
    /// worker reads to find them included). Such a worker lies, and the
    /// host cannot know; it must not crash or hang all the same.
    fn changes_values(self) -> bool {
        matches!(
            self,
            Target::ReqSlot { .. }
                | Target::ReqArena { .. }
                | Target::RespArena { .. }
                | Target::Stream { .. }
        )
    }
}

/// How the task scribbles.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// One write, before the task returns.
    Once,
    /// One write from a thread, `ms` after the task returned, while the
    /// calls behind it run.
    Later { ms: u64 },
    /// Writes again and again from a thread for `ms`.
    Storm { ms: u64 },
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => (0..16usize, 0..8usize).prop_map(|(line, word)| Target::Control { line, word }),
        1 => (0..SLOTS, 0..5usize).prop_map(|(slot, field)| Target::ReqSlot { slot, field }),
        2 => (0..SLOTS, 0..4usize).prop_map(|(slot, field)| Target::RespSlot { slot, field }),
        1 => (0..SLOTS - 1).prop_map(|slot| Target::Abort { slot }),
        1 => (0..256usize).prop_map(|at| Target::ReqArena { at }),
        1 => (0..256usize).prop_map(|at| Target::RespArena { at }),
        1 => (0..STREAM_BYTES.min(1024)).prop_map(|at| Target::Stream { at }),
    ]
}

fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX / 2 + 1),
        Just(u64::from(u32::MAX)),
        0..64u64,
        any::<u64>(),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::Once),
        (0..20u64).prop_map(|ms| Mode::Later { ms }),
        (1..30u64).prop_map(|ms| Mode::Storm { ms }),
    ]
}

/// Writes `value` at `offset` of this worker's mapping.
fn write(offset: usize, byte: bool, value: u64) {
    let at = lane_mapping().wrapping_add(offset);
    if byte {
        // SAFETY: the offset lies inside the mapping (the layout above),
        // which stays mapped for the worker's life; a byte is aligned.
        unsafe { &*at.cast::<AtomicU8>() }.store(value as u8, Ordering::SeqCst);
    } else {
        // SAFETY: as above; word offsets are multiples of 8 from the
        // page-aligned start of the mapping.
        unsafe { &*at.cast::<AtomicU64>() }.store(value, Ordering::SeqCst);
    }
}

/// The hostile task: `(offset, is a byte, value, mode, milliseconds)`.
#[knitting::task]
fn scribble(offset: u64, byte: bool, value: u64, mode: u8, ms: u64) -> u64 {
    let offset = offset as usize;
    match mode {
        0 => write(offset, byte, value),
        1 => {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                write(offset, byte, value);
            });
        }
        _ => {
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_millis(ms);
                while Instant::now() < end {
                    write(offset, byte, value);
                    std::thread::yield_now();
                }
            });
        }
    }
    value
}

#[knitting::task]
fn echo(v: u64) -> u64 {
    v
}

#[knitting::task]
async fn async_echo(v: u64) -> u64 {
    knitting::sleep(Duration::from_millis(2)).await;
    v
}

/// Sends `0..n`; returns how many it sent.
#[knitting::task(timeout = "3s")]
fn count(n: u64, out: Sender<u64>) -> u64 {
    (0..n).take_while(|&i| out.send(i).is_ok()).count() as u64
}

/// Every call's deadline: none may wait longer, whatever the worker does.
const DEADLINE: Duration = Duration::from_secs(3);

/// The errors a call may end with when its worker scribbles: the worker
/// broke the protocol (and was replaced), died of it, or stopped serving
/// (replaced, or the call's deadline passed). A worker tricked into
/// reading other arguments, or writing other results, answers what it
/// answers (a type mismatch, an unknown task, bytes that do not decode,
/// its own error): any error then, as long as the call ends.
fn allowed(err: &Error, values_changed: bool) -> bool {
    values_changed
        || matches!(
            err.kind(),
            ErrorKind::Protocol | ErrorKind::WorkerDied | ErrorKind::Timeout
        )
}

fn pool() -> ProcessPool {
    Pool::builder()
        .processes(1)
        .ring_slots(SLOTS)
        .arena_bytes(ARENA)
        .stream_bound(64)
        .liveness_timeout(Duration::from_millis(500))
        .build()
        .expect("process pool")
}

/// One case on `pool`; returns what ended how, for the tally.
fn one_case(target: Target, value: u64, mode: Mode, base: u64) -> Vec<String> {
    let pool = &pool();
    let (offset, byte) = target.offset();
    let (mode_word, ms) = match mode {
        Mode::Once => (0, 0),
        Mode::Later { ms } => (1, ms),
        Mode::Storm { ms } => (2, ms),
    };
    let values_changed = target.changes_values();
    let echo_call = |v: u64| (v, pool.call(echo, v).timeout(DEADLINE));
    let mut calls: Vec<_> = (0..4).map(|i| echo_call(base + i)).collect();
    let hostile = pool
        .call(scribble, (offset as u64, byte, value, mode_word, ms))
        .timeout(DEADLINE);
    calls.extend((4..8).map(|i| echo_call(base + i)));
    let asynchronous = pool.call(async_echo, base + 8).timeout(DEADLINE);
    let stream = pool.stream(count, 40);
    calls.extend((9..12).map(|i| echo_call(base + i)));

    let start = Instant::now();
    let mut outcomes = Vec::new();
    let mut check = |what: &str, expected: Option<u64>, got: Option<Result<u64, Error>>| {
        let got = got.unwrap_or_else(|| panic!("{what} did not end within {LONG:?}"));
        match got {
            Ok(v) => {
                if let (Some(expected), false) = (expected, values_changed) {
                    assert_eq!(v, expected, "{what} ended with another value");
                }
                outcomes.push("ok".to_owned());
            }
            Err(err) => {
                assert!(allowed(&err, values_changed), "{what}: {err:?}");
                outcomes.push(format!("{:?}", err.kind()));
            }
        }
    };
    for (v, mut call) in calls {
        check(&format!("echo({v})"), Some(v), call.wait_timeout(LONG));
    }
    let mut hostile = hostile;
    check(
        "the scribbling call",
        Some(value),
        hostile.wait_timeout(LONG),
    );
    let mut asynchronous = asynchronous;
    check(
        "async_echo",
        Some(base + 8),
        asynchronous.wait_timeout(LONG),
    );
    let mut next = 0;
    let mut stream = stream;
    for item in stream.by_ref() {
        match item {
            Ok(i) => {
                if !values_changed {
                    assert_eq!(i, next, "stream items in order, none twice");
                }
                next += 1;
            }
            Err(err) => {
                assert!(allowed(&err, values_changed), "stream: {err:?}");
                break;
            }
        }
    }
    let finished = stream.finish();
    if let Ok(sent) = &finished {
        if !values_changed {
            assert_eq!(
                (*sent, next),
                (40, 40),
                "a stream that ends Ok has every item"
            );
        }
    }
    check("the stream", None, Some(finished));
    assert!(
        start.elapsed() < DEADLINE + Duration::from_secs(3),
        "the case took {:?}",
        start.elapsed()
    );
    // The storm is over (it lasts under 30 ms); the pool answers again,
    // on a replacement worker if this one broke the protocol. A worker
    // left confused without breaking it is given up by its deadline.
    std::thread::sleep(Duration::from_millis(40));
    let answer = pool
        .call(echo, base + 99)
        .timeout(DEADLINE)
        .wait_timeout(LONG)
        .expect("the pool answers after the case");
    match answer {
        Ok(v) => assert_eq!(v, base + 99),
        Err(err) => {
            assert!(allowed(&err, values_changed), "after the case: {err:?}");
            // Its deadline gave up on a stalled worker: the next call runs.
            let again = pool.call(echo, base + 98).timeout(DEADLINE).wait();
            assert_eq!(again.unwrap(), base + 98, "the pool answers again");
        }
    }
    let restarts: usize = pool.stats().lanes.iter().map(|l| l.restarts).sum();
    outcomes.push(format!("workers replaced: {restarts}"));
    outcomes
}

#[test]
fn a_worker_scribbling_its_mapping_never_crashes_hangs_or_fools_the_host() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let tally = std::cell::RefCell::new(std::collections::BTreeMap::<String, usize>::new());
    let base = std::cell::Cell::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&(target(), value(), mode()), |(target, value, mode)| {
            base.set(base.get() + 1000);
            let outcomes = one_case(target, value, mode, base.get());
            if std::env::var_os("SCRIBBLE_TRACE").is_some() {
                let timeouts = outcomes.iter().filter(|o| *o == "Timeout").count();
                eprintln!(
                    "TRACE {target:?} {value:#x} {mode:?}: {timeouts} timeouts, {:?}",
                    outcomes.last()
                );
            }
            for outcome in outcomes {
                *tally.borrow_mut().entry(outcome).or_default() += 1;
            }
            Ok(())
        })
        .unwrap();
    let tally = tally.into_inner();
    println!("{cases} scribbles, each on a fresh pool: {tally:?}");
}
