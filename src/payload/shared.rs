//! [`SharedBuffer`]: memory that the host and its workers read and write at
//! once, threads and processes alike; only a descriptor crosses to a
//! worker process, never the bytes.

pub(crate) mod region;

use std::sync::{
    atomic::{
        AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64,
        AtomicU8, AtomicUsize, Ordering,
    },
    Arc,
};

use self::region::Region;
use crate::{sys::shared::Memory, Error};

/// Memory shared by the host and its workers, readable and writable from
/// every side at once: the same pages in a worker thread, and in a worker
/// process too, where only a descriptor crosses, never the bytes (the
/// original library's `ProcessSharedBuffer`).
///
/// Make one with [`new`](Self::new), pass it (or a [`slice`](Self::slice)
/// of it, or a struct holding it) as a task's argument, and both sides see
/// every write the other makes. Cloning is cheap and shares the memory;
/// the memory lives until its last handle, in every process, is gone.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use knitting::SharedBuffer;
///
/// #[knitting::task]
/// fn load(shared: SharedBuffer) -> u32 {
///     shared.view::<AtomicU32>().unwrap()[0].load(Ordering::Acquire)
/// }
///
/// fn main() -> Result<(), knitting::Error> {
///     knitting::init();
///     let shared = SharedBuffer::new(64)?;
///     shared.view::<AtomicU32>()?[0].store(42, Ordering::Release);
///     let pool = knitting::Pool::builder().processes(1).build()?;
///     assert_eq!(pool.call(load, shared.clone()).wait()?, 42);
///     Ok(())
/// }
/// ```
///
/// # Reading and writing
///
/// Another thread or process may write any byte at any moment, so there
/// is no `&[u8]` or `&mut [u8]` to the memory. Instead:
///
/// - [`view`](Self::view) gives the buffer as a slice of atomics
///   (`&[AtomicU32]`, `&[AtomicU64]`, …: the [`SharedAtomic`] types), for
///   flags, counters and anything two sides update together;
/// - [`write`](Self::write), [`read`](Self::read) and
///   [`to_vec`](Self::to_vec) copy bytes in and out. They are relaxed
///   atomic copies (a word at a time): a copy that races with a write may
///   see some of its words and not others, and it orders nothing. Publish
///   bytes with a flag: write them, then store the flag with
///   `Ordering::Release`; the reader loads the flag with
///   `Ordering::Acquire`, then reads them.
///
/// One caveat of the memory model: Rust (like C++) does not define what
/// racing atomic accesses of *different sizes* to the same bytes do (an
/// `AtomicU32` store racing an `AtomicU64` load of the same word, or a
/// copy, whose words are 8 bytes, racing a 4-byte view). The hardware of
/// every target treats them as the plain loads and stores they are, and
/// another process is beyond the model anyway, but tools such as Miri
/// report them: give each range that two sides touch at once one width.
///
/// Sizes and offsets are checked: a range past the end, or a view whose
/// start or length does not suit its atomics, is an
/// [`OutOfBounds`](crate::ErrorKind::OutOfBounds) error that names them.
///
/// # Across processes
///
/// On Linux the memory is a memfd of the size given to [`new`](Self::new),
/// mapped shared, and sealed (`F_SEAL_SHRINK | F_SEAL_GROW`) before anyone
/// else sees it: no process holding it (a misbehaving worker included) can
/// shrink or grow it, so nobody's mapping ever points past its end. A call
/// on a process pool sends the descriptors of the buffers in its arguments
/// over a socket that each worker inherits (its file descriptor 0), just
/// before the request; a worker maps each buffer once, and keeps the
/// mapping for as long as the host holds a handle, so sending the same
/// buffer again costs nothing more than a plain call (sending a buffer to
/// a worker for the first time costs tens of microseconds: the descriptor,
/// the mapping, the page faults). A worker holds one descriptor and one
/// mapping per buffer it was sent; it lets go of a buffer the host no
/// longer holds when the host next sends it a new one. This works behind a
/// [`command_prefix`](crate::ProcessPoolBuilder::command_prefix) that
/// keeps fd 0 (bwrap, `env`, systemd-run).
///
/// A worker may return a buffer (or a slice of it) that the host sent in
/// the same call; anything else it returns fails the call with a
/// [`Codec`](crate::ErrorKind::Codec) error. With
/// [`named_shared_memory`](crate::ProcessPoolBuilder::named_shared_memory),
/// where a worker has no such socket, a call carrying a buffer fails with
/// [`Unsupported`](crate::ErrorKind::Unsupported), before it is sent.
///
/// Off Linux there are no process pools, and the memory is plain zeroed
/// heap memory that thread pools share (a thread pool moves the handle:
/// the worker thread gets the very same memory, on every platform).
///
/// A `SharedBuffer` serializes (serde) only as part of a call on a process
/// pool; elsewhere (serde_json, say) serializing one is an error.
#[derive(Clone)]
pub struct SharedBuffer {
    region: Arc<Region>,
    /// This handle's range in the region: `offset + len <= region size`.
    offset: usize,
    len: usize,
}

mod sealed {
    pub trait Sealed {}
}

/// An atomic integer type that a [`SharedBuffer`] can be viewed as (see
/// [`SharedBuffer::view`]): the std atomics `AtomicU8` … `AtomicU64`,
/// `AtomicI8` … `AtomicI64`, `AtomicUsize` and `AtomicIsize`.
///
/// Sealed: every bit pattern must be a valid value, so `AtomicBool` is
/// not one (view as `AtomicU8` instead).
pub trait SharedAtomic: sealed::Sealed + Sync + Send + 'static {}

macro_rules! shared_atomic {
    ($($ty:ty),*) => {$(
        impl sealed::Sealed for $ty {}
        impl SharedAtomic for $ty {}
    )*};
}

shared_atomic!(
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize
);

impl SharedBuffer {
    /// A buffer of `len` zero bytes, sized for good (it never grows or
    /// shrinks).
    ///
    /// # Errors
    ///
    /// [`Build`](crate::ErrorKind::Build) when the system refuses the
    /// memory (out of memory or of file descriptors, `len` over what a
    /// mapping can hold).
    ///
    /// ```
    /// let shared = knitting::SharedBuffer::new(4096)?;
    /// assert_eq!(shared.len(), 4096);
    /// assert_eq!(shared.to_vec(), vec![0; 4096]);
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn new(len: usize) -> Result<Self, Error> {
        let memory = Memory::create(len).map_err(|e| {
            Error::build(format!(
                "could not make a shared buffer of {len} bytes: {e}"
            ))
        })?;
        Ok(Self {
            region: Arc::new(Region::new(memory)),
            offset: 0,
            len,
        })
    }

    /// The buffer's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `len` bytes at `offset` of this buffer, as a buffer of their own
    /// (the same memory: writes through either show in both). Offsets
    /// compose: a slice of a slice is relative to the slice.
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`](crate::ErrorKind::OutOfBounds) when the range does
    /// not lie in this buffer.
    ///
    /// ```
    /// let whole = knitting::SharedBuffer::new(16)?;
    /// let tail = whole.slice(8, 8)?;
    /// tail.write(0, b"knit")?;
    /// assert_eq!(&whole.to_vec()[8..12], b"knit");
    /// assert!(whole.slice(8, 9).is_err());
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn slice(&self, offset: usize, len: usize) -> Result<SharedBuffer, Error> {
        let start = self.range(offset, len, "a slice")?;
        Ok(Self {
            region: Arc::clone(&self.region),
            offset: start,
            len,
        })
    }

    /// Copies `bytes` into the buffer at `offset` (relaxed atomic copies,
    /// see [Reading and writing](Self#reading-and-writing)).
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`](crate::ErrorKind::OutOfBounds) when
    /// `offset + bytes.len()` is past the end; nothing is written then.
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), Error> {
        let start = self.range(offset, bytes.len(), "a write")?;
        copy::write(self.atoms(start, bytes.len()), bytes);
        Ok(())
    }

    /// Copies `out.len()` bytes at `offset` of the buffer into `out`
    /// (relaxed atomic copies, see
    /// [Reading and writing](Self#reading-and-writing)).
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`](crate::ErrorKind::OutOfBounds) when
    /// `offset + out.len()` is past the end; `out` is left alone then.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), Error> {
        let start = self.range(offset, out.len(), "a read")?;
        copy::read(self.atoms(start, out.len()), out);
        Ok(())
    }

    /// A copy of the whole buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.len];
        copy::read(self.atoms(self.offset, self.len), &mut out);
        out
    }

    /// The buffer as a slice of atomics `A` (`AtomicU32`, `AtomicU64`, …),
    /// `len() / size_of::<A>()` of them.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// let shared = knitting::SharedBuffer::new(64)?;
    /// let words = shared.view::<AtomicU64>()?;
    /// assert_eq!(words.len(), 8);
    /// words[7].fetch_add(5, Ordering::Relaxed);
    /// assert_eq!(shared.slice(56, 8)?.view::<AtomicU64>()?[0].load(Ordering::Relaxed), 5);
    /// // A slice that starts off a word boundary has no word view:
    /// assert!(shared.slice(4, 8)?.view::<AtomicU64>().is_err());
    /// # Ok::<(), knitting::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`](crate::ErrorKind::OutOfBounds) when the buffer's
    /// start is not aligned for `A` (a [`slice`](Self::slice) at an odd
    /// offset), or its length is not a multiple of `A`'s size.
    pub fn view<A: SharedAtomic>(&self) -> Result<&[A], Error> {
        let (size, align) = (std::mem::size_of::<A>(), std::mem::align_of::<A>());
        check_view(self.offset, self.len, size, align).map_err(Error::out_of_bounds)?;
        let ptr = self.region.memory().ptr().wrapping_add(self.offset);
        // `offset..offset + len` lies in the memory (the handle's
        // invariant), which stays mapped while `self.region` lives (the
        // borrow of `self`); the start is aligned for `A` and the length a
        // multiple of its size (checked above; the memory's first byte is
        // page-aligned, so the address is aligned when the offset is); `A`
        // is an atomic integer (sealed), valid for every bit pattern and
        // made for shared mutation, so other threads and processes writing
        // the same bytes do not break the reference.
        // SAFETY: in bounds, mapped, aligned, and an atomic type (above).
        let view = unsafe { std::slice::from_raw_parts(ptr.cast::<A>(), self.len / size) };
        Ok(view)
    }

    /// `len` bytes at `start` (an absolute offset in the region) as atomic
    /// bytes; the caller has checked the range.
    fn atoms(&self, start: usize, len: usize) -> &[AtomicU8] {
        debug_assert!(start + len <= self.region.memory().len());
        let ptr = self.region.memory().ptr().wrapping_add(start);
        // SAFETY: in the memory (checked by the caller), mapped while
        // `self` lives; `AtomicU8` has the size and alignment of `u8` and
        // takes any bit pattern and any concurrent writer.
        unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU8>(), len) }
    }

    /// The absolute start of `offset..offset + len` of this buffer, if it
    /// lies in it.
    fn range(&self, offset: usize, len: usize, what: &str) -> Result<usize, Error> {
        check_range(self.offset, self.len, offset, len, what).map_err(Error::out_of_bounds)
    }
}

/// The absolute start of `offset..offset + len` of a buffer at `base` of
/// `size` bytes, or why it does not fit.
fn check_range(
    base: usize,
    size: usize,
    offset: usize,
    len: usize,
    what: &str,
) -> Result<usize, String> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(base + offset),
        _ => Err(format!(
            "{what} of {len} bytes at offset {offset} does not fit a shared buffer of {size} bytes"
        )),
    }
}

/// Whether a buffer at `offset` (from the page-aligned start of its
/// memory) of `len` bytes can be viewed as atomics of `size` and `align`.
fn check_view(offset: usize, len: usize, size: usize, align: usize) -> Result<(), String> {
    debug_assert!(align <= crate::sys::shared::ALIGN);
    if !offset.is_multiple_of(align) {
        return Err(format!(
            "a shared buffer at offset {offset} cannot be viewed as atomics of {size} bytes: \
             they need an offset that is a multiple of {align}"
        ));
    }
    if !len.is_multiple_of(size) {
        return Err(format!(
            "a shared buffer of {len} bytes (at offset {offset}) cannot be viewed as atomics of \
             {size} bytes: its length is not a multiple of {size}"
        ));
    }
    Ok(())
}

/// Relaxed atomic copies: bytes at the edges, aligned words between.
mod copy {
    use super::*;

    /// The word-aligned middle of `atoms`: how many bytes come before it,
    /// and its words.
    fn split(atoms: &[AtomicU8]) -> (usize, &[AtomicU64]) {
        let addr = atoms.as_ptr() as usize;
        let head = addr.wrapping_neg() % 8;
        if head >= atoms.len() {
            return (atoms.len(), &[]);
        }
        let words = (atoms.len() - head) / 8;
        // `head..head + 8 * words` lies in `atoms` and starts on an 8-byte
        // boundary; `AtomicU64` over bytes that are atomics already makes no
        // new claim (any bit pattern, any concurrent writer), and the borrow
        // is `atoms`'s.
        // SAFETY: in bounds, aligned, atomics over atomics (above).
        let words = unsafe {
            std::slice::from_raw_parts(atoms.as_ptr().add(head).cast::<AtomicU64>(), words)
        };
        (head, words)
    }

    pub(super) fn write(atoms: &[AtomicU8], bytes: &[u8]) {
        let (head, words) = split(atoms);
        // Relaxed: see "Reading and writing" on `SharedBuffer`: copies
        // order nothing; a flag with Release/Acquire does.
        for (a, &b) in atoms[..head].iter().zip(bytes) {
            a.store(b, Ordering::Relaxed);
        }
        let middle = bytes[head..].chunks_exact(8);
        for (w, chunk) in words.iter().zip(middle) {
            let word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
            w.store(word, Ordering::Relaxed);
        }
        let tail = head + words.len() * 8;
        for (a, &b) in atoms[tail..].iter().zip(&bytes[tail..]) {
            a.store(b, Ordering::Relaxed);
        }
    }

    pub(super) fn read(atoms: &[AtomicU8], out: &mut [u8]) {
        let (head, words) = split(atoms);
        // Relaxed: as in `write`.
        for (b, a) in out[..head].iter_mut().zip(atoms) {
            *b = a.load(Ordering::Relaxed);
        }
        let middle = out[head..].chunks_exact_mut(8);
        for (chunk, w) in middle.zip(words) {
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
        let tail = head + words.len() * 8;
        for (b, a) in out[tail..].iter_mut().zip(&atoms[tail..]) {
            *b = a.load(Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for SharedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBuffer")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("memory_len", &self.region.memory().len())
            .finish_non_exhaustive()
    }
}

impl serde::Serialize for SharedBuffer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        region::serialize(&self.region, self.offset, self.len, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for SharedBuffer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (region, offset, len) = region::deserialize(deserializer)?;
        Ok(Self {
            region,
            offset,
            len,
        })
    }
}

#[cfg(all(test, not(knitting_loom)))]
mod tests;
