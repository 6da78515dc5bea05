//! A worker process is untrusted: tasks here deliberately corrupt their own
//! worker's shared mapping, the way a compromised or buggy worker could.
//! The host must neither crash, nor hang, nor read out of bounds: the call
//! fails with a clear error, the worker is killed and replaced, and the
//! next call works.
//!
//! The tasks find the mapping in `/proc/self/maps` and write to it with the
//! layout a reader of `src/process/shm.rs` would know: an attacker knows
//! the layout too.

knitting::init_before_main!();

mod common;

use std::{
    sync::atomic::{AtomicU8, Ordering},
    time::Duration,
};

use common::lane_word;
use knitting::{ErrorKind, ProcessPool};

/// Offsets in the control block (one 64-byte line per field, see
/// `Control` in src/runtime/process/shm/layout.rs).
const RESP_HEAD: usize = 7 * 64;
const CONTROL_BYTES: usize = 16 * 64;
/// The pool below uses the default 128 ring slots.
const SLOTS: usize = 128;
const RESP_SLOTS: usize = CONTROL_BYTES + SLOTS * 64;

/// Writes a forged response for the running call, then never answers.
fn forge_response(status: u64, offset: u64, len: u64) -> ! {
    let seq = lane_word(RESP_HEAD).load(Ordering::SeqCst);
    let slot = RESP_SLOTS + (seq as usize % SLOTS) * 64;
    lane_word(slot + 8).store(status, Ordering::Relaxed);
    lane_word(slot + 16).store(offset, Ordering::Relaxed);
    lane_word(slot + 24).store(len, Ordering::Relaxed);
    // A slot holds its call's number plus one, written last (the host may
    // read the slot as soon as it holds the number).
    lane_word(slot).store(seq + 1, Ordering::SeqCst);
    lane_word(RESP_HEAD).store(seq + 1, Ordering::SeqCst);
    hang()
}

/// Waits for the host to kill this worker. Should the host not see the
/// forgery (the offsets above no longer match the layout), the task
/// panics after a while, and the test fails instead of hanging.
fn hang() -> ! {
    std::thread::sleep(common::LONG * 2);
    panic!("the host did not kill a worker that forged its mapping");
}

#[knitting::task]
fn echo(v: u64) -> u64 {
    v
}

#[knitting::task]
fn worker_pid() -> u32 {
    std::process::id()
}

/// Claims far more responses than calls were sent.
#[knitting::task]
fn runaway_counter() -> u64 {
    lane_word(RESP_HEAD).store(u64::MAX / 2, Ordering::SeqCst);
    hang()
}

/// Points a response at bytes far outside the arena.
#[knitting::task]
fn out_of_bounds_payload() -> u64 {
    forge_response(1, 0, u64::MAX - 4)
}

/// A range whose end overflows a 64-bit word.
#[knitting::task]
fn overflowing_payload() -> u64 {
    forge_response(1, u64::MAX - 3, 4)
}

/// A range that wraps around the end of the arena.
#[knitting::task]
fn wrapping_payload() -> u64 {
    forge_response(1, (64 << 20) - 2, 16)
}

/// A status the protocol does not have.
#[knitting::task]
fn unknown_status() -> u64 {
    forge_response(77, 0, 0)
}

/// An error response whose bytes are not an error.
#[knitting::task]
fn garbage_error() -> u64 {
    forge_response(2, 0, 0)
}

/// A response for a call the host never made.
#[knitting::task]
fn wrong_sequence() -> u64 {
    let seq = lane_word(RESP_HEAD).load(Ordering::SeqCst);
    let slot = RESP_SLOTS + (seq as usize % SLOTS) * 64;
    lane_word(slot).store(seq + 1000, Ordering::Relaxed);
    lane_word(slot + 8).store(1, Ordering::Relaxed);
    lane_word(RESP_HEAD).store(seq + 1, Ordering::SeqCst);
    hang()
}

/// The response arena: after the request arena (64 MiB by default), each
/// page aligned after the control block, both slot arrays and the abort
/// words.
const RESP_ARENA: usize =
    (CONTROL_BYTES + SLOTS * 64 * 2 + SLOTS * 4).div_ceil(4096) * 4096 + (64 << 20);

/// Writes `bytes` at the start of the response arena and answers the
/// running call with them as its (successful) result; never returns.
fn forge_result(bytes: &[u8]) -> ! {
    for (i, &b) in bytes.iter().enumerate() {
        // SAFETY: the response arena lies inside the lane mapping, which
        // stays mapped for the worker's life; a byte is always aligned.
        let byte = unsafe {
            &*common::lane_mapping()
                .add(RESP_ARENA + i)
                .cast::<AtomicU8>()
        };
        byte.store(b, Ordering::Relaxed);
    }
    forge_response(1, 0, bytes.len() as u64)
}

/// A byte-string result whose length prefix claims a terabyte.
#[knitting::task]
fn huge_byte_string() -> knitting::Bytes {
    // 2^40 as postcard's varint, then three bytes.
    forge_result(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 1, 2, 3])
}

/// A byte-string result with bytes after its end.
#[knitting::task]
fn long_byte_string() -> Vec<u8> {
    forge_result(&[2, 7, 7, 7, 7])
}

/// A numeric buffer whose bytes are not a whole number of elements.
#[knitting::task]
fn ragged_numbers() -> knitting::Buffer<u64> {
    forge_result(&[3, 1, 2, 3])
}

/// A shared buffer the host never sent: id 5, 8 bytes at offset 0 of 8.
#[knitting::task]
fn forged_shared_buffer() -> knitting::SharedBuffer {
    forge_result(&[5, 0, 8, 8])
}

/// Stops itself: the host must still be able to shut down.
#[knitting::task]
fn freeze() {
    let me = rustix::process::getpid();
    rustix::process::kill_process(me, rustix::process::Signal::STOP).unwrap();
}

fn pool() -> ProcessPool {
    knitting::Pool::builder()
        .processes(1)
        .build()
        .expect("process pool")
}

fn corrupted_worker_is_replaced(corrupt: fn(&ProcessPool) -> knitting::Error, says: &str) {
    let pool = pool();
    let first = pool.call(worker_pid, ()).wait().unwrap();
    let err = corrupt(&pool);
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
    let message = err.message();
    assert!(
        message.contains(&format!("worker 0 (pid {first})")),
        "{message}"
    );
    assert!(message.contains(says), "{message}");
    assert!(message.contains("killed"), "{message}");
    let second = pool.call(worker_pid, ()).wait().unwrap();
    assert_ne!(first, second, "a new worker took the lane");
    assert_eq!(pool.call(echo, 5).wait().unwrap(), 5);
    pool.shutdown();
}

#[test]
fn a_runaway_response_counter_is_caught() {
    corrupted_worker_is_replaced(
        |pool| pool.call(runaway_counter, ()).wait().unwrap_err(),
        "response counter",
    );
}

#[test]
fn a_payload_outside_the_arena_is_caught() {
    corrupted_worker_is_replaced(
        |pool| pool.call(out_of_bounds_payload, ()).wait().unwrap_err(),
        "claims",
    );
}

#[test]
fn a_range_that_overflows_is_a_protocol_error_not_a_host_panic() {
    corrupted_worker_is_replaced(
        |pool| pool.call(overflowing_payload, ()).wait().unwrap_err(),
        "claims 4 bytes",
    );
}

#[test]
fn a_payload_wrapping_the_arena_end_is_caught() {
    corrupted_worker_is_replaced(
        |pool| pool.call(wrapping_payload, ()).wait().unwrap_err(),
        "claims 16 bytes",
    );
}

#[test]
fn an_unknown_status_is_caught() {
    corrupted_worker_is_replaced(
        |pool| pool.call(unknown_status, ()).wait().unwrap_err(),
        "unknown status 77",
    );
}

#[test]
fn an_undecodable_error_is_caught() {
    corrupted_worker_is_replaced(
        |pool| pool.call(garbage_error, ()).wait().unwrap_err(),
        "undecodable error",
    );
}

#[test]
fn a_response_for_another_call_is_caught() {
    corrupted_worker_is_replaced(
        |pool| pool.call(wrong_sequence, ()).wait().unwrap_err(),
        "names call",
    );
}

#[test]
fn forged_byte_string_results_fail_their_call_and_are_never_trusted() {
    let huge = pool().call(huge_byte_string, ()).wait().unwrap_err();
    assert_eq!(huge.kind(), ErrorKind::Codec, "{huge:?}");
    assert!(
        huge.message().contains("could not decode the result"),
        "{huge}"
    );
    let long = pool().call(long_byte_string, ()).wait().unwrap_err();
    assert_eq!(long.kind(), ErrorKind::Codec, "{long:?}");
    let ragged = pool().call(ragged_numbers, ()).wait().unwrap_err();
    assert_eq!(ragged.kind(), ErrorKind::Codec, "{ragged:?}");
}

#[test]
fn a_forged_shared_buffer_fails_its_call_and_the_worker_is_replaced() {
    let pool = pool();
    let first = pool.call(worker_pid, ()).wait().unwrap();
    let err = pool.call(forged_shared_buffer, ()).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec, "{err:?}");
    assert!(err.message().contains("did not send"), "{err}");
    let second = pool.call(worker_pid, ()).wait().unwrap();
    assert_ne!(first, second, "a new worker took the lane");
    assert_eq!(pool.call(echo, 5).wait().unwrap(), 5);
}

#[test]
fn other_calls_in_flight_fail_with_the_same_reason() {
    let pool = pool();
    let bad = pool.call(runaway_counter, ());
    let behind = pool.call(echo, 1);
    assert_eq!(bad.wait().unwrap_err().kind(), ErrorKind::Protocol);
    assert_eq!(behind.wait().unwrap_err().kind(), ErrorKind::Protocol);
    assert_eq!(pool.call(echo, 2).wait().unwrap(), 2);
}

#[test]
fn a_frozen_worker_cannot_hang_shutdown() {
    let pool = pool();
    let pid = pool.call(worker_pid, ()).wait().unwrap();
    let frozen = pool.call(freeze, ());
    std::thread::sleep(Duration::from_millis(50));
    let started = std::time::Instant::now();
    let err = pool
        .shutdown_timeout(Duration::from_millis(100))
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(frozen.wait().unwrap_err().is_closed());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the frozen worker was killed and reaped"
    );
}
