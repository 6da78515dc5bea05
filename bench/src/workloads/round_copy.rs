//! W2: 1 MiB byte round copy. The caller keeps its payload, so every call
//! sends a clone of it; the worker receives the bytes and returns a fresh
//! buffer of the same size. Every runtime does the copies its transport
//! needs: Tokio clones on send and again on reply.

use knitting::{Bytes, Pool};

use super::{check, knitting_batches, workers, Runner, Workload, BATCHES};
use crate::{
    baselines::{limits::Memcpy, tokio},
    mode::Mode,
    Result,
};

/// 1 MiB.
const BYTES: usize = 1 << 20;

/// The worker's side of the round copy: a fresh buffer with the same bytes.
/// W3 sweeps it over sizes. A `Vec<u8>` crosses to a process worker as one
/// length and one copy (the `#[task]` attribute sees the type).
#[knitting::task]
pub(super) fn round_copy(bytes: Vec<u8>) -> Vec<u8> {
    bytes.clone()
}

/// The same with the crate's byte buffer: the worker reads its input where
/// it lies (a slice parameter: in a process worker, in the shared mapping)
/// and returns a fresh `Bytes`, whose memory is recycled.
#[knitting::task]
pub(super) fn round_copy_bytes(bytes: &[u8]) -> Bytes {
    Bytes::from_slice(bytes)
}

/// The caller's payload of `bytes` bytes: not all zeros, so no allocator
/// shortcut applies.
pub(super) fn payload(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| (i % 251) as u8).collect()
}

pub fn workload(_mode: &Mode) -> Result<Workload> {
    Ok(Workload {
        id: "W2",
        title: "1 MiB round copy",
        sizes: &[BYTES],
        batches: BATCHES,
        plan: None,
        runners: vec![
            knitting_vec(Kind::Threads)?,
            knitting_vec(Kind::Processes)?,
            knitting_bytes(Kind::Threads)?,
            knitting_bytes(Kind::Processes)?,
            tokio(tokio::Flavor::CurrentThread)?,
            tokio(tokio::Flavor::MultiThread { workers: workers() })?,
            memcpy_limit(),
        ],
    })
}

/// Which knitting runtime a runner measures.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Threads,
    Processes,
}

impl Kind {
    fn pool(self) -> Result<Pool<knitting::AnyRuntime>> {
        Ok(match self {
            Kind::Threads => Pool::builder().threads(workers()).build()?.into(),
            Kind::Processes => Pool::builder().processes(workers()).build()?.into(),
        })
    }

    /// The row name (BENCHMARKS.md), with the crate's byte buffer or not.
    fn name(self, bytes: bool) -> &'static str {
        match (self, bytes) {
            (Kind::Threads, false) => "knitting-threads",
            (Kind::Processes, false) => "knitting-processes",
            (Kind::Threads, true) => "knitting-threads-bytes",
            (Kind::Processes, true) => "knitting-processes-bytes",
        }
    }
}

/// Sizes the sanity checks try: empty, the smallest, the largest.
const CHECKED: &[usize] = &[0, 8, BYTES];

/// Knitting with a plain `Vec<u8>`: the caller sends a clone of its payload.
pub(super) fn knitting_vec(kind: Kind) -> Result<Runner> {
    let pool = kind.pool()?;
    for &bytes in CHECKED {
        let payload = payload(bytes);
        check(
            pool.call(round_copy, payload.clone()).wait()? == payload,
            "knitting returns the same bytes",
        )?;
    }
    Ok(Runner::new(kind.name(false), move |point, sampler| {
        let payload = payload(point.bytes);
        knitting_batches(point.batch, sampler, |_| {
            pool.call(round_copy, payload.clone())
        })
    }))
}

/// Knitting with its byte buffer: the caller copies its payload into a
/// `Bytes` for each call.
pub(super) fn knitting_bytes(kind: Kind) -> Result<Runner> {
    let pool = kind.pool()?;
    for &bytes in CHECKED {
        let payload = payload(bytes);
        check(
            pool.call(round_copy_bytes, Bytes::from_slice(&payload))
                .wait()?
                == payload,
            "knitting returns the same bytes in a buffer",
        )?;
    }
    Ok(Runner::new(kind.name(true), move |point, sampler| {
        let payload = payload(point.bytes);
        knitting_batches(point.batch, sampler, |_| {
            pool.call(round_copy_bytes, Bytes::from_slice(&payload))
        })
    }))
}

fn tokio(flavor: tokio::Flavor) -> Result<Runner> {
    // The worker owns what it received and replies with a clone of it,
    // exactly like the public Tokio benchmark.
    let mut service = tokio::Service::start(flavor, |bytes: Vec<u8>| bytes.clone())?;
    let payload = payload(BYTES);
    check(
        service.call(payload.clone())? == payload,
        "tokio returns the same bytes",
    )?;
    Ok(Runner::new(flavor.runtime(), move |point, sampler| {
        service.measure(point.batch, sampler, |_| payload.clone())
    }))
}

/// One `memcpy` of the payload per call.
fn memcpy_limit() -> Runner {
    let mut memcpy = Memcpy::new(payload(BYTES));
    Runner::new("limit", move |point, sampler| {
        memcpy.prepare(point.batch);
        sampler.run(|| {
            memcpy.copy_batch(point.batch);
            Ok(())
        })
    })
}
