//! `progress`: a progress bar driven by a streaming task on a worker
//! process.
//!
//! The task works through 200 chunks: it generates 512 KiB of data for
//! each one and hashes it (FNV-1a), and sends one `Progress` item per
//! chunk on its `knitting::Sender`. Its final value is a `Summary` of the
//! whole run. The host reads the stream, moves an `indicatif` bar on at
//! each item, and at the end prints a plain summary line, checking that
//! the hashes it read fold to the worker's own checksum.
//!
//! The bar draws on stderr when stderr is a terminal; with stderr piped
//! it hides itself, and only the summary lines are printed.
//!
//! Run it with `cargo run --release --example progress`.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use knitting::Sender;

/// The chunks of one run.
const CHUNKS: u32 = 200;

/// The data generated and hashed for each chunk.
const CHUNK_BYTES: usize = 512 << 10;

/// One chunk done: what the task streams to the host.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Progress {
    chunk: u32,
    hash: u64,
}

/// The task's final value.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Summary {
    chunks: u32,
    bytes: u64,
    checksum: u64,
    /// The worker process that did the work.
    pid: u32,
}

/// Generates and hashes `chunks` chunks, sending a `Progress` after each
/// one; stops early if the host drops the stream.
#[knitting::task]
fn process(chunks: u32, out: Sender<Progress>) -> Summary {
    let mut data = vec![0u8; CHUNK_BYTES];
    let mut summary = Summary {
        chunks: 0,
        bytes: 0,
        checksum: 0,
        pid: std::process::id(),
    };
    for chunk in 0..chunks {
        generate(chunk, &mut data);
        let hash = fnv1a(&data);
        summary.chunks += 1;
        summary.bytes += data.len() as u64;
        summary.checksum = fold(summary.checksum, hash);
        if out.send(Progress { chunk, hash }).is_err() {
            break;
        }
    }
    summary
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First thing in main: a worker process is this program started again,
    // and it enters here and never returns.
    knitting::init();

    let pool = knitting::Pool::builder().processes(1).build()?;
    let bar = ProgressBar::new(u64::from(CHUNKS));
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} chunks, {elapsed} {msg}",
    )?);

    let started = Instant::now();
    let mut stream = pool.stream(process, CHUNKS);
    let (mut read, mut checksum) = (0u32, 0u64);
    for progress in stream.by_ref() {
        let Progress { chunk, hash } = progress?;
        read += 1;
        checksum = fold(checksum, hash);
        bar.set_message(format!("chunk {chunk}: {hash:016x}"));
        bar.inc(1);
    }
    let summary = stream.finish()?;
    bar.finish_and_clear();

    println!(
        "processed {} chunks ({} MiB) in {:?}, checksum {:016x}",
        summary.chunks,
        summary.bytes >> 20,
        round(started.elapsed()),
        summary.checksum
    );
    println!(
        "read {read} progress items from worker process {} (this process is {})",
        summary.pid,
        std::process::id()
    );
    if read != summary.chunks || checksum != summary.checksum {
        return Err(format!(
            "the items ({read}, checksum {checksum:016x}) disagree with the summary"
        )
        .into());
    }
    println!("the items fold to the summary's checksum");
    Ok(())
}

/// Fills `data` with splitmix64 words seeded by the chunk number.
fn generate(chunk: u32, data: &mut [u8]) {
    let mut state = u64::from(chunk);
    for word in data.chunks_exact_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        word.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
}

/// 64-bit FNV-1a.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Folds one chunk's hash into a running checksum, in order.
fn fold(checksum: u64, hash: u64) -> u64 {
    (checksum.rotate_left(5) ^ hash).wrapping_mul(0x0100_0000_01b3)
}

/// To the millisecond, for a readable line.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
