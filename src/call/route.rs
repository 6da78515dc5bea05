//! How a call handle talks to the lane its call went to, whatever the
//! runtime: the one interface between the call layer and the runtimes.
//!
//! A thread lane needs nothing from the handle (its worker publishes into
//! the cell and wakes the waiter), so a thread call carries no route. A
//! process lane takes its worker's responses on a reactor thread, and a
//! caller that waits for its call helps: it takes the responses itself
//! while it spins, so a fast round trip needs no thread wake-up.

use super::cell::CallKey;

/// A lane as its calls' handles see it.
pub(crate) trait Route: Send + Sync {
    /// Takes the responses that are ready, if nobody else is taking them
    /// right now (never blocks).
    fn poll(&self);

    /// Runs `step` until it returns false, taking responses between steps;
    /// while it runs, the lane's worker knows a caller is watching (and so
    /// need not ring for each response). Ends with one last look.
    fn spin(&self, step: &mut dyn FnMut() -> bool);

    /// Tells the worker that call `key` was aborted, if the call is on it.
    fn abort(&self, key: CallKey);

    /// True on the lane's own reactor thread, which must not sleep waiting
    /// for a call of its lane (it is the thread that would wake it).
    fn is_own_thread(&self) -> bool;
}
