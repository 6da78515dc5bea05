//! Recycling of large buffer allocations: a freed [`Buffer`](super::Buffer)
//! of 4 KiB or more goes back to a process-wide store, and the next buffer
//! of that size class takes it, with its pages already mapped. A round trip
//! of a large payload then allocates nothing and takes no page faults.
//!
//! Sizes are powers of two from [`MIN`] to [`MAX`] bytes, per alignment;
//! the store keeps at most [`KEPT`] bytes and frees the rest.

use std::{alloc::Layout, ptr::NonNull, sync::Mutex};

/// The smallest allocation worth keeping: below it `malloc` is cheap.
pub(crate) const MIN: usize = 4 << 10;
/// The largest allocation kept.
pub(crate) const MAX: usize = 64 << 20;
/// Freed bytes kept for reuse, at most.
pub(crate) const KEPT: usize = 64 << 20;

/// Size classes: `MIN << i` for `i < CLASSES`.
const CLASSES: usize = (MAX / MIN).trailing_zeros() as usize + 1;
/// Alignments kept: `1 << a` for `a < ALIGNS` (1 to 16 bytes).
const ALIGNS: usize = 5;

/// One kept allocation: `Layout::from_size_align(class, align)`, its bytes
/// not in use by anyone.
struct Block(NonNull<u8>);

// SAFETY: a kept block is plain memory nobody references; the store hands
// it to one owner at a time, under the lock.
unsafe impl Send for Block {}

struct Store {
    free: Vec<Vec<Block>>,
    bytes: usize,
}

static STORE: Mutex<Store> = Mutex::new(Store {
    free: Vec::new(),
    bytes: 0,
});

/// The size class of an allocation of `bytes` bytes, and its slot in the
/// store for alignment `align`: `None` when allocations of that size or
/// alignment are not kept.
pub(crate) fn class_of(bytes: usize, align: usize) -> Option<(usize, usize)> {
    if !(MIN..=MAX).contains(&bytes) || !align.is_power_of_two() {
        return None;
    }
    let a = align.trailing_zeros() as usize;
    if a >= ALIGNS {
        return None;
    }
    let class = bytes.next_power_of_two();
    let c = (class / MIN).trailing_zeros() as usize;
    Some((class, a * CLASSES + c))
}

/// A kept allocation for `slot` (see [`class_of`]), if there is one.
pub(crate) fn take(slot: usize, class: usize) -> Option<NonNull<u8>> {
    let mut store = STORE.lock().unwrap_or_else(|e| e.into_inner());
    let block = store.free.get_mut(slot)?.pop()?;
    store.bytes -= class;
    Some(block.0)
}

/// Keeps the allocation `ptr` of layout `(class, align)` for reuse, or frees it
/// when the store is full.
///
/// # Safety
///
/// `ptr` was allocated by the global allocator with exactly the layout
/// `(class, align)`, `(class, slot)` is what [`class_of`] gave for that layout,
/// and the caller gives up all use of it.
pub(crate) unsafe fn give(ptr: NonNull<u8>, class: usize, align: usize, slot: usize) {
    let mut store = STORE.lock().unwrap_or_else(|e| e.into_inner());
    if store.bytes + class <= KEPT {
        if store.free.is_empty() {
            store.free.resize_with(ALIGNS * CLASSES, Vec::new);
        }
        store.free[slot].push(Block(ptr));
        store.bytes += class;
        return;
    }
    drop(store);
    // SAFETY: allocated by the global allocator with this layout (contract).
    unsafe {
        std::alloc::dealloc(
            ptr.as_ptr(),
            Layout::from_size_align_unchecked(class, align),
        )
    }
}

/// Bytes kept right now (for tests).
#[cfg(test)]
pub(crate) fn kept() -> usize {
    STORE.lock().unwrap_or_else(|e| e.into_inner()).bytes
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use super::*;

    #[test]
    fn classes_are_powers_of_two_within_bounds() {
        assert_eq!(class_of(MIN - 1, 1), None);
        assert_eq!(class_of(MAX + 1, 1), None);
        assert_eq!(class_of(MIN, 32), None);
        assert_eq!(class_of(MIN, 3), None);
        assert_eq!(class_of(MIN, 1), Some((MIN, 0)));
        assert_eq!(class_of(MIN + 1, 1), Some((2 * MIN, 1)));
        assert_eq!(class_of(MAX, 1).unwrap().0, MAX);
        let (_, last) = class_of(MAX, 16).unwrap();
        assert_eq!(last, ALIGNS * CLASSES - 1);
        assert_ne!(class_of(MIN, 8).unwrap().1, class_of(MIN, 1).unwrap().1);
    }
}
