//! W11: the worker sums a `SharedBuffer` the host wrote, against sending
//! the same bytes. At 8 B and 1 MiB, batch 1 and 100.
//!
//! Records: workload `"W11"`, runtimes
//!
//! - `knitting-threads`: the sum over a `SharedBuffer` on a thread pool
//!   (the handle moves; nothing is copied);
//! - `knitting-processes`: the same on a process pool (only a descriptor
//!   crosses, once per worker; then only the handle's id and range);
//! - `knitting-processes-bytes`: the same bytes sent as a
//!   `serde_bytes::ByteBuf` argument and summed by the worker (one copy
//!   into the arena, one out);
//! - `knitting-processes-pass`: the `SharedBuffer` call with a task that
//!   loads one word instead of summing: what the call itself costs, for
//!   the target "a shared buffer call costs the same at 1 MiB as at 8 B".
//!
//! The host writes each buffer once, before the measurement; every call
//! of a batch passes a clone of the same handle (the bytes runtime clones
//! its `ByteBuf`, as W2 does).

use std::sync::atomic::{AtomicU64, Ordering};

use knitting::SharedBuffer;
use serde_bytes::ByteBuf;

use super::{check, knitting_batches, shared_processes, shared_threads, Runner, Workload};
use crate::{
    mode::Mode,
    report::{KNITTING, KNITTING_PROCESSES},
    Result,
};

/// The payload sizes: one word, and 1 MiB.
pub const SIZES: &[usize] = &[8, 1 << 20];

/// The batch sizes.
pub const BATCHES: &[usize] = &[1, 100];

/// The runtime name of the bytes-sending process runner.
pub const BYTES: &str = "knitting-processes-bytes";

/// The runtime name of the load-one-word process runner.
pub const PASS: &str = "knitting-processes-pass";

/// The sum of the buffer's `u64` words (wrapping).
#[knitting::task]
fn sum_shared(shared: SharedBuffer) -> u64 {
    let words = shared.view::<AtomicU64>().expect("a word-sized buffer");
    words
        .iter()
        .fold(0u64, |sum, w| sum.wrapping_add(w.load(Ordering::Relaxed)))
}

/// The same sum over bytes that were sent.
#[knitting::task]
fn sum_bytes(bytes: ByteBuf) -> u64 {
    sum_of(&bytes)
}

/// The first word only: the call, with nothing of the buffer read.
#[knitting::task]
fn first_word(shared: SharedBuffer) -> u64 {
    shared.view::<AtomicU64>().expect("a word-sized buffer")[0].load(Ordering::Relaxed)
}

fn sum_of(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(8).fold(0u64, |sum, chunk| {
        sum.wrapping_add(u64::from_ne_bytes(chunk.try_into().expect("8 bytes")))
    })
}

/// The payload of `len` bytes: not all zeros.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// One buffer per size, written by the host.
fn buffers() -> Result<Vec<(usize, SharedBuffer)>> {
    SIZES
        .iter()
        .map(|&len| {
            let shared = SharedBuffer::new(len)?;
            shared.write(0, &payload(len))?;
            Ok((len, shared))
        })
        .collect()
}

fn buffer_of(buffers: &[(usize, SharedBuffer)], len: usize) -> SharedBuffer {
    buffers
        .iter()
        .find(|(l, _)| *l == len)
        .map(|(_, b)| b.clone())
        .expect("a buffer of every W11 size")
}

pub fn workload(_mode: &Mode) -> Result<Workload> {
    Ok(Workload {
        id: "W11",
        title: "worker sums a SharedBuffer the host wrote",
        sizes: SIZES,
        batches: BATCHES,
        plan: None,
        runners: vec![
            knitting_threads()?,
            knitting_processes()?,
            knitting_processes_bytes()?,
            knitting_processes_pass()?,
        ],
    })
}

fn knitting_threads() -> Result<Runner> {
    let pool = shared_threads()?;
    let buffers = buffers()?;
    for &len in SIZES {
        check(
            pool.call(sum_shared, buffer_of(&buffers, len)).wait()? == sum_of(&payload(len)),
            "a worker thread sums the shared buffer",
        )?;
    }
    Ok(Runner::new(KNITTING, move |point, sampler| {
        let shared = buffer_of(&buffers, point.bytes);
        knitting_batches(point.batch, sampler, |_| {
            pool.call(sum_shared, shared.clone())
        })
    }))
}

fn knitting_processes() -> Result<Runner> {
    let pool = shared_processes()?;
    let buffers = buffers()?;
    for &len in SIZES {
        check(
            pool.call(sum_shared, buffer_of(&buffers, len)).wait()? == sum_of(&payload(len)),
            "a worker process sums the shared buffer",
        )?;
    }
    Ok(Runner::new(KNITTING_PROCESSES, move |point, sampler| {
        let shared = buffer_of(&buffers, point.bytes);
        knitting_batches(point.batch, sampler, |_| {
            pool.call(sum_shared, shared.clone())
        })
    }))
}

fn knitting_processes_bytes() -> Result<Runner> {
    let pool = shared_processes()?;
    for &len in SIZES {
        check(
            pool.call(sum_bytes, ByteBuf::from(payload(len))).wait()? == sum_of(&payload(len)),
            "a worker process sums the bytes sent",
        )?;
    }
    Ok(Runner::new(BYTES, move |point, sampler| {
        let bytes = ByteBuf::from(payload(point.bytes));
        knitting_batches(point.batch, sampler, |_| {
            pool.call(sum_bytes, bytes.clone())
        })
    }))
}

fn knitting_processes_pass() -> Result<Runner> {
    let pool = shared_processes()?;
    let buffers = buffers()?;
    for &len in SIZES {
        let first = u64::from_ne_bytes(payload(8).try_into().expect("8 bytes"));
        check(
            pool.call(first_word, buffer_of(&buffers, len)).wait()? == first,
            "a worker process loads the shared buffer's first word",
        )?;
    }
    Ok(Runner::new(PASS, move |point, sampler| {
        let shared = buffer_of(&buffers, point.bytes);
        knitting_batches(point.batch, sampler, |_| {
            pool.call(first_word, shared.clone())
        })
    }))
}
