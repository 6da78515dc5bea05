//! Loom models of the channel on heap storage with loom's atomics: one
//! producer and one consumer over a ring of 2 slots, with payload bytes in
//! loom cells (a missing Release/Acquire edge shows as a data race), and the
//! doorbell around it. A futex wait is modelled by `park` when the word
//! still holds the value seen, a futex wake by `unpark`, as in
//! `loom_tests.rs`; a lost wake-up shows as a deadlock.

use ::loom::{
    sync::{atomic::AtomicU32, Arc},
    thread,
};

use super::*;
use crate::sync::UnsafeCell;

/// A ring of 2 request slots and one payload cell per slot: message `seq`
/// carries its payload in the cell its `offset` names.
struct Lane {
    ring: HeapRequests,
    payload: [UnsafeCell<u64>; 2],
    /// The consumer's bell (rung when a message is published).
    rx_word: AtomicU32,
    rx_sleeping: AtomicU32,
    /// The producer's bell (rung when room is freed).
    tx_word: AtomicU32,
    tx_sleeping: AtomicU32,
}

// SAFETY: the payload cells are written by the producer only while their
// message is unpublished or consumed, and read by the consumer only while
// it is published and not yet consumed: the ring protocol under test
// hands them over, and loom reports any access it does not order.
unsafe impl Sync for Lane {}

impl Lane {
    fn new() -> Self {
        Self {
            ring: HeapRequests::new(2),
            payload: [UnsafeCell::new(0), UnsafeCell::new(0)],
            rx_word: AtomicU32::new(0),
            rx_sleeping: AtomicU32::new(0),
            tx_word: AtomicU32::new(0),
            tx_sleeping: AtomicU32::new(0),
        }
    }

    /// Writes message `seq`'s payload into its cell and publishes it.
    fn send(&self, tx: &mut Producer, seq: u64) {
        let cell = (seq % 2) as usize;
        // SAFETY: the slot (and cell) of message `seq` is free: the caller
        // saw message `seq - 2` consumed, or `seq < 2`.
        self.payload[cell].with_mut(|p| unsafe { *p = 100 + seq });
        let fields = Request {
            task: seq,
            shape: 0,
            offset: cell as u64,
            len: 1,
        };
        assert_eq!(tx.send(&self.ring, &fields), seq);
    }

    /// Takes the next message if published: checks its payload, then
    /// publishes the count (the cell is free again).
    fn take(&self, rx: &mut Consumer) -> Option<u64> {
        let (seq, fields) = rx.next(&self.ring)?;
        assert_eq!(fields.task, seq, "the fields of the message seen");
        // SAFETY: message `seq` is published (seen above) and its count
        // not yet published, so the producer leaves the cell alone.
        let got = self.payload[fields.offset as usize].with(|p| unsafe { *p });
        assert_eq!(got, 100 + seq, "the payload written before the slot");
        rx.publish(&self.ring);
        Some(seq)
    }
}

fn futex_wait(word: &AtomicU32, seen: u32) {
    if word.load(Ordering::Acquire) == seen {
        thread::park();
    }
}

/// The sleeper's side of the bell, as the worker's `sleep`: `ready` must
/// read the peer's counter with `bell::read_counter`.
fn sleep_until(word: &AtomicU32, sleeping: &AtomicU32, ready: impl Fn() -> bool) {
    loop {
        let Some(seen) = bell::arm(word, sleeping, &ready) else {
            return;
        };
        futex_wait(word, seen);
        bell::disarm(sleeping);
        if ready() {
            return;
        }
    }
}

/// Three messages through two slots: the second round reuses slot 0 and
/// its payload cell only after the consumer's count says so (the full
/// edge), and the consumer finds the ring empty in between (the empty
/// edge). Both sides spin.
#[test]
fn loom_channel_wraps_around_a_ring_of_two() {
    ::loom::model(|| {
        let lane = Arc::new(Lane::new());
        let consumer = {
            let lane = Arc::clone(&lane);
            thread::spawn(move || {
                let mut rx = Consumer::new();
                let mut next = 0;
                while next < 3 {
                    match lane.take(&mut rx) {
                        Some(seq) => {
                            assert_eq!(seq, next, "in order");
                            next += 1;
                        }
                        None => thread::yield_now(),
                    }
                }
            })
        };
        let mut tx = Producer::new();
        for seq in 0..3 {
            while seq - tx.consumed() >= 2 {
                tx.sync_consumed(&lane.ring);
                thread::yield_now();
            }
            lane.send(&mut tx, seq);
        }
        consumer.join().unwrap();
        assert_eq!(lane.ring.tail().load(Ordering::Relaxed), 3);
    });
}

/// The consumer sleeps on its bell for a message the producer publishes
/// and rings for: it is never left asleep with the message there.
#[test]
fn loom_channel_consumer_sleeps_and_the_producer_rings() {
    ::loom::model(|| {
        let lane = Arc::new(Lane::new());
        let consumer = {
            let lane = Arc::clone(&lane);
            thread::spawn(move || {
                let mut rx = Consumer::new();
                while lane.take(&mut rx).is_none() {
                    sleep_until(&lane.rx_word, &lane.rx_sleeping, || {
                        // As the worker's idle wait: the RMW read orders
                        // the check after a publication that rang; the
                        // slot says whether the message is there.
                        bell::read_counter(lane.ring.head());
                        Consumer::is_published(&lane.ring, 0)
                    });
                }
            })
        };
        let mut tx = Producer::new();
        lane.send(&mut tx, 0);
        if bell::should_ring(&lane.rx_word, &lane.rx_sleeping) {
            consumer.thread().unpark();
        }
        consumer.join().unwrap();
    });
}

/// The producer finds the ring full and sleeps for room; the consumer
/// takes a message, publishes its count and rings: the producer wakes,
/// reuses the slot and the payload cell.
#[test]
fn loom_channel_producer_sleeps_for_room_and_the_consumer_rings() {
    ::loom::model(|| {
        let lane = Arc::new(Lane::new());
        let mut tx = Producer::new();
        lane.send(&mut tx, 0);
        lane.send(&mut tx, 1);
        let producer = {
            let lane = Arc::clone(&lane);
            thread::spawn(move || {
                while tx.sync_consumed(&lane.ring) == 0 {
                    sleep_until(&lane.tx_word, &lane.tx_sleeping, || {
                        tx.poll_consumed(&lane.ring).is_some()
                    });
                }
                lane.send(&mut tx, 2);
            })
        };
        let mut rx = Consumer::new();
        assert_eq!(lane.take(&mut rx), Some(0));
        if bell::should_ring(&lane.tx_word, &lane.tx_sleeping) {
            producer.thread().unpark();
        }
        producer.join().unwrap();
        assert_eq!(lane.take(&mut rx), Some(1));
        assert_eq!(lane.take(&mut rx), Some(2), "the reused slot and cell");
    });
}
