//! Cooperative abort: a task that counts towards a billion, checking its
//! signal as it goes. The caller aborts at once; the task sees the signal
//! at its next check and the call ends with the count so far: far below
//! the limit, and quickly, on a thread pool and on a process pool alike.
//!
//! `cancel()` instead ends the call at once on the caller's side (with a
//! `Cancelled` error) and raises the same signal, so the task stops too.
//!
//! Run it with `cargo run --release --example abort`.

use std::time::Instant;

#[knitting::task]
fn count_until_stopped(limit: u64, signal: &knitting::Signal) -> u64 {
    let mut n = 0;
    while !signal.aborted() && n < limit {
        n += 1;
    }
    n
}

fn main() -> Result<(), knitting::Error> {
    knitting::init();

    let threads = knitting::Pool::builder().threads(1).build()?;
    let processes = knitting::Pool::builder().processes(1).build()?;

    let started = Instant::now();
    let pending = threads.call(count_until_stopped, 1_000_000_000);
    pending.abort();
    let count = pending.wait()?;
    println!(
        "threads:   aborted after {count} of 1000000000, in {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let pending = processes.call(count_until_stopped, 1_000_000_000);
    pending.abort();
    let count = pending.wait()?;
    println!(
        "processes: aborted after {count} of 1000000000, in {:?}",
        started.elapsed()
    );

    let pending = processes.call(count_until_stopped, u64::MAX);
    let err = pending.cancel().unwrap_err();
    println!(
        "processes: cancel() -> {:?}; the worker stopped too",
        err.kind()
    );
    let next = processes.call(count_until_stopped, 10).wait()?;
    println!("processes: the next call counts to {next}");
    Ok(())
}
