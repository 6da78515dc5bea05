//! How calls reach workers.
//!
//! | lane   | moves values by value? | crosses address spaces? | wakes through |
//! |--------|------------------------|-------------------------|---------------|
//! | thread | yes: a one-pointer job per call in a [`ring::Ring`] | no | [`wake::WakeWord`] (thread park/unpark: a futex on Linux) |

pub(crate) mod ring;
pub(crate) mod wake;

#[cfg(all(test, knitting_loom))]
mod loom;
