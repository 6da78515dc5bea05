//! The references to a call cell that the rest of the crate holds: the
//! queue's [`JobRef`], the handle's [`CallRef`], and [`CallKey`], a call's
//! name while a reference is held.

use super::*;
use crate::payload::Response;

/// Names one call: its cell's address. Unique among the calls alive at
/// one time, so it identifies a call only while a reference to it is held
/// (a later call may reuse the address). Never dereferenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct CallKey(usize);

impl CallKey {
    /// The key of the call whose header is at `ptr` (a raw reference from
    /// [`JobRef::into_raw`], say).
    pub(crate) fn of(ptr: *const Header) -> Self {
        Self(ptr.addr())
    }
}

/// The queue's reference to a call: one pointer wide.
#[derive(Debug)]
pub(crate) struct JobRef(pub(super) NonNull<Header>);

// SAFETY: a job only moves arguments (`T::Args: Send`) and the result
// (`T::Output: Send`) between threads; the header is made of atomics.
unsafe impl Send for JobRef {}

impl JobRef {
    /// Runs the call here, then releases the reference.
    pub(crate) fn run(self) {
        self.run_then(&|| {});
    }

    /// Runs the call here, calling `finished` once it is over but before
    /// its result is published (or when there turns out to be nothing to
    /// run), then releases the reference.
    pub(crate) fn run_then(self, finished: &dyn Fn()) {
        let ptr = self.0;
        std::mem::forget(self);
        // SAFETY: we owned one reference and hand it to `run`, which
        // releases it; the vtable matches the cell's type.
        unsafe { (header(ptr).vtable.run)(ptr, finished) }
    }

    /// Fails the call with `error` unless it already ended.
    pub(crate) fn fail(&self, error: Error) -> bool {
        // SAFETY: we hold a reference.
        unsafe { (header(self.0).vtable.fail)(self.0, error, false) }
    }

    /// Encodes a queued call's arguments into `window` (at most `max`
    /// bytes) and marks it `SENT`: a process worker has it now. The
    /// arguments stay in the cell, so that [`unsend`](Self::unsend) and a
    /// second `encode` can send the call to another worker from the
    /// caller's own value (never from bytes a worker could have rewritten).
    /// See [`Encoded`] for the outcomes; `Cancelled` also for a call that
    /// is not queued.
    pub(crate) fn encode(&self, ops: &RemoteOps, window: &mut Window<'_>, max: usize) -> Encoded {
        // SAFETY: we hold a reference; `ops` belong to the cell's task type
        // (the pool takes both from the same `T`).
        unsafe { (ops.encode)(self.0, window, max) }
    }

    /// Takes a `SENT` call back (`SENT → QUEUED`), so that it can be
    /// encoded again, for example for a replacement worker. False if the
    /// call is not `SENT`: it ended, or is being completed, meanwhile.
    pub(crate) fn unsend(&self) -> bool {
        // SAFETY: we hold a reference.
        unsafe { unsend(self.0) }
    }

    /// True while no worker or lane has claimed the call (a racy hint).
    pub(crate) fn is_queued(&self) -> bool {
        // Relaxed: a hint; the claims themselves decide.
        // SAFETY: we hold a reference.
        unsafe { header(self.0) }.state.load(Ordering::Relaxed) == QUEUED
    }

    /// Completes the call from its response (bytes to decode, or an
    /// error). Returns the waker to wake once the caller's locks are free.
    pub(crate) fn complete(
        &self,
        ops: &RemoteOps,
        outcome: Result<Response<'_, '_>, Error>,
    ) -> Option<Waker> {
        // SAFETY: as for `encode`.
        unsafe { (ops.complete)(self.0, outcome) }
    }

    /// True once the call's signal was raised (abort, cancel, drop).
    pub(crate) fn is_aborted(&self) -> bool {
        // SAFETY: we hold a reference.
        unsafe { header(self.0) }.signal.aborted()
    }

    /// Ends the call with its task's timed-out outcome (the `default`
    /// value, or a timeout error) if its deadline is still `at` and it has
    /// not ended; raises its signal either way. True if it ended it.
    pub(crate) fn time_out(&self, at: u64) -> bool {
        // SAFETY: we hold a reference.
        let header = unsafe { header(self.0) };
        // Relaxed: the deadline word only picks which timer entry counts;
        // the completion claim below is what synchronizes.
        if header.deadline.load(Ordering::Relaxed) != at {
            return false;
        }
        // End the call first, then tell the task: an abort-aware task that
        // returns at once must not beat the deadline's outcome.
        // SAFETY: we hold a reference; the vtable matches the cell.
        let ended = unsafe { (header.vtable.time_out)(self.0) };
        header.raise();
        ended
    }

    /// The task's own hard time limit.
    pub(crate) fn hard_timeout(&self) -> Option<Duration> {
        // SAFETY: we hold a reference; the vtable matches the cell.
        unsafe { (header(self.0).vtable.hard_timeout)(self.0) }
    }

    /// Raises the call's signal.
    pub(crate) fn raise(&self) {
        // SAFETY: we hold a reference.
        unsafe { header(self.0) }.raise();
    }

    /// True once the call ended (its outcome is being published, is there,
    /// or was taken): nobody waits for a worker's result any more.
    pub(crate) fn has_ended(&self) -> bool {
        // Acquire: pairs with the claim of whoever ended the call.
        // SAFETY: we hold a reference.
        let state = unsafe { header(self.0) }.state.load(Ordering::Acquire);
        matches!(state, COMPLETING | DONE | TAKEN)
    }

    /// True if the call's task is an `async fn`: a worker starts it with
    /// [`start_async`](Self::start_async) instead of running it.
    #[inline]
    pub(crate) fn is_async(&self) -> bool {
        // SAFETY: we hold a reference.
        unsafe { header(self.0) }.vtable.is_async
    }

    /// Starts an async call: the future runs the task and completes the
    /// call, calling `finished` once it is over but before its result is
    /// published; it releases the reference when dropped. `None` when there
    /// is nothing to run (it ended, or its deadline passed while queued;
    /// `finished` was called).
    pub(crate) fn start_async<'a>(self, finished: &'a dyn Fn()) -> Option<LocalFuture<'a>> {
        let ptr = self.0;
        std::mem::forget(self);
        // SAFETY: we owned one reference and hand it over; the vtable
        // matches the cell's type.
        unsafe { (header(ptr).vtable.start_async)(ptr, finished) }
    }

    /// Identifies the call while a reference is held.
    pub(crate) fn key(&self) -> CallKey {
        CallKey::of(self.0.as_ptr())
    }

    /// A second reference to the same call.
    pub(crate) fn clone_ref(&self) -> JobRef {
        // SAFETY: we hold a reference, so the header is alive.
        unsafe { header(self.0) }.add_ref();
        JobRef(self.0)
    }

    /// Gives up ownership of the reference as a raw pointer.
    pub(crate) fn into_raw(self) -> *mut Header {
        let ptr = self.0.as_ptr();
        std::mem::forget(self);
        ptr
    }

    /// Takes back a reference given up with [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    ///
    /// `ptr` came from `into_raw` and is taken back once.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> JobRef {
        JobRef(ptr)
    }
}

impl Drop for JobRef {
    fn drop(&mut self) {
        // SAFETY: we own one reference.
        unsafe { (header(self.0).vtable.drop_ref)(self.0) }
    }
}

/// The handle's reference to a call.
pub(crate) struct CallRef(pub(super) NonNull<Header>);

// SAFETY: as for `JobRef`; the handle only takes the result, which is
// `T::Output: Send`.
unsafe impl Send for CallRef {}
// SAFETY: `&CallRef` only touches atomics (state, signal, waker).
unsafe impl Sync for CallRef {}

impl CallRef {
    /// Allocates the cell for one call and returns the handle's and the
    /// queue's references.
    pub(crate) fn new<T: Task>(task: T, args: T::Args) -> (CallRef, JobRef) {
        let cell = Cell::<T> {
            header: Header {
                state: AtomicU32::new(QUEUED),
                signal: Signal::new(),
                waker: AtomicWaker::new(),
                abort_waker: AtomicWaker::new(),
                deadline: AtomicU64::new(0),
                timer: AtomicU64::new(0),
                // The handle's and the queue's.
                refs: AtomicUsize::new(2),
                vtable: &Cell::<T>::VTABLE,
            },
            task,
            args: UnsafeCell::new(MaybeUninit::new(args)),
            result: UnsafeCell::new(MaybeUninit::uninit()),
        };
        let ptr = super::blocks::alloc(Layout::new::<Cell<T>>()).cast::<Cell<T>>();
        // SAFETY: fresh memory of `Cell<T>`'s layout, for this cell alone;
        // from here on the two references own it (see `drop_ref`).
        unsafe { ptr.as_ptr().write(cell) };
        let header = ptr.cast::<Header>();
        (CallRef(header), JobRef(header))
    }

    pub(super) fn header(&self) -> &Header {
        // SAFETY: the handle holds a reference.
        unsafe { header(self.0) }
    }

    /// True once the result is ready to take.
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        // SYNC POINT: Acquire pairs with `publish`'s Release store of DONE.
        self.header().state.load(Ordering::Acquire) == DONE
    }

    /// Registers `waker` to be woken when the call completes.
    pub(crate) fn register(&self, waker: &Waker) {
        self.header().waker.register(waker);
    }

    /// Moves the result out.
    ///
    /// # Safety
    ///
    /// [`is_done`](Self::is_done) returned true, the result was not taken
    /// yet, and `R` is the `Output` type of the cell's task.
    pub(crate) unsafe fn take<R>(&self) -> Result<R, Error> {
        let mut out = MaybeUninit::<Result<R, Error>>::uninit();
        // SAFETY: the caller vouches for DONE, single take, and `R`.
        unsafe { (self.header().vtable.take)(self.0, out.as_mut_ptr().cast()) };
        // SAFETY: `take` wrote the value.
        unsafe { out.assume_init() }
    }

    /// Sets the call's deadline (shared-clock nanoseconds) and returns a
    /// reference for the timer.
    pub(crate) fn set_deadline(&self, at: u64) -> JobRef {
        // Relaxed: see `JobRef::time_out`.
        self.header().deadline.store(at, Ordering::Relaxed);
        // We hold a reference, so the count is at least one.
        self.header().add_ref();
        JobRef(self.0)
    }

    /// Makes timer entry `key` the call's deadline entry: cancels the one
    /// it replaces, and `key` itself if the call has ended already (its
    /// end cancelled whatever entry it found then).
    pub(crate) fn attach_timer(&self, key: crate::call::timer::Key) {
        let header = self.header();
        // AcqRel: pairs with the swap in `publish_quietly` (see there).
        crate::call::timer::cancel(header.timer.swap(key, Ordering::AcqRel));
        // Acquire: if the call's end swapped the key before us, our swap
        // synchronized with it and this load sees DONE (or TAKEN).
        if matches!(header.state.load(Ordering::Acquire), DONE | TAKEN) {
            crate::call::timer::cancel(header.timer.swap(0, Ordering::AcqRel));
        }
    }

    /// Runs the call on this thread if no worker has started it (the
    /// waiter's claim, `QUEUED → RUNNING`); the queue's reference stays
    /// queued and finds the call started. True if the call is done now.
    pub(crate) fn run_here(&self) -> bool {
        // Relaxed: a hint; `run` makes the claim.
        if self.header().state.load(Ordering::Relaxed) != QUEUED {
            return false;
        }
        // We hold a reference, so the count is at least one.
        self.header().add_ref();
        let job = JobRef(self.0);
        job.run();
        // Acquire: pairs with `publish`; whether it ran here or elsewhere,
        // it is done once DONE shows.
        self.is_done()
    }

    /// Identifies the call while a reference is held.
    pub(crate) fn key(&self) -> CallKey {
        CallKey::of(self.0.as_ptr())
    }

    /// Raises the call's abort signal.
    pub(crate) fn abort(&self) {
        self.header().raise();
    }

    /// Fails the call with `error` unless it already ended.
    pub(crate) fn fail(&self, error: Error) -> bool {
        // SAFETY: we hold a reference.
        unsafe { (self.header().vtable.fail)(self.0, error, false) }
    }

    /// Fails the call with `error` if no worker has started it.
    pub(crate) fn fail_queued(&self, error: Error) -> bool {
        // SAFETY: we hold a reference.
        unsafe { (self.header().vtable.fail)(self.0, error, true) }
    }

    /// The name of the call's task.
    pub(crate) fn task_name(&self) -> &'static str {
        // SAFETY: we hold a reference; the vtable matches the cell.
        unsafe { (self.header().vtable.task_name)(self.0) }
    }
}

impl Drop for CallRef {
    fn drop(&mut self) {
        // SAFETY: we own one reference.
        unsafe { (header(self.0).vtable.drop_ref)(self.0) }
    }
}
