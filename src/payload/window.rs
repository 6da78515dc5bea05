//! [`Window`]: a raw, writable byte range that an encoder fills.

use std::marker::PhantomData;

/// A raw, writable byte range (of a shared-memory arena, say), handed to
/// the encoder.
///
/// It borrows what it came from (`'a`): whoever makes one (see
/// [`from_raw`](Self::from_raw)) ties it to the owner of the memory, so
/// the borrow checker rejects any use after that memory is gone (for a
/// shared-memory arena: unmapped). That is what makes the safe
/// [`write`](Self::write) and [`put`](Self::put) sound.
///
/// Writes are raw copies, never references: another process may read or
/// write the same bytes at the same time, and a raw copy makes no claim
/// about what else touches them.
#[derive(Debug)]
pub(crate) struct Window<'a> {
    ptr: *mut u8,
    len: usize,
    _memory: PhantomData<&'a [u8]>,
}

impl<'a> Window<'a> {
    /// A window over `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// The `len` bytes at `ptr` stay allocated and writable for `'a`, and
    /// nothing holds a Rust reference to them meanwhile (other writers go
    /// through raw copies too).
    pub(crate) unsafe fn from_raw(ptr: *mut u8, len: usize) -> Self {
        Self {
            ptr,
            len,
            _memory: PhantomData,
        }
    }

    /// A window over a buffer of our own (a worker's outcome kept for
    /// later, tests of the encoders).
    pub(crate) fn of(buffer: &'a mut [u8]) -> Self {
        // SAFETY: the buffer is ours, writable and unaliased for `'a`.
        unsafe { Self::from_raw(buffer.as_mut_ptr(), buffer.len()) }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first byte, for raw copies out of the window.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// Copies `bytes` to `at`; the caller keeps `at + bytes.len() <= len`.
    pub(crate) fn write(&mut self, at: usize, bytes: &[u8]) {
        let end = at.checked_add(bytes.len());
        assert!(end.is_some_and(|end| end <= self.len), "window overrun");
        // SAFETY: in bounds (asserted); the range is writable for `'a`
        // (`from_raw`), and a raw copy makes no claim about other writers.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(at), bytes.len()) }
    }

    /// Copies the bytes at `at..at + out.len()` into `out`: a raw copy,
    /// right for bytes another process may be writing meanwhile (the copy
    /// may then be torn, never undefined).
    pub(crate) fn read(&self, at: usize, out: &mut [std::mem::MaybeUninit<u8>]) {
        let end = at.checked_add(out.len());
        assert!(end.is_some_and(|end| end <= self.len), "window overrun");
        // SAFETY: in bounds (asserted) of a range readable for `'a`; `out`
        // is ours, and any bytes are valid `MaybeUninit<u8>`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.add(at),
                out.as_mut_ptr().cast::<u8>(),
                out.len(),
            )
        }
    }

    /// Writes one byte at `at < len`.
    pub(crate) fn put(&mut self, at: usize, byte: u8) {
        assert!(at < self.len, "window overrun");
        // SAFETY: as for `write`.
        unsafe { self.ptr.add(at).write(byte) }
    }
}

/// A worker's response where it lies (in the response arena, which the
/// worker may still write), and room for a copy of it: the decoder copies
/// what it reads, once, and decodes only its copy.
#[derive(Debug)]
pub(crate) struct Response<'w, 's> {
    window: Window<'w>,
    scratch: &'s mut Vec<u8>,
}

impl<'w, 's> Response<'w, 's> {
    pub(crate) fn new(window: Window<'w>, scratch: &'s mut Vec<u8>) -> Self {
        Self { window, scratch }
    }

    pub(crate) fn window(&self) -> &Window<'w> {
        &self.window
    }

    /// A copy of the whole response, in the scratch buffer.
    pub(crate) fn copied(&mut self) -> &[u8] {
        let len = self.window.len();
        self.scratch.clear();
        self.scratch.reserve(len);
        self.window
            .read(0, &mut self.scratch.spare_capacity_mut()[..len]);
        // SAFETY: `read` initialised the first `len` spare bytes.
        unsafe { self.scratch.set_len(len) };
        &self.scratch[..]
    }
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use super::{Response, Window};

    #[test]
    fn writes_land_in_the_buffer_and_overruns_panic() {
        let mut buffer = [0u8; 4];
        let mut window = Window::of(&mut buffer);
        window.write(1, &[7, 8]);
        window.put(3, 9);
        assert_eq!(window.len(), 4);
        let overrun = std::panic::catch_unwind(move || window.write(3, &[1, 2]));
        assert!(overrun.is_err());
        assert_eq!(buffer, [0, 7, 8, 9]);
    }

    #[test]
    fn a_response_is_read_by_raw_copies() {
        let mut bytes = [1u8, 2, 3, 4];
        let mut scratch = vec![9; 10];
        let mut response = Response::new(Window::of(&mut bytes), &mut scratch);
        let mut head = [std::mem::MaybeUninit::new(0u8); 2];
        response.window().read(2, &mut head);
        // SAFETY: `read` set both.
        let head_bytes = unsafe { [head[0].assume_init(), head[1].assume_init()] };
        assert_eq!(head_bytes, [3, 4]);
        assert_eq!(response.copied(), &[1, 2, 3, 4]);
        let overrun = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            response.window().read(3, &mut head)
        }));
        assert!(overrun.is_err());
    }
}
