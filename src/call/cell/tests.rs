//! Unit tests of the call cell: the state machine, argument ownership,
//! and the process runtime's encode and replay steps.

//! The call cell's ownership rules, driven without a pool so that Miri
//! can check every path (`cargo +nightly miri test --lib call::`).

use std::sync::{atomic::AtomicBool, Arc};

use super::*;
use crate::TaskInfo;

/// A task whose argument and output count their live copies.
#[derive(Clone, Copy)]
struct Echo;

static ECHO: TaskInfo = TaskInfo::new("cell::echo", file!(), line!());

impl Task for Echo {
    type Args = (Arc<()>, bool);
    type Output = Arc<()>;

    fn info(&self) -> &TaskInfo {
        &ECHO
    }

    fn run((value, panic): Self::Args, _: &Signal) -> Result<Arc<()>, Error> {
        assert!(!panic, "asked to panic");
        Ok(value)
    }
}

fn wait_done(call: &CallRef) {
    while !call.is_done() {
        std::thread::yield_now();
    }
}

#[test]
fn runs_on_another_thread_and_hands_back_the_result() {
    let marker = Arc::new(());
    let (call, job) = CallRef::new(Echo, (Arc::clone(&marker), false));
    std::thread::spawn(move || job.run()).join().unwrap();
    wait_done(&call);
    // SAFETY: done, taken once, output type of `Echo`.
    let out = unsafe { call.take::<Arc<()>>() }.unwrap();
    assert!(Arc::ptr_eq(&out, &marker));
    drop((out, call));
    assert_eq!(Arc::strong_count(&marker), 1);
}

#[test]
fn a_failed_queued_call_drops_its_arguments_and_never_runs() {
    let marker = Arc::new(());
    let (call, job) = CallRef::new(Echo, (Arc::clone(&marker), true));
    assert!(call.fail_queued(Error::cancelled()));
    assert_eq!(Arc::strong_count(&marker), 1, "arguments dropped at once");
    job.run(); // would panic inside the task if it ran
    assert!(call.is_done());
    // SAFETY: done, taken once, output type of `Echo`.
    let err = unsafe { call.take::<Arc<()>>() }.unwrap_err();
    assert!(err.is_cancelled());
}

#[test]
fn an_untaken_result_is_dropped_with_the_cell() {
    let marker = Arc::new(());
    let (call, job) = CallRef::new(Echo, (Arc::clone(&marker), false));
    job.run();
    assert!(!call.fail_queued(Error::closed()), "already done");
    assert!(!call.fail(Error::closed()), "already done");
    assert_eq!(Arc::strong_count(&marker), 2, "the result holds it");
    drop(call);
    assert_eq!(Arc::strong_count(&marker), 1);
}

#[test]
fn a_job_dropped_unrun_drops_its_arguments() {
    let marker = Arc::new(());
    let (call, job) = CallRef::new(Echo, (Arc::clone(&marker), false));
    drop(job);
    drop(call);
    assert_eq!(Arc::strong_count(&marker), 1);
}

#[test]
fn a_panic_becomes_an_error_and_the_arguments_are_dropped() {
    crate::task::panics::install_hook();
    let marker = Arc::new(());
    let (call, job) = CallRef::new(Echo, (Arc::clone(&marker), true));
    job.run();
    // SAFETY: done, taken once, output type of `Echo`.
    let err = unsafe { call.take::<Arc<()>>() }.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.message(), "asked to panic");
    assert_eq!(err.task(), Some("cell::echo"));
    assert_eq!(Arc::strong_count(&marker), 1);
}

/// Runs until its signal is raised, then returns its argument.
#[derive(Clone, Copy)]
struct UntilAborted;

static UNTIL_ABORTED: TaskInfo = TaskInfo::new("cell::until_aborted", file!(), line!());
static STARTED: AtomicBool = AtomicBool::new(false);

impl Task for UntilAborted {
    type Args = Arc<()>;
    type Output = Arc<()>;

    fn info(&self) -> &TaskInfo {
        &UNTIL_ABORTED
    }

    fn run(value: Arc<()>, signal: &Signal) -> Result<Arc<()>, Error> {
        STARTED.store(true, Ordering::SeqCst);
        while !signal.aborted() {
            std::thread::yield_now();
        }
        Ok(value)
    }
}

#[test]
fn failing_a_running_call_wins_and_the_late_result_is_dropped() {
    let marker = Arc::new(());
    let (call, job) = CallRef::new(UntilAborted, Arc::clone(&marker));
    let worker = std::thread::spawn(move || job.run());
    while !STARTED.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // A shutdown that gave up fails the running call...
    assert!(call.fail(Error::closed()));
    assert!(call.is_done());
    // ...and the task, told to stop, returns a result nobody takes.
    call.abort();
    worker.join().unwrap();
    // SAFETY: done, taken once, output type of `UntilAborted`.
    assert!(unsafe { call.take::<Arc<()>>() }.unwrap_err().is_closed());
    drop(call);
    assert_eq!(Arc::strong_count(&marker), 1);
}

/// An argument that counts its drops, and encodes as its value.
struct Counted {
    value: u64,
    drops: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl serde::Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

// The host never decodes arguments; the wire adapter wants both halves.
impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        unreachable!("the host never decodes arguments")
    }
}

/// Completes `job` from a worker's response `bytes`, as a lane does.
fn complete_with(job: &JobRef, ops: &RemoteOps, mut bytes: Vec<u8>) -> Option<Waker> {
    let mut scratch = Vec::new();
    let window = crate::payload::Window::of(&mut bytes);
    job.complete(ops, Ok(crate::payload::Response::new(window, &mut scratch)))
}

/// A task for the process path: doubles its argument.
#[derive(Clone, Copy)]
struct Remote;

static REMOTE: TaskInfo = TaskInfo::new("cell::remote", file!(), line!());

// SAFETY: plain serde adapters lend nothing.
unsafe impl crate::task::Wired for Remote {
    type ArgsWire = crate::payload::wire::Plain;
    type OutputWire = crate::payload::wire::Plain;
}

impl Task for Remote {
    type Args = Counted;
    type Output = u64;

    fn info(&self) -> &TaskInfo {
        &REMOTE
    }

    fn run(args: Counted, _: &Signal) -> Result<u64, Error> {
        Ok(args.value * 2)
    }
}

fn counted(value: u64) -> (CallRef, JobRef, Arc<std::sync::atomic::AtomicUsize>) {
    let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let args = Counted {
        value,
        drops: Arc::clone(&drops),
    };
    let (call, job) = CallRef::new(Remote, args);
    (call, job, drops)
}

fn drops(counter: &std::sync::atomic::AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// The encoder's state machine without a shared mapping (Miri runs
/// it): `encode` gets the arguments by reference, as the window
/// encoder does.
fn encode_here(job: &JobRef, encode: impl FnOnce(&Counted) -> Result<Encoded, Error>) -> Encoded {
    // SAFETY: `job` holds a reference to a `Cell<Remote>`.
    unsafe { Cell::<Remote>::from_header(job.0) }.encode_with(encode)
}

fn response(value: u64) -> Vec<u8> {
    crate::payload::codec::encode_vec(&value).unwrap()
}

#[test]
fn a_sent_call_keeps_its_arguments_until_it_completes_and_can_be_sent_again() {
    let ops = RemoteOps::of::<Remote>();
    let (call, job, counter) = counted(21);
    let seen = |args: &Counted| Ok(Encoded::Written(args.value as usize));
    assert!(matches!(encode_here(&job, seen), Encoded::Written(21)));
    assert_eq!(drops(&counter), 0, "SENT keeps the arguments");
    assert!(!job.is_queued());
    // A replacement worker: take the call back and encode it again from
    // the caller's value.
    assert!(job.unsend());
    assert!(job.is_queued());
    assert!(!job.unsend(), "only a SENT call can be taken back");
    assert!(matches!(encode_here(&job, seen), Encoded::Written(21)));
    assert_eq!(drops(&counter), 0);
    assert!(complete_with(&job, ops, response(42)).is_none());
    assert_eq!(drops(&counter), 1, "completing drops the arguments");
    assert!(call.is_done());
    assert!(!job.unsend(), "an ended call is not taken back");
    assert!(matches!(encode_here(&job, seen), Encoded::Cancelled));
    // SAFETY: done, taken once, output type of `Remote`.
    assert_eq!(unsafe { call.take::<u64>() }.unwrap(), 42);
    drop((call, job));
    assert_eq!(drops(&counter), 1, "dropped exactly once");
}

#[test]
fn a_sent_call_that_is_cancelled_drops_its_arguments_once() {
    let ops = RemoteOps::of::<Remote>();
    let (call, job, counter) = counted(1);
    assert!(matches!(
        encode_here(&job, |_| Ok(Encoded::Written(1))),
        Encoded::Written(1)
    ));
    assert!(call.fail(Error::cancelled()));
    assert_eq!(drops(&counter), 1);
    assert!(!job.unsend());
    // The worker's late response is dropped; the call stays cancelled.
    assert!(complete_with(&job, ops, response(2)).is_none());
    // SAFETY: done, taken once, output type of `Remote`.
    assert!(unsafe { call.take::<u64>() }.unwrap_err().is_cancelled());
    drop((call, job));
    assert_eq!(drops(&counter), 1);
}

#[test]
fn a_call_that_ends_while_it_is_encoded_leaves_its_arguments_to_the_encoder() {
    let (call, job, counter) = counted(5);
    let outcome = encode_here(&job, |args| {
        // A cancel arrives mid-encoding: it ends the call but must not
        // drop the arguments we are reading.
        assert!(call.fail(Error::cancelled()));
        assert_eq!(drops(&counter), 0);
        Ok(Encoded::Written(args.value as usize))
    });
    assert!(matches!(outcome, Encoded::Cancelled), "nothing to send");
    assert_eq!(drops(&counter), 1, "the encoder dropped them");
    assert!(!job.unsend());
    // SAFETY: done, taken once, output type of `Remote`.
    assert!(unsafe { call.take::<u64>() }.unwrap_err().is_cancelled());
    drop((call, job));
    assert_eq!(drops(&counter), 1);
}

#[test]
fn a_failed_encoding_fails_the_call_and_drops_the_arguments_once() {
    let (call, job, counter) = counted(5);
    let outcome = encode_here(&job, |_| Err(Error::cancelled()));
    assert!(matches!(outcome, Encoded::Failed));
    assert_eq!(drops(&counter), 1);
    assert!(call.is_done());
    let panicking = counted(6);
    let outcome = encode_here(&panicking.1, |_| panic!("Serialize panicked"));
    assert!(matches!(outcome, Encoded::Failed));
    assert_eq!(drops(&panicking.2), 1);
    // SAFETY: done, taken once, output type of `Remote`.
    let err = unsafe { panicking.0.take::<u64>() }.unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Codec);
    drop((call, job, panicking));
    assert_eq!(drops(&counter), 1);
}

#[test]
fn a_sent_call_dropped_unanswered_drops_its_arguments_with_the_cell() {
    let (call, job, counter) = counted(5);
    assert!(matches!(
        encode_here(&job, |_| Ok(Encoded::Written(1))),
        Encoded::Written(1)
    ));
    drop(job);
    assert_eq!(drops(&counter), 0);
    // The handle's drop cancels (claims from SENT, dropping them) and
    // frees the cell.
    drop(call);
    assert_eq!(drops(&counter), 1);
}

#[test]
fn encoding_into_a_window_leaves_the_arguments_in_place() {
    let mut arena = [0u8; 128];
    let ops = RemoteOps::of::<Remote>();
    let (call, job, counter) = counted(300);
    let (first, second) = arena.split_at_mut(64);
    let Encoded::Written(n) = job.encode(ops, &mut Window::of(first), 1024) else {
        panic!("the arguments fit");
    };
    assert_eq!(&first[..n], &response(300)[..]);
    assert_eq!(drops(&counter), 0);
    assert!(job.unsend());
    let again = job.encode(ops, &mut Window::of(second), 1024);
    assert!(matches!(again, Encoded::Written(m) if m == n));
    assert_eq!(&second[..n], &response(300)[..]);
    assert!(complete_with(&job, ops, response(600)).is_none());
    assert_eq!(drops(&counter), 1);
    // SAFETY: done, taken once, output type of `Remote`.
    assert_eq!(unsafe { call.take::<u64>() }.unwrap(), 600);
}

#[test]
fn a_response_after_the_deadline_ends_the_call_timed_out() {
    let ops = RemoteOps::of::<Remote>();
    let (call, job, counter) = counted(5);
    // A deadline of 1 ns on the shared clock: long passed. (No timer
    // entry: only the completion path can notice.)
    call.header().deadline.store(1, Ordering::Relaxed);
    assert!(matches!(
        encode_here(&job, |_| Ok(Encoded::Written(1))),
        Encoded::Written(1)
    ));
    assert!(complete_with(&job, ops, response(10)).is_none());
    assert_eq!(drops(&counter), 1);
    // SAFETY: done, taken once, output type of `Remote`.
    assert!(unsafe { call.take::<u64>() }.unwrap_err().is_timeout());
}

#[test]
fn a_thread_call_past_its_deadline_is_not_run_and_ends_timed_out() {
    let (call, job, counter) = counted(5);
    call.header().deadline.store(1, Ordering::Relaxed);
    job.run();
    assert_eq!(drops(&counter), 1, "dropped unrun");
    // SAFETY: done, taken once, output type of `Remote`.
    assert!(unsafe { call.take::<u64>() }.unwrap_err().is_timeout());
}

#[test]
fn a_waiter_runs_a_queued_call_itself_and_the_queue_skips_it() {
    let (call, job, counter) = counted(4);
    assert!(call.run_here());
    assert_eq!(drops(&counter), 1);
    assert!(!call.run_here(), "only once");
    job.run(); // the queue's turn: already started, nothing to do
               // SAFETY: done, taken once, output type of `Remote`.
    assert_eq!(unsafe { call.take::<u64>() }.unwrap(), 8);
}
