//! [`Buffer`]: the crate's buffer of plain numbers, and [`Bytes`], a buffer
//! of bytes.

mod recycle;
pub(crate) mod serde_impls;
#[cfg(all(test, not(knitting_loom)))]
mod tests;

use std::{
    fmt,
    mem::ManuallyDrop,
    ops::{Deref, DerefMut},
    ptr::NonNull,
    sync::Arc,
};

use bytemuck::Pod;

/// A growable buffer of plain numbers (any [`bytemuck::Pod`] element: `u8`,
/// `f64`, `[u32; 4]`, a `#[repr(C)]` struct of numbers…) that crosses to a
/// worker process as its raw bytes: one length and one copy, never element
/// by element.
///
/// Use it where a task takes or returns a large slice of numbers; it
/// behaves like a `Vec<T>` (it dereferences to `[T]`, and converts from
/// and into one). Large buffers (4 KiB or more) are recycled: a dropped
/// buffer's memory goes to a process-wide store (at most 64 MiB) that the
/// next buffer of its size takes, pages already in place, so a steady
/// stream of same-sized payloads allocates nothing and takes no page
/// faults.
///
/// On a thread pool a `Buffer` moves to the worker, no copy at all. On a
/// process pool it is copied into the shared mapping once and out once.
/// A task that only reads its input can take it as a slice parameter
/// (`data: &[u8]`, `values: &[f64]`): a process worker then reads it where
/// it lies in the shared mapping, with no copy out (see
/// [`#[task]`](macro@crate::task)); the caller passes a `Buffer`.
///
/// ```
/// use knitting::Buffer;
///
/// #[knitting::task]
/// fn scale(values: Buffer<f64>, by: f64) -> Buffer<f64> {
///     values.iter().map(|v| v * by).collect()
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// let out = pool.call(scale, (Buffer::from(vec![1.0, 2.5]), 2.0)).wait()?;
/// assert_eq!(&out[..], &[2.0, 5.0]);
/// # Ok(()) }
/// ```
///
/// The bytes are the machine's own (native byte order): host and worker
/// processes always run on one machine. In formats other than the crate's
/// (JSON, say) a buffer is a sequence of bytes.
pub struct Buffer<T: Pod = u8> {
    repr: Repr<T>,
}

/// A buffer of bytes: [`Buffer<u8>`](Buffer).
///
/// ```
/// let mut bytes = knitting::Bytes::from_slice(b"knit");
/// bytes.extend_from_slice(b"ting");
/// assert_eq!(&bytes[..], b"knitting");
/// assert_eq!(Vec::from(bytes), b"knitting".to_vec());
/// ```
pub type Bytes = Buffer<u8>;

enum Repr<T> {
    Owned(Vec<T>),
    /// A view of `len` elements in memory the buffer does not own: the
    /// request a worker process decodes, lent for one call (see
    /// [`Buffer::lent`]). Never writable: a write copies it out first. The
    /// lease is shared by every buffer lent from one request: the worker
    /// checks that none is alive before it answers.
    Lent {
        ptr: NonNull<T>,
        len: usize,
        _lease: Arc<()>,
    },
}

// SAFETY: an owned buffer is a `Vec<T>`; a lent one is a read-only view of
// memory that stays valid and unwritten while the buffer lives (`lent`'s
// contract), so sharing or moving it is like sharing or moving `&[T]`.
unsafe impl<T: Pod + Send> Send for Buffer<T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Sync> Sync for Buffer<T> {}

impl<T: Pod> Buffer<T> {
    /// An empty buffer; allocates nothing.
    pub const fn new() -> Self {
        Self {
            repr: Repr::Owned(Vec::new()),
        }
    }

    /// An empty buffer with room for at least `capacity` elements, taken
    /// from the recycled store when one of that size is there.
    ///
    /// ```
    /// let bytes = knitting::Bytes::with_capacity(1 << 20);
    /// assert!(bytes.capacity() >= 1 << 20);
    /// assert!(bytes.is_empty());
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            repr: Repr::Owned(allocate(capacity)),
        }
    }

    /// A buffer holding a copy of `items`.
    ///
    /// ```
    /// let values = knitting::Buffer::from_slice(&[1u32, 2, 3]);
    /// assert_eq!(values.len(), 3);
    /// ```
    pub fn from_slice(items: &[T]) -> Self {
        let mut vec = allocate(items.len());
        vec.extend_from_slice(items);
        Self {
            repr: Repr::Owned(vec),
        }
    }

    /// A buffer of `len` zeroed elements.
    ///
    /// ```
    /// let zeros = knitting::Buffer::<f32>::zeroed(4);
    /// assert_eq!(&zeros[..], &[0.0; 4]);
    /// ```
    pub fn zeroed(len: usize) -> Self {
        let mut vec = allocate(len);
        vec.resize(len, T::zeroed());
        Self {
            repr: Repr::Owned(vec),
        }
    }

    /// A buffer holding a copy of `bytes`, read as elements of `T`, or
    /// `None` when their length is not a whole number of elements. `bytes`
    /// need not be aligned for `T`.
    ///
    /// ```
    /// let values = knitting::Buffer::<u16>::from_bytes(&[1, 0, 2, 0]).unwrap();
    /// assert_eq!(&values[..], &[u16::from_ne_bytes([1, 0]), u16::from_ne_bytes([2, 0])]);
    /// assert!(knitting::Buffer::<u16>::from_bytes(&[1, 2, 3]).is_none());
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let size = std::mem::size_of::<T>();
        if size == 0 {
            return bytes.is_empty().then(Self::new);
        }
        if !bytes.len().is_multiple_of(size) {
            return None;
        }
        let len = bytes.len() / size;
        let mut vec = allocate::<T>(len);
        // SAFETY: `vec` has room for `len` elements, that is `bytes.len()`
        // bytes; the source is a byte slice, so the copy needs no alignment;
        // any bit pattern is a valid `T` (`Pod`), so all `len` are set.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                vec.as_mut_ptr().cast::<u8>(),
                bytes.len(),
            );
            vec.set_len(len);
        }
        Some(Self {
            repr: Repr::Owned(vec),
        })
    }

    /// A view of `items` that does not own them: a worker process lends a
    /// request's slice this way to a task that takes `&[T]`.
    ///
    /// # Safety
    ///
    /// The elements stay valid and unwritten until the buffer is dropped,
    /// and the buffer is dropped before they go (no user code can keep it:
    /// the task gets only a borrow of it).
    pub(crate) unsafe fn lent(items: &[T], lease: Arc<()>) -> Self {
        Self {
            repr: Repr::Lent {
                ptr: NonNull::from(items).cast(),
                len: items.len(),
                _lease: lease,
            },
        }
    }

    /// True when the buffer is a view lent by a worker process (for tests).
    #[cfg(test)]
    pub(crate) fn is_lent(&self) -> bool {
        matches!(self.repr, Repr::Lent { .. })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True when the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many elements the buffer can hold without growing.
    pub fn capacity(&self) -> usize {
        match &self.repr {
            Repr::Owned(vec) => vec.capacity(),
            Repr::Lent { len, .. } => *len,
        }
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        match &self.repr {
            Repr::Owned(vec) => vec,
            // SAFETY: valid and unwritten while the buffer lives (`lent`).
            Repr::Lent { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
        }
    }

    /// The elements, writable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.owned()
    }

    /// The elements as bytes.
    ///
    /// ```
    /// let values = knitting::Buffer::from_slice(&[1u32]);
    /// assert_eq!(values.as_bytes(), &1u32.to_ne_bytes());
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.as_slice())
    }

    /// Appends `items`.
    pub fn extend_from_slice(&mut self, items: &[T]) {
        let vec = self.owned();
        if vec.capacity() - vec.len() < items.len() {
            grow(vec, items.len());
        }
        vec.extend_from_slice(items);
    }

    /// Appends one element.
    pub fn push(&mut self, item: T) {
        let vec = self.owned();
        if vec.len() == vec.capacity() {
            grow(vec, 1);
        }
        vec.push(item);
    }

    /// Shortens the buffer to `len` elements (no effect if it is shorter).
    pub fn truncate(&mut self, len: usize) {
        self.owned().truncate(len);
    }

    /// Removes every element, keeping the memory.
    pub fn clear(&mut self) {
        self.owned().clear();
    }

    /// The elements as a `Vec` (no copy when the buffer owns them).
    pub fn into_vec(self) -> Vec<T> {
        if let Repr::Lent { .. } = self.repr {
            return self.as_slice().to_vec();
        }
        let mut this = ManuallyDrop::new(self);
        match &mut this.repr {
            Repr::Owned(vec) => std::mem::take(vec),
            // A lent buffer returned above (and dropping its lease matters).
            Repr::Lent { .. } => unreachable!("handled above"),
        }
    }

    /// The vector of an owned buffer; a lent one is copied out first.
    fn owned(&mut self) -> &mut Vec<T> {
        if let Repr::Lent { .. } = self.repr {
            let copy = Self::from_slice(self.as_slice());
            *self = copy;
        }
        match &mut self.repr {
            Repr::Owned(vec) => vec,
            Repr::Lent { .. } => unreachable!("copied out above"),
        }
    }
}

/// A vector with room for `capacity` elements: a recycled allocation of
/// its size class when the store has one, else a fresh one of exactly that
/// class (so that it can be recycled in turn).
pub(crate) fn allocate<T: Pod>(capacity: usize) -> Vec<T> {
    let size = std::mem::size_of::<T>();
    let Some((class, slot)) = capacity
        .checked_mul(size)
        .and_then(|bytes| recycle::class_of(bytes, std::mem::align_of::<T>()))
        .filter(|&(class, _)| class.is_multiple_of(size))
    else {
        return Vec::with_capacity(capacity);
    };
    match recycle::take(slot, class) {
        // SAFETY: the store's blocks of this slot were allocated by the
        // global allocator with layout `(class, align_of::<T>())`, which is
        // the layout of `class / size` elements of `T`; nobody else uses it.
        Some(ptr) => unsafe { Vec::from_raw_parts(ptr.as_ptr().cast::<T>(), 0, class / size) },
        None => Vec::with_capacity(class / size),
    }
}

/// Grows `vec` for `more` elements into a recyclable allocation.
fn grow<T: Pod>(vec: &mut Vec<T>, more: usize) {
    let needed = vec.len().checked_add(more).expect("buffer size overflow");
    let mut bigger = allocate(needed.max(vec.capacity().saturating_mul(2)));
    bigger.extend_from_slice(vec);
    let old = std::mem::replace(vec, bigger);
    recycle_vec(old);
}

/// Frees `vec`, into the store when its allocation is of a kept class.
fn recycle_vec<T: Pod>(vec: Vec<T>) {
    let size = std::mem::size_of::<T>();
    let align = std::mem::align_of::<T>();
    let Some(bytes) = vec.capacity().checked_mul(size) else {
        return;
    };
    match recycle::class_of(bytes, align) {
        Some((class, slot)) if class == bytes => {
            let mut vec = ManuallyDrop::new(vec);
            let ptr = NonNull::new(vec.as_mut_ptr().cast::<u8>()).expect("a vector's pointer");
            // SAFETY: a vector of capacity `bytes / size` was allocated by the
            // global allocator with layout `(bytes, align)`, and `class_of`
            // gave `(class, slot)` for it; `ManuallyDrop` gives up its use.
            unsafe { recycle::give(ptr, class, align, slot) }
        }
        _ => drop(vec),
    }
}

impl<T: Pod> Drop for Buffer<T> {
    fn drop(&mut self) {
        if let Repr::Owned(vec) = &mut self.repr {
            recycle_vec(std::mem::take(vec));
        }
    }
}

impl<T: Pod> Default for Buffer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Pod> Clone for Buffer<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self.as_slice())
    }
}

impl<T: Pod> Deref for Buffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Pod> DerefMut for Buffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: Pod> AsRef<[T]> for Buffer<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Pod> AsMut<[T]> for Buffer<T> {
    fn as_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: Pod> From<Vec<T>> for Buffer<T> {
    /// Takes the vector's memory as it is (no copy).
    fn from(vec: Vec<T>) -> Self {
        Self {
            repr: Repr::Owned(vec),
        }
    }
}

impl<T: Pod> From<&[T]> for Buffer<T> {
    fn from(items: &[T]) -> Self {
        Self::from_slice(items)
    }
}

impl<T: Pod, const N: usize> From<[T; N]> for Buffer<T> {
    fn from(items: [T; N]) -> Self {
        Self::from_slice(&items)
    }
}

impl<T: Pod> From<Buffer<T>> for Vec<T> {
    fn from(buffer: Buffer<T>) -> Self {
        buffer.into_vec()
    }
}

impl<T: Pod> FromIterator<T> for Buffer<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut buffer = Self::with_capacity(iter.size_hint().0);
        for item in iter {
            buffer.push(item);
        }
        buffer
    }
}

impl<T: Pod> Extend<T> for Buffer<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for item in iter {
            self.push(item);
        }
    }
}

impl<T: Pod + PartialEq> PartialEq for Buffer<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Pod + Eq> Eq for Buffer<T> {}

impl<T: Pod + PartialEq> PartialEq<[T]> for Buffer<T> {
    fn eq(&self, other: &[T]) -> bool {
        self.as_slice() == other
    }
}

impl<T: Pod + PartialEq> PartialEq<Vec<T>> for Buffer<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Pod + std::hash::Hash> std::hash::Hash for Buffer<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 32;
        let items = self.as_slice();
        let mut list = f.debug_list();
        list.entries(items.iter().take(SHOWN));
        if items.len() > SHOWN {
            list.entry(&format_args!("… {} more", items.len() - SHOWN));
        }
        list.finish()
    }
}
