//! Dispatch: which runtime a pool runs on, and which lane a new call goes
//! to, the same rule for every runtime. (Balancers that steal work, and a
//! lane that runs calls on the caller's thread, belong here.)
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
        route::Route,
    },
    runtime::{process, thread, Lanes, Remote, RuntimeKind},
    LaneStats,
};

use self::balance::{Spread, Strategy};

/// A pool's runtime, and how its calls are spread over the lanes.
pub(crate) struct Engine {
    runtime: Runtimes,
    spread: Spread,
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
        }
    }

    pub(crate) fn processes(rt: process::Runtime, strategy: Strategy) -> Self {
        Self {
            runtime: Runtimes::Processes(rt),
            spread: Spread::new(strategy),
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
                (rt.submit(lane, call, job), None)
            }
            Runtimes::Processes(rt) => {
                let remote = remote.expect("a process pool only accepts tasks that can travel");
                let lane = self.spread.pick(rt);
                (0, Some(rt.submit(lane, job, remote)))
            }
        }
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
