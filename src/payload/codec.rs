//! Encoding values for the trip between processes: postcard, written
//! straight into an arena window.
//!
//! [`encode_into`] writes while the window has room and keeps counting past
//! its end, so one pass either leaves the value in the arena or tells the
//! exact size it needs (to wait for room, or to name it in a too-large
//! error) without an intermediate buffer.

use std::{marker::PhantomData, mem::MaybeUninit};

use serde::{
    de::{DeserializeOwned, DeserializeSeed},
    Serialize,
};

use super::{
    wire::{De, Ser, Wire},
    Response, Window,
};

/// A postcard flavor over an arena window that counts what does not fit.
struct Region<'w, 'm> {
    window: &'w mut Window<'m>,
    /// Bytes produced so far (written or not).
    total: usize,
}

impl postcard::ser_flavors::Flavor for Region<'_, '_> {
    type Output = usize;

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.total < self.window.len() {
            self.window.put(self.total, byte);
        }
        self.total += 1;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        let end = self.total + bytes.len();
        if end <= self.window.len() {
            self.window.write(self.total, bytes);
        } else if self.total < self.window.len() {
            let room = self.window.len() - self.total;
            self.window.write(self.total, &bytes[..room]);
        }
        self.total = end;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.total)
    }
}

/// Encodes `value` into `window`. Returns the encoded size: when it is
/// larger than the window, the window holds only a prefix and the value
/// must be encoded again elsewhere.
pub(crate) fn encode_into<V: Serialize + ?Sized>(
    value: &V,
    window: &mut Window<'_>,
) -> Result<usize, postcard::Error> {
    postcard::serialize_with_flavor(value, Region { window, total: 0 })
}

/// Encodes `value` through adapter `W` into `window` (as [`encode_into`]).
pub(crate) fn encode_wire_into<W: Wire<T>, T>(
    value: &T,
    window: &mut Window<'_>,
) -> Result<usize, postcard::Error> {
    encode_into(&Ser::<W, T>(value, PhantomData), window)
}

/// Encodes `value` through adapter `W` into a fresh vector.
pub(crate) fn encode_wire_vec<W: Wire<T>, T>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    encode_vec(&Ser::<W, T>(value, PhantomData))
}

/// Decodes a `T` through adapter `W`; trailing bytes are an error.
pub(crate) fn decode_wire<W: Wire<T>, T>(bytes: &[u8]) -> Result<T, postcard::Error> {
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    let value = De::<W, T>::new().deserialize(&mut deserializer)?;
    if deserializer.finalize()?.is_empty() {
        Ok(value)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

/// Decodes the `T` of a worker's response through adapter `W`. A value
/// written as one byte string is copied once, from where the worker wrote
/// it straight into the value's memory; anything else is decoded from a
/// copy of the whole response. Either way the response is read once, and
/// by raw copies only (the worker may be writing it meanwhile).
pub(crate) fn decode_response<W: Wire<T>, T>(
    response: &mut Response<'_, '_>,
) -> Result<T, postcard::Error> {
    let Some(read) = W::byte_string() else {
        return decode_wire::<W, T>(response.copied());
    };
    let window = response.window();
    let total = window.len();
    let mut head = [MaybeUninit::new(0u8); MAX_VARINT];
    let seen = total.min(MAX_VARINT);
    window.read(0, &mut head[..seen]);
    let mut bytes = [0u8; MAX_VARINT];
    for (byte, read) in bytes.iter_mut().zip(&head[..seen]) {
        // SAFETY: `read` set the first `seen` bytes.
        *byte = unsafe { read.assume_init() };
    }
    let (len, prefix) = varint(&bytes[..seen]).ok_or(postcard::Error::DeserializeBadVarint)?;
    // The byte string must fill the response exactly.
    if prefix.checked_add(len) != Some(total) {
        return Err(postcard::Error::DeserializeBadEncoding);
    }
    read(len, &mut |room| window.read(prefix, room)).map_err(|_| postcard::Error::SerdeDeCustom)
}

/// The longest varint of a `usize` (postcard's length prefix).
const MAX_VARINT: usize = (usize::BITS as usize).div_ceil(7);

/// Reads postcard's varint length prefix: the value and its size in bytes,
/// or `None` when it is cut short or overflows a `usize`.
fn varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value: usize = 0;
    for (i, &byte) in bytes.iter().enumerate().take(MAX_VARINT) {
        let bits = usize::from(byte & 0x7f);
        let shift = 7 * i as u32;
        let shifted = bits.checked_shl(shift)?;
        if shifted >> shift != bits {
            return None;
        }
        value |= shifted;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Encodes `value` into a fresh vector.
pub(crate) fn encode_vec<V: Serialize + ?Sized>(value: &V) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}

/// Decodes a value; trailing bytes are an error (they mean the two sides
/// disagree about the type).
pub(crate) fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, postcard::Error> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use super::*;
    use crate::payload::{
        wire::{ByteVec, Plain},
        Buffer, Bytes,
    };

    /// Decodes `bytes` as a response through adapter `W`.
    fn response<W: Wire<T>, T>(mut bytes: Vec<u8>) -> Result<T, postcard::Error> {
        let mut scratch = Vec::new();
        let mut response = Response::new(Window::of(&mut bytes), &mut scratch);
        decode_response::<W, T>(&mut response)
    }

    #[test]
    fn byte_strings_are_read_straight_from_the_response() {
        for len in [
            0usize,
            1,
            127,
            128,
            16_383,
            16_384,
            if cfg!(miri) { 300 } else { 100_000 },
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let encoded = encode_vec(&Bytes::from(data.clone())).unwrap();
            assert_eq!(response::<Plain, Bytes>(encoded.clone()).unwrap(), data);
            assert_eq!(response::<ByteVec, Vec<u8>>(encoded.clone()).unwrap(), data);
            let boxed = response::<ByteVec, Box<[u8]>>(encoded).unwrap();
            assert_eq!(&boxed[..], &data[..]);
        }
        let values = Buffer::from_slice(&[1.5f64, -3.25]);
        let encoded = encode_vec(&values).unwrap();
        assert_eq!(response::<Plain, Buffer<f64>>(encoded).unwrap(), values);
        // Other types go through a copy and serde.
        let encoded = encode_vec(&(3u8, String::from("x"))).unwrap();
        assert_eq!(
            response::<Plain, (u8, String)>(encoded).unwrap(),
            (3, "x".to_owned())
        );
    }

    #[test]
    fn a_byte_string_that_does_not_fill_its_response_exactly_is_refused() {
        let mut long = encode_vec(&Bytes::from_slice(&[1, 2, 3])).unwrap();
        long.push(0);
        assert!(response::<Plain, Bytes>(long).is_err());
        // The prefix claims more than there is.
        assert!(response::<ByteVec, Vec<u8>>(vec![5, 1, 2]).is_err());
        // Cut short inside the prefix, or a prefix that overflows.
        assert!(response::<ByteVec, Vec<u8>>(vec![0x80]).is_err());
        assert!(response::<ByteVec, Vec<u8>>(vec![]).is_err());
        assert!(response::<ByteVec, Vec<u8>>(vec![0xff; 11]).is_err());
        let mut huge = vec![0xffu8; 9];
        huge.push(0x7f);
        assert!(response::<ByteVec, Vec<u8>>(huge).is_err());
        // A length that is not a whole number of elements.
        assert!(response::<Plain, Buffer<u32>>(vec![3, 1, 2, 3]).is_err());
    }

    #[test]
    fn varints_read_as_postcard_writes_them() {
        for value in [0usize, 1, 127, 128, 300, 1 << 20, usize::MAX] {
            let bytes = encode_vec(&value).unwrap();
            assert_eq!(varint(&bytes), Some((value, bytes.len())), "{value}");
        }
        assert_eq!(varint(&[0x80, 0x80]), None);
    }
}
