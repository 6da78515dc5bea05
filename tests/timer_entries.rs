//! A call's deadline and hard time limit go away with the call: calls that
//! finish long before an hour-long deadline leave nothing in the timer.
//! One test in a file of its own, so that no other test adds
//! timer entries meanwhile.

knitting::init_before_main!();

mod common;

use std::time::Duration;

use common::LONG;

const HOUR: Duration = Duration::from_secs(3600);

#[knitting::task]
fn double(v: u64) -> u64 {
    v * 2
}

#[knitting::task(timeout = "60m", hard_timeout = "60m")]
fn double_within_an_hour(v: u64) -> u64 {
    v * 2
}

/// Makes `n` calls in batches, each with an hour's deadline (per call, and
/// the task's own), and waits for them all; returns what the timer holds
/// afterwards.
macro_rules! entries_left_after {
    ($pool:expr, $n:expr) => {{
        let pool = $pool;
        let n: u64 = $n;
        let before = knitting::__private::timer_entries();
        for batch in (0..n).collect::<Vec<_>>().chunks(1000) {
            let calls: Vec<_> = batch
                .iter()
                .map(|&v| {
                    if v % 2 == 0 {
                        pool.call(double, v).timeout(HOUR)
                    } else {
                        pool.call(double_within_an_hour, v)
                    }
                })
                .collect();
            for (v, mut call) in batch.iter().zip(calls) {
                let result = call.wait_timeout(LONG).expect("the call ended in time");
                assert_eq!(result.unwrap(), v * 2);
            }
        }
        drop(pool);
        knitting::__private::timer_entries().saturating_sub(before)
    }};
}

#[test]
fn finished_calls_leave_no_timer_entries() {
    // One test for both runtimes: tests of one file run in parallel.
    let left = entries_left_after!(common::pool(2), 100_000);
    assert!(
        left <= 2_000,
        "{left} timer entries left by 100000 finished thread calls"
    );

    let pool = knitting::Pool::builder()
        .processes(2)
        .hard_timeout(HOUR)
        .build()
        .expect("process pool");
    let left = entries_left_after!(pool, 20_000);
    assert!(
        left <= 2_000,
        "{left} timer entries left by 20000 finished process calls"
    );
}
