//! A task with a deadline and a default: it sleeps for a second, its
//! deadline is 200 ms, and the call gives "timed out" after about 200 ms,
//! on a thread pool and on a process pool alike.
//!
//! Run it with `cargo run --release --example timeout`.

use std::time::{Duration, Instant};

#[knitting::task(timeout = "200ms", default = "timed out")]
fn maybe_slow(name: String) -> String {
    std::thread::sleep(Duration::from_secs(1));
    format!("hello {name}")
}

fn main() -> Result<(), knitting::Error> {
    knitting::init();

    let threads = knitting::Pool::builder().threads(1).build()?;
    let started = Instant::now();
    let answer = threads.call(maybe_slow, "knitting".into()).wait()?;
    println!("threads:   {answer:?} after {:?}", round(started.elapsed()));

    let processes = knitting::Pool::builder().processes(1).build()?;
    let started = Instant::now();
    let answer = processes.call(maybe_slow, "knitting".into()).wait()?;
    println!("processes: {answer:?} after {:?}", round(started.elapsed()));
    Ok(())
}

/// To the millisecond, for a readable line.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
