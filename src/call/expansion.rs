//! What the expansion of `#[task]` and `#[bootstrap]` refers to, as
//! `knitting::__private`. Not a public API.

pub use linkme;

pub use crate::task::bootstrap::BOOTSTRAPS;
pub use crate::{
    payload::wire::{Borrowed, ByteVec, FromByteString, Lent, Plain, Wire},
    task::{
        failure::{Failure, ViaBoxedError, ViaDisplay, ViaStdError},
        marks::{NoBorrowedTypes, NotThreadsOnly},
        probe::{NoSerde, Probe, ViaSerde},
        TaskFuture, TaskResult, Wired, WorkerEntry, TASKS,
    },
};

/// Runs an async task's future to its end on the current thread (the
/// sync entry of an `async fn` task).
pub fn block_on<T>(future: crate::task::TaskFuture<'_, T>) -> Result<T, crate::Error> {
    crate::task::panics::catch(|| crate::exec::block::block_on(future))
        .map_err(crate::exec::reactor::explain)
}
/// The `Pod` bound of a slice parameter's element type.
pub use bytemuck::Pod;

/// How many entries the deadline and time-limit timer holds right now
/// (for tests: a finished call must leave none behind).
pub fn timer_entries() -> usize {
    crate::call::timer::entries()
}

/// The error of a call whose deadline passed, from the `error` of
/// `#[task(timeout = .., error = ..)]`.
pub fn timed_out_with(error: crate::Error) -> crate::Error {
    error.into_timeout()
}

/// Builds a task's [`TaskInfo`](crate::TaskInfo) in a `static`.
pub const fn task_info(
    name: &'static str,
    file: &'static str,
    line: u32,
    entry: fn() -> Option<WorkerEntry>,
) -> crate::TaskInfo {
    crate::TaskInfo::new(name, file, line).with_entry(entry)
}

/// Builds a bootstrap's [`BootInfo`](crate::BootInfo) in a `static`.
pub const fn boot_info(
    name: &'static str,
    file: &'static str,
    line: u32,
    run: fn(&[u8], &crate::BootContext) -> Result<(), crate::Error>,
) -> crate::BootInfo {
    crate::BootInfo::new(name, file, line, run)
}

/// Decodes a bootstrap's data.
pub fn boot_data<D: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<D, crate::Error> {
    crate::task::bootstrap::decode(bytes)
}
