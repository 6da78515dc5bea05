//! How each argument and result of a task crosses to a worker process: the
//! [`Wire`] adapter that `#[task]` picks for a parameter or output by its
//! type.
//!
//! Serde has no way to write a `Vec<u8>` other than element by element
//! (postcard then spends about 2 ns on each byte, 50× a `memcpy`), and no
//! specialization lets a format tell byte vectors from other vectors. So
//! the attribute, which sees the types as written, names an adapter per
//! parameter: [`ByteVec`] for `Vec<u8>` and `Box<[u8]>` (one length, one
//! copy), [`Lent`] for slice parameters (`&[u8]`, `&[f64]`: the caller
//! passes a [`Buffer`], the worker reads it in place), [`Borrowed`] for
//! other parameters taken by reference (their buffers are read in place),
//! and [`Plain`] (the type's own serde) for everything else. The bytes on the wire are the
//! same as plain postcard's, so a host that declares a task with
//! [`ImportedTask`](crate::ImportedTask) (plain serde) and a worker that
//! defines it with `#[task]` still agree.

use std::{any::Any, cell::Cell, fmt, marker::PhantomData, mem::MaybeUninit, sync::Arc};

use bytemuck::Pod;
use serde::{
    de::{self, DeserializeOwned, DeserializeSeed, SeqAccess, Visitor},
    ser::SerializeTuple,
    Deserialize, Deserializer, Serialize, Serializer,
};

use super::{buffer::serde_impls, Buffer};

/// How a value of type `T` is written for, and read in, a worker process.
/// Implemented by the adapters of this module and by tuples of them; used
/// by the expansion of `#[task]`, not by user code.
#[diagnostic::on_unimplemented(
    message = "`{T}` cannot cross to a worker process",
    label = "not an owned serde type",
    note = "a process call encodes the arguments in the host and decodes them in a worker, and the output the other way round: both must be owned serde types (`Serialize` and `DeserializeOwned`)"
)]
pub trait Wire<T> {
    /// Writes `value`.
    fn serialize<S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error>;
    /// Reads a value.
    fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error>;

    /// For a `T` written as one byte string (a byte vector, a [`Buffer`]):
    /// how to read it straight from a response, its bytes copied once into
    /// the value's own memory. `None` for anything else (it is decoded from
    /// a copy of the whole response).
    fn byte_string() -> Option<FromByteString<T>> {
        None
    }
}

/// Makes a `T` of `len` bytes: `fill` copies them into the room it is
/// given (exactly `len` bytes). An error names what is wrong with `len`.
pub type FromByteString<T> =
    fn(len: usize, fill: &mut dyn FnMut(&mut [MaybeUninit<u8>])) -> Result<T, String>;

/// A buffer of `len` bytes' worth of `X`, filled by `fill`.
fn buffer_from_byte_string<X: Pod>(
    len: usize,
    fill: &mut dyn FnMut(&mut [MaybeUninit<u8>]),
) -> Result<Buffer<X>, String> {
    let size = std::mem::size_of::<X>().max(1);
    if !len.is_multiple_of(size) {
        return Err(serde_impls::ragged_message::<X>(len));
    }
    let mut vec = super::buffer::allocate::<X>(len / size);
    let spare = vec.spare_capacity_mut();
    // SAFETY: the spare room of `len / size` elements is `len` bytes of
    // memory we own; viewed as `MaybeUninit<u8>` it needs no init.
    let room = unsafe {
        std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<MaybeUninit<u8>>(), len)
    };
    fill(room);
    // SAFETY: `fill` set all `len` bytes, and any bytes are a valid `X`
    // (`Pod`).
    unsafe { vec.set_len(len / size) };
    Ok(Buffer::from(vec))
}

/// The type's own serde implementation.
#[derive(Debug)]
pub struct Plain;

impl<T: Serialize + DeserializeOwned + 'static> Wire<T> for Plain {
    #[inline]
    fn serialize<S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }

    #[inline]
    fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
        T::deserialize(deserializer)
    }

    /// A [`Buffer`] of a primitive number is one byte string (the attribute
    /// cannot tell `Bytes` from another crate's type of that name, so the
    /// type itself is looked at here).
    fn byte_string() -> Option<FromByteString<T>> {
        /// `buffer_from_byte_string::<X>`, as a reader of `T` (which is
        /// `Buffer<X>`).
        fn read<X: Pod, T: 'static>(
            len: usize,
            fill: &mut dyn FnMut(&mut [MaybeUninit<u8>]),
        ) -> Result<T, String> {
            let buffer: Box<dyn Any> = Box::new(buffer_from_byte_string::<X>(len, fill)?);
            Ok(*buffer.downcast::<T>().expect("T is Buffer<X>"))
        }
        macro_rules! buffers_of {
            ($($x:ty),*) => {
                $(if std::any::TypeId::of::<T>() == std::any::TypeId::of::<Buffer<$x>>() {
                    return Some(read::<$x, T>);
                })*
            };
        }
        buffers_of!(u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, f32, f64);
        None
    }
}

/// `Vec<u8>` and `Box<[u8]>` as one byte string (the same bytes postcard
/// writes for a sequence of `u8`).
#[derive(Debug)]
pub struct ByteVec;

impl Wire<Vec<u8>> for ByteVec {
    #[inline]
    fn serialize<S: Serializer>(value: &Vec<u8>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(value)
    }

    fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer
            .deserialize_byte_buf(serde_impls::Owned::<u8>(PhantomData))
            .map(Buffer::into_vec)
    }

    fn byte_string() -> Option<FromByteString<Vec<u8>>> {
        Some(|len, fill| buffer_from_byte_string::<u8>(len, fill).map(Buffer::into_vec))
    }
}

impl Wire<Box<[u8]>> for ByteVec {
    #[inline]
    fn serialize<S: Serializer>(value: &Box<[u8]>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(value)
    }

    fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Box<[u8]>, D::Error> {
        <ByteVec as Wire<Vec<u8>>>::deserialize(deserializer).map(Vec::into_boxed_slice)
    }

    fn byte_string() -> Option<FromByteString<Box<[u8]>>> {
        Some(|len, fill| {
            buffer_from_byte_string::<u8>(len, fill).map(|b| b.into_vec().into_boxed_slice())
        })
    }
}

/// A slice parameter (`&[T]`): the caller passes a [`Buffer<T>`]; a worker
/// process reads the request's bytes where they lie, in the shared mapping,
/// when they are aligned for `T` (else it copies them).
#[derive(Debug)]
pub struct Lent;

thread_local! {
    /// The request being decoded by this worker thread, whose bytes may be
    /// lent ([`lending`]): start address and length.
    static LENDABLE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// The lease of the buffers lent from that request, made by the first.
    static LEASE: std::cell::RefCell<Option<Arc<()>>> = const { std::cell::RefCell::new(None) };
    /// True while a parameter the task takes by reference is decoded: its
    /// buffers may be lent.
    static LENDS_NOW: Cell<bool> = const { Cell::new(false) };
}

/// Runs `decode` for a parameter taken by reference: its buffers are lent
/// if the request is lendable.
fn lends<R>(decode: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            LENDS_NOW.with(|l| l.set(self.0));
        }
    }
    let _reset = Reset(LENDS_NOW.with(|l| l.replace(true)));
    decode()
}

/// True while a [`Buffer`] being decoded may be lent (see [`Lent`] and
/// [`Borrowed`]).
pub(crate) fn lends_now() -> bool {
    LENDS_NOW.with(Cell::get)
}

/// The buffers lent from one request: [`outstanding`](Self::outstanding)
/// says whether any is still alive.
#[derive(Debug)]
pub(crate) struct Lease(Option<Arc<()>>);

impl Lease {
    /// True while a buffer lent from the request is alive (on any thread).
    pub(crate) fn outstanding(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|lease| Arc::strong_count(lease) > 1)
    }
}

/// Runs `decode` with the bytes of `input` lendable to parameters the task
/// borrows ([`Lent`], [`Borrowed`]); returns its result and the lease of
/// what it lent.
///
/// # Safety
///
/// Every [`Buffer`] that `decode` returns lent is dropped before `input`
/// goes or is written: the caller checks [`Lease::outstanding`] before it
/// lets either happen (a task whose `Wired` contract holds drops them; user
/// code in a `Deserialize` impl might keep one).
pub(crate) unsafe fn lending<R>(input: &[u8], decode: impl FnOnce() -> R) -> (R, Lease) {
    struct Reset((usize, usize));
    impl Drop for Reset {
        fn drop(&mut self) {
            LENDABLE.with(|l| l.set(self.0));
        }
    }
    let reset = Reset(LENDABLE.with(|l| l.replace((input.as_ptr() as usize, input.len()))));
    let outcome = decode();
    drop(reset);
    (outcome, Lease(LEASE.with(|l| l.borrow_mut().take())))
}

/// The lease of the request being decoded (made on first use).
fn lease() -> Arc<()> {
    LEASE.with(|l| Arc::clone(l.borrow_mut().get_or_insert_with(|| Arc::new(()))))
}

/// True when `bytes` lie inside the request being decoded.
fn is_lendable(bytes: &[u8]) -> bool {
    let (start, len) = LENDABLE.with(Cell::get);
    let at = bytes.as_ptr() as usize;
    len != 0 && at >= start && at - start <= len && bytes.len() <= len - (at - start)
}

impl<T: Pod> Wire<Buffer<T>> for Lent {
    #[inline]
    fn serialize<S: Serializer>(value: &Buffer<T>, serializer: S) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }

    fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Buffer<T>, D::Error> {
        lends(|| Buffer::<T>::deserialize(deserializer))
    }
}

/// A parameter taken by reference (`&Envelope<H>`, `&MyStruct`): the
/// caller passes the value, and a worker process lends the task the
/// [`Buffer`]s in it, read where they lie in the request (as for [`Lent`]).
#[derive(Debug)]
pub struct Borrowed;

impl<T: Serialize + DeserializeOwned> Wire<T> for Borrowed {
    #[inline]
    fn serialize<S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }

    fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
        lends(|| T::deserialize(deserializer))
    }
}

/// Reads a buffer that may be lent: lent when the bytes lie in the request
/// and are aligned for `T`, copied otherwise.
pub(crate) struct Lend<T>(pub(crate) PhantomData<T>);

impl<'de, T: Pod> Visitor<'de> for Lend<T> {
    type Value = Buffer<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        serde_impls::Owned::<T>(PhantomData).expecting(f)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, bytes: &'de [u8]) -> Result<Buffer<T>, E> {
        if !lends_now() || !is_lendable(bytes) {
            return self.visit_bytes(bytes);
        }
        match bytemuck::try_cast_slice::<u8, T>(bytes) {
            // SAFETY: `bytes` lie in the request that `lending` registered,
            // whose caller drops every lent buffer before the request goes
            // or is written (its contract).
            Ok(items) => Ok(unsafe { Buffer::lent(items, lease()) }),
            // Not aligned for `T`: a copy (never an unaligned reference).
            Err(_) => self.visit_bytes(bytes),
        }
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Buffer<T>, E> {
        serde_impls::Owned::<T>(PhantomData).visit_bytes(bytes)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Buffer<T>, A::Error> {
        serde_impls::Owned::<T>(PhantomData).visit_seq(seq)
    }
}

/// `value` written through adapter `W`.
pub(crate) struct Ser<'a, W, T>(pub(crate) &'a T, pub(crate) PhantomData<W>);

impl<W: Wire<T>, T> Serialize for Ser<'_, W, T> {
    #[inline]
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        W::serialize(self.0, serializer)
    }
}

/// A `T` read through adapter `W`.
pub(crate) struct De<W, T>(pub(crate) PhantomData<(W, T)>);

impl<W, T> De<W, T> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<'de, W: Wire<T>, T> DeserializeSeed<'de> for De<W, T> {
    type Value = T;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        W::deserialize(deserializer)
    }
}

/// Tuples of adapters for tuples of values, written as serde writes
/// tuples (postcard: one after the other).
macro_rules! tuple_wire {
    ($len:literal: $($w:ident $t:ident $i:tt),+) => {
        impl<$($w: Wire<$t>, $t,)+> Wire<($($t,)+)> for ($($w,)+) {
            fn serialize<S: Serializer>(value: &($($t,)+), serializer: S) -> Result<S::Ok, S::Error> {
                let mut tuple = serializer.serialize_tuple($len)?;
                $(tuple.serialize_element(&Ser::<$w, $t>(&value.$i, PhantomData))?;)+
                tuple.end()
            }

            fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<($($t,)+), D::Error> {
                struct Tuple<$($w, $t,)+>(PhantomData<($($w, $t,)+)>);
                impl<'de, $($w: Wire<$t>, $t,)+> Visitor<'de> for Tuple<$($w, $t,)+> {
                    type Value = ($($t,)+);

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a tuple of {} values", $len)
                    }

                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                        Ok(($(
                            seq.next_element_seed(De::<$w, $t>::new())?
                                .ok_or_else(|| de::Error::invalid_length($i, &self))?,
                        )+))
                    }
                }
                deserializer.deserialize_tuple($len, Tuple::<$($w, $t,)+>(PhantomData))
            }
        }
    };
}

tuple_wire!(1: W0 T0 0);
tuple_wire!(2: W0 T0 0, W1 T1 1);
tuple_wire!(3: W0 T0 0, W1 T1 1, W2 T2 2);
tuple_wire!(4: W0 T0 0, W1 T1 1, W2 T2 2, W3 T3 3);
tuple_wire!(5: W0 T0 0, W1 T1 1, W2 T2 2, W3 T3 3, W4 T4 4);
tuple_wire!(6: W0 T0 0, W1 T1 1, W2 T2 2, W3 T3 3, W4 T4 4, W5 T5 5);
tuple_wire!(7: W0 T0 0, W1 T1 1, W2 T2 2, W3 T3 3, W4 T4 4, W5 T5 5, W6 T6 6);
tuple_wire!(8: W0 T0 0, W1 T1 1, W2 T2 2, W3 T3 3, W4 T4 4, W5 T5 5, W6 T6 6, W7 T7 7);
tuple_wire!(9: W0 T0 0, W1 T1 1, W2 T2 2, W3 T3 3, W4 T4 4, W5 T5 5, W6 T6 6, W7 T7 7, W8 T8 8);
tuple_wire!(10: W0 T0 0, W1 T1 1, W2 T2 2, W3 T3 3, W4 T4 4, W5 T5 5, W6 T6 6, W7 T7 7, W8 T8 8, W9 T9 9);
tuple_wire!(11: W0 T0 0, W1 T1 1, W2 T2 2, W3 T3 3, W4 T4 4, W5 T5 5, W6 T6 6, W7 T7 7, W8 T8 8, W9 T9 9, W10 T10 10);
tuple_wire!(12: W0 T0 0, W1 T1 1, W2 T2 2, W3 T3 3, W4 T4 4, W5 T5 5, W6 T6 6, W7 T7 7, W8 T8 8, W9 T9 9, W10 T10 10, W11 T11 11);
