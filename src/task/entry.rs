//! How a worker process runs one task for one request: decode the
//! arguments, run the task (panics caught), and hand the outcome to the
//! reply sink. Written for any sink ([`Reply`]), so the task layer knows
//! nothing of the process runtime that calls it. An `async fn` task is
//! started instead ([`start`]): its future, which the worker's executor
//! drives, ends with what to send.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use super::{panics, ProcessTask, Task, TaskFuture, Wired};
use crate::{
    payload::{codec, wire, Reply, Window},
    Error, ErrorKind, Signal,
};

/// The signature of a task's worker entry.
pub(crate) type EntryFn = fn(&[u8], &Signal, &mut dyn Reply);

/// Runs task `T` on the request `input`; sends its outcome to `reply`.
pub(crate) fn run<T: ProcessTask>(input: &[u8], signal: &Signal, reply: &mut dyn Reply) {
    // SAFETY: the lent arguments go to `T::run`, which drops them before
    // it returns (the `Wired` contract), while `input` is borrowed for the
    // whole of this function.
    let (args, lease) = unsafe {
        wire::lending(input, || {
            codec::decode_wire::<<T as Wired>::ArgsWire, T::Args>(input)
        })
    };
    let args = match args {
        Ok(args) => args,
        Err(e) => {
            return reply.error(&Error::of(
                ErrorKind::Codec,
                format!("the worker could not decode the arguments: {e}"),
            ))
        }
    };
    let outcome = panics::catch(|| T::run(args, signal));
    if lease.outstanding() {
        // A buffer lent from this request outlived the call (a `Deserialize`
        // impl kept one): once answered, the host would write over the bytes
        // it views. Stop the process first; the host sees a crash.
        eprintln!(
            "knitting worker: a buffer lent from a request was kept past its call \
             (by a Deserialize implementation?); the worker stops"
        );
        std::process::abort();
    }
    match outcome {
        Ok(value) => reply.value(&|w: &mut Window<'_>| {
            codec::encode_wire_into::<<T as Wired>::OutputWire, T::Output>(&value, w)
        }),
        Err(err) => reply.error(&err),
    }
}

/// The signature of an async task's worker entry.
pub(crate) type StartFn = for<'a> fn(&[u8], &'a Signal) -> Started<'a>;

/// What a finished async call sends: its value, encoded when the sink has
/// room, or its error (a panic included).
pub(crate) type Finished<'a> = Result<Box<dyn FnOnce(&mut dyn Reply) + 'a>, Error>;

/// The future of one async call on a process worker.
pub(crate) type Started<'a> = Pin<Box<dyn Future<Output = Finished<'a>> + 'a>>;

/// Starts async task `T` on the request `input` (decoded now: the future
/// does not borrow it).
///
/// A buffer lent from the request lives as long as the task's future may
/// hold it: the caller keeps `input` unwritten until the future is done or
/// dropped, which checks that no lent buffer outlived it.
pub(crate) fn start<'a, T: ProcessTask>(input: &[u8], signal: &'a Signal) -> Started<'a> {
    // SAFETY: the lent arguments go to the task's future, which `AsyncRun`
    // drops before it checks the lease (when it ends or is dropped), and
    // the caller keeps `input` unwritten until then (see above).
    let (args, lease) = unsafe {
        wire::lending(input, || {
            codec::decode_wire::<<T as Wired>::ArgsWire, T::Args>(input)
        })
    };
    let task = match args {
        Ok(args) => panics::catch(|| Ok(T::run_async(args, signal))),
        Err(e) => {
            let err = Error::of(
                ErrorKind::Codec,
                format!("the worker could not decode the arguments: {e}"),
            );
            // Why a shared buffer did not decode, if that was it: known
            // only now, inside the request's scope.
            Err(crate::payload::shared::region::explained(&err).unwrap_or(err))
        }
    };
    Box::pin(AsyncRun::<T> {
        task: Some(task),
        lease,
    })
}

/// The future of [`start`].
struct AsyncRun<'a, T: Task> {
    /// The task's future, or why it did not start; `None` once it ended.
    task: Option<Result<TaskFuture<'a, T::Output>, Error>>,
    lease: wire::Lease,
}

impl<T: Task> AsyncRun<'_, T> {
    /// Drops the task's future, then stops the process if a buffer lent
    /// from the request outlived it (as [`run`] does).
    fn end(&mut self) {
        drop(self.task.take());
        if self.lease.outstanding() {
            eprintln!(
                "knitting worker: a buffer lent from a request was kept past its call \
                 (by a Deserialize implementation?); the worker stops"
            );
            std::process::abort();
        }
    }
}

impl<'a, T: ProcessTask> Future for AsyncRun<'a, T> {
    type Output = Finished<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Finished<'a>> {
        // `AsyncRun` is `Unpin`: the task's future is boxed.
        let this = self.get_mut();
        let outcome = match this.task.as_mut() {
            None => Err(Error::of(ErrorKind::Protocol, "polled after its end")),
            Some(Err(_)) => match this.task.take() {
                Some(Err(err)) => Err(err),
                _ => unreachable!("just matched"),
            },
            Some(Ok(future)) => {
                let mut polled = Poll::Pending;
                let caught = panics::catch(|| {
                    polled = future.as_mut().poll(cx);
                    Ok(())
                });
                match (caught, polled) {
                    (Err(panic), _) => Err(panic),
                    (Ok(()), Poll::Pending) => return Poll::Pending,
                    (Ok(()), Poll::Ready(result)) => result,
                }
            }
        };
        this.end();
        Poll::Ready(outcome.map(|value| {
            Box::new(move |reply: &mut dyn Reply| {
                reply.value(&|w: &mut Window<'_>| {
                    codec::encode_wire_into::<<T as Wired>::OutputWire, T::Output>(&value, w)
                });
            }) as Box<dyn FnOnce(&mut dyn Reply) + 'a>
        }))
    }
}

impl<T: Task> Drop for AsyncRun<'_, T> {
    fn drop(&mut self) {
        if self.task.is_some() {
            // Dropped before its end (the call ended on the host, or the
            // worker stops): the task's destructors run here.
            self.end();
        }
    }
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use super::*;
    use crate::{payload::Encode, Task};

    /// A sink that keeps what it was sent.
    #[derive(Default)]
    struct Kept {
        value: Option<Vec<u8>>,
        error: Option<Error>,
    }

    impl Reply for Kept {
        fn value(&mut self, encode: Encode<'_>) {
            // A window too small first, as a full arena gives: the sink
            // asks again with the size the encoder reported.
            let mut small = [0u8; 1];
            let n = encode(&mut Window::of(&mut small)).unwrap();
            let mut bytes = vec![0; n];
            assert_eq!(encode(&mut Window::of(&mut bytes)).unwrap(), n);
            self.value = Some(bytes);
        }

        fn error(&mut self, err: &Error) {
            self.error = Some(Error::of(err.kind(), err.message().to_owned()));
        }
    }

    #[derive(Clone, Copy)]
    struct Shout;

    static SHOUT: crate::TaskInfo = crate::TaskInfo::new("shout", file!(), line!());

    // SAFETY: plain serde adapters lend nothing.
    unsafe impl Wired for Shout {
        type ArgsWire = wire::Plain;
        type OutputWire = wire::Plain;
    }
    impl crate::task::marks::NoBorrowedTypes for Shout {}
    impl crate::task::marks::NotThreadsOnly for Shout {}

    impl Task for Shout {
        type Args = String;
        type Output = String;

        fn info(&self) -> &crate::TaskInfo {
            &SHOUT
        }

        fn run(text: String, _: &Signal) -> Result<String, Error> {
            Ok(text.to_uppercase())
        }
    }

    #[test]
    fn a_request_runs_the_task_and_its_value_is_encoded_through_the_sink() {
        let mut kept = Kept::default();
        let input = codec::encode_vec(&"knit".to_string()).unwrap();
        run::<Shout>(&input, &Signal::new(), &mut kept);
        let value: String = codec::decode(&kept.value.unwrap()).unwrap();
        assert_eq!(value, "KNIT");
        assert!(kept.error.is_none());
    }

    #[test]
    fn undecodable_arguments_are_a_codec_error_and_the_task_does_not_run() {
        let mut kept = Kept::default();
        run::<Shout>(&[0xff, 0xff, 0xff], &Signal::new(), &mut kept);
        assert!(kept.value.is_none());
        assert_eq!(kept.error.unwrap().kind(), ErrorKind::Codec);
    }
}
