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

/// The process doorbell (`process::bell`), on loom atomics. A futex wait is
/// modelled by `park` when the word still holds the value seen (a lost
/// wake-up shows as a deadlock), a futex wake by `unpark`.
mod bell {
    use loom::{
        sync::{
            atomic::{AtomicBool, AtomicU32, AtomicU64},
            Arc,
        },
        thread,
    };

    use crate::{runtime::process::bell, sync::Ordering};

    fn futex_wait(word: &AtomicU32, seen: u32) {
        if word.load(Ordering::Acquire) == seen {
            thread::park();
        }
    }

    /// Sleeps (spinning first would only add interleavings) until the
    /// counter reaches `target`.
    fn sleeper(counter: &AtomicU64, word: &AtomicU32, sleeping: &AtomicU32, target: u64) {
        loop {
            if counter.load(Ordering::Acquire) >= target {
                return;
            }
            match bell::arm(word, sleeping, || bell::read_counter(counter) >= target) {
                None => return,
                Some(seen) => {
                    futex_wait(word, seen);
                    bell::disarm(sleeping);
                }
            }
        }
    }

    #[test]
    fn loom_bell_loses_no_wakeup() {
        loom::model(|| {
            let counter = Arc::new(AtomicU64::new(0));
            let word = Arc::new(AtomicU32::new(0));
            let sleeping = Arc::new(AtomicU32::new(0));
            let waiter = {
                let (c, w, s) = (counter.clone(), word.clone(), sleeping.clone());
                thread::spawn(move || sleeper(&c, &w, &s, 1))
            };
            bell::publish(&*counter, 1);
            if bell::should_ring(&*word, &*sleeping) {
                waiter.thread().unpark();
            }
            waiter.join().unwrap();
        });
    }

    #[test]
    fn loom_bell_burst_rings_once_and_loses_nothing() {
        // The first ring clears the flag, so the second publication may
        // not ring: the woken sleeper must still see it.
        loom::model(|| {
            let counter = Arc::new(AtomicU64::new(0));
            let word = Arc::new(AtomicU32::new(0));
            let sleeping = Arc::new(AtomicU32::new(0));
            let waiter = {
                let (c, w, s) = (counter.clone(), word.clone(), sleeping.clone());
                thread::spawn(move || sleeper(&c, &w, &s, 2))
            };
            for value in 1..=2 {
                bell::publish(&*counter, value);
                if bell::should_ring(&*word, &*sleeping) {
                    waiter.thread().unpark();
                }
            }
            waiter.join().unwrap();
        });
    }

    #[test]
    fn loom_bell_a_leaving_spinner_or_the_reactor_takes_the_response() {
        // The worker publishes a response while a host thread is spinning
        // (so it may skip the ring); the spinner leaves. Either the
        // spinner's last look sees the response, or the worker rang the
        // reactor: the reactor never sleeps on a response nobody took.
        loom::model(|| {
            let head = Arc::new(AtomicU64::new(0));
            let word = Arc::new(AtomicU32::new(0));
            let sleeping = Arc::new(AtomicU32::new(0));
            let spinners = Arc::new(AtomicU32::new(0));
            let taken = Arc::new(AtomicBool::new(false));
            bell::enter_spin(&*spinners);

            let reactor = {
                let (h, w, s, t) = (head.clone(), word.clone(), sleeping.clone(), taken.clone());
                thread::spawn(move || loop {
                    if t.load(Ordering::Acquire) {
                        return;
                    }
                    let ready = || bell::read_counter(&*h) == 1 || t.load(Ordering::Acquire);
                    match bell::arm(&*w, &*s, ready) {
                        None => return,
                        Some(seen) => {
                            futex_wait(&w, seen);
                            bell::disarm(&*s);
                        }
                    }
                })
            };
            let spinner = {
                let (h, sp, t) = (head.clone(), spinners.clone(), taken.clone());
                let reactor = reactor.thread().clone();
                thread::spawn(move || {
                    bell::leave_spin(&*sp);
                    if h.load(Ordering::Acquire) == 1 {
                        // Took it; wake the reactor only to end the model.
                        t.store(true, Ordering::Release);
                        reactor.unpark();
                    }
                })
            };
            bell::publish(&*head, 1);
            if !bell::someone_spins(&*spinners) && bell::should_ring(&*word, &*sleeping) {
                reactor.thread().unpark();
            }
            spinner.join().unwrap();
            reactor.join().unwrap();
        });
    }
}
