//! What `is_main` answers, thread by thread: false on a thread pool's
//! worker threads and on every thread of a worker process; true on every
//! other thread of the host, including a thread that a task spawns from a
//! thread worker (it is not a worker of any pool).

knitting::init_before_main!();

mod common;

use common::LONG;

/// `is_main` on the worker, and on a thread the task spawns.
#[knitting::task]
fn where_am_i() -> (bool, bool) {
    let spawned = std::thread::spawn(knitting::is_main)
        .join()
        .expect("the spawned thread ran");
    (knitting::is_main(), spawned)
}

fn bounded<T: Send + 'static>(mut call: knitting::Call<T>) -> T {
    call.wait_timeout(LONG)
        .expect("the call ended in time")
        .expect("the call succeeded")
}

#[test]
fn on_a_thread_pool_only_the_worker_threads_are_not_main() {
    assert!(knitting::is_main());
    let pool = common::pool(1);
    let (worker, spawned) = bounded(pool.call(where_am_i, ()));
    assert!(!worker, "a worker thread");
    assert!(
        spawned,
        "a thread a task spawned is a host thread, not a worker"
    );
    // A thread the host spawns is a host thread too.
    assert!(std::thread::spawn(knitting::is_main).join().unwrap());
}

#[test]
fn in_a_worker_process_no_thread_is_main() {
    let pool = knitting::Pool::builder()
        .processes(1)
        .build()
        .expect("process pool");
    let (worker, spawned) = bounded(pool.call(where_am_i, ()));
    assert!(!worker, "the worker process's serving thread");
    assert!(!spawned, "any thread of a worker process");
}
