//! W2: 1 MiB byte round copy. The caller keeps its payload, so every call
//! sends a clone of it; the worker receives the bytes and returns a fresh
//! buffer of the same size. Every runtime does the copies its transport
//! needs: Tokio clones on send and again on reply.

use knitting::Pool;
use serde_bytes::ByteBuf;

use super::{check, knitting_batches, workers, Runner, Workload, BATCHES};
use crate::{
    baselines::{limits::Memcpy, tokio},
    mode::Mode,
    Result,
};

/// 1 MiB.
const BYTES: usize = 1 << 20;

/// The worker's side of the round copy: a fresh buffer with the same bytes.
/// W3 sweeps it over sizes.
#[knitting::task]
pub(super) fn round_copy(bytes: Vec<u8>) -> Vec<u8> {
    bytes.clone()
}

/// The caller's payload of `bytes` bytes: not all zeros, so no allocator
/// shortcut applies.
/// The same round copy for process workers: the bytes travel as one
/// length-prefixed block (`serde_bytes`), not element by element.
#[knitting::task]
pub(super) fn round_copy_bytes(bytes: ByteBuf) -> ByteBuf {
    bytes.clone()
}

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
            knitting_threads()?,
            knitting_processes()?,
            tokio(tokio::Flavor::CurrentThread)?,
            tokio(tokio::Flavor::MultiThread { workers: workers() })?,
            memcpy_limit(),
        ],
    })
}

/// Knitting's process workers, sending the payload as a byte buffer.
pub(super) fn knitting_processes() -> Result<Runner> {
    let pool = Pool::builder().processes(workers()).build()?;
    for &bytes in &[0, 8, BYTES] {
        let payload = ByteBuf::from(payload(bytes));
        check(
            pool.call(round_copy_bytes, payload.clone()).wait()? == payload,
            "knitting processes return the same bytes",
        )?;
    }
    Ok(Runner::new("knitting-processes", move |point, sampler| {
        let payload = ByteBuf::from(payload(point.bytes));
        knitting_batches(point.batch, sampler, |_| {
            pool.call(round_copy_bytes, payload.clone())
        })
    }))
}

fn knitting_threads() -> Result<Runner> {
    let pool = Pool::builder().threads(workers()).build()?;
    let payload = payload(BYTES);
    check(
        pool.call(round_copy, payload.clone()).wait()? == payload,
        "knitting returns the same bytes",
    )?;
    Ok(Runner::new("knitting-threads", move |point, sampler| {
        knitting_batches(point.batch, sampler, |_| {
            pool.call(round_copy, payload.clone())
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
