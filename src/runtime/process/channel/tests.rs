//! The channel on heap storage: round trips, and the host's reaction to
//! words a hostile worker writes by hand. No mapping and no process, so
//! these run under Miri too (except the last, which maps a real lane).

use super::*;
use crate::{
    runtime::process::shm::{STATUS_ERR, STATUS_OK},
    sync::Ordering,
};

const ARENA: usize = 1024;
const MAX_PAYLOAD: usize = 256;

fn request(n: u64) -> Request {
    Request {
        task: 0x1000 + n,
        shape: 0x2000 + n,
        offset: 8 * n,
        len: n,
    }
}

fn ok(offset: u64, len: u64) -> Response {
    Response {
        status: u64::from(STATUS_OK),
        offset,
        len,
    }
}

/// Writes a response slot the way a worker may: any words, in the
/// protocol's order (fields, then `seq`) but with no other rule.
fn forge(ring: &HeapResponses, index: usize, seq_word: u64, fields: Response) {
    let slot = ring.slot(index);
    slot.store(&fields);
    slot.seq.store(seq_word, Ordering::Release);
}

/// The host's view after `sent` requests, of which `consumed` were
/// answered and taken.
fn host(consumed: u64) -> Consumer {
    let mut c = Consumer::new();
    for _ in 0..consumed {
        c.advance();
    }
    c
}

fn take(c: &Consumer, ring: &HeapResponses, sent: u64) -> Result<Vec<Answer>, Violation> {
    let mut answers = Vec::new();
    let n = c.take_checked(ring, sent, MAX_PAYLOAD, ARENA, &mut answers)?;
    assert_eq!(n, answers.len());
    Ok(answers)
}

#[test]
fn requests_round_trip_and_wrap_around_a_ring_of_two() {
    let ring = HeapRequests::new(2);
    let (mut tx, mut rx) = (Producer::new(), Consumer::new());
    assert_eq!(rx.next(&ring), None, "an empty ring holds nothing");
    for n in 0..7 {
        assert_eq!(tx.send(&ring, &request(n)), n);
        assert_eq!(ring.head().load(Ordering::Relaxed), n + 1, "counted");
        if n % 2 == 0 {
            // Fill the ring (two in flight), then drain it.
            continue;
        }
        for m in [n - 1, n] {
            assert!(Consumer::is_published(&ring, m));
            assert_eq!(rx.next(&ring), Some((m, request(m))));
        }
        assert_eq!(rx.next(&ring), None, "drained");
        assert!(
            !Consumer::is_published(&ring, n + 1),
            "slot {} still holds message {}, not {}",
            (n + 1) % 2,
            n - 1,
            n + 1
        );
        rx.announce(&ring);
        assert_eq!(ring.tail().load(Ordering::Relaxed), n + 1);
    }
    assert_eq!(rx.next(&ring), Some((6, request(6))));
    assert_eq!(rx.tail(), 7);
}

#[test]
fn responses_round_trip_and_free_on_the_published_count() {
    let ring = HeapResponses::new(2);
    let (mut tx, mut rx) = (Producer::new(), Consumer::new());
    assert_eq!(take(&rx, &ring, 0), Ok(vec![]), "nothing sent");
    assert_eq!(take(&rx, &ring, 2), Ok(vec![]), "nothing answered yet");
    tx.publish(&ring, 0, &ok(0, 10));
    tx.publish(
        &ring,
        1,
        &Response {
            status: u64::from(STATUS_ERR),
            offset: 10,
            len: 5,
        },
    );
    let answers = take(&rx, &ring, 2).unwrap();
    assert_eq!(
        answers,
        [
            Answer {
                seq: 0,
                status: u64::from(STATUS_OK),
                offset: 0,
                len: 10
            },
            Answer {
                seq: 1,
                status: u64::from(STATUS_ERR),
                offset: 10,
                len: 5
            },
        ]
    );
    // The worker learns of nothing until the host publishes its count.
    rx.advance();
    assert_eq!(tx.sync_consumed(&ring), 0);
    rx.publish(&ring);
    assert_eq!(tx.sync_consumed(&ring), 1);
    assert_eq!(tx.consumed(), 1);
    rx.advance();
    rx.publish(&ring);
    assert_eq!(tx.poll_consumed(&ring), Some(2), "a sleeper's look");
    assert_eq!(tx.consumed(), 1, "a look adopts nothing");
    assert_eq!(tx.sync_consumed(&ring), 1);
    // Round two reuses both slots.
    tx.publish(&ring, 2, &ok(0, 1));
    let answers = take(&rx, &ring, 4).unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].seq, 2);
}

#[test]
fn an_honest_counter_may_lag_or_be_set_back_and_hides_nothing() {
    let ring = HeapResponses::new(4);
    let rx = host(2);
    forge(&ring, 2, 3, ok(0, 4));
    forge(&ring, 3, 4, ok(4, 4));
    for head in [1, 2, 3, 4] {
        ring.head().store(head, Ordering::Relaxed);
        let answers = take(&rx, &ring, 4).unwrap();
        assert_eq!(
            answers.iter().map(|a| a.seq).collect::<Vec<_>>(),
            [2, 3],
            "counter {head}: the slots say what is ready"
        );
    }
}

#[test]
fn a_counter_outside_what_was_sent_is_a_violation() {
    let ring = HeapResponses::new(4);
    let rx = host(2);
    forge(&ring, 2, 3, ok(0, 4));
    for head in [0, 5, u64::MAX / 2, u64::MAX] {
        ring.head().store(head, Ordering::Relaxed);
        let err = take(&rx, &ring, 4).unwrap_err();
        assert!(err.why.contains("response counter"), "{}", err.why);
        assert_eq!(err.answered, 2, "both calls in flight may have run");
    }
    assert_eq!(rx.tail(), 2, "nothing was consumed");
    assert_eq!(ring.tail().load(Ordering::Relaxed), 0, "nor published");
}

#[test]
fn a_counted_slot_that_names_another_call_is_a_violation() {
    let ring = HeapResponses::new(4);
    let rx = host(0);
    forge(&ring, 0, 1, ok(0, 4));
    forge(&ring, 1, 1001, ok(4, 4));
    ring.head().store(2, Ordering::Relaxed);
    let err = take(&rx, &ring, 3).unwrap_err();
    assert_eq!(err.why, "response slot for call 1 names call 1000");
    assert_eq!(err.answered, 2, "the counter claims two");
    // A slot that never held a response, counted: no wrap-around panic.
    ring.head().store(3, Ordering::Relaxed);
    forge(&ring, 1, 2, ok(4, 4));
    let err = take(&rx, &ring, 3).unwrap_err();
    assert_eq!(
        err.why,
        "response slot for call 2 names call 18446744073709551615"
    );
    // Not counted, the same slot only means "not ready yet".
    ring.head().store(2, Ordering::Relaxed);
    assert_eq!(take(&rx, &ring, 3).unwrap().len(), 2);
}

#[test]
fn a_slot_published_twice_is_a_violation() {
    // The same response again, in the slot of the next round.
    let ring = HeapResponses::new(2);
    let rx = host(2);
    forge(&ring, 0, 1, ok(0, 4));
    forge(&ring, 1, 2, ok(4, 4));
    ring.head().store(3, Ordering::Relaxed);
    let err = take(&rx, &ring, 3).unwrap_err();
    assert_eq!(err.why, "response slot for call 2 names call 0");
    // The same payload under two responses: they overlap.
    let ring = HeapResponses::new(4);
    let rx = host(0);
    forge(&ring, 0, 1, ok(16, 8));
    forge(&ring, 1, 2, ok(16, 8));
    ring.head().store(2, Ordering::Relaxed);
    let err = take(&rx, &ring, 2).unwrap_err();
    assert!(err.why.contains("overlaps"), "{}", err.why);
    assert_eq!(err.answered, 2);
}

#[test]
fn payload_ranges_outside_the_arena_or_overlapping_are_violations() {
    for (fields, says) in [
        (ok(0, u64::MAX - 4), "claims"),
        (ok(u64::MAX - 3, 4), "claims"),
        (ok(ARENA as u64 - 2, 16), "claims"),
        (ok(0, MAX_PAYLOAD as u64 + 1), "over the limit"),
        (
            Response {
                status: 77,
                ..ok(0, 0)
            },
            "unknown status 77",
        ),
    ] {
        let ring = HeapResponses::new(4);
        let rx = host(0);
        forge(&ring, 0, 1, fields);
        ring.head().store(1, Ordering::Relaxed);
        let err = take(&rx, &ring, 1).unwrap_err();
        assert!(err.why.contains(says), "{fields:?} gives {}", err.why);
        assert_eq!(err.answered, 1);
    }
    // The second restarts at 0 over the unread first one.
    let ring = HeapResponses::new(4);
    forge(&ring, 0, 1, ok(0, 100));
    forge(&ring, 1, 2, ok(50, 100));
    ring.head().store(2, Ordering::Relaxed);
    let err = take(&host(0), &ring, 2).unwrap_err();
    assert!(err.why.contains("overlaps"), "{}", err.why);
}

#[test]
fn a_tampered_consumed_count_is_ignored_then_repaired() {
    let ring = HeapResponses::new(4);
    let (mut tx, mut rx) = (Producer::new(), Consumer::new());
    for seq in 0..3 {
        tx.publish(&ring, seq, &ok(seq * 8, 8));
    }
    assert_eq!(take(&rx, &ring, 3).unwrap().len(), 3);
    rx.advance();
    rx.advance();
    rx.publish(&ring);
    assert_eq!(tx.sync_consumed(&ring), 2);
    assert!(!rx.repair(&ring), "an intact count is left alone");
    // A task sets the count back, then past what was published: the
    // worker's side frees nothing on either.
    for forged in [1, 0, 4, u64::MAX] {
        ring.tail().store(forged, Ordering::Relaxed);
        assert_eq!(tx.sync_consumed(&ring), 0, "count {forged}");
        assert_eq!(tx.poll_consumed(&ring), None, "count {forged}");
        assert_eq!(tx.consumed(), 2);
    }
    // The host's next round writes its own count again.
    assert!(rx.repair(&ring));
    assert_eq!(ring.tail().load(Ordering::Relaxed), 2);
    rx.advance();
    rx.publish(&ring);
    assert_eq!(tx.sync_consumed(&ring), 1);
}

/// The views of a real mapping name the right words: what the host sends
/// on `Requests` the worker takes from its own mapping of the same object,
/// and the same for `Responses` the other way.
#[cfg(not(miri))]
#[test]
fn the_mapping_views_share_rings_between_two_mappings() {
    use crate::runtime::process::shm::Layout;

    let host_map = Mapping::create(Layout::new(2, 4096).unwrap(), 1024, None).unwrap();
    let (worker_map, _) = Mapping::open(host_map.fd().try_clone().unwrap()).unwrap();
    let (mut req_tx, mut req_rx) = (Producer::new(), Consumer::new());
    let (mut resp_tx, resp_rx) = (Producer::new(), Consumer::new());
    req_tx.send(&Requests(&host_map), &request(3));
    assert_eq!(host_map.control().req_head.load(Ordering::Relaxed), 1);
    assert_eq!(
        Consumer::read(&Responses(&worker_map), 0),
        Err(0),
        "nothing in the other ring"
    );
    let (seq, got) = req_rx.next(&Requests(&worker_map)).unwrap();
    assert_eq!((seq, got), (0, request(3)));
    req_rx.announce(&Requests(&worker_map));
    assert_eq!(host_map.control().req_tail.load(Ordering::Relaxed), 1);
    resp_tx.publish(&Responses(&worker_map), seq, &ok(0, 3));
    assert_eq!(host_map.control().resp_head.load(Ordering::Relaxed), 1);
    let mut answers = Vec::new();
    let n = resp_rx
        .take_checked(&Responses(&host_map), 1, 1024, 4096, &mut answers)
        .unwrap();
    assert_eq!((n, answers[0].len), (1, 3));
}
