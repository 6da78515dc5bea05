//! The process runtime where there is none (not Linux): a runtime that
//! cannot exist, and a start that says why.

use std::{sync::Arc, time::Instant};

use super::Options;
use crate::{
    call::{cell::JobRef, route::Route},
    runtime::Lanes,
    runtime::Remote,
    Error, ErrorKind, LaneStats,
};

/// Has no value: [`start`](Self::start) always fails.
pub(crate) enum Runtime {}

impl Lanes for Runtime {
    fn count(&self) -> usize {
        match *self {}
    }

    fn is_idle(&self, _: usize) -> bool {
        match *self {}
    }

    fn is_usable(&self, _: usize) -> bool {
        match *self {}
    }

    fn in_flight(&self, _: usize) -> usize {
        match *self {}
    }
}

impl Runtime {
    pub(crate) fn start(_: Options) -> Result<Self, Error> {
        Err(Error::of(
            ErrorKind::Startup,
            "process workers need Linux (memfd, shared futexes, pidfd); use a thread pool here",
        ))
    }

    pub(crate) fn submit(&self, _: usize, _: JobRef, _: Remote) -> Arc<dyn Route> {
        match *self {}
    }

    pub(crate) fn lane_stats(&self) -> Vec<LaneStats> {
        match *self {}
    }

    pub(crate) fn is_closed(&self) -> bool {
        match *self {}
    }

    pub(crate) fn close(&self) {
        match *self {}
    }

    pub(crate) fn wait(&self, _: Option<Instant>) -> bool {
        match *self {}
    }

    pub(crate) fn join(&self) {
        match *self {}
    }

    pub(crate) fn abandon(&self) -> usize {
        match *self {}
    }
}
