//! The memory behind a `SharedBuffer`: on Linux a sealed memfd mapped
//! shared (so that a worker process can map the same pages), elsewhere
//! zeroed heap memory (thread pools only: there are no process workers).
//!
//! This module only makes, maps and unmaps the memory; how it is read and
//! written (atomically, never through `&[u8]`) is the payload layer's.

/// The alignment of every `Memory`'s first byte (a page: mmap gives at
/// least this; the heap fallback asks for it).
pub(crate) const ALIGN: usize = 4096;

/// `len` bytes of memory that may be shared with other processes, zeroed
/// when created, fixed in size for its whole life.
#[derive(Debug)]
pub(crate) struct Memory {
    /// The first byte: `ALIGN`-aligned, or dangling (and aligned) when
    /// `len` is 0.
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    /// The memory object (Linux): sealed against shrinking and growing.
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
}

// SAFETY: `Memory` owns a mapping (or allocation) that stays valid until
// it is dropped; it hands out only a raw pointer, whose users must treat
// the bytes as shared (the payload layer reaches them through atomics).
unsafe impl Send for Memory {}
// SAFETY: as above; `&Memory` gives only the pointer and the length.
unsafe impl Sync for Memory {}

impl Memory {
    /// The first byte (`ALIGN`-aligned; dangling when `len` is 0). Valid
    /// for reads and writes of `len` bytes while `self` lives, by any
    /// number of threads and processes at once.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A dangling, `ALIGN`-aligned pointer for an empty memory.
    fn dangling() -> std::ptr::NonNull<u8> {
        // `ALIGN` is not zero, so neither is the address.
        std::ptr::NonNull::new(std::ptr::without_provenance_mut(ALIGN)).expect("ALIGN is not zero")
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::{
        io,
        os::fd::{BorrowedFd, OwnedFd},
        ptr::NonNull,
    };

    use rustix::{
        fs::{MemfdFlags, SealFlags},
        mm::{MapFlags, ProtFlags},
    };

    use super::Memory;

    /// The seals every shared buffer's object carries: its size is fixed,
    /// so no process that holds it can make another's mapping point past
    /// the end of the object (which would raise `SIGBUS` on access).
    const SEALS: SealFlags = SealFlags::SHRINK
        .union(SealFlags::GROW)
        .union(SealFlags::SEAL);

    impl Memory {
        /// A fresh memfd of `len` zero bytes, sealed, mapped shared.
        pub(crate) fn create(len: usize) -> io::Result<Self> {
            let size = u64::try_from(len).map_err(|_| io::Error::other("size over u64"))?;
            let fd = rustix::fs::memfd_create(
                "knitting-shared",
                MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
            )?;
            rustix::fs::ftruncate(&fd, size)?;
            rustix::fs::fcntl_add_seals(&fd, SEALS)?;
            Self::map(fd, len)
        }

        /// Maps a memory object another process made (a worker, given one
        /// by the host): its whole size, after checking that it is sealed
        /// against shrinking and growing (a host that could shrink it would
        /// make this process's accesses fault).
        pub(crate) fn open(fd: OwnedFd) -> io::Result<Self> {
            let seals = rustix::fs::fcntl_get_seals(&fd)?;
            if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) {
                return Err(io::Error::other(
                    "the memory object is not sealed against shrinking and growing",
                ));
            }
            let stat = rustix::fs::fstat(&fd)?;
            let len = usize::try_from(stat.st_size)
                .map_err(|_| io::Error::other("the memory object's size is not a usize"))?;
            Self::map(fd, len)
        }

        fn map(fd: OwnedFd, len: usize) -> io::Result<Self> {
            if len == 0 {
                // mmap refuses empty mappings; nothing to map.
                let ptr = Self::dangling();
                return Ok(Self { ptr, len, fd });
            }
            // SAFETY: a fresh shared mapping of `len` bytes of an object of
            // exactly that size, sealed so that it cannot shrink; no
            // existing memory is affected.
            let ptr = unsafe {
                rustix::mm::mmap(
                    std::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED,
                    &fd,
                    0,
                )
            }?;
            let ptr = NonNull::new(ptr.cast::<u8>())
                .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
            Ok(Self { ptr, len, fd })
        }

        /// The memory object, to hand to another process.
        pub(crate) fn fd(&self) -> BorrowedFd<'_> {
            use std::os::fd::AsFd;
            self.fd.as_fd()
        }
    }

    impl Drop for Memory {
        fn drop(&mut self) {
            if self.len > 0 {
                // SAFETY: `ptr..ptr+len` is the mapping `map` made, and no
                // reference into it outlives `self` (the payload layer's
                // borrows are tied to the handle that owns this).
                let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::{alloc::Layout, io, ptr::NonNull};

    use super::{Memory, ALIGN};

    impl Memory {
        /// `len` zeroed bytes of this process's heap.
        pub(crate) fn create(len: usize) -> io::Result<Self> {
            if len == 0 {
                return Ok(Self {
                    ptr: Self::dangling(),
                    len,
                });
            }
            let layout = Layout::from_size_align(len, ALIGN)
                .map_err(|_| io::Error::other("size over isize::MAX"))?;
            // SAFETY: `layout` has a non-zero size (`len > 0`).
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            let ptr =
                NonNull::new(ptr).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
            Ok(Self { ptr, len })
        }
    }

    impl Drop for Memory {
        fn drop(&mut self) {
            if self.len > 0 {
                let layout = Layout::from_size_align(self.len, ALIGN).expect("checked in create");
                // SAFETY: allocated by `create` with this very layout, and
                // no reference into it outlives `self`.
                unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
            }
        }
    }
}
