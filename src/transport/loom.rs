//! Loom models of the lock-free parts: the lane ring and the wake word.
//!
//! Run with `RUSTFLAGS="--cfg knitting_loom" cargo test --release --lib -- loom_`
//! (`.ci/run` does, with `LOOM_MAX_PREEMPTIONS=2`). Capacities are tiny so
//! that the model checker can visit every interleaving: a ring of 2 slots
//! already exercises wrap-around and the full/empty edges.

use loom::{
    sync::{atomic::AtomicBool, Arc},
    thread,
};

use crate::{
    sync::Ordering,
    transport::{ring::Ring, wake::WakeWord},
};

#[test]
fn loom_ring_two_producers_one_consumer() {
    loom::model(|| {
        let ring = Arc::new(Ring::with_capacity(2));
        let producers: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|v| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    let mut v = v;
                    while let Err(back) = ring.push(v) {
                        v = back;
                        thread::yield_now();
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match ring.pop() {
                Some(v) => seen.push(v),
                None => thread::yield_now(),
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        seen.sort_unstable();
        assert_eq!(seen, [1, 2]);
        assert!(ring.pop().is_none());
    });
}

#[test]
fn loom_ring_wraps_around_and_keeps_order() {
    loom::model(|| {
        let ring = Arc::new(Ring::with_capacity(2));
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                for v in 0..3u32 {
                    let mut v = v;
                    while let Err(back) = ring.push(v) {
                        v = back;
                        thread::yield_now();
                    }
                }
            })
        };
        let mut next = 0;
        while next < 3 {
            match ring.pop() {
                Some(v) => {
                    assert_eq!(v, next, "the ring is FIFO");
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
    });
}

/// A worker that sleeps on the wake word must see work pushed by a
/// producer racing its announcement: no lost wake-up (loom reports a
/// deadlock if the worker parks forever).
#[test]
fn loom_wake_word_loses_no_wakeup() {
    loom::model(|| {
        let wake = Arc::new(WakeWord::new());
        let work = Arc::new(AtomicBool::new(false));
        let worker = {
            let (wake, work) = (Arc::clone(&wake), Arc::clone(&work));
            thread::spawn(move || {
                wake.register_sleeper();
                // Relaxed: the wake word's RMWs order the flag.
                while !work.load(Ordering::Relaxed) {
                    wake.sleep(|| work.load(Ordering::Relaxed));
                }
            })
        };
        work.store(true, Ordering::Relaxed);
        wake.notify();
        worker.join().unwrap();
    });
}

/// Two producers notify at once; the worker must wake for the work of both.
#[test]
fn loom_wake_word_two_producers() {
    loom::model(|| {
        let wake = Arc::new(WakeWord::new());
        let ring = Arc::new(Ring::with_capacity(2));
        wake.register_sleeper();
        let producers: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|v| {
                let (wake, ring) = (Arc::clone(&wake), Arc::clone(&ring));
                thread::spawn(move || {
                    ring.push(v).unwrap();
                    wake.notify();
                })
            })
            .collect();
        let mut seen = 0;
        while seen < 2 {
            match ring.pop() {
                Some(_) => seen += 1,
                None => wake.sleep(|| !ring.is_empty()),
            }
        }
        for p in producers {
            p.join().unwrap();
        }
    });
}

/// A worker retiring (pool closed) races a producer: either the worker
/// sees the pushed call, or the producer learns that the worker exited.
/// Never both missed.
#[test]
fn loom_retire_races_a_push() {
    use crate::transport::wake::Notified;

    loom::model(|| {
        let wake = Arc::new(WakeWord::new());
        let ring = Arc::new(Ring::with_capacity(2));
        let producer = {
            let (wake, ring) = (Arc::clone(&wake), Arc::clone(&ring));
            thread::spawn(move || {
                ring.push(7u32).unwrap();
                wake.notify()
            })
        };
        let mut worker_saw = false;
        loop {
            if ring.pop().is_some() {
                worker_saw = true;
                continue;
            }
            if wake.retire(|| !ring.is_empty()) {
                break;
            }
        }
        let producer_saw_exit = producer.join().unwrap() == Notified::Exited;
        assert!(
            worker_saw || producer_saw_exit,
            "the call was neither run nor failed"
        );
    });
}

/// Work stealing: a lane's worker and a thief pop the same ring while its
/// producer pushes; every item is taken exactly once.
#[test]
fn loom_ring_owner_and_thief_take_each_item_once() {
    loom::model(|| {
        let ring = Arc::new(Ring::with_capacity(2));
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                for v in [1u32, 2] {
                    let mut v = v;
                    while let Err(back) = ring.push(v) {
                        v = back;
                        thread::yield_now();
                    }
                }
            })
        };
        let thief = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.pop())
        };
        let mut seen: Vec<u32> = thief.join().unwrap().into_iter().collect();
        while seen.len() < 2 {
            match ring.pop() {
                Some(v) => seen.push(v),
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, [1, 2]);
        assert!(ring.pop().is_none());
    });
}
