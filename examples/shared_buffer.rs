//! `SharedBuffer`: memory the host and its workers share, with no copy.
//!
//! The host stores 42 at index 0 with an atomic and a worker process loads
//! it (the original library's `ProcessSharedBuffer` example); then a worker
//! fills a 1 MiB buffer and the host reads what it wrote. Only a
//! descriptor crosses to the worker process, never the bytes; the same
//! code on a thread pool shares the very same memory with a worker thread.
//!
//! Run it with `cargo run --example shared_buffer`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use knitting::SharedBuffer;

/// Loads the first `u32` of the buffer.
#[knitting::task]
fn load_first(shared: SharedBuffer) -> u32 {
    shared.view::<AtomicU32>().expect("a u32 view")[0].load(Ordering::Acquire)
}

/// Writes word `i` = `i * step` over the whole buffer; returns how many.
#[knitting::task]
fn fill(shared: SharedBuffer, step: u64) -> usize {
    let words = shared.view::<AtomicU64>().expect("a u64 view");
    for (i, word) in words.iter().enumerate() {
        word.store(i as u64 * step, Ordering::Relaxed);
    }
    words.len()
}

fn main() -> Result<(), knitting::Error> {
    knitting::init();

    let shared = SharedBuffer::new(64)?;
    shared.view::<AtomicU32>()?[0].store(42, Ordering::Release);

    let processes = knitting::Pool::builder().processes(1).build()?;
    let loaded = processes.call(load_first, shared.clone()).wait()?;
    println!("a worker process loaded {loaded}");
    assert_eq!(loaded, 42);

    let big = SharedBuffer::new(1 << 20)?;
    let words = processes.call(fill, (big.clone(), 3)).wait()?;
    let seen = big.view::<AtomicU64>()?;
    assert!(seen
        .iter()
        .enumerate()
        .all(|(i, w)| w.load(Ordering::Relaxed) == i as u64 * 3));
    println!("a worker process wrote {words} words; the host read them all in place");

    let threads = knitting::Pool::builder().threads(1).build()?;
    threads.call(fill, (big.clone(), 5)).wait()?;
    assert_eq!(seen[7].load(Ordering::Relaxed), 35);
    println!("a worker thread wrote into the same memory: word 7 is now 35");
    Ok(())
}
