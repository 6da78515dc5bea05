//! Deadlines and hard time limits: one timer thread for the whole process.
//!
//! # Design
//!
//! Every entry has a key (a counter, never reused). The actions live in a
//! map from key to action; the order lives in a min-heap of `(time, key)`
//! pairs on the shared clock. The thread (`knitting-timer`, started on
//! first use) sleeps until the earliest pair, takes that key's action out
//! of the map and fires it.
//!
//! An entry can be cancelled: [`cancel`] takes its action out of the map at
//! once, so the call reference (and so the call cell) it held is let go of
//! when the call ends, not when its deadline passes. The pair it leaves in
//! the heap is 16 bytes and is skipped when it comes up; when such stale
//! pairs outnumber the live ones, the heap is swept, so what the timer
//! holds stays within a small factor of the entries still live. A call's
//! cell keeps the key of its deadline entry and cancels it as the call
//! ends (see [`cell`](crate::call::cell)); a thread lane cancels the hard
//! limit of each call it finished.
//!
//! Why this over the alternatives: a timer wheel needs a tick, and
//! deadlines here range from microseconds to hours; a heap that tracks
//! each entry's position removes in `O(log n)` but needs the position kept
//! on every swap. Lazy removal with sweeps costs amortized `O(1)` per
//! cancel and keeps the heap a plain `BinaryHeap`.
//!
//! Firing a deadline ends the call with its task's timed-out outcome if the
//! call has not ended (the cell's completion claim decides the race with
//! the worker) and raises its signal, also in a process worker's abort
//! word. Firing a thread lane's hard limit retires the lane's thread if it
//! is still running that call.
//!
//! The timer's lock is a leaf: nothing else is locked, and no user code
//! runs (no action fires, no action is dropped) while it is held.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::{Condvar, Mutex, OnceLock},
    time::Duration,
};

use crate::{
    call::{cell::JobRef, route::Route},
    time as clock,
};

/// What to do when an entry's time comes.
pub(crate) enum Action {
    /// The call's deadline: end it with its timed-out outcome.
    Deadline {
        job: JobRef,
        at: u64,
        /// The lane the call went to, to tell its worker (see [`Route`]).
        route: Option<std::sync::Arc<dyn Route>>,
    },
    /// A thread lane's hard time limit for the call it runs.
    HardLimit(Box<dyn FnOnce() + Send>),
    /// A [`sleep`](crate::sleep) is over: wake its task.
    Wake(std::sync::Arc<atomic_waker::AtomicWaker>),
}

impl Action {
    fn fire(self) {
        match self {
            Action::Deadline { job, at, route } => {
                if job.time_out(at) {
                    if let Some(route) = route {
                        route.abort(job.key());
                    }
                }
            }
            Action::HardLimit(retire) => retire(),
            Action::Wake(waker) => waker.wake(),
        }
    }
}

/// Names one timer entry, to [`cancel`] it; never 0 (0 means "none" where
/// a key is stored in an atomic word).
pub(crate) type Key = u64;

struct Timer {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// `(time, key)` of every live entry, and of cancelled ones not swept
    /// yet.
    heap: BinaryHeap<Reverse<(u64, Key)>>,
    /// The actions of the live entries.
    actions: HashMap<Key, Action>,
    /// The last key handed out.
    last_key: Key,
}

impl State {
    /// Drops the heap pairs of cancelled entries once they outnumber the
    /// live ones (plus some slack, so that a small timer never sweeps),
    /// and gives back memory that a burst of entries left behind.
    fn sweep_if_stale(&mut self) {
        const SLACK: usize = 1024;
        let live = self.actions.len();
        if self.heap.len() <= 2 * live + SLACK {
            return;
        }
        let actions = &self.actions;
        self.heap
            .retain(|Reverse((_, key))| actions.contains_key(key));
        if self.heap.capacity() > 4 * self.heap.len() + SLACK {
            self.heap.shrink_to_fit();
        }
        if self.actions.capacity() > 4 * live + SLACK {
            self.actions.shrink_to_fit();
        }
    }
}

/// The timer, once the first [`schedule`] started it.
static TIMER: OnceLock<&'static Timer> = OnceLock::new();

fn timer() -> &'static Timer {
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                actions: HashMap::new(),
                last_key: 0,
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
/// has passed. The key cancels it.
pub(crate) fn schedule(at: u64, action: Action) -> Key {
    let timer = timer();
    let mut state = timer.state.lock().unwrap_or_else(|e| e.into_inner());
    state.last_key += 1;
    let key = state.last_key;
    let earliest = state.heap.peek().is_none_or(|Reverse((e, _))| at < *e);
    state.heap.push(Reverse((at, key)));
    state.actions.insert(key, action);
    drop(state);
    if earliest {
        timer.changed.notify_one();
    }
    key
}

/// Cancels entry `key` unless it fired already: its action is dropped
/// without firing. A key of 0 names no entry.
#[inline]
pub(crate) fn cancel(key: Key) {
    if key != 0 {
        cancel_entry(key);
    }
}

fn cancel_entry(key: Key) {
    let Some(timer) = TIMER.get() else {
        return;
    };
    let mut state = timer.state.lock().unwrap_or_else(|e| e.into_inner());
    let action = state.actions.remove(&key);
    if action.is_some() {
        state.sweep_if_stale();
    }
    drop(state);
    // Dropping the action may drop the last reference to a call cell, and
    // with it user values: outside the lock.
    drop(action);
}

/// How many entries the timer holds, live or cancelled but not swept yet
/// (for tests of its memory).
pub(crate) fn entries() -> usize {
    let Some(timer) = TIMER.get() else {
        return 0;
    };
    let state = timer.state.lock().unwrap_or_else(|e| e.into_inner());
    state.heap.len().max(state.actions.len())
}

fn run(timer: &'static Timer) {
    let mut state = timer.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = clock::now_nanos();
        match state.heap.peek().copied() {
            Some(Reverse((at, key))) if at <= now => {
                state.heap.pop();
                let Some(action) = state.actions.remove(&key) else {
                    // Cancelled.
                    continue;
                };
                drop(state);
                // User code may run here (a task's `default` expression, a
                // value's destructor): keep the timer alive through it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| action.fire()));
                state = timer.state.lock().unwrap_or_else(|e| e.into_inner());
            }
            Some(Reverse((at, _))) => {
                let wait = Duration::from_nanos(at - now);
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
