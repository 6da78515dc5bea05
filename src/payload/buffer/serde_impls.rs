//! A [`Buffer`] in serde: its raw bytes, as one byte string.

use std::{fmt, marker::PhantomData};

use bytemuck::Pod;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::Buffer;

impl<T: Pod> Serialize for Buffer<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.as_bytes())
    }
}

impl<'de, T: Pod> Deserialize<'de> for Buffer<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if crate::payload::wire::lends_now() {
            // A parameter the task borrows, in a worker process: the bytes
            // may be read where they lie (`wire::Lent`).
            deserializer.deserialize_bytes(crate::payload::wire::Lend(PhantomData))
        } else {
            deserializer.deserialize_byte_buf(Owned(PhantomData))
        }
    }
}

/// Reads the bytes of a `Buffer<T>` into a buffer of its own.
pub(crate) struct Owned<T>(pub(crate) PhantomData<T>);

/// The error for `len` bytes that are not a whole number of `T`.
pub(crate) fn ragged<T, E: de::Error>(len: usize) -> E {
    E::custom(ragged_message::<T>(len))
}

/// What [`ragged`] says.
pub(crate) fn ragged_message<T>(len: usize) -> String {
    format!(
        "{len} bytes are not a whole number of {}-byte elements (`{}`)",
        std::mem::size_of::<T>(),
        std::any::type_name::<T>()
    )
}

impl<'de, T: Pod> de::Visitor<'de> for Owned<T> {
    type Value = Buffer<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the bytes of a buffer of `{}`",
            std::any::type_name::<T>()
        )
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
        Buffer::from_bytes(bytes).ok_or_else(|| ragged::<T, E>(bytes.len()))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Formats without byte strings (JSON, say) give the bytes one by one.
        let mut bytes = Buffer::<u8>::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        self.visit_bytes(&bytes)
    }
}
