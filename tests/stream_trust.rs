//! The trust boundary of stream items: a worker's tasks write over the
//! stream words and frames of their own worker's mapping (as a compromised
//! worker could), and the host must refuse what an honest worker would not
//! have sent: the call fails with `Protocol` after the items it took, the
//! worker is replaced, and the pool answers again.
//!
//! The tasks find the mapping in `/proc/self/maps` and use the layout a
//! reader of `src/runtime/process/shm/layout.rs` knows.

knitting::init_before_main!();

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{lane_mapping, lane_word};
use knitting::{ErrorKind, Pool, Sender};

/// The default ring slots and arena of a process pool.
const SLOTS: usize = 128;
const ARENA: usize = 64 << 20;
/// Control words, one 64-byte line each.
const REQ_TAIL: usize = 6 * 64;
const STREAM_HEAD: usize = 13 * 64;
const STREAM_CREDIT: usize = 15 * 64;
const CONTROL_BYTES: usize = 16 * 64;
/// The stream area: after the slots, the abort words and both arenas.
const STREAM_AREA: usize =
    (CONTROL_BYTES + SLOTS * 64 * 2 + SLOTS * 4).div_ceil(4096) * 4096 + 2 * ARENA;
const STREAM_SIZE: u64 = (ARENA / 4) as u64;

/// Writes a frame header (`seq`, `len`) at the stream head, and publishes
/// a head past it and `len` bytes of item.
fn forge_frame(seq: u64, len: u64) {
    let head = lane_word(STREAM_HEAD).load(Ordering::SeqCst);
    let offset = STREAM_AREA + (head % STREAM_SIZE) as usize;
    // SAFETY: two aligned words inside the stream area (its frames are
    // word-aligned), which stays mapped for the worker's life.
    let words =
        unsafe { std::slice::from_raw_parts(lane_mapping().add(offset).cast::<AtomicU64>(), 2) };
    words[0].store(seq, Ordering::SeqCst);
    words[1].store(len, Ordering::SeqCst);
    lane_word(STREAM_HEAD).store(head + 16 + len.div_ceil(8) * 8, Ordering::SeqCst);
}

/// The number of the request this task runs for.
fn own_seq() -> u64 {
    lane_word(REQ_TAIL).load(Ordering::SeqCst) - 1
}

#[knitting::task]
fn echo(v: u64) -> u64 {
    v
}

/// Sends two honest items, then does what `how` says.
#[knitting::task]
fn forge(how: String, out: Sender<u64>) -> u64 {
    out.send(1).unwrap();
    out.send(2).unwrap();
    match how.as_str() {
        "head past the area" => {
            lane_word(STREAM_HEAD).fetch_add(STREAM_SIZE * 2, Ordering::SeqCst);
        }
        "head backwards" => {
            lane_word(STREAM_HEAD).fetch_sub(8, Ordering::SeqCst);
        }
        "a call not in flight" => forge_frame(own_seq() + 50, 1),
        "an item past the head" => forge_frame(own_seq(), 4096),
        "an item over max_payload" => forge_frame(own_seq(), 1 << 40),
        "an item that does not decode" => forge_frame(own_seq(), 0),
        _ => unreachable!("{how}"),
    }
    0
}

/// A plain task that writes a stream item for its own call.
#[knitting::task]
fn item_for_a_plain_call() -> u64 {
    forge_frame(own_seq(), 1);
    7
}

/// Gives itself unlimited credit, then sends `n` items.
#[knitting::task]
fn past_its_credit(n: u64, out: Sender<u64>) -> u64 {
    lane_word(STREAM_CREDIT).store(u64::MAX, Ordering::SeqCst);
    for i in 0..n {
        if out.send(i).is_err() {
            return i;
        }
    }
    n
}

fn pool(bound: usize) -> Pool<knitting::Processes> {
    Pool::builder()
        .processes(1)
        .stream_bound(bound)
        .build()
        .expect("process pool")
}

#[test]
fn forged_frames_end_the_stream_with_a_protocol_error() {
    let pool = pool(64);
    for how in [
        "head past the area",
        "head backwards",
        "a call not in flight",
        "an item past the head",
        "an item over max_payload",
        "an item that does not decode",
    ] {
        let mut stream = pool.stream(forge, how.to_owned());
        let mut items = Vec::new();
        let err = loop {
            match stream.next().expect("the stream ends with an error") {
                Ok(item) => items.push(item),
                Err(err) => break err,
            }
        };
        assert_eq!(err.kind(), ErrorKind::Protocol, "{how}: {err}");
        // Only what the honest part sent, in order.
        assert!(
            items.is_empty() || items == [1] || items == [1, 2],
            "{how}: {items:?}"
        );
        assert!(stream.next().is_none());
        // The worker was replaced: the pool answers.
        assert_eq!(pool.call(echo, 5).wait().unwrap(), 5, "{how}");
    }
}

#[test]
fn an_item_for_a_call_that_does_not_stream_is_refused() {
    let pool = pool(64);
    let err = pool.call(item_for_a_plain_call, ()).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.message().contains("streams nothing"), "{err}");
    assert_eq!(pool.call(echo, 6).wait().unwrap(), 6);
}

#[test]
fn a_worker_past_its_credit_is_refused() {
    let pool = pool(4);
    let mut stream = pool.stream(past_its_credit, 1_000);
    // Not read for a while: an honest worker would stop at 4 items.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let items: Vec<_> = stream.by_ref().collect();
    let (last, ok) = items.split_last().expect("an error at least");
    assert_eq!(
        last.as_ref().unwrap_err().kind(),
        ErrorKind::Protocol,
        "{last:?}"
    );
    assert!(ok.len() <= 4, "{} items taken on a credit of 4", ok.len());
    for (i, item) in ok.iter().enumerate() {
        assert_eq!(*item.as_ref().unwrap(), i as u64);
    }
    assert_eq!(pool.call(echo, 7).wait().unwrap(), 7);
}

/// Takes its own credit away, then sends `n` items.
#[knitting::task(timeout = "3s")]
fn drops_its_credit(n: u64, out: Sender<u64>) -> u64 {
    lane_word(STREAM_CREDIT).store(0, Ordering::SeqCst);
    (0..n).take_while(|&i| out.send(i).is_ok()).count() as u64
}

/// A credit word moved back is the host's to write: the host writes its
/// own count again, and the task sends on (without it, the task would wait
/// for credit that only a read item gives, and no item could come).
#[test]
fn a_credit_taken_back_is_given_again() {
    let pool = pool(8);
    let mut stream = pool.stream(drops_its_credit, 5);
    let items: Vec<u64> = stream.by_ref().map(Result::unwrap).collect();
    assert_eq!(items, [0, 1, 2, 3, 4]);
    assert_eq!(stream.finish().unwrap(), 5);
    assert_eq!(pool.stats().lanes[0].restarts, 0, "nothing to kill it for");
}
