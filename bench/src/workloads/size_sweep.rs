//! W3: W2's byte round copy over a sweep of payload sizes (8 B … 1 MiB,
//! the mode's [`sweep`](crate::mode::Mode::sweep)), at batch 100. Every
//! size is a point of its own; the tokio baseline clones on send and on
//! reply, as in W2.

use super::{
    check,
    round_copy::{knitting_bytes, knitting_vec, payload, Kind},
    Runner, Workload,
};
use crate::{baselines::tokio, mode::Mode, Result};

/// Sizes the sanity checks try: empty, the smallest, the largest.
const CHECKED: &[usize] = &[0, 8, 1 << 20];

pub fn workload(mode: &Mode) -> Result<Workload> {
    Ok(Workload {
        id: "W3",
        title: "byte round copy",
        sizes: mode.sweep,
        batches: &[100],
        plan: None,
        runners: vec![
            knitting_vec(Kind::Threads)?,
            knitting_vec(Kind::Processes)?,
            knitting_bytes(Kind::Threads)?,
            knitting_bytes(Kind::Processes)?,
            tokio()?,
        ],
    })
}

/// Tokio on the caller's thread (`current_thread`), as W2's `tokio`.
fn tokio() -> Result<Runner> {
    let flavor = tokio::Flavor::CurrentThread;
    let mut service = tokio::Service::start(flavor, |bytes: Vec<u8>| bytes.clone())?;
    for &bytes in CHECKED {
        let payload = payload(bytes);
        check(
            service.call(payload.clone())? == payload,
            "tokio returns the same bytes",
        )?;
    }
    Ok(Runner::new(flavor.runtime(), move |point, sampler| {
        let payload = payload(point.bytes);
        service.measure(point.batch, sampler, |_| payload.clone())
    }))
}
