//! The calling side: a pool whose workers are the nodes that serve its
//! tasks on NATS.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use async_nats::{connection::State, HeaderMap, Message, StatusCode};
use bytes::Bytes;
use futures_util::StreamExt;
use knitting::{encoded, Error, ErrorKind, ProcessTask};
use tokio::sync::{mpsc, Semaphore};

use crate::{
    call::{Control, RemoteCall, Slot},
    connect::runtime,
    node::rand_id,
    protocol::*,
    Nats,
};

/// How a [`RemotePool`] calls: made by [`RemotePool::builder`].
#[derive(Debug, Clone)]
pub struct RemotePoolBuilder {
    nats: Nats,
    max_in_flight: usize,
    silence_limit: Duration,
}

impl RemotePoolBuilder {
    /// How many calls may be in flight at once (default 1,024): a call
    /// past that waits, in the pool and not in the caller's thread, until
    /// one ends. Memory and the nodes' load stay bounded however fast
    /// calls are made.
    pub fn max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = calls.max(1);
        self
    }

    /// How long a call may go without a word from the node running it
    /// before the node counts as gone (default 2 s; nodes send a heartbeat
    /// every 250 ms by default). The call then fails with a
    /// [`WorkerDied`](ErrorKind::WorkerDied) error, or
    /// [`Disconnected`](ErrorKind::Disconnected) when this side's
    /// connection is down; a call no node took within this time fails with
    /// [`Unavailable`](ErrorKind::Unavailable).
    pub fn silence_limit(mut self, limit: Duration) -> Self {
        self.silence_limit = limit.max(Duration::from_millis(10));
        self
    }

    /// Connects.
    pub fn connect(self) -> Result<RemotePool, Error> {
        let runtime = runtime("knitting-nats-client")?;
        let id = format!("c{:016x}", rand_id());
        let connected = Arc::new(AtomicBool::new(true));
        let client = {
            let connected = Arc::clone(&connected);
            runtime.block_on(
                self.nats
                    .connect(&format!("knitting client {id}"), move |event| match event {
                        async_nats::Event::Connected => connected.store(true, Ordering::Relaxed),
                        async_nats::Event::Disconnected => {
                            connected.store(false, Ordering::Relaxed)
                        }
                        _ => {}
                    }),
            )?
        };
        Ok(RemotePool {
            spawner: runtime.handle().clone(),
            _runtime: Arc::new(Owner(Some(runtime))),
            inner: Arc::new(Inner {
                client,
                prefix: self.nats.subject_prefix().to_owned(),
                id,
                next: AtomicU64::new(0),
                slots: Arc::new(Semaphore::new(self.max_in_flight)),
                silence: self.silence_limit,
            }),
        })
    }
}

/// A pool whose workers are nodes on other hosts: [`call`](Self::call) has
/// the shape of [`Pool::call`](knitting::Pool::call) and its handle the
/// guarantees of a local [`Call`](knitting::Call).
///
/// ```no_run
/// #[knitting::task]
/// fn resize(width: u32) -> u32 { width / 2 }
///
/// let pool = knitting_nats::RemotePool::connect(&knitting_nats::Nats::new("nats://127.0.0.1:4222"))?;
/// assert_eq!(pool.call(resize, 640).wait()?, 320);
/// # Ok::<(), knitting::Error>(())
/// ```
///
/// A `RemotePool` is a cheap handle: clone it to share one connection.
#[derive(Clone)]
pub struct RemotePool {
    inner: Arc<Inner>,
    spawner: tokio::runtime::Handle,
    _runtime: Arc<Owner>,
}

/// The pool's runtime, stopped when the last handle goes: the calls still
/// running end there (their handles are gone too).
struct Owner(Option<tokio::runtime::Runtime>);

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            // Does not wait, so it may run in an async context too.
            runtime.shutdown_background();
        }
    }
}

struct Inner {
    client: async_nats::Client,
    prefix: String,
    id: String,
    next: AtomicU64,
    slots: Arc<Semaphore>,
    silence: Duration,
}

impl std::fmt::Debug for RemotePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePool")
            .field("id", &self.inner.id)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl RemotePool {
    /// Connects with the default settings (see [`RemotePoolBuilder`]).
    pub fn connect(nats: &Nats) -> Result<Self, Error> {
        Self::builder(nats).connect()
    }

    /// The settings of a pool that connects with `nats`.
    pub fn builder(nats: &Nats) -> RemotePoolBuilder {
        RemotePoolBuilder {
            nats: nats.clone(),
            max_in_flight: 1024,
            silence_limit: Duration::from_secs(2),
        }
    }

    /// The largest message the NATS server carries (its `max_payload`).
    pub fn max_payload(&self) -> usize {
        self.inner.client.server_info().max_payload
    }

    /// Calls `task` with `args` on a node that serves it.
    ///
    /// The arguments are encoded here (a serde error fails the call at
    /// once), sent once, and the handle ends exactly once:
    /// with the task's value; with its error, source chain included; or
    /// with an error that says what happened on the way:
    ///
    /// - [`Unavailable`](ErrorKind::Unavailable): no node serves the task
    ///   (NATS reports that at once) or none took it;
    /// - [`TypeMismatch`](ErrorKind::TypeMismatch): the node's task of this
    ///   name has other types;
    /// - [`TooLarge`](ErrorKind::TooLarge): the arguments or the result
    ///   are over the server's `max_payload` (nothing was sent);
    /// - [`WorkerDied`](ErrorKind::WorkerDied): the node went silent
    ///   mid-call (it died, or its link did). The call may have run there,
    ///   and is not sent again unless [`retries`](RemoteCall::retries)
    ///   says it is safe;
    /// - [`Disconnected`](ErrorKind::Disconnected): this side's connection
    ///   was down when the call gave up;
    /// - [`Timeout`](ErrorKind::Timeout) and
    ///   [`Cancelled`](ErrorKind::Cancelled) as for a local call.
    ///
    /// The task's `#[task(timeout = ..)]` applies, on this side and the
    /// node's.
    pub fn call<T: ProcessTask>(&self, task: T, args: T::Args) -> RemoteCall<T::Output> {
        let slot = Arc::new(Slot::new());
        let (control, controls) = mpsc::unbounded_channel();
        let call = RemoteCall::new(Arc::clone(&slot), control);
        let info = task.info();
        let deadline = info.timeout().map(|t| Instant::now() + t);
        let args = match encoded::encode_args(task, &args) {
            Ok(args) => args,
            Err(err) => {
                slot.finish(Err(err));
                return call;
            }
        };
        let inner = Arc::clone(&self.inner);
        self.spawner.spawn(async move {
            let outcome = drive(&inner, task, Bytes::from(args), deadline, &slot, controls).await;
            slot.finish(outcome);
        });
        call
    }
}

/// How a call failed: the node's encoded error, or this side's own.
enum Failure {
    Node(Bytes),
    Here(Error),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Here(err)
    }
}

/// What one attempt of a call came to.
enum Attempt {
    /// The call's outcome.
    Done(Result<Vec<u8>, Failure>),
    /// The node that took it went silent: try again if allowed.
    Lost(Error),
}

/// Sends one call and follows it to its end.
async fn drive<T: ProcessTask>(
    inner: &Inner,
    task: T,
    args: Bytes,
    mut deadline: Option<Instant>,
    slot: &Slot<T::Output>,
    mut controls: mpsc::UnboundedReceiver<Control>,
) -> Result<T::Output, Error> {
    let name = task.info().name();
    let fail = |kind, message: String| Err(Error::new(kind, message));
    let max = inner.client.server_info().max_payload;
    // The headers take a few hundred bytes of the server's limit.
    if args.len() + 512 > max {
        return fail(
            ErrorKind::TooLarge,
            format!(
                "the arguments of `{name}` are {} bytes, over what the NATS server carries \
                 (max_payload {max} bytes, less room for the headers); nothing was sent",
                args.len()
            ),
        );
    }
    let Ok(_in_flight) = Arc::clone(&inner.slots).acquire_owned().await else {
        return fail(ErrorKind::Closed, "the remote pool is closed".into());
    };
    let subject = call_subject(&inner.prefix, encoded::id_of(task));
    let shape = format!("{:016x}", encoded::shape_of(task));
    let mut aborted = false;
    loop {
        let call_id = format!(
            "{}.{}",
            inner.id,
            inner.next.fetch_add(1, Ordering::Relaxed)
        );
        slot.attempt();
        let attempt = once(
            inner,
            name,
            &subject,
            &shape,
            &call_id,
            args.clone(),
            &mut deadline,
            &mut aborted,
            &mut controls,
        )
        .await;
        let failed = match attempt {
            Attempt::Done(Ok(bytes)) => return encoded::decode_output(task, &bytes),
            Attempt::Done(Err(Failure::Node(bytes))) => encoded::decode_error(task, &bytes),
            Attempt::Done(Err(Failure::Here(err))) => err,
            Attempt::Lost(err) => {
                if !slot.take_retry() {
                    let attempts = slot.attempts();
                    let message = if attempts > 1 {
                        format!(
                            "{} (attempt {attempts}; the earlier ones were lost too)",
                            err.message()
                        )
                    } else {
                        format!(
                            "{}; it was not sent again (a call that is safe to run twice says so \
                             with `RemoteCall::retries`)",
                            err.message()
                        )
                    };
                    return Err(Error::new(err.kind(), message));
                }
                tracing::debug!(target: "knitting_nats::client", "`{name}`: {}; sending it again", err.message());
                continue;
            }
        };
        return if failed.kind() == ErrorKind::Timeout {
            T::timed_out()
        } else {
            Err(failed)
        };
    }
}

/// One attempt: publish the call, follow the node's answers.
#[allow(clippy::too_many_arguments)]
async fn once(
    inner: &Inner,
    name: &str,
    subject: &str,
    shape: &str,
    call_id: &str,
    args: Bytes,
    deadline: &mut Option<Instant>,
    aborted: &mut bool,
    controls: &mut mpsc::UnboundedReceiver<Control>,
) -> Attempt {
    let client = &inner.client;
    let gone = |message: String| {
        let kind = if client.connection_state() == State::Connected {
            ErrorKind::WorkerDied
        } else {
            ErrorKind::Disconnected
        };
        Error::new(kind, message)
    };
    let inbox = client.new_inbox();
    let mut answers = match client.subscribe(inbox.clone()).await {
        Ok(answers) => answers,
        Err(e) => {
            return Attempt::Done(Err(
                gone(format!("could not wait for an answer: {e}")).into()
            ))
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(H_VERSION, VERSION);
    headers.insert(H_SHAPE, shape);
    headers.insert(H_CALL, call_id);
    if let Some(deadline) = *deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Attempt::Done(Err(Error::new(
                ErrorKind::Timeout,
                "the call's deadline passed",
            )
            .into()));
        }
        headers.insert(H_DEADLINE, deadline_value(left).as_str());
    }
    if let Err(e) = client
        .publish_with_reply_and_headers(subject.to_owned(), inbox, headers, args)
        .await
    {
        return Attempt::Done(Err(Error::new(
            ErrorKind::Disconnected,
            format!("`{name}`: the call was not sent: {e}"),
        )
        .into()));
    }
    let mut node: Option<String> = None;
    let mut heard = Instant::now();
    loop {
        let silence_ends = heard + inner.silence;
        let wake = deadline.map_or(silence_ends, |d| d.min(silence_ends));
        tokio::select! {
            answer = answers.next() => {
                let Some(answer) = answer else {
                    return Attempt::Done(Err(gone(format!("`{name}`: the connection closed mid-call")).into()));
                };
                heard = Instant::now();
                if let Some(outcome) = read_answer(name, &answer, &mut node) {
                    return Attempt::Done(outcome);
                }
                if let Some(node) = &node {
                    if *aborted {
                        control(inner, node, call_id, C_ABORT, None).await;
                    }
                    if let Some(deadline) = *deadline {
                        control(inner, node, call_id, C_DEADLINE, Some(deadline)).await;
                    }
                }
            }
            asked = controls.recv() => match asked {
                Some(Control::Abort) => {
                    *aborted = true;
                    if let Some(node) = &node {
                        control(inner, node, call_id, C_ABORT, None).await;
                    }
                }
                Some(Control::Deadline(at)) => {
                    *deadline = Some(at);
                    if let Some(node) = &node {
                        control(inner, node, call_id, C_DEADLINE, Some(at)).await;
                    }
                }
                Some(Control::Cancel) | None => {
                    if let Some(node) = &node {
                        control(inner, node, call_id, C_CANCEL, None).await;
                    }
                    return Attempt::Done(Err(Error::new(ErrorKind::Cancelled, "the call was cancelled").into()));
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    if let Some(node) = &node {
                        control(inner, node, call_id, C_CANCEL, None).await;
                    }
                    return Attempt::Done(Err(Error::new(ErrorKind::Timeout, "the call's deadline passed").into()));
                }
                if Instant::now() < heard + inner.silence {
                    continue;
                }
                return match &node {
                    None => Attempt::Done(Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("no node took the call of `{name}` within {:?}", inner.silence),
                    )
                    .into())),
                    Some(node) => Attempt::Lost(gone(format!(
                        "node {node} went silent during the call of `{name}` (no word for {:?}): \
                         it may have run the call",
                        inner.silence
                    ))),
                };
            }
        }
    }
}

/// What one answer says: the call's outcome, or `None` while it runs (an
/// `accepted` answer names the node in `node`).
fn read_answer(
    name: &str,
    answer: &Message,
    node: &mut Option<String>,
) -> Option<Result<Vec<u8>, Failure>> {
    if answer.status == Some(StatusCode::NO_RESPONDERS) {
        let err = Error::new(
            ErrorKind::Unavailable,
            format!(
                "no node serves `{name}` (NATS has no responder on its subject); it did not run"
            ),
        );
        return Some(Err(err.into()));
    }
    let headers = answer.headers.as_ref();
    let status = header(headers, H_STATUS);
    match status {
        Some(S_ACCEPTED) => {
            *node = header(headers, H_NODE).map(str::to_owned);
            None
        }
        Some(S_ALIVE) => None,
        Some(S_OK) => Some(Ok(answer.payload.to_vec())),
        Some(S_ERROR) => Some(Err(Failure::Node(answer.payload.clone()))),
        _ => Some(Err(Error::new(
            ErrorKind::Protocol,
            format!("the node sent an answer of unknown status {status:?}"),
        )
        .into())),
    }
}

/// Tells `node` about call `call_id`.
async fn control(inner: &Inner, node: &str, call_id: &str, what: &str, deadline: Option<Instant>) {
    let mut headers = HeaderMap::new();
    headers.insert(H_CALL, call_id);
    headers.insert(H_CONTROL, what);
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        headers.insert(H_DEADLINE, deadline_value(left).as_str());
    }
    let subject = control_subject(&inner.prefix, node);
    if let Err(e) = inner
        .client
        .publish_with_headers(subject, headers, Bytes::new())
        .await
    {
        tracing::debug!(target: "knitting_nats::client", "a control message was not sent: {e}");
    }
}
