//! `knitting::Error`: how every call that does not produce its value ends.

pub(crate) mod signals;
pub(crate) mod wire;

use std::{error::Error as StdError, fmt, time::Duration};

/// What went wrong with a call or a pool.
///
/// Match on it through [`Error::kind`], or use the `is_*` predicates.
///
/// ```
/// use knitting::ErrorKind;
///
/// fn describe(err: &knitting::Error) -> &'static str {
///     match err.kind() {
///         ErrorKind::Panic => "the task panicked",
///         ErrorKind::Task => "the task returned an error",
///         ErrorKind::Closed => "the pool is shut down",
///         _ => "something else",
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task returned `Err(e)`; [`Error::source`](std::error::Error::source)
    /// starts the chain at `e`.
    Task,
    /// The task panicked; the message and location are in the error.
    Panic,
    /// The pool is shut down (or shutting down) and the call was not run,
    /// or was cut off by [`Pool::shutdown_timeout`](crate::Pool::shutdown_timeout).
    Closed,
    /// The call was cancelled from the caller's side before it finished.
    Cancelled,
    /// The call's deadline passed (`#[task(timeout = ..)]`,
    /// [`Call::timeout`](crate::Call::timeout)) and the task declares no
    /// `default` value, or its `error` is this error; or a wait ran out of
    /// time (for example [`Pool::shutdown_timeout`](crate::Pool::shutdown_timeout)).
    Timeout,
    /// Two tasks in this program share one id; see
    /// [`task`](macro@crate::task)'s `name` option.
    DuplicateTask,
    /// The pool could not be built (for example the OS refused a thread),
    /// or the OS refused the memory of a
    /// [`SharedBuffer`](crate::SharedBuffer).
    Build,
    /// An argument or a result is bigger than the pool's
    /// [`max_payload_bytes`](crate::ProcessPoolBuilder::max_payload_bytes);
    /// the message names the limit and the actual size. Nothing was sent.
    TooLarge,
    /// An argument or a result could not be encoded or decoded for the trip
    /// between processes (a serde error: for example a `Serialize`
    /// implementation that failed, or an imported task whose declared
    /// struct has the worker's name but other fields).
    Codec,
    /// The worker program has no task of the requested name that runs on
    /// process workers (see [`ImportedTask`](crate::ImportedTask)); the
    /// message names the task.
    UnknownTask,
    /// The worker process running the call died, or was killed because it
    /// showed no sign of life; the message names the worker, its pid and
    /// how it went (exit code, signal, no heartbeat).
    ///
    /// # Which calls fail when a worker goes
    ///
    /// A worker takes the calls sent to it in order: a sync call holds it
    /// until it returns, async calls run side by side. However a worker
    /// goes (it crashes, is killed from outside, runs past a hard time
    /// limit, breaks the protocol, or stops answering), the host first
    /// takes the responses it published before it went; then the calls
    /// that may have started fail, with this error (or
    /// [`HardTimeout`](Self::HardTimeout) for the one past its limit, or
    /// [`Protocol`](Self::Protocol) for the calls a broken worker claimed
    /// to have answered): the first call still waiting, every call the
    /// worker had taken (async calls it was running, a sync call it took
    /// behind them), and every streaming call that delivered items. Every
    /// other call runs on the replacement worker, encoded again from the
    /// caller's own arguments. No call that was never taken fails, and none
    /// runs twice.
    ///
    /// On a thread pool, a worker thread is given up when its sync call
    /// runs past a hard time limit: the async calls it had in flight fail
    /// with this error at once (their futures live on that thread).
    WorkerDied,
    /// The worker process broke the shared-memory protocol (wrote
    /// something the host cannot trust); it was killed and replaced.
    Protocol,
    /// A worker process could not be started, or kept dying while it
    /// started; or a worker's [bootstrap](macro@crate::bootstrap) failed or
    /// panicked (the message names it and carries its own).
    Startup,
    /// The call cannot run on this kind of pool (for example an
    /// [`ImportedTask`](crate::ImportedTask) on a thread pool).
    Unsupported,
    /// The call ran past its hard time limit (`hard_timeout`) and was cut
    /// off: on a process pool its worker was killed and replaced; on a
    /// thread pool its lane got a fresh thread and the runaway one was
    /// left to finish on its own.
    HardTimeout,
    /// The worker's task of this name takes or returns other types than
    /// the caller declared (an [`ImportedTask`](crate::ImportedTask) whose
    /// types do not match the worker's `#[task]`); the message names both
    /// sides' types. Nothing was decoded and the task did not run. See
    /// [`ImportedTask`](crate::ImportedTask) for what the check compares.
    ///
    /// ```no_run
    /// // The worker program defines
    /// //   #[knitting::task(name = "stats")] fn stats(bytes: Vec<u8>) -> Stats
    /// const STATS: knitting::ImportedTask<String, (u8, u8, f64)> =
    ///     knitting::ImportedTask::new("stats");
    /// # let pool = knitting::Pool::builder().processes(1).build().unwrap();
    /// let err = pool.call(STATS, "text".into()).wait().unwrap_err();
    /// assert_eq!(err.kind(), knitting::ErrorKind::TypeMismatch);
    /// // "this host declares `stats` as taking `String` and returning
    /// //  `(u8,u8,f64)`, but the worker's takes `Vec<u8>` and returns `Stats` ..."
    /// ```
    TypeMismatch,
    /// An offset, a length or an alignment does not fit a
    /// [`SharedBuffer`](crate::SharedBuffer) (a range past its end, a view
    /// of atomics at an address they cannot live at); the message names
    /// the offset, the length, the size and the alignment involved.
    OutOfBounds,
    /// Nothing serves the call's task right now: for a call carried to
    /// other hosts (as `knitting-nats` does), no node subscribes to it. The
    /// call was not run anywhere.
    Unavailable,
    /// The connection that carried the call to another host dropped before
    /// the call's outcome came back: the call may or may not have run
    /// there.
    Disconnected,
}

/// The error of a call or of a pool operation.
///
/// It is `Send + Sync + 'static`, so it works with `?`, `Box<dyn Error>`,
/// `anyhow` and friends. A task's own error arrives as the
/// [`source`](std::error::Error::source) of a [`ErrorKind::Task`] error, with
/// the task error's whole `source()` chain behind it:
///
/// ```
/// # use std::error::Error as _;
/// #[knitting::task]
/// fn parse(text: String) -> Result<i64, std::num::ParseIntError> {
///     text.parse()
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// let err = pool.call(parse, "x".into()).wait().unwrap_err();
/// assert!(err.is_task_error());
/// assert_eq!(err.source().unwrap().to_string(), "invalid digit found in string");
/// # Ok(()) }
/// ```
pub struct Error {
    // Boxed so that `Result<T, Error>` stays small on the hot path.
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    task: Option<&'static str>,
    location: Option<String>,
    backtrace: Option<Trace>,
    source: Option<RemoteError>,
}

/// A panic's backtrace: captured on the worker thread without resolving
/// symbols (resolving the first one of a process reads its debug info, tens
/// of milliseconds), resolved to text the first time someone asks for it;
/// or text from the start (a process worker's, which crossed the boundary).
struct Trace {
    captured: Option<std::backtrace::Backtrace>,
    text: std::sync::OnceLock<String>,
}

impl Trace {
    fn text(&self) -> &str {
        self.text.get_or_init(|| {
            self.captured
                .as_ref()
                .map_or_else(String::new, ToString::to_string)
        })
    }

    fn from_text(text: String) -> Self {
        Self {
            captured: None,
            text: std::sync::OnceLock::from(text),
        }
    }
}

impl Error {
    /// An error of `kind` with `message`: for crates that carry calls to
    /// workers of their own (another host, another transport) and report
    /// their outcomes as knitting errors.
    ///
    /// ```
    /// use knitting::{Error, ErrorKind};
    ///
    /// let err = Error::new(ErrorKind::Unavailable, "no node serves `resize`");
    /// assert_eq!(err.kind(), ErrorKind::Unavailable);
    /// assert_eq!(err.message(), "no node serves `resize`");
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                task: None,
                location: None,
                backtrace: None,
                source: None,
            }),
        }
    }

    /// What kind of failure this is.
    ///
    /// ```
    /// # fn main() -> Result<(), knitting::Error> {
    /// # #[knitting::task] fn noop() {}
    /// let pool = knitting::Pool::builder().threads(1).build()?;
    /// pool.shutdown();
    /// let err = pool.call(noop, ()).wait().unwrap_err();
    /// assert_eq!(err.kind(), knitting::ErrorKind::Closed);
    /// # Ok(()) }
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// True when the task returned `Err`.
    ///
    /// ```
    /// # #[knitting::task] fn noop() {}
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// # pool.shutdown();
    /// # let err = pool.call(noop, ()).wait().unwrap_err(); // a closed error
    /// assert!(!err.is_task_error());
    /// ```
    pub fn is_task_error(&self) -> bool {
        self.kind() == ErrorKind::Task
    }

    /// True when the task panicked.
    ///
    /// ```
    /// # #[knitting::task] fn noop() {}
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// # pool.shutdown();
    /// # let err = pool.call(noop, ()).wait().unwrap_err(); // a closed error
    /// assert!(!err.is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        self.kind() == ErrorKind::Panic
    }

    /// True when the pool was shut down before the call could finish.
    ///
    /// ```
    /// # #[knitting::task] fn noop() {}
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// # pool.shutdown();
    /// # let err = pool.call(noop, ()).wait().unwrap_err(); // a closed error
    /// assert!(err.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.kind() == ErrorKind::Closed
    }

    /// True when the call was cancelled by its caller.
    ///
    /// ```
    /// # #[knitting::task] fn noop() {}
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// # pool.shutdown();
    /// # let err = pool.call(noop, ()).wait().unwrap_err(); // a closed error
    /// assert!(!err.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.kind() == ErrorKind::Cancelled
    }

    /// True when a wait ran out of time.
    ///
    /// ```
    /// # #[knitting::task] fn noop() {}
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// # pool.shutdown();
    /// # let err = pool.call(noop, ()).wait().unwrap_err(); // a closed error
    /// assert!(!err.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// The name of the task the failed call was for, when known.
    ///
    /// ```
    /// #[knitting::task]
    /// fn boom() { panic!("no") }
    /// # fn main() -> Result<(), knitting::Error> {
    /// let pool = knitting::Pool::builder().threads(1).build()?;
    /// let err = pool.call(boom, ()).wait().unwrap_err();
    /// assert!(err.task().unwrap().ends_with("::boom"));
    /// # Ok(()) }
    /// ```
    pub fn task(&self) -> Option<&'static str> {
        self.inner.task
    }

    /// The message: the panic message for [`ErrorKind::Panic`], the task
    /// error's `Display` for [`ErrorKind::Task`], a description otherwise.
    ///
    /// ```
    /// #[knitting::task]
    /// fn boom() { panic!("no {}", "way") }
    /// # fn main() -> Result<(), knitting::Error> {
    /// let pool = knitting::Pool::builder().threads(1).build()?;
    /// let err = pool.call(boom, ()).wait().unwrap_err();
    /// assert_eq!(err.message(), "no way");
    /// # Ok(()) }
    /// ```
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Where a panicking task panicked, as `file:line:column`.
    ///
    /// ```
    /// #[knitting::task]
    /// fn boom() { panic!("no") }
    /// # fn main() -> Result<(), knitting::Error> {
    /// let pool = knitting::Pool::builder().threads(1).build()?;
    /// let err = pool.call(boom, ()).wait().unwrap_err();
    /// assert!(err.location().unwrap().contains(".rs:"));
    /// # Ok(()) }
    /// ```
    pub fn location(&self) -> Option<&str> {
        self.inner.location.as_deref()
    }

    /// The backtrace of a panicking task, when one was captured (set
    /// `RUST_BACKTRACE=1`, as for any panic).
    ///
    /// On a thread worker the backtrace is captured without resolving its
    /// symbols, and resolved on the first call of this method, so a panic
    /// nobody inspects costs no symbol lookup. A process worker resolves it
    /// before sending it to the host.
    ///
    /// ```
    /// # #[knitting::task] fn noop() {}
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// # pool.shutdown();
    /// # let err = pool.call(noop, ()).wait().unwrap_err(); // a closed error
    /// assert!(err.backtrace().is_none());
    /// ```
    pub fn backtrace(&self) -> Option<&str> {
        self.inner.backtrace.as_ref().map(Trace::text)
    }

    /// The same error with another message (kind, source and location
    /// kept).
    pub(crate) fn with_message(mut self, message: String) -> Self {
        self.inner.message = message;
        self
    }

    pub(crate) fn with_task(mut self, task: &'static str) -> Self {
        self.inner.task = Some(task);
        self
    }

    pub(crate) fn closed() -> Self {
        Self::new(ErrorKind::Closed, "the pool is shut down")
    }

    pub(crate) fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "the call was cancelled")
    }

    pub(crate) fn shutdown_timeout(waited: Duration, failed: usize) -> Self {
        Self::new(
            ErrorKind::Timeout,
            format!(
                "shutdown did not finish within {waited:?}; {failed} unfinished call(s) failed as closed"
            ),
        )
    }

    pub(crate) fn build(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Build, message)
    }

    /// An error of `kind` with `message`, for the process runtime.
    pub(crate) fn of(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::new(kind, message)
    }

    /// A call's deadline passed and its task has no `default`.
    pub(crate) fn deadline_passed() -> Self {
        Self::new(ErrorKind::Timeout, "the call's deadline passed")
    }

    /// The same error, of kind [`ErrorKind::Timeout`].
    pub(crate) fn into_timeout(mut self) -> Self {
        self.inner.kind = ErrorKind::Timeout;
        self
    }

    /// A call cut off by its hard time limit.
    pub(crate) fn hard_timeout(limit: Duration, what: &str) -> Self {
        Self::new(
            ErrorKind::HardTimeout,
            format!("the call ran past its hard time limit of {limit:?}; {what}"),
        )
    }

    pub(crate) fn too_large(what: &str, actual: usize, limit: usize) -> Self {
        Self::new(
            ErrorKind::TooLarge,
            format!("the encoded {what} is {actual} bytes, over the pool's max_payload_bytes of {limit}"),
        )
    }

    /// A range or an alignment that does not fit a shared buffer.
    pub(crate) fn out_of_bounds(message: String) -> Self {
        Self::new(ErrorKind::OutOfBounds, message)
    }

    pub(crate) fn duplicate_task(message: String) -> Self {
        Self::new(ErrorKind::DuplicateTask, message)
    }

    pub(crate) fn panic(
        message: String,
        location: Option<String>,
        backtrace: Option<std::backtrace::Backtrace>,
    ) -> Self {
        let mut err = Self::new(ErrorKind::Panic, message);
        err.inner.location = location;
        err.inner.backtrace = backtrace.map(|captured| Trace {
            captured: Some(captured),
            text: std::sync::OnceLock::new(),
        });
        err
    }

    /// Captures `err` and its whole `source()` chain as text.
    pub(crate) fn from_task_error(err: &dyn StdError) -> Self {
        let remote = RemoteError::capture(err);
        let mut out = Self::new(ErrorKind::Task, remote.message.clone());
        out.inner.source = Some(remote);
        out
    }

    /// A task error that only has a `Display` (for example a `String`).
    pub(crate) fn from_task_message(message: String) -> Self {
        let remote = RemoteError {
            message: message.clone(),
            source: None,
        };
        let mut out = Self::new(ErrorKind::Task, message);
        out.inner.source = Some(remote);
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let task = self.inner.task.unwrap_or("?");
        match self.inner.kind {
            ErrorKind::Task => write!(f, "task `{task}` returned an error"),
            ErrorKind::Panic => {
                write!(f, "task `{task}` panicked")?;
                if let Some(loc) = &self.inner.location {
                    write!(f, " at {loc}")?;
                }
                write!(f, ": {}", self.inner.message)
            }
            _ => f.write_str(&self.inner.message),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(task) = self.inner.task {
            d.field("task", &task);
        }
        if let Some(loc) = &self.inner.location {
            d.field("location", loc);
        }
        if let Some(src) = &self.inner.source {
            d.field("source", src);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// One link of a task error's `source()` chain, captured as text where the
/// task ran, so it can cross any boundary.
///
/// ```
/// # use std::error::Error as _;
/// #[knitting::task]
/// fn open() -> Result<(), std::io::Error> {
///     Err(std::io::Error::other("disk gone"))
/// }
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// let err = pool.call(open, ()).wait().unwrap_err();
/// let remote = err.source().unwrap();
/// assert_eq!(remote.to_string(), "disk gone");
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteError {
    message: String,
    source: Option<Box<RemoteError>>,
}

impl RemoteError {
    fn capture(err: &dyn StdError) -> Self {
        let mut messages = vec![err.to_string()];
        let mut next = err.source();
        while let Some(e) = next {
            messages.push(e.to_string());
            next = e.source();
        }
        let mut chain: Option<Box<RemoteError>> = None;
        while let Some(message) = messages.pop() {
            chain = Some(Box::new(RemoteError {
                message,
                source: chain,
            }));
        }
        *chain.expect("at least one message")
    }

    /// The `Display` text of this link.
    ///
    /// ```
    /// # use std::error::Error as _;
    /// # #[knitting::task] fn open() -> Result<(), std::io::Error> { Err(std::io::Error::other("disk gone")) }
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// let err = pool.call(open, ()).wait().unwrap_err();
    /// let remote: &knitting::RemoteError = err.source().unwrap().downcast_ref().unwrap();
    /// assert_eq!(remote.message(), "disk gone");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RemoteError");
        d.field("message", &self.message);
        if let Some(src) = &self.source {
            d.field("source", src);
        }
        d.finish()
    }
}

impl StdError for RemoteError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "captures a real backtrace")]
    fn a_panics_backtrace_is_resolved_only_when_asked_for() {
        let captured = std::backtrace::Backtrace::force_capture();
        let err = Error::panic("boom".into(), None, Some(captured));
        let trace = err.inner.backtrace.as_ref().expect("a backtrace");
        assert!(trace.text.get().is_none(), "not resolved yet");
        let text = err.backtrace().expect("a backtrace");
        assert!(text.contains("a_panics_backtrace_is_resolved"), "{text}");
        let trace = err.inner.backtrace.as_ref().expect("a backtrace");
        assert!(trace.text.get().is_some(), "resolved once, then kept");
        // The wire form (a process worker's answer) carries the text.
        assert_eq!(Error::from_wire(err.to_wire()).backtrace(), Some(text));
    }
}
