//! Helpers shared by the integration test files.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::time::Duration;

use knitting::Pool;

/// Upper bound for anything a test waits on: a hang fails, never blocks CI.
pub(crate) const LONG: Duration = Duration::from_secs(10);

/// A pool of `threads` workers.
pub(crate) fn pool(threads: usize) -> Pool {
    Pool::builder()
        .threads(threads)
        .build()
        .expect("pool builds")
}
