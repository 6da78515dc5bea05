//! Loom models of the doorbell, on loom atomics. A futex wait is modelled
//! by `park` when the word still holds the value seen (a lost wake-up
//! shows as a deadlock), a futex wake by `unpark`.

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
