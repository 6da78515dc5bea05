//! The memory of call cells, recycled per thread.
//!
//! Every call allocates one cell and frees it when the last reference goes.
//! A burst of calls keeps many cells alive at once, more than the system
//! allocator's per-thread cache holds (glibc's keeps 7 chunks per size),
//! so without recycling most cells of a burst take the allocator's slow
//! paths; measured with callgrind, that was about 45 % of the instructions
//! of a call in a batch of 100. Here each thread keeps the cells it frees,
//! up to [`KEPT_BYTES`], and its next calls take them back.
//!
//! A cell's memory is a block of one size class (a power of two from 64
//! bytes to 1 KiB), aligned to 64 bytes, so that any kept block of a class
//! fits any cell of that class, and two cells never share a cache line
//! (the caller writes one call's cell while a worker writes the previous
//! one's). Cells larger than the largest class, or more aligned than a
//! line, come straight from the allocator.
//!
//! A block freed on another thread than the one that allocated it is kept
//! by the thread that frees it: blocks are plain allocations of the global
//! allocator, which any thread may free, and a thread frees what it keeps
//! when it exits.

use std::{
    alloc::{self, Layout},
    cell::RefCell,
    ptr::NonNull,
};

/// The alignment of every kept block: a cache line.
const ALIGN: usize = 64;
/// The smallest class; the classes are `MIN << i` for `i < CLASSES`.
const MIN: usize = 64;
const CLASSES: usize = 5;
/// The bytes one thread keeps, at most.
pub(crate) const KEPT_BYTES: usize = 256 << 10;

/// The blocks a thread keeps, by class.
struct Kept {
    free: [Vec<NonNull<u8>>; CLASSES],
    bytes: usize,
}

impl Drop for Kept {
    fn drop(&mut self) {
        for (class, blocks) in self.free.iter_mut().enumerate() {
            for block in blocks.drain(..) {
                // SAFETY: every kept block was allocated with its class's
                // layout (`alloc` below) and is in use by nobody.
                unsafe { alloc::dealloc(block.as_ptr(), LAYOUTS[class]) };
            }
        }
    }
}

thread_local! {
    static KEPT: RefCell<Kept> = const {
        RefCell::new(Kept {
            free: [const { Vec::new() }; CLASSES],
            bytes: 0,
        })
    };
}

/// The class of a cell of `layout`, if cells of that layout are kept.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN || layout.size() > MIN << (CLASSES - 1) {
        return None;
    }
    let size = layout.size().max(MIN).next_power_of_two();
    Some((size / MIN).trailing_zeros() as usize)
}

/// The layout of every block of each class.
const LAYOUTS: [Layout; CLASSES] = {
    let mut layouts = [Layout::new::<u8>(); CLASSES];
    let mut class = 0;
    while class < CLASSES {
        layouts[class] = match Layout::from_size_align(MIN << class, ALIGN) {
            Ok(layout) => layout,
            Err(_) => panic!("a power of two from 64 to 1024, aligned to 64"),
        };
        class += 1;
    }
    layouts
};

/// Memory for a cell of `layout` (non-zero size): a kept block of its
/// class, else a new allocation. Aborts when the allocator fails, as `Box`
/// does.
#[inline]
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    let Some(class) = class_of(layout) else {
        return fresh(layout);
    };
    let reused = KEPT.try_with(|kept| {
        let mut kept = kept.borrow_mut();
        let block = kept.free[class].pop()?;
        kept.bytes -= LAYOUTS[class].size();
        Some(block)
    });
    reused
        .ok()
        .flatten()
        .unwrap_or_else(|| fresh(LAYOUTS[class]))
}

/// A new allocation of `layout` (non-zero size).
fn fresh(layout: Layout) -> NonNull<u8> {
    // SAFETY: cells are never zero-sized (a header is always there).
    let ptr = unsafe { alloc::alloc(layout) };
    NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

/// Gives back the memory of a cell of `layout`: kept for this thread's
/// next calls, or freed.
///
/// # Safety
///
/// `ptr` came from [`alloc`] with the same `layout`, and nothing uses the
/// memory any more (the cell was dropped in place).
#[inline]
pub(crate) unsafe fn free(ptr: NonNull<u8>, layout: Layout) {
    let Some(class) = class_of(layout) else {
        // SAFETY: `alloc` allocated it with this very layout (no class).
        unsafe { alloc::dealloc(ptr.as_ptr(), layout) };
        return;
    };
    let block = LAYOUTS[class];
    let kept = KEPT
        .try_with(|kept| {
            let mut kept = kept.borrow_mut();
            if kept.bytes + block.size() > KEPT_BYTES {
                return false;
            }
            kept.bytes += block.size();
            kept.free[class].push(ptr);
            true
        })
        // The thread is exiting and its store is gone: free it.
        .unwrap_or(false);
    if !kept {
        // SAFETY: `alloc` allocated it with its class's layout.
        unsafe { alloc::dealloc(ptr.as_ptr(), block) };
    }
}

/// Blocks this thread keeps, in bytes (for tests).
#[cfg(test)]
pub(crate) fn kept_bytes() -> usize {
    KEPT.with(|kept| kept.borrow().bytes)
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_small_cell_and_nothing_else() {
        assert_eq!(class_of(Layout::from_size_align(1, 1).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(64, 8).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(65, 8).unwrap()), Some(1));
        assert_eq!(
            class_of(Layout::from_size_align(1024, 64).unwrap()),
            Some(4)
        );
        assert_eq!(class_of(Layout::from_size_align(1025, 8).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(64, 128).unwrap()), None);
    }

    #[test]
    fn a_freed_block_is_taken_again_and_the_store_is_bounded() {
        let layout = Layout::from_size_align(200, 8).unwrap();
        let before = kept_bytes();
        let a = alloc(layout);
        assert_eq!(a.as_ptr().addr() % ALIGN, 0, "blocks start a cache line");
        // SAFETY: from `alloc` with `layout`, unused.
        unsafe { free(a, layout) };
        assert_eq!(kept_bytes(), before + 256);
        let b = alloc(layout);
        assert_eq!(a, b, "the kept block comes back");
        assert_eq!(kept_bytes(), before);

        // Far more than the store keeps: it stops at its bound.
        let blocks: Vec<_> = (0..2 * KEPT_BYTES / 256).map(|_| alloc(layout)).collect();
        for block in blocks {
            // SAFETY: as above.
            unsafe { free(block, layout) };
        }
        assert!(kept_bytes() <= KEPT_BYTES);
        assert!(kept_bytes() > KEPT_BYTES - 256);
        // SAFETY: as above.
        unsafe { free(b, layout) };
    }

    #[test]
    fn large_cells_bypass_the_store() {
        let layout = Layout::from_size_align(4096, 8).unwrap();
        let before = kept_bytes();
        let a = alloc(layout);
        // SAFETY: from `alloc` with `layout`, unused.
        unsafe { free(a, layout) };
        assert_eq!(kept_bytes(), before);
    }
}
