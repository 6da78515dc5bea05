//! Futex waits and wakes on words inside the shared mapping.
//!
//! These are *shared* futexes (no `FUTEX_PRIVATE_FLAG`): the kernel keys
//! them by the physical page, so a wake in one process reaches a waiter in
//! another. The std and parking_lot futexes are private and would not.

use std::{sync::atomic::AtomicU32, time::Duration};

use rustix::thread::futex::{self, Flags};

/// Sleeps while `word == expected`, at most `timeout`. Returns on a wake,
/// a value change, the timeout, or a signal: callers re-check their
/// condition in a loop.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let timeout = timeout.map(|d| rustix::time::Timespec {
        tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    });
    // Errors (EAGAIN: the value changed; ETIMEDOUT; EINTR) all mean "look
    // again", which every caller does.
    let _ = futex::wait(word, Flags::empty(), expected, timeout.as_ref());
}

/// Wakes every waiter on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    let _ = futex::wake(word, Flags::empty(), u32::MAX);
}
