//! A call whose deadline passed ends with its timeout outcome, whoever
//! completes it: the worker that finished it late, the process lane that
//! took its late response, or the timer thread.
//!
//! The timer thread is made unable to fire in time, honestly: it is busy
//! running another call's `default` expression (user code that runs on the
//! timer thread), which waits until the test lets it go. Meanwhile a call
//! whose deadline passed while its task ran returns `Ok` from the worker;
//! only the completion path's own look at the clock can turn that into
//! the timeout. This file holds one test, so that no other test of this
//! executable needs the timer while it is blocked.

knitting::init_before_main!();

mod common;

use std::{
    sync::{Condvar, Mutex},
    time::{Duration, Instant},
};

use common::LONG;

/// Whether the timer thread is inside `hold_timer`, and whether it may go.
static HOLD: Mutex<(bool, bool)> = Mutex::new((false, false));
static HOLD_CHANGED: Condvar = Condvar::new();

/// A `default` expression that keeps the timer thread until released
/// (at most `LONG`, so that a broken test cannot hang).
fn hold_timer() -> &'static str {
    let mut hold = HOLD.lock().unwrap();
    hold.0 = true;
    HOLD_CHANGED.notify_all();
    let end = Instant::now() + LONG;
    while !hold.1 && Instant::now() < end {
        hold = HOLD_CHANGED.wait_timeout(hold, LONG).unwrap().0;
    }
    hold.0 = false;
    HOLD_CHANGED.notify_all();
    "held"
}

#[knitting::task(timeout = "1ms", default = hold_timer())]
fn blocks_the_timer(signal: &knitting::Signal) -> &'static str {
    // Runs until the deadline (the timer thread) ends the call.
    let end = Instant::now() + LONG;
    while !signal.aborted() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    "stopped"
}

/// Sleeps past its caller's deadline, then returns normally.
#[knitting::task]
fn overruns(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[knitting::task(timeout = "1ms", default = 7u64)]
fn overruns_with_default(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn wait_for_hold(held: bool) {
    let mut hold = HOLD.lock().unwrap();
    let end = Instant::now() + LONG;
    while hold.0 != held {
        assert!(Instant::now() < end, "the timer thread never got there");
        hold = HOLD_CHANGED.wait_timeout(hold, LONG).unwrap().0;
    }
}

fn bounded<T: Send + 'static>(mut call: knitting::Call<T>) -> Result<T, knitting::Error> {
    call.wait_timeout(LONG).expect("the call ended in time")
}

macro_rules! late_calls_end_timed_out {
    ($pool:expr) => {{
        let pool = $pool;
        // Per-call deadline, no default: a timeout error.
        let err = bounded(pool.call(overruns, 30).timeout(Duration::from_millis(1)))
            .expect_err("a late result must not end the call Ok");
        assert!(err.is_timeout(), "{err:?}");
        // The task's own deadline with a default value.
        let value = bounded(pool.call(overruns_with_default, 30)).unwrap();
        assert_eq!(value, 7, "the default, not the late result");
        // A call well within its deadline is untouched.
        let value = bounded(pool.call(overruns, 1).timeout(LONG)).unwrap();
        assert_eq!(value, 1);
    }};
}

#[test]
fn a_result_that_arrives_after_the_deadline_ends_the_call_timed_out() {
    let timer_holder = common::pool(1);
    let held = timer_holder.call(blocks_the_timer, ());
    // The timer thread is now inside `hold_timer` and fires nothing else.
    wait_for_hold(true);

    late_calls_end_timed_out!(common::pool(2));
    late_calls_end_timed_out!(knitting::Pool::builder()
        .processes(1)
        .build()
        .expect("process pool"));

    HOLD.lock().unwrap().1 = true;
    HOLD_CHANGED.notify_all();
    wait_for_hold(false);
    assert_eq!(bounded(held).unwrap(), "held");
}
