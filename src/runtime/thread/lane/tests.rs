//! The hand-over of a lane from a thread cut off by its hard time limit
//! to a fresh one, driven without a pool so that Miri can check the
//! ownership of the running call (`cargo +nightly miri test --lib
//! worker::thread::`).

use std::sync::Arc;

use super::*;
use crate::{call::cell::CallRef, ErrorKind, Signal, Task, TaskInfo};

/// Spins until its signal is raised.
#[derive(Clone, Copy)]
struct Spin;

static SPIN: TaskInfo = TaskInfo::new("thread::spin", file!(), line!());

impl Task for Spin {
    type Args = Arc<()>;
    type Output = Arc<()>;

    fn info(&self) -> &TaskInfo {
        &SPIN
    }

    fn run(value: Arc<()>, signal: &Signal) -> Result<Arc<()>, Error> {
        while !signal.aborted() {
            std::thread::yield_now();
        }
        Ok(value)
    }
}

#[test]
fn a_retired_thread_leaves_its_lane_and_the_call_ends_once() {
    let lane = Arc::new(Lane::new(4));
    let flags = Arc::new((AtomicBool::new(false), AtomicBool::new(false)));
    let old_slot = lane.new_slot();
    let value = Arc::new(());
    let (call, job) = CallRef::new(Spin, Arc::clone(&value));
    let key = call.key();
    lane.push(job);

    let worker = {
        let (lane, flags) = (Arc::clone(&lane), Arc::clone(&flags));
        std::thread::spawn(move || {
            let spin = SpinPolicy {
                budget: Duration::ZERO,
            };
            let crew = Crew {
                lanes: std::slice::from_ref(&*lane),
                index: 0,
                steal: true,
            };
            let asyncs = AsyncSetup {
                limit: 1,
                bell: &|| unreachable!("no async call here"),
                on_start: &|_| None,
            };
            run_worker(
                crew,
                old_slot,
                1,
                &flags.0,
                &flags.1,
                spin,
                &|_| None,
                &asyncs,
            )
        })
    };
    // The hard limit takes the call once it runs, as the timer does.
    let taken = loop {
        if let Some(job) = lane.retire(old_slot, key) {
            break job;
        }
        std::thread::yield_now();
    };
    assert!(taken.fail(Error::hard_timeout(Duration::from_millis(1), "test")));
    taken.raise();
    drop(taken);
    let new_slot = lane.new_slot();

    assert_eq!(worker.join().unwrap(), Exit::Retired);
    assert!(lane.is_current(new_slot));
    assert!(!lane.is_current(old_slot));
    assert!(call.is_done());
    // SAFETY: done, taken once, and `Spin`'s output is `Arc<()>`.
    let err = unsafe { call.take::<Arc<()>>() }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HardTimeout);
    drop(call);
    // The task's value was dropped by the retired thread; only ours is
    // left: nothing leaked, nothing freed twice.
    assert_eq!(Arc::strong_count(&value), 1);
    // A finished call is not taken again.
    assert!(lane.retire(new_slot, key).is_none());
}
