//! The process runtime's side of the call cell: encoding a call's
//! arguments into a shared-memory window, taking it back for a replay, and
//! completing it from a worker's response. The state machine is the cell's
//! (see its state table); this module only adds the steps a process lane
//! makes.

use super::*;
use crate::{
    payload::{codec, wire::Wire, Response, Window},
    task::Wired,
};

/// What the process runtime needs to move a call's arguments and result
/// across the process boundary, for one task type.
///
/// Both entries are `unsafe fn`s with the contract of [`encode`] and
/// [`complete`]: the cell is of the ops' task type and a reference to it is
/// held for the call.
#[derive(Debug)]
pub(crate) struct RemoteOps {
    /// Moves the call `QUEUED → ENCODING → SENT`, encoding its arguments
    /// from a borrow; they stay in the cell.
    pub(super) encode: unsafe fn(NonNull<Header>, &mut Window<'_>, usize) -> Encoded,
    /// Completes a `SENT` call from the worker's response; returns the
    /// waker to wake (after the caller lets go of its locks).
    pub(super) complete: CompleteFn,
}

/// See [`RemoteOps::complete`].
type CompleteFn = unsafe fn(NonNull<Header>, Result<Response<'_, '_>, Error>) -> Option<Waker>;

/// The outcome of [`JobRef::encode`].
#[derive(Debug)]
pub(crate) enum Encoded {
    /// The call ended (cancelled, failed, timed out) before it was sent,
    /// or was not queued: nothing to send.
    Cancelled,
    /// The arguments are in the window, this many bytes.
    Written(usize),
    /// The window was too small but the arguments are within the limit:
    /// here they are, to be copied in when there is room.
    Spilled(Vec<u8>),
    /// Encoding failed; the call has already been failed with the reason.
    Failed,
}

impl RemoteOps {
    /// The ops of task type `T`.
    pub(crate) fn of<T: Wired>() -> &'static RemoteOps
    where
        T::ArgsWire: Wire<T::Args>,
        T::OutputWire: Wire<T::Output>,
    {
        struct Ops<T>(std::marker::PhantomData<T>);
        impl<T: Wired> Ops<T>
        where
            T::ArgsWire: Wire<T::Args>,
            T::OutputWire: Wire<T::Output>,
        {
            const OPS: RemoteOps = RemoteOps {
                encode: encode::<T>,
                complete: complete::<T>,
            };
        }
        &Ops::<T>::OPS
    }
}

/// Arguments that are already encoded: the request bytes of a call that
/// reached this program in encoded form (see `pool/encoded.rs`), sent to a
/// worker as they are.
pub(crate) trait Verbatim {
    /// The encoded arguments.
    fn bytes(&self) -> &[u8];
}

impl RemoteOps {
    /// The ops of a task type whose arguments are already encoded and
    /// whose output is the worker's encoded response, copied as it is.
    pub(crate) fn verbatim<T: Task<Output = Vec<u8>>>() -> &'static RemoteOps
    where
        T::Args: Verbatim,
    {
        struct Ops<T>(std::marker::PhantomData<T>);
        impl<T: Task<Output = Vec<u8>>> Ops<T>
        where
            T::Args: Verbatim,
        {
            const OPS: RemoteOps = RemoteOps {
                encode: encode_verbatim::<T>,
                complete: complete_verbatim::<T>,
            };
        }
        &Ops::<T>::OPS
    }
}

/// Copies the call's encoded arguments into `window` ([`RemoteOps::encode`]).
///
/// # Safety
///
/// As for [`encode`].
unsafe fn encode_verbatim<T: Task>(
    ptr: NonNull<Header>,
    window: &mut Window<'_>,
    max: usize,
) -> Encoded
where
    T::Args: Verbatim,
{
    // SAFETY: the caller holds a reference to a `Cell<T>` (the ops were
    // taken for the same `T` as the cell).
    let cell = unsafe { Cell::<T>::from_header(ptr) };
    cell.encode_with(|args| {
        let bytes = args.bytes();
        if bytes.len() > max {
            Err(Error::too_large("argument", bytes.len(), max))
        } else if bytes.len() <= window.len() {
            window.write(0, bytes);
            Ok(Encoded::Written(bytes.len()))
        } else {
            Ok(Encoded::Spilled(bytes.to_vec()))
        }
    })
}

/// Completes the call with the worker's encoded response
/// ([`RemoteOps::complete`]).
///
/// # Safety
///
/// As for [`complete`].
unsafe fn complete_verbatim<T: Task<Output = Vec<u8>>>(
    ptr: NonNull<Header>,
    outcome: Result<Response<'_, '_>, Error>,
) -> Option<Waker> {
    // SAFETY: the caller holds a reference to a `Cell<T>`.
    let cell = unsafe { Cell::<T>::from_header(ptr) };
    let name = cell.task.info().name();
    let result = if cell.past_deadline() {
        cell.timed_out()
    } else {
        outcome
            .map(|mut response| response.copied().to_vec())
            .map_err(|e| e.with_task(name))
    };
    match cell.claim_completion(false) {
        Some(_) => cell.publish_quietly(result),
        None => None,
    }
}

/// Encodes the call's arguments into `window` ([`RemoteOps::encode`]).
///
/// # Safety
///
/// `ptr` is the header of a `Cell<T>` (the ops were taken for the same
/// `T`) and the caller holds one of its references for the whole call.
unsafe fn encode<T: Wired>(ptr: NonNull<Header>, window: &mut Window<'_>, max: usize) -> Encoded
where
    T::ArgsWire: Wire<T::Args>,
{
    // SAFETY: the caller holds a reference to a `Cell<T>` (the ops were
    // taken for the same `T` as the cell).
    let cell = unsafe { Cell::<T>::from_header(ptr) };
    let codec_error = |e: postcard::Error| {
        Error::of(
            crate::ErrorKind::Codec,
            format!("could not encode the arguments: {e}"),
        )
    };
    cell.encode_with(
        |args| match codec::encode_wire_into::<T::ArgsWire, T::Args>(args, window) {
            Ok(n) if n <= window.len() => Ok(Encoded::Written(n)),
            Ok(n) if n > max => Err(Error::too_large("argument", n, max)),
            Ok(_) => codec::encode_wire_vec::<T::ArgsWire, T::Args>(args)
                .map(Encoded::Spilled)
                .map_err(codec_error),
            Err(e) => Err(codec_error(e)),
        },
    )
}

impl<T: Task> Cell<T> {
    /// The state machine of [`JobRef::encode`]: `QUEUED → ENCODING`, runs
    /// `encode` on a borrow of the arguments, then `ENCODING → SENT`; a
    /// failed `encode` fails the call instead. Drops the arguments if the
    /// call ended meanwhile (the state table hands them to the encoder).
    pub(super) fn encode_with(
        &self,
        encode: impl FnOnce(&T::Args) -> Result<Encoded, Error>,
    ) -> Encoded {
        // Acquire: the arguments written before the hand-off are visible.
        if self
            .header
            .state
            .compare_exchange(QUEUED, ENCODING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Encoded::Cancelled;
        }
        let outcome = self.args.with(|args| {
            // A claim from ENCODING leaves the arguments alone (state table),
            // and our caller's reference keeps the cell alive.
            // SAFETY: in ENCODING the arguments are initialised and only we
            // read them, through a shared borrow that ends with this closure.
            let args = unsafe { (*args).assume_init_ref() };
            // User `Serialize` code runs here, possibly on a lane's reactor
            // thread: a panic fails this call, not the lane.
            catch_unwind(AssertUnwindSafe(|| encode(args))).unwrap_or_else(|_| {
                Err(Error::of(
                    crate::ErrorKind::Codec,
                    "the arguments' Serialize implementation panicked",
                ))
            })
        });
        let next = if outcome.is_ok() { SENT } else { COMPLETING };
        // SYNC POINT: Release makes our reads of the arguments happen
        // before the drop by whoever later claims the call from SENT (the
        // Acquire CAS in `claim_completion`).
        let ours = self
            .header
            .state
            .compare_exchange(ENCODING, next, Ordering::Release, Ordering::Relaxed)
            .is_ok();
        if !ours || next == COMPLETING {
            // The call ended while we encoded (its claimer left the
            // arguments to us), or encoding failed and we hold the
            // completion claim: either way the arguments are ours to drop.
            let args = self.args.with(|args| {
                // SAFETY: ENCODING was left by a claim that leaves the arguments
                // to the encoder, or by our own claim; nobody else touches them.
                unsafe { (*args).assume_init_read() }
            });
            drop_quietly(args);
        }
        match outcome {
            Ok(_) if !ours => Encoded::Cancelled,
            Ok(encoded) => encoded,
            Err(err) if ours => {
                let name = self.task.info().name();
                self.publish(self.unless_late(Err(err.with_task(name))));
                Encoded::Failed
            }
            Err(_) => Encoded::Cancelled,
        }
    }
}

/// Takes a `SENT` call back to `QUEUED` ([`JobRef::unsend`]).
///
/// # Safety
///
/// `ptr` is the header of a live cell and the caller holds one of its
/// references for the whole call.
pub(super) unsafe fn unsend(ptr: NonNull<Header>) -> bool {
    // SAFETY: the caller holds a reference.
    let header = unsafe { header(ptr) };
    // AcqRel: Release hands the arguments back to the queue for the next
    // encoder's (or claimer's) Acquire; Acquire pairs with our own earlier
    // Release to SENT if another thread encoded it.
    header
        .state
        .compare_exchange(SENT, QUEUED, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

/// Completes the call from its response ([`RemoteOps::complete`]).
///
/// # Safety
///
/// `ptr` is the header of a `Cell<T>` (the ops were taken for the same
/// `T`) and the caller holds one of its references for the whole call.
unsafe fn complete<T: Wired>(
    ptr: NonNull<Header>,
    outcome: Result<Response<'_, '_>, Error>,
) -> Option<Waker>
where
    T::OutputWire: Wire<T::Output>,
{
    // SAFETY: the caller holds a reference to a `Cell<T>`.
    let cell = unsafe { Cell::<T>::from_header(ptr) };
    let name = cell.task.info().name();
    // User `Deserialize` code runs here, on whichever host thread takes
    // the response: a panic fails this call only.
    let decode = |mut response: Response<'_, '_>| {
        catch_unwind(AssertUnwindSafe(|| {
            codec::decode_response::<T::OutputWire, T::Output>(&mut response)
        }))
        .unwrap_or(Err(postcard::Error::SerdeDeCustom))
        .map_err(|e| {
            let err = Error::of(
                crate::ErrorKind::Codec,
                format!("could not decode the result: {e}"),
            );
            // A shared buffer that could not cross says why (serde keeps
            // only that a custom error happened).
            crate::payload::shared::region::explained(&err).unwrap_or(err)
        })
    };
    // A response after the deadline is not the call's outcome: it is not
    // even decoded. (User code, the task's `default`, may run here.)
    let result = if cell.past_deadline() {
        cell.timed_out()
    } else {
        outcome
            .and_then(decode)
            .map_err(|e| for_process_call::<T>(e, name))
    };
    match cell.claim_completion(false) {
        Some(_) => cell.publish_quietly(result),
        None => {
            drop_quietly(result);
            None
        }
    }
}

/// The outcome of a process call of task `T` called `name`, as the host
/// hands it to the caller: it names the task, and the two errors a worker
/// builds from the request alone get what only the host knows (the task's
/// name, the host's types).
pub(crate) fn for_process_call<T: Task>(err: Error, name: &'static str) -> Error {
    use crate::task::shape::stripped;
    let err = match err.kind() {
        crate::ErrorKind::UnknownTask => err.with_message(format!(
            "the worker program has no task `{name}` (id {}) that runs on process workers: \
             check the name here and in the worker's `#[task(name = \"...\")]`, \
             and that the task is not `threads_only` there",
            crate::TaskId::of(name)
        )),
        crate::ErrorKind::TypeMismatch => {
            let message = format!(
                "this host declares `{name}` as taking `{}` and returning `{}`, but {}; \
                 declare the worker's types here (type names count without their module paths)",
                stripped(std::any::type_name::<T::Args>()),
                stripped(std::any::type_name::<T::Output>()),
                err.message()
            );
            err.with_message(message)
        }
        _ => err,
    };
    err.with_task(name)
}
