//! Panics in task code: caught on the worker, delivered to the caller with
//! their message, location and (when enabled) backtrace.
//!
//! The location of a panic is only known to the panic hook, so the crate
//! installs one hook, once, that wraps the hook in place before it: on a
//! thread that is running a task it records the location (and a backtrace
//! when `RUST_BACKTRACE` asks for one, unresolved: see
//! [`Error::backtrace`]) and prints nothing, because the panic
//! is not lost: it becomes the call's [`Error`]. On every other thread it
//! calls the previous hook unchanged.

use std::{
    any::Any,
    backtrace::{Backtrace, BacktraceStatus},
    cell::{Cell, RefCell},
    panic::{self, AssertUnwindSafe},
    sync::Once,
};

use crate::Error;

thread_local! {
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<(String, Option<Backtrace>)>> = const { RefCell::new(None) };
}

/// Installs the capturing hook (idempotent).
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_TASK.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                // Captured, not resolved: symbols are looked up only when
                // someone formats it (`Error::backtrace`, or a process
                // worker encoding the error for the host).
                let backtrace = Backtrace::capture();
                let backtrace =
                    (backtrace.status() == BacktraceStatus::Captured).then_some(backtrace);
                if let Some(location) = location {
                    LAST_PANIC.with(|p| *p.borrow_mut() = Some((location, backtrace)));
                }
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs task code, turning a panic into an [`Error`].
#[inline]
pub(crate) fn catch<R>(f: impl FnOnce() -> Result<R, Error>) -> Result<R, Error> {
    // Restore, not clear: a call that its waiter runs inside a task nests.
    let outer = IN_TASK.with(|t| t.replace(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    IN_TASK.with(|t| t.set(outer));
    match outcome {
        Ok(result) => result,
        Err(payload) => Err(from_payload(payload)),
    }
}

#[cold]
fn from_payload(payload: Box<dyn Any + Send>) -> Error {
    let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    };
    let (location, backtrace) = LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .map_or((None, None), |(l, b)| (Some(l), b));
    // The payload's own destructor is user code: keep a panic in it contained.
    let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
    Error::panic(message, location, backtrace)
}

/// Aborts the process if runtime code (not task code) panics: a half-done
/// state change in the pool is worse than a clear abort.
pub(crate) struct AbortIfPanic;

impl Drop for AbortIfPanic {
    fn drop(&mut self) {
        eprintln!("knitting: internal error in a worker thread, aborting");
        std::process::abort();
    }
}
