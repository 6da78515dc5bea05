//! The limits (`runtime: "limit"`): what no runtime can beat on this
//! machine.
//!
//! - [`PingPong`]: a round trip between two threads that spin on one shared
//!   word, the floor of W1 at batch 1.
//! - [`Memcpy`]: one 1 MiB `memcpy` per call into a buffer already faulted
//!   in, the floor of W2 (a runtime that keeps the caller's payload and
//!   returns a fresh buffer copies at least this much).

use std::{
    hint::{black_box, spin_loop},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
};

use crate::Result;

/// The word the two threads pass back and forth, alone on its cache lines.
#[repr(align(128))]
struct Word(AtomicU64);

/// Tells the responder to exit.
const STOP: u64 = u64::MAX;

/// Two threads spinning on one word: the caller writes an odd value, the
/// responder answers with the next (even) one.
///
/// The responder spins a whole core while the pair lives: start it right
/// before measuring and drop it right after.
pub struct PingPong {
    word: Arc<Word>,
    last: u64,
    responder: Option<JoinHandle<()>>,
}

impl PingPong {
    pub fn start() -> Result<Self> {
        let word = Arc::new(Word(AtomicU64::new(0)));
        let shared = Arc::clone(&word);
        let responder = thread::Builder::new()
            .name("ping-pong-responder".into())
            .spawn(move || loop {
                match shared.0.load(Ordering::Acquire) {
                    STOP => break,
                    ping if ping % 2 == 1 => shared.0.store(ping + 1, Ordering::Release),
                    _ => spin_loop(),
                }
            })?;
        let mut pair = Self {
            word,
            last: 0,
            responder: Some(responder),
        };
        // The first answer proves the responder runs: a thread still being
        // scheduled in must not land in the first samples.
        pair.round_trip();
        Ok(pair)
    }

    /// One round trip.
    #[inline]
    pub fn round_trip(&mut self) {
        let ping = self.last + 1;
        self.word.0.store(ping, Ordering::Release);
        while self.word.0.load(Ordering::Acquire) != ping + 1 {
            spin_loop();
        }
        self.last = ping + 1;
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        self.word.0.store(STOP, Ordering::Release);
        if let Some(responder) = self.responder.take() {
            let _ = responder.join();
        }
    }
}

/// `batch` copies of one payload into `batch` distinct buffers, all
/// allocated and faulted in beforehand.
pub struct Memcpy {
    source: Vec<u8>,
    targets: Vec<Vec<u8>>,
}

impl Memcpy {
    pub fn new(source: Vec<u8>) -> Self {
        Self {
            source,
            targets: Vec::new(),
        }
    }

    /// Makes room for batches of `batch` copies; call before timing.
    pub fn prepare(&mut self, batch: usize) {
        while self.targets.len() < batch {
            // Written, not just allocated: every page is faulted in now.
            self.targets.push(vec![0xA5; self.source.len()]);
        }
    }

    /// Copies the payload once into each of the first `batch` buffers.
    #[inline]
    pub fn copy_batch(&mut self, batch: usize) {
        for target in &mut self.targets[..batch] {
            target.copy_from_slice(black_box(&self.source));
            black_box(&target);
        }
    }
}
