//! The bounded lock-free ring every lane queue is built on.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue ("Bounded MPMC
//! queue", 1024cores.net), the same one behind crossbeam's `ArrayQueue`:
//! every slot carries a *stamp* that says whose turn the slot is, so
//! producers and consumers only contend on the `head`/`tail` counters and
//! never on each other's slots.
//!
//! ## Memory ordering
//!
//! The slot stamp is the only synchronization edge for the slot's value.
//! A producer writes the value, then publishes it with a `Release` store of
//! the stamp; a consumer `Acquire`-loads the stamp before reading the value.
//! The same pair, mirrored, hands the empty slot back to producers. The
//! `head`/`tail` counters only allocate positions, so they use `Relaxed`
//! compare-exchange: ownership of a position never implies anything about
//! the slot's contents until the stamp says so.

use std::mem::MaybeUninit;

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

/// Pads and aligns a value to its own cache-line pair, so that the producer
/// and consumer counters do not false-share (128 bytes covers the adjacent
/// line prefetcher of current x86 and the 128-byte lines of Apple silicon).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

struct Slot<T> {
    /// # State table
    ///
    /// For a slot at index `i` and a position `pos` with `pos % cap == i`:
    ///
    /// | stamp       | meaning                                 | who may touch `value` |
    /// |-------------|-----------------------------------------|-----------------------|
    /// | `pos`       | empty, waiting for the producer of `pos` | the producer that won `tail == pos` |
    /// | `pos + 1`   | full, holding the item of `pos`          | the consumer that won `head == pos` |
    /// | `pos + cap` | empty again, for the next lap            | the producer of `pos + cap` |
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded multi-producer multi-consumer FIFO ring.
pub(crate) struct Ring<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    mask: usize,
}

// SAFETY: values of `T` are moved in by one thread and out by another; the
// stamp protocol gives each slot exactly one owner at a time, so sharing the
// ring only requires `T: Send`.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above: `&Ring` only hands out owned `T`s, one owner per slot.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// Creates a ring holding at least `capacity` items (rounded up to a
    /// power of two so that positions map to slots with a mask).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let cap = capacity.max(2).next_power_of_two();
        let slots = (0..cap)
            .map(|i| Slot {
                stamp: AtomicUsize::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Self {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            slots,
            mask: cap - 1,
        }
    }

    /// Number of slots.
    pub(crate) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Appends `value`, or hands it back when the ring is full.
    #[inline]
    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        let mut pos = self.tail.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            // SYNC POINT: pairs with the consumer's Release store of
            // `pos + cap`: the previous lap's value has been moved out.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == pos {
                // Relaxed: winning the position is all this CAS decides; the
                // slot itself is published by the stamp store below.
                match self.tail.0.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        slot.value.with_mut(|cell| {
                            // SAFETY: stamp == pos and we won `tail == pos`:
                            // the slot is ours alone until we bump the stamp.
                            unsafe { (*cell).write(value) };
                        });
                        // SYNC POINT: publishes the value to the consumer of `pos`.
                        slot.stamp.store(pos.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => pos = current,
                }
            } else if (stamp.wrapping_sub(pos) as isize) < 0 {
                // The slot still holds the item of the previous lap: full,
                // unless a consumer moved `head` meanwhile.
                let head = self.head.0.load(Ordering::Relaxed);
                if head.wrapping_add(self.capacity()) == pos {
                    return Err(value);
                }
                pos = self.tail.0.load(Ordering::Relaxed);
            } else {
                // Another producer took `pos`; catch up.
                pos = self.tail.0.load(Ordering::Relaxed);
            }
            crate::sync::spin_loop();
        }
    }

    /// Removes the oldest item, if any.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        let mut pos = self.head.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            // SYNC POINT: pairs with the producer's Release store of
            // `pos + 1`: the value written for `pos` is visible.
            let stamp = slot.stamp.load(Ordering::Acquire);
            let full = pos.wrapping_add(1);
            if stamp == full {
                // Relaxed: see `push`.
                match self.head.0.compare_exchange_weak(
                    pos,
                    full,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let value = slot.value.with(|cell| {
                            // SAFETY: stamp == pos + 1 and we won
                            // `head == pos`: the slot is full and ours alone.
                            unsafe { (*cell).assume_init_read() }
                        });
                        // SYNC POINT: hands the emptied slot to the producer
                        // of the next lap.
                        slot.stamp
                            .store(pos.wrapping_add(self.capacity()), Ordering::Release);
                        return Some(value);
                    }
                    Err(current) => pos = current,
                }
            } else if stamp == pos {
                // Empty, unless a producer moved `tail` meanwhile.
                let tail = self.tail.0.load(Ordering::Relaxed);
                if tail == pos {
                    return None;
                }
                pos = self.head.0.load(Ordering::Relaxed);
            } else {
                pos = self.head.0.load(Ordering::Relaxed);
            }
            crate::sync::spin_loop();
        }
    }

    /// Items in the ring (a racy snapshot).
    pub(crate) fn len(&self) -> usize {
        let tail = self.tail.0.load(Ordering::Relaxed);
        let head = self.head.0.load(Ordering::Relaxed);
        tail.wrapping_sub(head).min(self.capacity())
    }

    /// True when no item is visible. Racy by nature: use it as a hint.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Relaxed);
        head == tail
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity())
            .field("head", &self.head.0.load(Ordering::Relaxed))
            .field("tail", &self.tail.0.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use std::{collections::VecDeque, sync::Arc};

    use super::*;

    #[test]
    fn fifo_against_a_vecdeque() {
        let ring = Ring::with_capacity(4);
        let mut model = VecDeque::new();
        let mut next = 0u32;
        // A fixed pseudo-random walk of pushes and pops.
        let mut x = 0x9e37_79b9u32;
        for _ in 0..if cfg!(miri) { 200 } else { 10_000 } {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if !x.is_multiple_of(3) {
                let pushed = ring.push(next);
                if model.len() < 4 {
                    assert_eq!(pushed, Ok(()));
                    model.push_back(next);
                } else {
                    assert_eq!(pushed, Err(next));
                }
                next += 1;
            } else {
                assert_eq!(ring.pop(), model.pop_front());
            }
            assert_eq!(ring.is_empty(), model.is_empty());
        }
    }

    #[test]
    fn drops_what_is_left() {
        let marker = Arc::new(());
        let ring = Ring::with_capacity(8);
        for _ in 0..5 {
            ring.push(Arc::clone(&marker)).unwrap();
        }
        drop(ring.pop());
        assert_eq!(Arc::strong_count(&marker), 5);
        drop(ring);
        assert_eq!(Arc::strong_count(&marker), 1);
    }

    #[test]
    fn many_producers_one_consumer_lose_nothing() {
        let per_producer = if cfg!(miri) { 50 } else { 20_000 };
        let ring = Arc::new(Ring::with_capacity(64));
        let producers: Vec<_> = (0..3u64)
            .map(|p| {
                let ring = Arc::clone(&ring);
                std::thread::spawn(move || {
                    for i in 0..per_producer {
                        let mut v = (p << 32) | i;
                        while let Err(back) = ring.push(v) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut last = [None::<u64>; 3];
        let mut seen = 0;
        while seen < 3 * per_producer {
            if let Some(v) = ring.pop() {
                let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                // Per-producer FIFO order holds.
                assert!(last[p].is_none_or(|prev| prev < i));
                last[p] = Some(i);
                seen += 1;
            } else {
                std::thread::yield_now();
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert!(ring.pop().is_none());
    }
}
