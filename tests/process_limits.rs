//! Payload limits on process workers: an argument or a result over
//! `max_payload_bytes` fails that call with an error naming the limit and
//! the size, and the worker goes on; payloads that fill the arena or the
//! ring wait in the host and all arrive.

knitting::init_before_main!();

use knitting::{ErrorKind, ProcessPool};
use serde_bytes::ByteBuf;

#[knitting::task]
fn length(bytes: ByteBuf) -> usize {
    bytes.len()
}

#[knitting::task]
fn make(len: usize) -> ByteBuf {
    ByteBuf::from(vec![7u8; len])
}

/// Holds its argument in the request arena for `ms`.
#[knitting::task]
fn hold(bytes: &[u8], ms: u64) -> usize {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    bytes.len()
}

#[knitting::task]
fn checksum(bytes: ByteBuf) -> (usize, u64) {
    (bytes.len(), bytes.iter().map(|&b| u64::from(b)).sum())
}

fn pool(max_payload: usize) -> ProcessPool {
    knitting::Pool::builder()
        .processes(1)
        .max_payload_bytes(max_payload)
        .build()
        .expect("process pool")
}

#[test]
fn an_oversized_argument_fails_before_it_is_sent() {
    let pool = pool(4096);
    let err = pool
        .call(length, ByteBuf::from(vec![0u8; 10_000]))
        .wait()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err:?}");
    // 10 000 bytes plus a two-byte length prefix.
    assert!(err.message().contains("argument is 10002 bytes"), "{err}");
    assert!(err.message().contains("max_payload_bytes of 4096"), "{err}");
    assert!(err.task().unwrap().ends_with("::length"));
    // Nothing reached the worker: the lane goes on.
    assert_eq!(
        pool.call(length, ByteBuf::from(vec![0u8; 4000]))
            .wait()
            .unwrap(),
        4000
    );
    assert_eq!(pool.stats().lanes[0].restarts, 0);
}

#[test]
fn an_oversized_result_fails_and_the_worker_goes_on() {
    let pool = pool(4096);
    let pid = pool.worker_pids()[0];
    let err = pool.call(make, 10_000).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err:?}");
    assert!(err.message().contains("result is 10002 bytes"), "{err}");
    assert!(err.message().contains("max_payload_bytes of 4096"), "{err}");
    assert_eq!(pool.call(make, 100).wait().unwrap().len(), 100);
    assert_eq!(pool.worker_pids()[0], pid, "the same worker answers");
}

#[test]
fn payloads_that_fill_the_arena_wait_and_all_arrive() {
    // A 64 KiB arena holds a handful of 10 KiB payloads at a time; the
    // rest wait in the host (and in the worker, for results) for room.
    let pool = knitting::Pool::builder()
        .processes(1)
        .arena_bytes(64 << 10)
        .max_payload_bytes(16 << 10)
        .build()
        .unwrap();
    let calls: Vec<_> = (0..200u32)
        .map(|i| {
            let len = 8_000 + (i as usize % 7) * 300;
            let bytes: Vec<u8> = (0..len).map(|j| (j as u32 + i) as u8).collect();
            let sum = bytes.iter().map(|&b| u64::from(b)).sum::<u64>();
            (len, sum, pool.call(checksum, ByteBuf::from(bytes)))
        })
        .collect();
    for (len, sum, call) in calls {
        assert_eq!(call.wait().unwrap(), (len, sum));
    }
    let results: Vec<_> = (0..100).map(|i| pool.call(make, 9_000 + i)).collect();
    for (i, call) in results.into_iter().enumerate() {
        assert_eq!(call.wait().unwrap().len(), 9_000 + i);
    }
}

#[test]
fn a_call_waiting_for_room_ends_at_its_deadline_and_the_lane_goes_on() {
    // Under the limit, but the arena is full right now: the call waits for
    // room (it is not refused as too large) until its deadline.
    let pool = knitting::Pool::builder()
        .processes(1)
        .arena_bytes(64 << 10)
        .max_payload_bytes(48 << 10)
        .build()
        .unwrap();
    let big = || knitting::Bytes::zeroed(40 << 10);
    let holding = pool.call(hold, (big(), 400));
    let started = std::time::Instant::now();
    let waiting = pool
        .call(hold, (big(), 0))
        .timeout(std::time::Duration::from_millis(100));
    let err = waiting.wait().unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_millis(390));
    // Without a deadline it waits for the room, and arrives.
    let patient = pool.call(hold, (big(), 0));
    assert_eq!(holding.wait().unwrap(), 40 << 10);
    assert_eq!(patient.wait().unwrap(), 40 << 10);
}

#[test]
fn more_calls_than_ring_slots_all_arrive() {
    let pool = knitting::Pool::builder()
        .processes(2)
        .ring_slots(2)
        .build()
        .unwrap();
    let calls: Vec<_> = (0..300).map(|i| pool.call(make, i)).collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.wait().unwrap().len(), i);
    }
}

#[test]
fn a_limit_larger_than_the_arena_is_refused() {
    let err = knitting::Pool::builder()
        .processes(1)
        .arena_bytes(8192)
        .max_payload_bytes(1 << 20)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Build);
    assert!(err.message().contains("max_payload_bytes"), "{err}");
}
