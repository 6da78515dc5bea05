//! Diagnostics: what a pool tells a `tracing` subscriber about itself,
//! namespace by namespace. Every event of the crate is written here, once
//! for both runtimes; the other layers call these functions at the places
//! where things happen.
//!
//! Zero cost when off: each function first tests the pool's
//! [`Diagnostics`] (a byte in the caller's hands), then the `tracing`
//! callsite (one load when no subscriber wants it).

use std::{fmt, time::Duration};

use crate::{Error, ErrorKind};

/// Which of a pool's diagnostics it emits as [`tracing`] events; set with
/// `debug(..)` on either builder, or the `KNITTING_DEBUG` environment
/// variable (both count: a namespace on in either is on).
///
/// The namespaces are `tracing` targets, so a subscriber filters them like
/// any other (`knitting::lifecycle=info,knitting::calls=debug`):
///
/// | namespace | target | level | events |
/// |---|---|---|---|
/// | `lifecycle` | `knitting::lifecycle` | info | a pool built and shut down; a worker ready (with its start-up time), replaced, stopped |
/// | `calls` | `knitting::calls` | debug | a call sent to a lane, or run on its caller's thread |
/// | `wake` | `knitting::wake` | trace | a process lane's reactor sleeping and waking |
/// | `crash` | `knitting::crash` | warn | a worker process that died or was killed, or a worker thread retired by a hard time limit: how, and how many calls it held |
///
/// With `lifecycle` on, each worker thread runs in a `worker` span (target
/// `knitting::lifecycle`, field `lane`), so the events of its tasks nest
/// in it. Events of process workers (the crate's own and the tasks' `tracing`
/// events) are forwarded to the host and emitted there with target
/// `knitting::worker`, the worker's `lane` and `pid`, and the event's own
/// target and level (through the worker's descriptor socket, never
/// blocking a call: an event that does not fit is dropped). The crate
/// never installs a subscriber in the host; a process worker gets a
/// forwarding one only while diagnostics are on and no bootstrap installed
/// its own.
///
/// ```
/// use knitting::Diagnostics;
///
/// let pool = knitting::Pool::builder()
///     .threads(2)
///     .debug(Diagnostics::LIFECYCLE | Diagnostics::CRASH)
///     .build()
///     .unwrap();
/// # drop(pool);
/// assert_eq!(Diagnostics::parse("lifecycle, crash").unwrap(), Diagnostics::LIFECYCLE | Diagnostics::CRASH);
/// assert_eq!(Diagnostics::parse("*").unwrap(), Diagnostics::ALL);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Diagnostics(u8);

/// The namespaces, by name.
const NAMES: &[(&str, Diagnostics)] = &[
    ("lifecycle", Diagnostics::LIFECYCLE),
    ("calls", Diagnostics::CALLS),
    ("wake", Diagnostics::WAKE),
    ("crash", Diagnostics::CRASH),
];

impl Diagnostics {
    /// Nothing (the default).
    pub const NONE: Self = Self(0);
    /// Pools and workers starting, being replaced and stopping.
    pub const LIFECYCLE: Self = Self(1);
    /// Each call sent to a lane or run inline.
    pub const CALLS: Self = Self(2);
    /// Reactors sleeping and waking.
    pub const WAKE: Self = Self(4);
    /// Workers that died or were killed.
    pub const CRASH: Self = Self(8);
    /// Every namespace (`*`).
    pub const ALL: Self = Self(15);

    /// Namespaces from a comma-separated list (`"lifecycle,calls"`, `"*"`;
    /// blanks around names are ignored, an empty list is
    /// [`NONE`](Self::NONE)).
    ///
    /// # Errors
    ///
    /// A [`Build`](ErrorKind::Build) error naming an unknown namespace.
    ///
    /// ```
    /// let err = knitting::Diagnostics::parse("calls,sparks").unwrap_err();
    /// assert!(err.message().contains("sparks"));
    /// ```
    pub fn parse(list: &str) -> Result<Self, Error> {
        let mut on = Self::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            on = on
                | match name {
                    "*" | "all" => Self::ALL,
                    _ => NAMES
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, d)| *d)
                        .ok_or_else(|| {
                            Error::of(
                                ErrorKind::Build,
                                format!(
                                    "unknown diagnostics namespace `{name}`; known: lifecycle, \
                                     calls, wake, crash, or * for all"
                                ),
                            )
                        })?,
                };
        }
        Ok(on)
    }

    /// What `KNITTING_DEBUG` asks for ([`NONE`](Self::NONE) when it is not
    /// set). Unknown namespaces in it are skipped, with a warning event:
    /// a typo in the environment must not stop a service from starting.
    pub fn from_env() -> Self {
        let Some(list) = std::env::var_os("KNITTING_DEBUG") else {
            return Self::NONE;
        };
        let list = list.to_string_lossy();
        list.split(',').fold(Self::NONE, |on, name| {
            match Self::parse(name) {
                Ok(d) => on | d,
                Err(e) => {
                    tracing::warn!(target: "knitting::lifecycle", "KNITTING_DEBUG: {}", e.message());
                    on
                }
            }
        })
    }

    /// True if every namespace of `other` is on.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if no namespace is on.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    #[inline(always)]
    fn on(self, namespace: Self) -> bool {
        self.0 & namespace.0 != 0
    }

    /// As a hand-over word.
    pub(crate) fn bits(self) -> u8 {
        self.0
    }

    /// From a hand-over word (unknown bits dropped).
    pub(crate) fn from_bits(bits: u8) -> Self {
        Self(bits & Self::ALL.0)
    }
}

impl std::ops::BitOr for Diagnostics {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Diagnostics {
    /// The namespaces, comma-separated (`none` for none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = NAMES
            .iter()
            .filter(|(_, d)| self.on(*d))
            .map(|(n, _)| *n)
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// The runtime's name in events.
fn runtime(processes: bool) -> &'static str {
    if processes {
        "processes"
    } else {
        "threads"
    }
}

/// A pool was built.
pub(crate) fn pool_built(d: Diagnostics, processes: bool, workers: usize) {
    if d.on(Diagnostics::LIFECYCLE) {
        tracing::info!(target: "knitting::lifecycle", runtime = runtime(processes), workers, diagnostics = %d, "pool built");
    }
}

/// A pool began to shut down.
pub(crate) fn pool_closing(d: Diagnostics, processes: bool) {
    if d.on(Diagnostics::LIFECYCLE) {
        tracing::info!(target: "knitting::lifecycle", runtime = runtime(processes), "pool shutting down");
    }
}

/// A worker is ready: thread `lane` (no pid) or process `pid`.
pub(crate) fn worker_ready(d: Diagnostics, lane: usize, pid: Option<u32>, took: Duration) {
    if d.on(Diagnostics::LIFECYCLE) {
        match pid {
            Some(pid) => {
                tracing::info!(target: "knitting::lifecycle", lane, pid, startup_us = took.as_micros() as u64, "worker process ready")
            }
            None => tracing::info!(target: "knitting::lifecycle", lane, "worker thread ready"),
        }
    }
}

/// The span a worker thread runs in while lifecycle events are on (task
/// events nest in it).
pub(crate) fn worker_span(d: Diagnostics, lane: usize) -> Option<tracing::span::EnteredSpan> {
    d.on(Diagnostics::LIFECYCLE)
        .then(|| tracing::info_span!(target: "knitting::lifecycle", "worker", lane).entered())
}

/// A worker stopped at shutdown.
pub(crate) fn worker_stopped(d: Diagnostics, lane: usize, pid: Option<u32>) {
    if d.on(Diagnostics::LIFECYCLE) {
        match pid {
            Some(pid) => {
                tracing::info!(target: "knitting::lifecycle", lane, pid, "worker process stopped")
            }
            None => tracing::info!(target: "knitting::lifecycle", lane, "worker thread stopped"),
        }
    }
}

/// A worker is being replaced after it went (its `restarts`-th time).
pub(crate) fn worker_replacing(d: Diagnostics, lane: usize, restarts: usize) {
    if d.on(Diagnostics::LIFECYCLE) {
        tracing::info!(target: "knitting::lifecycle", lane, restarts, "starting a replacement worker");
    }
}

/// A worker died or was killed: `how`, holding `calls` calls.
pub(crate) fn worker_crashed(
    d: Diagnostics,
    lane: usize,
    pid: Option<u32>,
    how: &str,
    calls: usize,
) {
    if d.on(Diagnostics::CRASH) {
        match pid {
            Some(pid) => {
                tracing::warn!(target: "knitting::crash", lane, pid, calls, "worker process {how}")
            }
            None => tracing::warn!(target: "knitting::crash", lane, calls, "worker thread {how}"),
        }
    }
}

/// A call went to lane `lane`. On every call's path: the test is inlined,
/// the event is not.
#[inline(always)]
pub(crate) fn call_sent(d: Diagnostics, task: impl FnOnce() -> &'static str, lane: usize) {
    if d.on(Diagnostics::CALLS) {
        call_sent_event(task(), lane);
    }
}

#[cold]
#[inline(never)]
fn call_sent_event(task: &'static str, lane: usize) {
    tracing::debug!(target: "knitting::calls", task, lane, "call sent");
}

/// A call stays with its caller (the inline lane).
#[inline(always)]
pub(crate) fn call_kept(d: Diagnostics, task: &'static str) {
    if d.on(Diagnostics::CALLS) {
        call_kept_event(task);
    }
}

#[cold]
#[inline(never)]
fn call_kept_event(task: &'static str) {
    tracing::debug!(target: "knitting::calls", task, "call kept for its caller's thread");
}

/// A process lane's reactor goes to sleep for at most `timeout`.
#[inline]
pub(crate) fn reactor_sleeps(d: Diagnostics, lane: usize, timeout: Duration) {
    if d.on(Diagnostics::WAKE) {
        tracing::trace!(target: "knitting::wake", lane, timeout_us = timeout.as_micros() as u64, "reactor sleeps");
    }
}

#[cfg(test)]
mod tests {
    use super::Diagnostics;

    #[test]
    fn namespaces_parse_and_print() {
        let d = Diagnostics::parse(" calls ,CRASH").unwrap();
        assert_eq!(d, Diagnostics::CALLS | Diagnostics::CRASH);
        assert_eq!(d.to_string(), "calls,crash");
        assert!(d.contains(Diagnostics::CALLS) && !d.contains(Diagnostics::WAKE));
        assert_eq!(Diagnostics::parse("").unwrap(), Diagnostics::NONE);
        assert_eq!(Diagnostics::NONE.to_string(), "none");
        assert_eq!(Diagnostics::from_bits(0xff), Diagnostics::ALL);
        assert!(Diagnostics::parse("lifecycle,nope").is_err());
    }
}
