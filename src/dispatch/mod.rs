//! Dispatch: which runtime a pool runs on, and which lane a new call goes
//! to, the same rule for every runtime, and which calls stay with their
//! caller instead (the inline lane, [`Engine::keep`]).
//!
//! [`Engine`] is the pool's runtime: one private enum, one `match` per
//! operation, so that the public [`Pool`](crate::Pool) writes its call
//! path, shutdown and stats once. [`balance`] is the lane choice: the
//! built-in balancers and a user's own, over what each runtime tells of
//! its lanes.

pub(crate) mod balance;

use std::{sync::Arc, time::Instant};

use crate::{
    call::{
        cell::{CallRef, JobRef},
        latency::Latency,
        route::Route,
    },
    diag::{self, Diagnostics},
    runtime::{process, thread, Lanes, Remote, RuntimeKind},
    sync::{AtomicUsize, Ordering},
    LaneStats,
};

use self::balance::{Spread, Strategy};

/// A pool's runtime, and how its calls are spread over the lanes.
/// Items a stream holds before its task waits, unless the builder says.
pub(crate) const DEFAULT_STREAM_BOUND: usize = 64;

pub(crate) struct Engine {
    runtime: Runtimes,
    spread: Spread,
    /// Calls in flight from which new calls run on their caller's thread
    /// (thread pools; `None`: only `#[task(inline)]` ones do).
    inline_threshold: Option<usize>,
    /// Calls run on their caller's thread.
    inlined: AtomicUsize,
    /// Which diagnostics the pool emits.
    diagnostics: Diagnostics,
    /// The call latency histogram, if the pool records one.
    latency: Option<Arc<Latency>>,
    /// Items a stream holds before its task waits.
    stream_bound: usize,
}

enum Runtimes {
    Threads(thread::Runtime),
    Processes(process::Runtime),
}

impl Engine {
    pub(crate) fn threads(rt: thread::Runtime, strategy: Strategy) -> Self {
        Self {
            runtime: Runtimes::Threads(rt),
            spread: Spread::new(strategy),
            inline_threshold: None,
            inlined: AtomicUsize::new(0),
            diagnostics: Diagnostics::NONE,
            latency: None,
            stream_bound: DEFAULT_STREAM_BOUND,
        }
    }

    /// Sets the diagnostics the pool emits, and says the pool is built.
    pub(crate) fn with_diagnostics(mut self, diagnostics: Diagnostics) -> Self {
        self.diagnostics = diagnostics;
        let processes = matches!(self.runtime, Runtimes::Processes(_));
        diag::pool_built(diagnostics, processes, self.workers());
        self
    }

    /// Makes the pool record its calls' latency (or not).
    pub(crate) fn with_latency(mut self, on: bool) -> Self {
        self.latency = on.then(Latency::new);
        self
    }

    /// The pool's latency histogram, if it records one.
    #[inline]
    pub(crate) fn latency(&self) -> Option<&Arc<Latency>> {
        self.latency.as_ref()
    }

    /// The diagnostics the pool emits.
    pub(crate) fn diagnostics(&self) -> Diagnostics {
        self.diagnostics
    }

    /// Sets how many items a stream holds before its task waits.
    pub(crate) fn with_stream_bound(mut self, bound: usize) -> Self {
        self.stream_bound = bound;
        self
    }

    /// How many items a stream holds before its task waits.
    pub(crate) fn stream_bound(&self) -> usize {
        self.stream_bound
    }

    /// Sets the inline threshold (see [`Engine::keep`]).
    pub(crate) fn with_inline_threshold(mut self, threshold: Option<usize>) -> Self {
        self.inline_threshold = threshold;
        self
    }

    pub(crate) fn processes(rt: process::Runtime, strategy: Strategy) -> Self {
        Self {
            runtime: Runtimes::Processes(rt),
            spread: Spread::new(strategy),
            inline_threshold: None,
            inlined: AtomicUsize::new(0),
            diagnostics: Diagnostics::NONE,
            latency: None,
            stream_bound: DEFAULT_STREAM_BOUND,
        }
    }

    pub(crate) fn kind(&self) -> RuntimeKind {
        match &self.runtime {
            Runtimes::Threads(_) => RuntimeKind::Threads,
            Runtimes::Processes(_) => RuntimeKind::Processes,
        }
    }

    /// Hands a new call to a lane. Returns the call's home pool (for the
    /// nested-call rule, 0 for none) and its route, if its handle has a
    /// part to play.
    #[inline]
    pub(crate) fn submit(
        &self,
        call: &CallRef,
        job: JobRef,
        remote: Option<Remote>,
    ) -> (usize, Option<Arc<dyn Route>>) {
        match &self.runtime {
            Runtimes::Threads(rt) => {
                let lane = self.spread.pick(rt);
                diag::call_sent(self.diagnostics, || call.task_name(), lane);
                (rt.submit(lane, call, job), None)
            }
            Runtimes::Processes(rt) => {
                let remote = remote.expect("a process pool only accepts tasks that can travel");
                let lane = self.spread.pick(rt);
                diag::call_sent(self.diagnostics, || call.task_name(), lane);
                (0, Some(rt.submit(lane, job, remote)))
            }
        }
    }

    /// The inline lane: whether a new call stays in its handle, for its
    /// waiter to run on its own thread, instead of going to a lane; if so,
    /// the call's home pool. Only on thread pools without a hard time
    /// limit (the caller's thread cannot be cut off), for an `inline` task
    /// or once the calls in flight reach the inline threshold.
    #[inline]
    pub(crate) fn keep(&self, inline: bool) -> Option<usize> {
        let Runtimes::Threads(rt) = &self.runtime else {
            return None;
        };
        let busy = || self.inline_threshold.is_some_and(|t| rt.in_flight() >= t);
        ((inline || busy()) && !rt.has_hard_timeout()).then(|| rt.id())
    }

    /// Counts a call its caller's thread ran.
    pub(crate) fn ran_inline(&self) {
        // Relaxed: a statistic.
        self.inlined.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls run on their caller's thread so far.
    pub(crate) fn inlined(&self) -> usize {
        // Relaxed: a statistic.
        self.inlined.load(Ordering::Relaxed)
    }

    pub(crate) fn workers(&self) -> usize {
        match &self.runtime {
            Runtimes::Threads(rt) => rt.count(),
            Runtimes::Processes(rt) => rt.count(),
        }
    }

    pub(crate) fn lane_stats(&self) -> Vec<LaneStats> {
        match &self.runtime {
            Runtimes::Threads(rt) => rt.lane_stats(),
            Runtimes::Processes(rt) => rt.lane_stats(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match &self.runtime {
            Runtimes::Threads(rt) => rt.is_closed(),
            Runtimes::Processes(rt) => rt.is_closed(),
        }
    }

    /// Begins a shutdown: new calls fail, workers finish what they hold.
    pub(crate) fn close(&self) {
        if !self.is_closed() {
            let processes = matches!(self.runtime, Runtimes::Processes(_));
            diag::pool_closing(self.diagnostics, processes);
        }
        match &self.runtime {
            Runtimes::Threads(rt) => rt.close(),
            Runtimes::Processes(rt) => rt.close(),
        }
    }

    /// Waits until every worker is done (or `deadline` passes: false).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        match &self.runtime {
            Runtimes::Threads(rt) => rt.wait(deadline),
            Runtimes::Processes(rt) => rt.wait(deadline),
        }
    }

    /// Joins the runtime's threads, once every worker is done.
    pub(crate) fn join(&self) {
        match &self.runtime {
            Runtimes::Threads(rt) => rt.join(),
            Runtimes::Processes(rt) => rt.join(),
        }
    }

    /// Stops waiting: fails every call left (killing worker processes
    /// that hold them). Returns how many calls it failed.
    pub(crate) fn abandon(&self) -> usize {
        match &self.runtime {
            Runtimes::Threads(rt) => rt.abandon(),
            Runtimes::Processes(rt) => rt.abandon(),
        }
    }
}
