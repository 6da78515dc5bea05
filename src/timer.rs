//! Deadlines and hard time limits: one timer thread for the whole process.
//!
//! Entries sit in a min-heap ordered by their time on the shared clock; the
//! thread (`knitting-timer`, started on first use) sleeps until the earliest
//! one and fires it. Firing a deadline ends the call with its task's
//! timed-out outcome if the call has not ended (the cell's completion claim
//! decides the race with the worker) and raises its signal, also in a
//! process worker's abort word. Firing a thread lane's hard limit retires
//! the lane's thread if it is still running that call.
//!
//! An entry holds a reference to its call until it fires, also when the
//! call ended long before; a call with a far deadline keeps its cell (not
//! its arguments) alive until then.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{Condvar, Mutex, OnceLock},
    time::Duration,
};

use crate::{call::cell::JobRef, clock};

/// What to do when an entry's time comes.
pub(crate) enum Action {
    /// The call's deadline: end it with its timed-out outcome.
    Deadline {
        job: JobRef,
        at: u64,
        /// The process lane the call went to, to raise its abort word.
        #[cfg(target_os = "linux")]
        lane: Option<std::sync::Arc<crate::process::host::Lane>>,
    },
    /// A thread lane's hard time limit for the call it runs.
    HardLimit(Box<dyn FnOnce() + Send>),
}

impl Action {
    fn fire(self) {
        match self {
            #[cfg(target_os = "linux")]
            Action::Deadline { job, at, lane } => {
                if job.time_out(at) {
                    if let Some(lane) = lane {
                        lane.abort_key(job.key());
                    }
                }
            }
            #[cfg(not(target_os = "linux"))]
            Action::Deadline { job, at } => {
                job.time_out(at);
            }
            Action::HardLimit(retire) => retire(),
        }
    }
}

struct Entry {
    at: u64,
    seq: u64,
    action: Action,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Timer {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                seq: 0,
            }),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("knitting-timer".into())
            .spawn(move || run(timer))
            .expect("the knitting timer thread could not start");
        timer
    })
}

/// Fires `action` at `at` (shared-clock nanoseconds), or at once if that
/// has passed.
pub(crate) fn schedule(at: u64, action: Action) {
    let timer = timer();
    let mut state = timer.state.lock().unwrap_or_else(|e| e.into_inner());
    state.seq += 1;
    let seq = state.seq;
    let earliest = state.heap.peek().is_none_or(|Reverse(e)| at < e.at);
    state.heap.push(Reverse(Entry { at, seq, action }));
    drop(state);
    if earliest {
        timer.changed.notify_one();
    }
}

fn run(timer: &'static Timer) {
    let mut state = timer.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = clock::now_nanos();
        match state.heap.peek() {
            Some(Reverse(entry)) if entry.at <= now => {
                let Reverse(entry) = state.heap.pop().expect("peeked");
                drop(state);
                // User code may run here (a task's `default` expression, a
                // value's destructor): keep the timer alive through it.
                let _ =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.action.fire()));
                state = timer.state.lock().unwrap_or_else(|e| e.into_inner());
            }
            Some(Reverse(entry)) => {
                let wait = Duration::from_nanos(entry.at - now);
                state = timer
                    .changed
                    .wait_timeout(state, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            None => {
                state = timer.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}
