//! How a worker went, and the error each call it held gets for it.

use super::*;
use crate::runtime::process::handover::Limits;

/// How a worker went.
pub(super) enum Gone {
    /// It exited or was killed from outside.
    Exited(ExitStatus),
    /// It broke the protocol.
    Broken(Violation),
    /// Its front call ran past its hard time limit.
    HardLimit { limit: Duration, runaway: CallKey },
    /// It showed no sign of life for this long while it had calls.
    Unresponsive(Duration),
    /// It took none of the calls sent to it for this long.
    Stalled(Duration),
}

impl Gone {
    /// How the worker went, for the lane's statistics.
    pub(super) fn kind(&self) -> crate::CrashKind {
        use crate::CrashKind;
        use std::os::unix::process::ExitStatusExt as _;
        match self {
            Gone::Exited(status) => match (status.signal(), status.code()) {
                (Some(signal), _) => CrashKind::Signal(signal),
                (None, Some(code)) => CrashKind::Exit(code),
                (None, None) => CrashKind::Exit(-1),
            },
            Gone::Broken(_) => CrashKind::Protocol,
            Gone::HardLimit { .. } => CrashKind::HardTimeout,
            Gone::Unresponsive(_) | Gone::Stalled(_) => CrashKind::Unresponsive,
        }
    }

    /// How the worker went, in a few words (for diagnostics).
    pub(super) fn describe(&self) -> String {
        match self {
            Gone::Exited(status) => describe_exit(*status),
            Gone::Broken(v) => format!("broke the shared-memory protocol ({})", v.why),
            Gone::HardLimit { limit, .. } => {
                format!("was killed: its call ran past its hard time limit ({limit:?})")
            }
            Gone::Unresponsive(limit) => {
                format!("was killed: no sign of life for {limit:?}")
            }
            Gone::Stalled(limit) => {
                format!("was killed: it took none of the calls sent to it for {limit:?}")
            }
        }
    }

    /// The error for a call that may have started on the worker.
    pub(super) fn error(&self, index: usize, pid: u32, job: &JobRef, limits: &Limits) -> Error {
        match self {
            Gone::Exited(status) => Error::of(
                ErrorKind::WorkerDied,
                format!(
                    "worker {index} (pid {pid}) {} while running this call{}",
                    describe_exit(*status),
                    limit_hint(*status, limits)
                ),
            ),
            Gone::Broken(v) => Error::of(
                ErrorKind::Protocol,
                format!(
                    "worker {index} (pid {pid}) broke the shared-memory protocol: {}; \
                     it was killed and is being replaced",
                    v.why
                ),
            ),
            Gone::HardLimit { limit, runaway } if job.key() == *runaway => Error::hard_timeout(
                *limit,
                &format!("its worker process {index} (pid {pid}) was killed and is being replaced"),
            ),
            Gone::HardLimit { limit, .. } => Error::of(
                ErrorKind::WorkerDied,
                format!(
                    "worker {index} (pid {pid}) was killed because the call before this one ran \
                     past its hard time limit ({limit:?}), while this call was running or next"
                ),
            ),
            Gone::Unresponsive(limit) => Error::of(
                ErrorKind::WorkerDied,
                format!(
                    "worker {index} (pid {pid}) showed no sign of life for {limit:?} (stopped \
                     by a signal, or frozen) and was killed while running this call"
                ),
            ),
            Gone::Stalled(limit) => Error::of(
                ErrorKind::WorkerDied,
                format!(
                    "worker {index} (pid {pid}) took none of the calls sent to it for \
                     {limit:?} (it was alive, but its serving loop was stuck) and was killed"
                ),
            ),
        }
    }
}

/// What a worker's resource limits say about how it died, if anything:
/// `SIGXCPU` is the CPU-time limit; a Rust program aborts (`SIGABRT`) when
/// an allocation fails, which a memory limit makes likely.
fn limit_hint(status: ExitStatus, limits: &Limits) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    const SIGABRT: i32 = 6;
    const SIGXCPU: i32 = 24;
    match (status.signal(), limits) {
        (
            Some(SIGXCPU),
            Limits {
                cpu_seconds: Some(s),
                ..
            },
        ) => {
            format!(": it used up its CPU-time limit of {s} s (over its whole life)")
        }
        (
            Some(SIGABRT),
            Limits {
                memory: Some(bytes),
                ..
            },
        ) => format!(
            " (it has a memory limit of {bytes} bytes, and a failed allocation aborts a \
             Rust program: the limit is the likely cause)"
        ),
        _ => String::new(),
    }
}
