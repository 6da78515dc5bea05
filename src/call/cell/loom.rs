//! Loom models of the call-state word: a worker, the failure paths (cancel,
//! deadline, shutdown) and a process lane's steps racing for the completion
//! claim, with the handle taking the result meanwhile.
//!
//! Every model checks that exactly one outcome is published and that the
//! claim's winner is the one whose outcome the handle sees; that the
//! arguments are dropped once and every result made is dropped once; and,
//! before the handle lets go, that its reference is the last one (no
//! reference leaks). The arguments keep their value in a cell that loom
//! tracks and that their destructor writes, so loom also checks that every
//! read of them (by a worker or an encoder) happens before their drop,
//! whoever drops them.
//!
//! They run with the crate's other loom models (the `loom_` filter, see
//! `src/loom_tests.rs`), each in about a second at `LOOM_MAX_PREEMPTIONS=2`.
//!
//! No model attaches a timer entry (the cell's timer key stays 0, so its
//! end cancels nothing and the timer thread never starts) or registers a
//! waker: the handle polls [`CallRef::is_done`].

use ::loom::{sync::Arc, thread};

use super::*;
use crate::{sync::AtomicUsize, TaskInfo};

/// What one run of a model made and dropped.
struct Counts {
    args_dropped: AtomicUsize,
    outputs_made: AtomicUsize,
    outputs_dropped: AtomicUsize,
}

::loom::lazy_static! {
    // Loom makes a fresh one for every execution of a model.
    static ref COUNTS: Counts = Counts {
        args_dropped: AtomicUsize::new(0),
        outputs_made: AtomicUsize::new(0),
        outputs_dropped: AtomicUsize::new(0),
    };
}

/// Adds one to `counter`.
fn bump(counter: &AtomicUsize) {
    // Relaxed: the counts are read after every thread of the model is
    // joined, which orders them.
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Asserts that the arguments were dropped once, `made` results were made
/// and each of them was dropped. Call after every thread is joined and the
/// cell is gone.
fn assert_counts(made: std::ops::RangeInclusive<usize>) {
    // Relaxed: see `bump`.
    let args = COUNTS.args_dropped.load(Ordering::Relaxed);
    let outputs_made = COUNTS.outputs_made.load(Ordering::Relaxed);
    let outputs_dropped = COUNTS.outputs_dropped.load(Ordering::Relaxed);
    assert_eq!(args, 1, "the arguments are dropped exactly once");
    assert!(made.contains(&outputs_made), "{outputs_made} results made");
    assert_eq!(outputs_dropped, outputs_made, "every result dropped once");
}

/// The arguments of [`Double`]. The value sits in the crate's `UnsafeCell`
/// (loom's, in these models), which `drop` writes, so loom reports a read
/// that is not ordered before the drop.
struct Arg(UnsafeCell<u32>);

impl Arg {
    fn new(value: u32) -> Self {
        Self(UnsafeCell::new(value))
    }

    fn get(&self) -> u32 {
        // SAFETY: only `drop` writes the cell, and it has `&mut self`.
        self.0.with(|v| unsafe { *v })
    }
}

impl Drop for Arg {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody else reaches the cell. (Loom still
        // checks this write against every earlier read from other threads.)
        self.0.with_mut(|v| unsafe { *v = 0 });
        bump(&COUNTS.args_dropped);
    }
}

impl serde::Serialize for Arg {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.get())
    }
}

// The host never decodes arguments; the wire adapter wants both halves.
impl<'de> serde::Deserialize<'de> for Arg {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        unreachable!("the host never decodes arguments")
    }
}

/// The output of [`Double`], made by the task or decoded from a response.
#[derive(Debug)]
struct Out(u32);

impl Out {
    fn new(value: u32) -> Self {
        bump(&COUNTS.outputs_made);
        Self(value)
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        bump(&COUNTS.outputs_dropped);
    }
}

impl<'de> serde::Deserialize<'de> for Out {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u32::deserialize(deserializer).map(Out::new)
    }
}

// The host never encodes outputs; the wire adapter wants both halves.
impl serde::Serialize for Out {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        unreachable!("the host never encodes outputs")
    }
}

/// Doubles its argument.
#[derive(Clone, Copy)]
struct Double;

static DOUBLE: TaskInfo = TaskInfo::new("cell::loom::double", file!(), line!());

// SAFETY: plain serde adapters lend nothing.
unsafe impl crate::task::Wired for Double {
    type ArgsWire = crate::payload::wire::Plain;
    type OutputWire = crate::payload::wire::Plain;
}

impl Task for Double {
    type Args = Arg;
    type Output = Out;

    fn info(&self) -> &TaskInfo {
        &DOUBLE
    }

    fn run(arg: Arg, _: &Signal) -> Result<Out, Error> {
        Ok(Out::new(arg.get() * 2))
    }
}

/// The argument of every call in these models.
const ARG: u32 = 21;
/// What `Double` gives for `ARG`.
const VALUE: u32 = 42;

/// The handle's side: waits until the call is done, then takes the result.
fn wait(call: &CallRef) -> Result<Out, Error> {
    while !call.is_done() {
        thread::yield_now();
    }
    // SAFETY: the call is done, this is its only take, and `Out` is the
    // output of `Double`, the task of every cell in these models.
    unsafe { call.take::<Out>() }
}

/// How many references to the call's cell are held.
fn refs(call: &CallRef) -> usize {
    call.header().refs.load(crate::sync::Ordering::SeqCst)
}

/// Drops the handle, after checking that it holds the last reference.
fn release(call: CallRef) {
    assert_eq!(refs(&call), 1, "every other reference was released");
    drop(call);
}

/// A worker runs the call while the caller cancels it (fail, then abort,
/// as `Call::cancel` does) and the handle waits to take the result.
#[test]
fn loom_run_races_cancel_and_take() {
    ::loom::model(|| {
        let (call, job) = CallRef::new(Double, Arg::new(ARG));
        let call = Arc::new(call);
        let worker = thread::spawn(move || job.run());
        let cancel = {
            let call = Arc::clone(&call);
            thread::spawn(move || {
                let won = call.fail(Error::cancelled());
                call.abort();
                won
            })
        };
        let outcome = wait(&call);
        let cancelled = cancel.join().unwrap();
        worker.join().unwrap();
        match &outcome {
            Ok(out) => {
                assert!(!cancelled, "a cancel that won is the outcome");
                assert_eq!(out.0, VALUE);
            }
            Err(e) => {
                assert!(cancelled, "only the cancel fails this call");
                assert!(e.is_cancelled(), "{e:?}");
            }
        }
        drop(outcome);
        release(Arc::try_unwrap(call).ok().unwrap());
        assert_counts(0..=1);
    });
}

/// The timer fires the call's current deadline while a worker runs it and
/// a shutdown fails it: one of the three ends it. The deadline lies beyond
/// the clock, so only the timer's own claim times the call out (as when
/// the timer thread reads the clock a little ahead of the worker).
#[test]
fn loom_deadline_races_run_and_shutdown() {
    ::loom::model(|| {
        let at = u64::MAX;
        let (call, job) = CallRef::new(Double, Arg::new(ARG));
        let timer_ref = call.set_deadline(at);
        let shutdown_ref = job.clone_ref();
        let worker = thread::spawn(move || job.run());
        let timer = thread::spawn(move || timer_ref.time_out(at));
        let closed = shutdown_ref.fail(Error::closed());
        drop(shutdown_ref);
        let outcome = wait(&call);
        let timed_out = timer.join().unwrap();
        worker.join().unwrap();
        match &outcome {
            Ok(out) => {
                assert!(!timed_out && !closed, "the worker's value won");
                assert_eq!(out.0, VALUE);
            }
            Err(e) if e.is_timeout() => assert!(timed_out && !closed, "{e:?}"),
            Err(e) if e.is_closed() => assert!(closed && !timed_out, "{e:?}"),
            Err(e) => panic!("unexpected outcome {e:?}"),
        }
        drop(outcome);
        release(call);
        assert_counts(0..=1);
    });
}

/// As above with a deadline that has passed: whoever wins, the outcome is
/// the timed-out one, and the worker never starts the task.
#[test]
fn loom_passed_deadline_wins_over_run_and_shutdown() {
    ::loom::model(|| {
        // One nanosecond after boot: long past.
        let at = 1;
        let (call, job) = CallRef::new(Double, Arg::new(ARG));
        let timer_ref = call.set_deadline(at);
        let shutdown_ref = job.clone_ref();
        let worker = thread::spawn(move || job.run());
        let timer = thread::spawn(move || timer_ref.time_out(at));
        let closed = shutdown_ref.fail(Error::closed());
        drop(shutdown_ref);
        let outcome = wait(&call);
        let timed_out = timer.join().unwrap();
        worker.join().unwrap();
        assert!(!(timed_out && closed), "one claim wins");
        let err = outcome.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        drop(err);
        release(call);
        assert_counts(0..=0);
    });
}

mod process {
    //! A process lane's steps: encode (`QUEUED → ENCODING → SENT`), take
    //! back (`unsend`) and complete from a response. The encoder is the
    //! cell's `encode_with` with a closure in place of a shared-memory
    //! window; responses are real postcard bytes.

    use super::*;

    /// Encodes the call as a lane would, into a buffer in place of the
    /// shared-memory window.
    fn encode(job: &JobRef) -> Encoded {
        // SAFETY: `job` holds a reference to a `Cell<Double>` for as long
        // as this borrow lasts.
        let cell = unsafe { Cell::<Double>::from_header(job.0) };
        cell.encode_with(|arg| {
            let bytes = postcard::to_stdvec(arg).expect("a u32 encodes");
            Ok(Encoded::Written(bytes.len()))
        })
    }

    /// Encodes the call as a lane would, but the arguments turn out too
    /// large.
    fn encode_failing(job: &JobRef) -> Encoded {
        // SAFETY: as in `encode`.
        let cell = unsafe { Cell::<Double>::from_header(job.0) };
        cell.encode_with(|arg| Err(Error::too_large("argument", arg.get() as usize, 1)))
    }

    /// A worker's response carrying `Double`'s value.
    fn response() -> Vec<u8> {
        postcard::to_stdvec(&VALUE).expect("a u32 encodes")
    }

    /// Completes the call from `response` as the lane does.
    fn complete(job: &JobRef, response: &[u8]) {
        let (mut bytes, mut scratch) = (response.to_vec(), Vec::new());
        let response =
            crate::payload::Response::new(crate::payload::Window::of(&mut bytes), &mut scratch);
        let waker = job.complete(RemoteOps::of::<Double>(), Ok(response));
        assert!(waker.is_none(), "no waker was registered");
    }

    /// A lane encodes the call and, once it is sent, completes it from the
    /// worker's response, while the caller cancels it and waits.
    #[test]
    fn loom_encode_and_complete_race_cancel() {
        ::loom::model(|| {
            let (call, job) = CallRef::new(Double, Arg::new(ARG));
            let call = Arc::new(call);
            let lane = thread::spawn(move || {
                let encoded = encode(&job);
                if matches!(encoded, Encoded::Written(_)) {
                    complete(&job, &response());
                }
                encoded
            });
            let cancel = {
                let call = Arc::clone(&call);
                thread::spawn(move || {
                    let won = call.fail(Error::cancelled());
                    call.abort();
                    won
                })
            };
            let outcome = wait(&call);
            let cancelled = cancel.join().unwrap();
            let encoded = lane.join().unwrap();
            match &outcome {
                Ok(out) => {
                    assert!(!cancelled, "a cancel that won is the outcome");
                    assert!(matches!(encoded, Encoded::Written(_)), "{encoded:?}");
                    assert_eq!(out.0, VALUE);
                }
                Err(e) => {
                    assert!(cancelled, "only the cancel fails this call");
                    assert!(e.is_cancelled(), "{e:?}");
                    assert!(
                        matches!(encoded, Encoded::Written(_) | Encoded::Cancelled),
                        "{encoded:?}"
                    );
                }
            }
            drop(outcome);
            release(Arc::try_unwrap(call).ok().unwrap());
            assert_counts(0..=1);
        });
    }

    /// A sent call: the lane completes it from the response, shutdown fails
    /// it, and a replay takes it back (`unsend`) and encodes it again, all
    /// at once. The completion claim can come from `SENT`, `QUEUED` or
    /// `ENCODING`; in each case one party drops the arguments.
    #[test]
    fn loom_complete_races_fail_and_replay() {
        ::loom::model(|| {
            let (call, job) = CallRef::new(Double, Arg::new(ARG));
            assert!(matches!(encode(&job), Encoded::Written(_)));
            let replay_ref = job.clone_ref();
            let shutdown_ref = job.clone_ref();
            let lane = thread::spawn(move || complete(&job, &response()));
            let replay = thread::spawn(move || {
                if replay_ref.unsend() {
                    Some(encode(&replay_ref))
                } else {
                    None
                }
            });
            let closed = shutdown_ref.fail(Error::closed());
            drop(shutdown_ref);
            let outcome = wait(&call);
            lane.join().unwrap();
            let replayed = replay.join().unwrap();
            match &outcome {
                Ok(out) => {
                    assert!(!closed, "a shutdown that won is the outcome");
                    assert_eq!(out.0, VALUE);
                }
                Err(e) => {
                    assert!(closed, "only the shutdown fails this call");
                    assert!(e.is_closed(), "{e:?}");
                }
            }
            if let Some(encoded) = replayed {
                assert!(
                    matches!(encoded, Encoded::Written(_) | Encoded::Cancelled),
                    "{encoded:?}"
                );
            }
            drop(outcome);
            release(call);
            // The response was decoded once, whether or not it won.
            assert_counts(1..=1);
        });
    }

    /// Encoding fails (as for arguments over the size limit) while the
    /// caller cancels: the encoder's own claim publishes the failure, or
    /// the cancel does; the arguments go once either way.
    #[test]
    fn loom_failed_encode_races_cancel() {
        ::loom::model(|| {
            let (call, job) = CallRef::new(Double, Arg::new(ARG));
            let call = Arc::new(call);
            let lane = thread::spawn(move || encode_failing(&job));
            let cancel = {
                let call = Arc::clone(&call);
                thread::spawn(move || call.fail(Error::cancelled()))
            };
            let outcome = wait(&call);
            let cancelled = cancel.join().unwrap();
            let encoded = lane.join().unwrap();
            let err = outcome.unwrap_err();
            if cancelled {
                assert!(err.is_cancelled(), "{err:?}");
                assert!(matches!(encoded, Encoded::Cancelled), "{encoded:?}");
            } else {
                assert!(!err.is_cancelled(), "{err:?}");
                assert!(matches!(encoded, Encoded::Failed), "{encoded:?}");
            }
            drop(err);
            release(Arc::try_unwrap(call).ok().unwrap());
            assert_counts(0..=0);
        });
    }
}
