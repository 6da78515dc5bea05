//! Payloads: how a call's arguments and result become bytes for the trip
//! between processes, and back.
//!
//! - [`window`]: the raw byte range an encoder writes into (an arena's
//!   free space, for the process runtime);
//! - [`codec`]: postcard, written straight into a window.
//!
//! This layer knows nothing of rings, processes or calls: the call cell
//! (above) encodes through it, and the process runtime hands it windows.

pub(crate) mod codec;
pub(crate) mod window;

pub(crate) use window::Window;
