//! The peers knitting is measured against, each written the way a good
//! engineer would write it for that peer, and the hardware limits.
//!
//! None of them knows about workloads: they serve a handler on their own
//! worker and time batches of calls into a [`Sampler`](crate::measure::Sampler).

pub mod crossbeam;
pub mod limits;
pub mod procspawn;
pub mod rayon;
pub mod tokio;
