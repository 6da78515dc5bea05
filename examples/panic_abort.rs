//! A panicking task in a program built with `panic = "abort"`, as many
//! services are: on a process pool the panic takes down its own worker
//! process only. That call fails with `WorkerDied` (the worker died of
//! `SIGABRT`), the worker is replaced, and every other call (the ones
//! queued behind it, a stream, an async call) still gets its own value.
//! Built the usual way (unwinding), the same panic is a `Panic` error and
//! the worker lives on.
//!
//! Run it both ways:
//!
//! ```sh
//! cargo run --release --example panic_abort
//! CARGO_PROFILE_RELEASE_PANIC=abort cargo run --release --example panic_abort
//! ```

use std::time::Duration;

use knitting::{ErrorKind, Sender};

#[knitting::task]
fn checked_div(a: u64, b: u64) -> u64 {
    if b == 0 {
        panic!("{a} divided by zero");
    }
    a / b
}

#[knitting::task]
fn squares(n: u64, out: Sender<u64>) -> u64 {
    (0..n).take_while(|&i| out.send(i * i).is_ok()).count() as u64
}

#[knitting::task]
async fn later(v: u64) -> u64 {
    knitting::sleep(Duration::from_millis(5)).await;
    v
}

fn main() -> Result<(), knitting::Error> {
    knitting::init();
    let aborts = cfg!(panic = "abort");
    println!(
        "built with panic = {}",
        if aborts { "abort" } else { "unwind" }
    );
    let pool = knitting::Pool::builder().processes(1).build()?;

    let before: Vec<_> = (1..=4).map(|b| pool.call(checked_div, (840, b))).collect();
    let panics = pool.call(checked_div, (1, 0));
    let behind: Vec<_> = (5..=8).map(|b| pool.call(checked_div, (840, b))).collect();
    let stream = pool.stream(squares, 10);
    let async_call = pool.call(later, 42);

    let err = panics.wait().expect_err("a division by zero panics");
    match err.kind() {
        ErrorKind::WorkerDied => {
            assert!(aborts, "only an aborting panic kills the worker: {err}");
            println!("the panicking call: its worker died ({err})");
        }
        ErrorKind::Panic => {
            assert!(!aborts, "an aborting panic cannot be caught: {err}");
            println!("the panicking call: {err}");
        }
        other => panic!("unexpected {other:?}: {err}"),
    }
    let quotients = before
        .into_iter()
        .chain(behind)
        .map(knitting::Call::wait)
        .collect::<Result<Vec<u64>, _>>()?;
    assert_eq!(quotients, [840, 420, 280, 210, 168, 140, 120, 105]);
    println!("the other calls: {quotients:?}");
    let items = stream.collect::<Result<Vec<u64>, _>>()?;
    assert_eq!(items, (0..10).map(|i| i * i).collect::<Vec<_>>());
    println!("the stream: {} items", items.len());
    assert_eq!(async_call.wait()?, 42);
    println!("the async call: 42");
    let restarts = pool.stats().lanes[0].restarts;
    assert_eq!(restarts, usize::from(aborts), "workers replaced");
    println!("workers replaced: {restarts}");
    Ok(())
}
