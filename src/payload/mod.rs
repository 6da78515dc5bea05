//! Payloads: how a call's arguments and result become bytes for the trip
//! between processes, and back.
//!
//! - [`window`]: the raw byte range an encoder writes into (an arena's
//!   free space, for the process runtime);
//! - [`codec`]: postcard, written straight into a window;
//! - [`buffer`]: [`Buffer`] and [`Bytes`], the crate's buffers of plain
//!   numbers, which cross as raw bytes and recycle their memory;
//! - [`envelope`]: [`Envelope`], a serde header with a [`Buffer`] body;
//! - [`wire`]: the adapter `#[task]` picks for each parameter and output
//!   (byte vectors and slices as one copy, the rest through serde).
//!
//! This layer knows nothing of rings, processes or calls: the call cell
//! (above) encodes through it, and the process runtime hands it windows.

pub(crate) mod buffer;
pub(crate) mod codec;
pub(crate) mod shared;
pub(crate) mod stream;
pub(crate) mod envelope;
pub(crate) mod window;
pub(crate) mod wire;

pub use buffer::{Buffer, Bytes};
pub use envelope::Envelope;
pub(crate) use window::{Response, Window};

use crate::Error;

/// Encodes one value into a window; returns its encoded size, which may be
/// more than the window holds (then only a prefix was written: see
/// [`codec::encode_into`]). Called again with a larger window when the
/// first was too small.
pub(crate) type Encode<'v> = &'v dyn Fn(&mut Window<'_>) -> Result<usize, postcard::Error>;

/// Where a worker sends the outcome of one call, encoded (the process
/// runtime's response ring, for example). Each call gets exactly one
/// `value` or `error`.
pub(crate) trait Reply {
    /// The task's value, encoded by `encode` into room the sink finds.
    fn value(&mut self, encode: Encode<'_>);
    /// The call failed: decoding, the task, or encoding its value.
    fn error(&mut self, err: &Error);
}
