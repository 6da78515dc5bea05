//! Calls in encoded form, for crates that carry them to other hosts: the
//! caller's side encodes a task's arguments and decodes its output; the
//! serving side turns the bytes it received into a [`Request`] and runs it
//! on a pool of either runtime with [`Pool::call_encoded`].
//!
//! The bytes are the ones a process pool writes into its shared mapping:
//! postcard, through the adapters `#[task]` picks for each parameter. A
//! request carries the task's id and its type fingerprint, which the
//! serving side checks before it decodes anything.
//!
//! ```
//! use knitting::encoded::{self, Request};
//!
//! #[knitting::task]
//! fn add(a: i64, b: i64) -> i64 { a + b }
//!
//! # fn main() -> Result<(), knitting::Error> {
//! // The calling side.
//! let args = encoded::encode_args(add, &(2, 3))?;
//! let (id, shape) = (encoded::id_of(add), encoded::shape_of(add));
//!
//! // The serving side, which received `id`, `shape` and `args`.
//! let pool = knitting::Pool::builder().threads(1).build()?;
//! let output = pool.call_encoded(Request::new(id, shape, args)?).wait()?;
//!
//! // The calling side again.
//! assert_eq!(encoded::decode_output(add, &output)?, 5);
//! # Ok(()) }
//! ```

use std::{collections::HashMap, fmt, sync::OnceLock};

use super::Pool;
use crate::{
    call::cell::{RemoteOps, Verbatim},
    exec::block::block_on,
    payload::{codec, Encode, Reply, Window},
    runtime::{Remote, Runtime},
    task::{shape, TaskFuture, WorkerEntry},
    Call, Error, ErrorKind, ProcessTask, Signal, Task, TaskId, TaskInfo,
};

/// The id of `task`, as a request carries it.
pub fn id_of<T: Task>(task: T) -> TaskId {
    task.info().id()
}

/// The type fingerprint of `task` (its argument and output type names), as
/// a request carries it: the serving side refuses a request whose
/// fingerprint is not its own task's, with a
/// [`TypeMismatch`](ErrorKind::TypeMismatch) error.
pub fn shape_of<T: ProcessTask>(_: T) -> u64 {
    shape::of::<T>()
}

/// Encodes the arguments of a call of `task`.
///
/// Fails with a [`Codec`](ErrorKind::Codec) error when a `Serialize`
/// implementation fails, or when an argument cannot leave this process (a
/// [`SharedBuffer`](crate::SharedBuffer), a [`Sender`](crate::Sender)).
pub fn encode_args<T: ProcessTask>(task: T, args: &T::Args) -> Result<Vec<u8>, Error> {
    codec::encode_wire_vec::<T::ArgsWire, T::Args>(args).map_err(|e| {
        Error::new(
            ErrorKind::Codec,
            format!("could not encode the arguments: {e}"),
        )
        .with_task(task.info().name())
    })
}

/// Decodes the output of a call of `task` from the bytes
/// [`Pool::call_encoded`] gave on the serving side.
pub fn decode_output<T: ProcessTask>(task: T, bytes: &[u8]) -> Result<T::Output, Error> {
    codec::decode_wire::<T::OutputWire, T::Output>(bytes).map_err(|e| {
        Error::new(
            ErrorKind::Codec,
            format!("could not decode the result: {e}"),
        )
        .with_task(task.info().name())
    })
}

/// An error as bytes, for the trip back to the caller: its kind, message,
/// location, backtrace text and source chain.
pub fn encode_error(err: &Error) -> Vec<u8> {
    // A `WireError` is strings and a byte: postcard cannot fail on it.
    postcard::to_stdvec(&err.to_wire()).unwrap_or_default()
}

/// The error [`encode_error`] encoded, as the caller of `task` sees it: it
/// names the task, and an [`UnknownTask`](ErrorKind::UnknownTask) or
/// [`TypeMismatch`](ErrorKind::TypeMismatch) error names this side's
/// types. Bytes that are not an encoded error give a
/// [`Protocol`](ErrorKind::Protocol) error.
pub fn decode_error<T: Task>(task: T, bytes: &[u8]) -> Error {
    let name = task.info().name();
    let err = match postcard::from_bytes(bytes) {
        Ok(wire) => Error::from_wire(wire),
        Err(e) => Error::new(
            ErrorKind::Protocol,
            format!("the serving side sent an error that does not decode: {e}"),
        ),
    };
    crate::call::cell::for_process_call::<T>(err, name)
}

/// A call that arrived in encoded form, for a task of this program: made
/// by [`Request::new`], run by [`Pool::call_encoded`].
pub struct Request {
    info: &'static TaskInfo,
    entry: WorkerEntry,
    shape: u64,
    args: Vec<u8>,
}

impl Request {
    /// The call of the task with id `task` whose caller declared the type
    /// fingerprint `shape`, with the encoded arguments `args`.
    ///
    /// Fails with an [`UnknownTask`](ErrorKind::UnknownTask) error when
    /// this program has no such task that runs on process workers (none of
    /// that id, or one that is `threads_only` or has types that are not
    /// serde types). A fingerprint that is not the task's fails the call,
    /// not this.
    pub fn new(task: TaskId, shape: u64, args: Vec<u8>) -> Result<Self, Error> {
        static SERVED: OnceLock<HashMap<TaskId, (&'static TaskInfo, WorkerEntry)>> =
            OnceLock::new();
        let served = SERVED.get_or_init(|| {
            crate::tasks()
                .iter()
                .filter_map(|info| Some((info.id(), (*info, info.worker_entry()?))))
                .collect()
        });
        let Some(&(info, entry)) = served.get(&task) else {
            return Err(Error::new(
                ErrorKind::UnknownTask,
                format!("this program has no task of id {task} that runs on process workers"),
            ));
        };
        Ok(Self {
            info,
            entry,
            shape,
            args,
        })
    }

    /// The task the call is for.
    pub fn task(&self) -> &'static TaskInfo {
        self.info
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("task", &self.info.name())
            .field("shape", &format_args!("{:016x}", self.shape))
            .field("args", &self.args.len())
            .finish()
    }
}

impl<R: Runtime> Pool<R> {
    /// Runs a call that arrived in encoded form (see [`encoded`](crate::encoded)):
    /// on a thread pool a worker thread decodes and runs it, on a process
    /// pool the request's bytes go to a worker process as they are, with
    /// the sandbox, limits and crash handling of any process call. The
    /// call's value is the task's output, encoded for
    /// [`decode_output`]; its error is the call's (encode it for the
    /// caller with [`encode_error`]).
    ///
    /// The task's own `#[task(timeout = ..)]` applies; the handle's
    /// [`timeout`](Call::timeout), [`abort`](Call::abort) and
    /// [`cancel`](Call::cancel) work as for any call.
    pub fn call_encoded(&self, request: Request) -> Call<Vec<u8>> {
        let remote = Remote {
            ops: RemoteOps::verbatim::<Relay>(),
            id: request.info.id().as_u64(),
            shape: request.shape,
        };
        let args = Relayed {
            entry: request.entry,
            shape: request.shape,
            args: request.args,
        };
        if args.entry.start.is_some() {
            // An async task: a worker thread drives its future among
            // others, and drops it when the call ends elsewhere.
            let remote = Remote {
                ops: RemoteOps::verbatim::<AsyncRelay>(),
                ..remote
            };
            return self.start(AsyncRelay(request.info), args, Some(remote));
        }
        self.start(Relay(request.info), args, Some(remote))
    }
}

/// The task of a call in encoded form: the target task's info, arguments
/// that stay encoded, and the encoded output.
#[derive(Clone, Copy)]
struct Relay(&'static TaskInfo);

/// The arguments of a [`Relay`] call.
struct Relayed {
    entry: WorkerEntry,
    shape: u64,
    args: Vec<u8>,
}

impl Verbatim for Relayed {
    fn bytes(&self) -> &[u8] {
        &self.args
    }
}

impl Task for Relay {
    type Args = Relayed;
    type Output = Vec<u8>;

    fn info(&self) -> &TaskInfo {
        self.0
    }

    /// On a worker thread: what a worker process does with the request.
    fn run(call: Relayed, signal: &Signal) -> Result<Vec<u8>, Error> {
        if call.entry.shape != call.shape {
            return Err(call.entry.mismatch(call.shape));
        }
        let mut reply = Collect(None);
        (call.entry.run)(&call.args, signal, &mut reply);
        reply.outcome()
    }
}

/// The task of a call of an `async fn` task in encoded form.
#[derive(Clone, Copy)]
struct AsyncRelay(&'static TaskInfo);

impl Task for AsyncRelay {
    type Args = Relayed;
    type Output = Vec<u8>;

    const ASYNC: bool = true;

    fn info(&self) -> &TaskInfo {
        self.0
    }

    fn run(call: Relayed, signal: &Signal) -> Result<Vec<u8>, Error> {
        block_on(Self::run_async(call, signal))
    }

    fn run_async(call: Relayed, signal: &Signal) -> TaskFuture<'_, Vec<u8>> {
        Box::pin(async move {
            if call.entry.shape != call.shape {
                return Err(call.entry.mismatch(call.shape));
            }
            let Some(start) = call.entry.start else {
                return Relay::run(call, signal);
            };
            let mut reply = Collect(None);
            match start(&call.args, signal).await {
                Ok(send) => send(&mut reply),
                Err(err) => reply.error(&err),
            }
            reply.outcome()
        })
    }
}

/// A reply that keeps the encoded outcome.
struct Collect(Option<Result<Vec<u8>, Error>>);

impl Collect {
    fn outcome(self) -> Result<Vec<u8>, Error> {
        self.0.unwrap_or_else(|| {
            Err(Error::new(
                ErrorKind::Protocol,
                "the task sent no outcome for an encoded call",
            ))
        })
    }
}

impl Reply for Collect {
    fn value(&mut self, encode: Encode<'_>) {
        let mut bytes = vec![0; 256];
        let outcome = loop {
            match encode(&mut Window::of(&mut bytes)) {
                Ok(len) if len <= bytes.len() => {
                    bytes.truncate(len);
                    break Ok(bytes);
                }
                Ok(len) => bytes.resize(len, 0),
                Err(e) => {
                    break Err(Error::new(
                        ErrorKind::Codec,
                        format!("could not encode the result: {e}"),
                    ))
                }
            }
        };
        self.0 = Some(outcome);
    }

    fn error(&mut self, err: &Error) {
        self.0 = Some(Err(Error::from_wire(err.to_wire())));
    }
}
