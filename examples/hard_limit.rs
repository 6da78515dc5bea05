//! A CPU runaway stopped by a hard time limit: the task never returns on its
//! own; its 300 ms hard limit cuts the call, and the next call works. On a
//! process pool the worker is killed and replaced; on a thread pool the lane
//! gets a fresh thread and the runaway thread is left to spin (threads
//! cannot be killed), so this example exits the process at the end.
//!
//! Run it with `cargo run --release --example hard_limit`.

use std::time::{Duration, Instant};

/// Spins forever (or until the process ends).
#[knitting::task(hard_timeout = "300ms")]
fn runaway(seed: u64) -> u64 {
    let mut x = seed;
    loop {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        std::hint::black_box(x);
    }
}

#[knitting::task]
fn double(v: u64) -> u64 {
    v * 2
}

fn main() -> Result<(), knitting::Error> {
    knitting::init();

    let processes = knitting::Pool::builder().processes(1).build()?;
    let before = processes.worker_pids()[0];
    let started = Instant::now();
    let err = processes.call(runaway, 1).wait().unwrap_err();
    println!(
        "processes: {:?} after {:?}: {}",
        err.kind(),
        round(started.elapsed()),
        err.message()
    );
    println!(
        "processes: next call = {}",
        processes.call(double, 21).wait()?
    );
    println!(
        "processes: worker {:?} replaced by {:?}",
        before,
        processes.worker_pids()[0]
    );

    let threads = knitting::Pool::builder().threads(1).build()?;
    let started = Instant::now();
    let err = threads.call(runaway, 1).wait().unwrap_err();
    println!(
        "threads:   {:?} after {:?}: {}",
        err.kind(),
        round(started.elapsed()),
        err.message()
    );
    println!(
        "threads:   next call = {}",
        threads.call(double, 21).wait()?
    );
    // The runaway thread still spins; ending the process ends it.
    std::process::exit(0);
}

/// To the millisecond, for a readable line.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
