//! `maybe_slow`, after the original library's `maybeSlow`: an async task
//! that sometimes sleeps longer than its caller will wait. Every third
//! call sleeps a second; the others 10 ms. Each call gets a 250 ms
//! deadline (`.timeout(..)`), so the fast calls finish and the slow ones
//! time out, all at once: the calls wait on timers, not on threads, so
//! two worker threads hold every one of them.
//!
//! A call that times out ends with a `Timeout` error at its deadline, and
//! its task's future is dropped there, at the `.await` it is parked on:
//! the worker does not go on sleeping for a caller who left.
//!
//! Run it with `cargo run --release --example maybe_slow`.

use std::time::{Duration, Instant};

/// How long call `id` sleeps: every third one longer than its deadline.
fn nap_of(id: u32) -> Duration {
    if id.is_multiple_of(3) {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(10)
    }
}

#[knitting::task]
async fn maybe_slow(id: u32) -> String {
    let nap = nap_of(id);
    knitting::sleep(nap).await;
    format!("call {id} slept {nap:?}")
}

fn main() -> Result<(), knitting::Error> {
    knitting::init();
    let pool = knitting::Pool::builder().threads(2).build()?;
    let timeout = Duration::from_millis(250);

    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|id| (id, pool.call(maybe_slow, id).timeout(timeout)))
        .collect();
    let (mut finished, mut timed_out) = (0, 0);
    for (id, call) in calls {
        match call.wait() {
            Ok(message) => {
                finished += 1;
                println!("finished:  {message}");
            }
            Err(err) if err.is_timeout() => {
                timed_out += 1;
                println!("timed out: call {id} (would sleep {:?})", nap_of(id));
            }
            Err(err) => return Err(err),
        }
    }
    println!(
        "{finished} finished, {timed_out} timed out, in {:?} (deadline {timeout:?})",
        round(started.elapsed())
    );
    Ok(())
}

/// To the millisecond, for a readable line.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
