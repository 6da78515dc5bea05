//! The doorbell protocol between host and worker, written once over a
//! small atomic-word trait so that the same code runs on the shared
//! mapping's std atomics and, in the loom models, on loom's.
//!
//! A bell is a futex word (bumped by the ringer) and a `sleeping` flag
//! (raised by the sleeper). The publisher publishes its counter with a
//! read-modify-write, then rings if the flag is up; the sleeper raises the
//! flag, then reads the counter with a read-modify-write before it sleeps.
//! Because both counter accesses are RMWs, one of them reads the other's
//! value and synchronizes with it: either the sleeper sees the new counter
//! (and does not sleep), or the ringer sees the flag (and rings). Plain
//! SeqCst stores and loads would give the same guarantee in the C++ model,
//! but loom models SeqCst as AcqRel, and only this form can be checked.
//!
//! The ringer clears the flag as it rings, so a burst of publications
//! rings once; the sleeper checks its condition again after every wake.
//!
//! The host bell has one more word: `spinners`, host threads that take
//! responses themselves while they spin. While it is non-zero the worker
//! does not ring. The worker reads it with an RMW after publishing (see
//! [`someone_spins`]), and a spinner that stops takes one last look at the
//! counter after its decrement: if the worker saw it still spinning, the
//! decrement read the worker's RMW and synchronized with it, so the last
//! look sees the response. A response published while the last spinner
//! left is never left to a reactor that sleeps. (The RMW is on the
//! worker's side because the spinner's side runs once per wait, on the
//! line the worker is writing; there an RMW cost a cache-line fight per
//! call.)

use std::sync::atomic::Ordering;

use super::{futex, shm::Bell};

/// The atomic operations the protocol uses.
pub(crate) trait Word<T: Copy> {
    fn load(&self, order: Ordering) -> T;
    fn store(&self, value: T, order: Ordering);
    fn swap(&self, value: T, order: Ordering) -> T;
    fn fetch_add(&self, value: T, order: Ordering) -> T;
    fn fetch_sub(&self, value: T, order: Ordering) -> T;
}

macro_rules! word {
    ($atomic:ty, $t:ty) => {
        impl Word<$t> for $atomic {
            #[inline]
            fn load(&self, order: Ordering) -> $t {
                <$atomic>::load(self, order)
            }
            #[inline]
            fn store(&self, value: $t, order: Ordering) {
                <$atomic>::store(self, value, order)
            }
            #[inline]
            fn swap(&self, value: $t, order: Ordering) -> $t {
                <$atomic>::swap(self, value, order)
            }
            #[inline]
            fn fetch_add(&self, value: $t, order: Ordering) -> $t {
                <$atomic>::fetch_add(self, value, order)
            }
            #[inline]
            fn fetch_sub(&self, value: $t, order: Ordering) -> $t {
                <$atomic>::fetch_sub(self, value, order)
            }
        }
    };
}

word!(std::sync::atomic::AtomicU32, u32);
word!(std::sync::atomic::AtomicU64, u64);
#[cfg(knitting_loom)]
word!(::loom::sync::atomic::AtomicU32, u32);
#[cfg(knitting_loom)]
word!(::loom::sync::atomic::AtomicU64, u64);

/// Publishes a counter value: an RMW (see the module docs), which is also
/// the Release that publishes what was written before it.
#[inline]
pub(crate) fn publish<C: Word<u64>>(counter: &C, value: u64) {
    // SYNC POINT: AcqRel RMW: Release for the data before it; the RMW
    // pairs with the sleeper's RMW read in `read_counter`.
    counter.swap(value, Ordering::AcqRel);
}

/// Reads a counter the way a sleeper must before it sleeps: with an RMW
/// that changes nothing.
#[inline]
pub(crate) fn read_counter<C: Word<u64>>(counter: &C) -> u64 {
    // AcqRel RMW: pairs with `publish` (see the module docs).
    counter.fetch_add(0, Ordering::AcqRel)
}

/// After a `publish`: rings if the sleeper sleeps, clearing its flag.
/// Returns true when the caller must wake futex waiters on `word`.
#[inline]
pub(crate) fn should_ring<W: Word<u32>>(word: &W, sleeping: &W) -> bool {
    // Acquire load first: the swap would take the line every call. Safe
    // to skip the swap on 0: see the module docs (the counter RMWs order
    // the sleeper's flag before this load when it matters).
    if sleeping.load(Ordering::Acquire) == 1 && sleeping.swap(0, Ordering::AcqRel) == 1 {
        // Release: a woken sleeper sees what was published before.
        word.fetch_add(1, Ordering::Release);
        true
    } else {
        false
    }
}

/// The sleeper's first half: raises the flag and looks again. Returns the
/// word value to wait on, or `None` (flag lowered) when `ready` already
/// holds. `ready` must read the publisher's counter with [`read_counter`].
#[inline]
pub(crate) fn arm<W: Word<u32>>(
    word: &W,
    sleeping: &W,
    ready: impl FnOnce() -> bool,
) -> Option<u32> {
    // Acquire: see what the ringer published before its bump.
    let seen = word.load(Ordering::Acquire);
    // AcqRel RMW: the flag, ahead of the counter RMW in `ready`.
    sleeping.swap(1, Ordering::AcqRel);
    if ready() {
        sleeping.store(0, Ordering::Relaxed);
        None
    } else {
        Some(seen)
    }
}

/// The sleeper's second half, after its futex wait returned.
#[inline]
pub(crate) fn disarm<W: Word<u32>>(sleeping: &W) {
    // Relaxed: the flag only steers ringers; a stale 1 costs a spare ring.
    sleeping.store(0, Ordering::Relaxed);
}

/// A host thread starts taking responses itself.
#[inline]
pub(crate) fn enter_spin<W: Word<u32>>(spinners: &W) {
    // AcqRel RMW: the worker skips ringing only after seeing this.
    spinners.fetch_add(1, Ordering::AcqRel);
}

/// A host thread stops spinning. The caller must then take one last look
/// at the counter (an Acquire load is enough, see the module docs).
#[inline]
pub(crate) fn leave_spin<W: Word<u32>>(spinners: &W) {
    // AcqRel RMW: acquires the worker's `someone_spins` RMW when it read
    // our registration, which orders its publication before our last look.
    spinners.fetch_sub(1, Ordering::AcqRel);
}

/// The worker, after publishing a response: may it skip ringing?
#[inline]
pub(crate) fn someone_spins<W: Word<u32>>(spinners: &W) -> bool {
    // AcqRel RMW read: releases the publication to a spinner whose
    // decrement comes next (see the module docs).
    spinners.fetch_add(0, Ordering::AcqRel) != 0
}

/// Rings a bell of the shared mapping if its sleeper sleeps.
pub(crate) fn ring_if_sleeping(bell: &Bell) {
    if should_ring(&bell.word, &bell.sleeping) {
        futex::wake_all(&bell.word);
    }
}

/// Rings a bell of the shared mapping whether or not its sleeper sleeps
/// (start-up, shutdown, a dead worker): the bump alone makes a sleeper that
/// is about to wait return.
pub(crate) fn ring(bell: &Bell) {
    // Release: a woken sleeper sees what was written before the bump.
    bell.word.fetch_add(1, Ordering::Release);
    futex::wake_all(&bell.word);
}

#[cfg(all(test, knitting_loom))]
mod loom;
