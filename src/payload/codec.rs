//! Encoding values for the trip between processes: postcard, written
//! straight into an arena window.
//!
//! [`encode_into`] writes while the window has room and keeps counting past
//! its end, so one pass either leaves the value in the arena or tells the
//! exact size it needs (to wait for room, or to name it in a too-large
//! error) without an intermediate buffer.

use std::marker::PhantomData;

use serde::{
    de::{DeserializeOwned, DeserializeSeed},
    Serialize,
};

use super::{
    wire::{De, Ser, Wire},
    Window,
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
