//! W2: 1 MiB byte round copy. The caller keeps its payload, so every call
//! sends a clone of it; the worker receives the bytes and returns a fresh
//! buffer of the same size. Every runtime does the copies its transport
//! needs: Tokio clones on send and again on reply.

use std::hint::black_box;

use knitting::{Call, Pool};

use super::{check, workers, Runner, Workload, BATCHES, CHANNEL_CAPACITY};
use crate::{
    baselines::{limits::Memcpy, tokio},
    Result,
};

/// 1 MiB.
const BYTES: usize = 1 << 20;

/// The worker's side of the round copy: a fresh buffer with the same bytes.
#[knitting::task]
fn round_copy(bytes: Vec<u8>) -> Vec<u8> {
    bytes.clone()
}

/// The caller's payload: not all zeros, so no allocator shortcut applies.
fn payload() -> Vec<u8> {
    (0..BYTES).map(|i| (i % 251) as u8).collect()
}

pub fn workload() -> Result<Workload> {
    Ok(Workload {
        id: "W2",
        title: "1 MiB round copy",
        bytes: BYTES,
        batches: BATCHES,
        runners: vec![
            knitting_threads()?,
            tokio(tokio::Flavor::CurrentThread)?,
            tokio(tokio::Flavor::MultiThread { workers: workers() })?,
            memcpy_limit(),
        ],
    })
}

fn knitting_threads() -> Result<Runner> {
    let pool = Pool::builder().threads(workers()).build()?;
    let payload = payload();
    check(
        pool.call(round_copy, payload.clone()).wait()? == payload,
        "knitting returns the same bytes",
    )?;
    let mut calls: Vec<Call<Vec<u8>>> = Vec::with_capacity(CHANNEL_CAPACITY);
    Ok(Runner::new("knitting-threads", move |batch, sampler| {
        sampler.run(|| {
            calls.extend((0..batch).map(|_| pool.call(round_copy, payload.clone())));
            for call in calls.drain(..) {
                black_box(call.wait()?);
            }
            Ok(())
        })
    }))
}

fn tokio(flavor: tokio::Flavor) -> Result<Runner> {
    // The worker owns what it received and replies with a clone of it,
    // exactly like the public Tokio benchmark.
    let mut service = tokio::Service::start(flavor, |bytes: Vec<u8>| bytes.clone())?;
    let payload = payload();
    check(
        service.call(payload.clone())? == payload,
        "tokio returns the same bytes",
    )?;
    Ok(Runner::new(flavor.runtime(), move |batch, sampler| {
        service.measure(batch, sampler, |_| payload.clone())
    }))
}

/// One `memcpy` of the payload per call.
fn memcpy_limit() -> Runner {
    let mut memcpy = Memcpy::new(payload());
    Runner::new("limit", move |batch, sampler| {
        memcpy.prepare(batch);
        sampler.run(|| {
            memcpy.copy_batch(batch);
            Ok(())
        })
    })
}
