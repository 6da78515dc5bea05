//! With `RUST_BACKTRACE=1`, a task's panic arrives with its backtrace, on
//! thread workers and on process workers alike. One test in its own file:
//! it sets the variable for the whole test process (and the workers it
//! starts) before anything captures a backtrace.

knitting::init_before_main!();

mod common;

use common::LONG;

#[knitting::task]
fn deep_panic(v: u32) -> u32 {
    if v > 0 {
        panic!("panicked on purpose with {v}");
    }
    v
}

fn check(err: knitting::Error) {
    assert!(err.is_panic(), "{err:?}");
    let backtrace = err.backtrace().expect("a backtrace with RUST_BACKTRACE=1");
    assert!(
        backtrace.contains("deep_panic"),
        "the task's frame: {backtrace}"
    );
}

#[test]
fn a_panic_arrives_with_its_backtrace_on_threads_and_processes() {
    // Before any thread of this test process captures a backtrace (std
    // reads the variable once) and before the workers start.
    std::env::set_var("RUST_BACKTRACE", "1");
    let threads = common::pool(1);
    for _ in 0..2 {
        let mut call = threads.call(deep_panic, 1);
        check(call.wait_timeout(LONG).expect("ended in time").unwrap_err());
    }
    let processes = knitting::Pool::builder()
        .processes(1)
        .build()
        .expect("process pool");
    for _ in 0..2 {
        let mut call = processes.call(deep_panic, 1);
        check(call.wait_timeout(LONG).expect("ended in time").unwrap_err());
    }
}
