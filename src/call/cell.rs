//! The call cell: one allocation per call that carries the arguments to the
//! worker and the result back, so no channel is allocated per call.
//!
//! A cell is reference counted (the header's `refs`), in memory recycled
//! per thread ([`blocks`]). The lane queue holds one
//! reference as a [`JobRef`] (one pointer wide: the header starts the cell,
//! and the header's vtable knows the concrete types), the caller holds one
//! in its [`Call`](crate::Call) handle, and the timer one per deadline
//! entry until the entry fires or is cancelled.
//!
//! # Deadlines
//!
//! The timer thread is not the only one that enforces a deadline: whoever
//! completes a call (its worker thread, the process lane that took its
//! response, a failure path) first compares the call's deadline with the
//! shared clock, and a call whose deadline has passed ends with its
//! timed-out outcome (the task's `default`, its declared `error`, or a
//! [`Timeout`](crate::ErrorKind::Timeout) error) whichever side gets there
//! first. A worker also skips a call whose deadline passed while it was
//! queued. As the call ends, the cell cancels its deadline's timer entry,
//! so a finished call holds no memory until its deadline.

use std::{
    alloc::Layout,
    mem::MaybeUninit,
    panic::{catch_unwind, AssertUnwindSafe},
    ptr::NonNull,
    task::Waker,
    time::Duration,
};

use atomic_waker::AtomicWaker;

use crate::payload::Window;
use crate::{
    exec::LocalFuture,
    sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering, UnsafeCell},
    task::panics,
    Error, Signal, Task,
};

/// Arguments are in the cell, waiting for a worker.
pub(crate) const QUEUED: u32 = 0;
/// A worker moved the arguments out and runs the task.
pub(crate) const RUNNING: u32 = 1;
/// One party (worker, or a failure path) is writing the result.
pub(crate) const COMPLETING: u32 = 2;
/// The result is written and belongs to the handle.
pub(crate) const DONE: u32 = 3;
/// The handle moved the result out.
pub(crate) const TAKEN: u32 = 4;
/// A process lane is encoding the arguments from a shared borrow.
pub(crate) const ENCODING: u32 = 5;
/// A process worker has the encoded arguments; the arguments stay in the
/// cell, so that the call can be encoded again for another worker.
pub(crate) const SENT: u32 = 6;

/// The type-independent start of every cell.
#[repr(C)]
pub(crate) struct Header {
    /// # State table
    ///
    /// | state        | `args` owned by                      | `result` owned by        |
    /// |--------------|--------------------------------------|--------------------------|
    /// | `QUEUED`     | the cell (init)                      | nobody (uninit)          |
    /// | `RUNNING`    | the worker, moved out (uninit)       | nobody (uninit)          |
    /// | `ENCODING`   | the cell (init), read by the encoder | nobody (uninit)          |
    /// | `SENT`       | the cell (init)                      | nobody (uninit)          |
    /// | `COMPLETING` | see below                            | the CAS winner (writing) |
    /// | `DONE`       | gone (moved out or dropped)          | the handle (init)        |
    /// | `TAKEN`      | gone                                 | moved out (uninit)       |
    ///
    /// Claims (each a compare-and-swap on this word):
    ///
    /// - `QUEUED → RUNNING`: a thread worker (or the call's waiter, see
    ///   [`CallRef::run_here`]) starts the call and moves `args` out.
    /// - `QUEUED → ENCODING → SENT`: a process lane encodes the arguments
    ///   from a shared borrow, then leaves them in place;
    ///   `SENT → QUEUED` ([`JobRef::unsend`]) takes the call back so that
    ///   it can be encoded again.
    /// - `QUEUED | RUNNING | ENCODING | SENT → COMPLETING`: the claim to
    ///   complete, by the worker, the lane, or a failure path (cancel,
    ///   deadline, shutdown). Claimed from `QUEUED` or `SENT`, the winner
    ///   drops `args`; from `ENCODING`, the encoder drops them when its own
    ///   `ENCODING → SENT` fails; from `RUNNING` they are gone already.
    /// - `COMPLETING → DONE` publishes; `DONE → TAKEN` is the handle's
    ///   alone.
    ///
    /// So `args` are initialised exactly in `QUEUED`, `ENCODING` and
    /// `SENT`, and in `COMPLETING` claimed from `ENCODING` until the
    /// encoder drops them; the encoder holds a reference throughout, so the
    /// cell's destructor never sees `ENCODING` or that window.
    state: AtomicU32,
    signal: Signal,
    waker: AtomicWaker,
    /// The waker of the async task running the call, woken when its
    /// signal is raised (see [`Header::raise`]).
    abort_waker: AtomicWaker,
    /// The call's deadline on the shared clock (nanoseconds), 0 for none.
    /// A timer entry fires only if this still holds its deadline, so a
    /// later [`Call::deadline`](crate::Call::deadline) overrides an earlier
    /// one.
    deadline: AtomicU64,
    /// The timer key of the deadline entry (0 for none): cancelled as the
    /// call ends, or when a later deadline replaces it.
    timer: AtomicU64,
    /// References held: the handle's, the queue's, the timer's, a lane's.
    /// The last one to go drops the cell and frees its memory.
    refs: AtomicUsize,
    vtable: &'static VTable,
}

impl Header {
    /// Adds one reference; the caller holds one already.
    #[inline]
    fn add_ref(&self) {
        // Relaxed: a new reference is made from one held, which keeps the
        // cell alive; nothing is published through the count (as `Arc`).
        let old = self.refs.fetch_add(1, Ordering::Relaxed);
        // A count this high means references leaked in a loop: stop before
        // it can wrap to zero and free a live cell.
        if old > isize::MAX as usize {
            std::process::abort();
        }
    }
}

/// The type-erased operations of one `Cell<T>`.
///
/// Every entry is an `unsafe fn` with the contract of the function it
/// points to (see there): at least, `ptr` is the header of the cell whose
/// vtable this is, kept alive by a reference the caller holds.
struct VTable {
    /// The task is an `async fn` (see [`Task::ASYNC`]).
    is_async: bool,
    /// Runs the call on the current thread. Consumes one reference.
    run: unsafe fn(NonNull<Header>, &dyn Fn()),
    /// Starts an async call as a future for a worker's executor; consumes
    /// one reference.
    start_async: for<'a> unsafe fn(NonNull<Header>, &'a dyn Fn()) -> Option<LocalFuture<'a>>,
    /// Completes the call with an error unless it is completing or done
    /// (or, with `only_queued`, unless it has started).
    fail: unsafe fn(NonNull<Header>, Error, bool) -> bool,
    /// Moves the result out; only after `DONE`.
    take: unsafe fn(NonNull<Header>, *mut ()),
    /// Drops one reference.
    drop_ref: unsafe fn(NonNull<Header>),
    /// The task's name, for diagnostics.
    task_name: unsafe fn(NonNull<Header>) -> &'static str,
    /// Completes the call with the task's timed-out outcome unless it is
    /// completing or done.
    time_out: unsafe fn(NonNull<Header>) -> bool,
    /// The task's own hard time limit.
    hard_timeout: unsafe fn(NonNull<Header>) -> Option<Duration>,
}

#[repr(C)]
struct Cell<T: Task> {
    header: Header,
    task: T,
    args: UnsafeCell<MaybeUninit<T::Args>>,
    result: UnsafeCell<MaybeUninit<Result<T::Output, Error>>>,
}

impl<T: Task> Cell<T> {
    const VTABLE: VTable = VTable {
        is_async: T::ASYNC,
        run: run::<T>,
        start_async: future::start::<T>,
        fail: fail::<T>,
        take: take::<T>,
        drop_ref: drop_ref::<T>,
        task_name: task_name::<T>,
        time_out: time_out::<T>,
        hard_timeout: hard_timeout::<T>,
    };

    /// # Safety
    ///
    /// `ptr` must come from [`CallRef::new::<T>`] (or a clone of it) and the
    /// reference it stands for must still be held.
    unsafe fn from_header<'a>(ptr: NonNull<Header>) -> &'a Self {
        // SAFETY: `Cell<T>` is `repr(C)` with the header first, so the
        // header pointer is the cell pointer; the caller guarantees the type
        // and that a reference keeps the allocation alive.
        unsafe { ptr.cast::<Self>().as_ref() }
    }

    /// Claims the right to complete, from `QUEUED`, `RUNNING`, `ENCODING`
    /// or `SENT` (only `QUEUED` with `only_queued`), and drops the
    /// arguments if the claim makes them ours (see the state table).
    /// Returns the state it was claimed from.
    fn claim_completion(&self, only_queued: bool) -> Option<u32> {
        let mut state = self.header.state.load(Ordering::Acquire);
        loop {
            let claimable = match state {
                QUEUED => true,
                RUNNING | ENCODING | SENT => !only_queued,
                _ => false,
            };
            if !claimable {
                return None;
            }
            // SYNC POINT: Acquire. A claim from QUEUED must see the
            // arguments the caller wrote (published by the cell's creation
            // and the queue's hand-off); one from SENT must come after the
            // encoder's last reads of them (its Release CAS to SENT), as it
            // drops them.
            match self.header.state.compare_exchange_weak(
                state,
                COMPLETING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        if state == QUEUED || state == SENT {
            let args = self.args.with(|cell| {
                // SAFETY: a claim from QUEUED or SENT hands us the initialised,
                // unborrowed arguments; no state after COMPLETING touches them.
                unsafe { (*cell).assume_init_read() }
            });
            drop_quietly(args);
        }
        Some(state)
    }

    /// True if the call has a deadline and it has passed.
    fn past_deadline(&self) -> bool {
        // Relaxed: the deadline is a plain value set by the handle; the
        // completion claim is what synchronizes the outcome.
        let deadline = self.header.deadline.load(Ordering::Relaxed);
        deadline != 0 && crate::time::now_nanos() >= deadline
    }

    /// The task's outcome for a passed deadline (user code: the `default`
    /// expression), with the task's name.
    fn timed_out(&self) -> Result<T::Output, Error> {
        let name = self.task.info().name();
        panics::catch(T::timed_out).map_err(|e| e.with_task(name))
    }

    /// `result`, unless the deadline has passed: then the timed-out
    /// outcome, and `result` is dropped.
    fn unless_late(&self, result: Result<T::Output, Error>) -> Result<T::Output, Error> {
        if self.past_deadline() {
            drop_quietly(result);
            self.timed_out()
        } else {
            result
        }
    }

    /// Starts the call (`QUEUED → RUNNING`) and takes its arguments;
    /// `None` if it was cancelled or failed before it started.
    fn start(&self) -> Option<T::Args> {
        // Acquire: the arguments written before the hand-off are visible.
        self.header
            .state
            .compare_exchange(QUEUED, RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(self.args.with(|cell| {
            // SAFETY: we won QUEUED → RUNNING, which hands us the arguments;
            // from now on the state is never QUEUED again, so nobody else
            // reads them.
            unsafe { (*cell).assume_init_read() }
        }))
    }

    /// Ends the call without its worker (a failure, a deadline) unless it
    /// is completing or done (or, with `only_queued`, has started): claims
    /// it (which drops the arguments if no worker took them), and
    /// publishes `outcome()` for the task. True if it ended the call.
    fn end_early(
        &self,
        only_queued: bool,
        outcome: impl FnOnce() -> Result<T::Output, Error>,
    ) -> bool {
        if self.claim_completion(only_queued).is_none() {
            return false;
        }
        let name = self.task.info().name();
        self.publish(outcome().map_err(|e| e.with_task(name)));
        true
    }

    /// Writes the result and publishes it; caller holds the `COMPLETING`
    /// claim.
    fn publish(&self, result: Result<T::Output, Error>) {
        if let Some(waker) = self.publish_quietly(result) {
            waker.wake();
        }
    }

    /// As `publish`, but hands back the waker to wake instead of waking it
    /// (for a caller that holds a lock a waker might want).
    fn publish_quietly(&self, result: Result<T::Output, Error>) -> Option<Waker> {
        self.result.with_mut(|cell| {
            // SAFETY: we hold the COMPLETING claim, which by the state table
            // makes us the only writer of `result`, and it is uninit.
            unsafe { (*cell).write(result) };
        });
        // SYNC POINT: Release publishes the result to the handle's Acquire
        // load of DONE.
        self.header.state.store(DONE, Ordering::Release);
        // AcqRel: pairs with the swap in `CallRef::attach_timer`: if that
        // one comes later, its Acquire sees DONE and it cancels its own
        // entry; if it came first, this swap takes its key.
        crate::call::timer::cancel(self.header.timer.swap(0, Ordering::AcqRel));
        self.header.waker.take()
    }
}

impl<T: Task> Drop for Cell<T> {
    fn drop(&mut self) {
        // `&mut self`: no other reference exists, so plain reads are fine.
        match self.header.state.load(Ordering::Relaxed) {
            QUEUED | SENT => self.args.with_mut(|cell| {
                // SAFETY: QUEUED and SENT mean the cell still owns the
                // arguments (an encoder borrowing them in ENCODING would
                // hold a reference, so the state is not ENCODING here).
                unsafe { (*cell).assume_init_drop() }
            }),
            DONE => self.result.with_mut(|cell| {
                // SAFETY: DONE means the result is written and not taken.
                unsafe { (*cell).assume_init_drop() }
            }),
            _ => {}
        }
    }
}

/// Runs the call here ([`VTable::run`]).
///
/// # Safety
///
/// `ptr` is the header of a `Cell<T>` and the caller hands over one of its
/// references (it is released here, after the result is published).
unsafe fn run<T: Task>(ptr: NonNull<Header>, finished: &dyn Fn()) {
    if T::ASYNC {
        // SAFETY: as for this function.
        return unsafe { future::run_here::<T>(ptr, finished) };
    }
    // The queue's reference is released when `_job` drops, after the result
    // is published.
    let _job = JobRef(ptr);
    // SAFETY: `_job` holds a reference to a `Cell<T>` (vtable of `T`).
    let cell = unsafe { Cell::<T>::from_header(ptr) };
    if cell.past_deadline() {
        // Its deadline passed while it was queued: not worth running.
        // (If it is no longer queued, it is not ours to start either.)
        finished();
        cell.end_early(true, || cell.timed_out());
        return;
    }
    let Some(args) = cell.start() else {
        // Cancelled, failed or started elsewhere: nothing to run.
        finished();
        return;
    };
    let name = cell.task.info().name();
    let result = panics::catch(|| T::run(args, &cell.header.signal)).map_err(|e| e.with_task(name));
    // Before the result is published, so that a caller who sees its call
    // done sees it counted too.
    finished();
    match cell.claim_completion(false) {
        // A result after the deadline is not the call's outcome.
        Some(_) => cell.publish(cell.unless_late(result)),
        // Someone failed the call meanwhile (shutdown timeout); the value is
        // not wanted. User `Drop` code runs here: keep its panic contained.
        None => drop_quietly(result),
    }
}

/// Fails the call ([`VTable::fail`]).
///
/// # Safety
///
/// `ptr` is the header of a `Cell<T>` (made by [`CallRef::new::<T>`]) and
/// the caller holds one of its references for the whole call.
unsafe fn fail<T: Task>(ptr: NonNull<Header>, error: Error, only_queued: bool) -> bool {
    // SAFETY: the caller holds a reference to a `Cell<T>`.
    let cell = unsafe { Cell::<T>::from_header(ptr) };
    cell.end_early(only_queued, || cell.unless_late(Err(error)))
}

/// Times the call out ([`VTable::time_out`]).
///
/// # Safety
///
/// `ptr` is the header of a `Cell<T>` (made by [`CallRef::new::<T>`]) and
/// the caller holds one of its references for the whole call.
unsafe fn time_out<T: Task>(ptr: NonNull<Header>) -> bool {
    // SAFETY: the caller holds a reference to a `Cell<T>`.
    let cell = unsafe { Cell::<T>::from_header(ptr) };
    // User code (a `default` expression) runs here, on the timer thread.
    cell.end_early(false, || cell.timed_out())
}

/// The task's hard time limit ([`VTable::hard_timeout`]).
///
/// # Safety
///
/// `ptr` is the header of a `Cell<T>` (made by [`CallRef::new::<T>`]) and
/// the caller holds one of its references for the whole call.
unsafe fn hard_timeout<T: Task>(ptr: NonNull<Header>) -> Option<Duration> {
    // SAFETY: the caller holds a reference to a `Cell<T>`.
    unsafe { Cell::<T>::from_header(ptr) }
        .task
        .info()
        .hard_timeout()
}

/// Moves the result out to `out` ([`VTable::take`]).
///
/// # Safety
///
/// `ptr` is the header of a `Cell<T>` whose handle's reference the caller
/// holds; the caller saw `DONE` (Acquire) and takes the result once; `out`
/// is valid for writing a `Result<T::Output, Error>`.
unsafe fn take<T: Task>(ptr: NonNull<Header>, out: *mut ()) {
    // SAFETY: the caller (the handle) holds a reference to a `Cell<T>`.
    let cell = unsafe { Cell::<T>::from_header(ptr) };
    let value = cell.result.with(|cell| {
        // SAFETY: the caller saw DONE (Acquire), so the result is written,
        // and the handle is its only owner.
        unsafe { (*cell).assume_init_read() }
    });
    // Relaxed: only the handle reads the state after DONE for this purpose;
    // TAKEN tells the cell's destructor the result is gone.
    cell.header.state.store(TAKEN, Ordering::Relaxed);
    // SAFETY: the caller passes a `*mut Result<T::Output, Error>` (the handle
    // is typed on `T::Output`).
    unsafe { out.cast::<Result<T::Output, Error>>().write(value) };
}

/// Drops one reference ([`VTable::drop_ref`]); the last one drops the
/// cell and gives its memory back.
///
/// # Safety
///
/// `ptr` is the header of a `Cell<T>` (made by [`CallRef::new::<T>`]) and
/// the caller gives up one of its references, using neither it nor `ptr`
/// through it afterwards.
unsafe fn drop_ref<T: Task>(ptr: NonNull<Header>) {
    // SAFETY: the caller still holds the reference it gives up here.
    let header = unsafe { ptr.as_ref() };
    // AcqRel: Release orders this holder's uses of the cell before the
    // count falls; the last holder's Acquire sees every other holder's
    // uses before it drops the cell (as `Arc`'s drop with its fence).
    if header.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    let cell = ptr.cast::<Cell<T>>();
    // SAFETY: that was the last reference: nobody else can reach the cell,
    // which `CallRef::new` initialised; it is dropped once, here, and its
    // memory came from `blocks::alloc` with the layout of `Cell<T>`.
    unsafe {
        std::ptr::drop_in_place(cell.as_ptr());
        blocks::free(cell.cast(), Layout::new::<Cell<T>>());
    }
}

/// The task's name ([`VTable::task_name`]).
///
/// # Safety
///
/// `ptr` is the header of a `Cell<T>` (made by [`CallRef::new::<T>`]) and
/// the caller holds one of its references for the whole call.
unsafe fn task_name<T: Task>(ptr: NonNull<Header>) -> &'static str {
    // SAFETY: the caller holds a reference to a `Cell<T>`.
    unsafe { Cell::<T>::from_header(ptr) }.task.info().name()
}

/// # Safety
///
/// `ptr` must be kept alive by a reference its caller holds.
pub(super) unsafe fn header<'a>(ptr: NonNull<Header>) -> &'a Header {
    // SAFETY: per the contract, the cell (and its header) is alive.
    unsafe { ptr.as_ref() }
}

fn drop_quietly<V>(value: V) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
}

mod blocks;
impl Header {
    /// Raises the call's signal and wakes the async task that runs it, if
    /// one does (so that it sees the signal, or its call's end, at once).
    pub(super) fn raise(&self) {
        self.signal.raise();
        self.abort_waker.wake();
    }
}

mod future;
mod remote;
use remote::unsend;
pub(crate) use remote::{for_process_call, Encoded, RemoteOps, Verbatim};

mod refs;
pub(crate) use refs::{CallKey, CallRef, JobRef};

#[cfg(all(test, knitting_loom))]
mod loom;
#[cfg(all(test, not(knitting_loom)))]
mod tests;
