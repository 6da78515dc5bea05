//! Tasks: the `Task` trait the `#[task]` attribute implements, task ids, and
//! the link-time registry that lists every task of the program.

pub(crate) mod bootstrap;
pub(crate) mod closure;
pub(crate) mod entry;
pub(crate) mod imported;
pub(crate) mod panics;

use std::{collections::HashMap, fmt, future::Future, pin::Pin, time::Duration};

use crate::{payload::wire::Wire, Error, Signal};

/// A function that can run on a pool, made by [`#[knitting::task]`](macro@crate::task).
///
/// You do not implement this trait by hand: put `#[knitting::task]` on a
/// function and pass the function's name to [`Pool::call`](crate::Pool::call).
/// The attribute turns the name into a zero-sized value of a type that
/// implements `Task`, and still lets you call the function locally:
///
/// ```
/// #[knitting::task]
/// fn add(a: i64, b: i64) -> i64 {
///     a + b
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// assert_eq!(add(1, 2), 3); // still a plain local call
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// assert_eq!(pool.call(add, (1, 2)).wait()?, 3); // the same, on a worker
/// # Ok(()) }
/// ```
///
/// A task with several parameters takes them as one tuple (`Args`), a task
/// with one parameter takes the value itself, and a task with none takes `()`.
pub trait Task: Copy + Send + Sync + 'static {
    /// The call arguments: `()`, the single parameter's type, or a tuple.
    type Args: Send + 'static;
    /// What a successful call yields. For a task returning `Result<T, E>`
    /// this is `T`; `E` becomes an [`Error`] of kind
    /// [`Task`](crate::ErrorKind::Task).
    type Output: Send + 'static;

    /// The task's name, id and definition site.
    fn info(&self) -> &TaskInfo;

    /// Runs the task body. Called by workers; not meant for user code.
    #[doc(hidden)]
    fn run(args: Self::Args, signal: &Signal) -> Result<Self::Output, Error>;

    /// True for an `async fn` task: workers run it through
    /// [`run_async`](Self::run_async). Not meant for user code.
    #[doc(hidden)]
    const ASYNC: bool = false;

    /// Starts the task body of an `async fn` task as a future (for a sync
    /// task: runs it, and the future is ready at once). Called by workers;
    /// not meant for user code.
    #[doc(hidden)]
    fn run_async(args: Self::Args, signal: &Signal) -> TaskFuture<'_, Self::Output> {
        let result = Self::run(args, signal);
        Box::pin(std::future::ready(result))
    }

    /// What a call gives when its deadline passes: the `default` or `error`
    /// of `#[task(timeout = ..)]`, else a [`Timeout`](crate::ErrorKind::Timeout)
    /// error. Not meant for user code.
    #[doc(hidden)]
    fn timed_out() -> Result<Self::Output, Error> {
        Err(Error::deadline_passed())
    }
}

/// A task that sends items as it runs: one that takes a
/// [`Sender`](crate::Sender) parameter. Its calls are made with
/// [`Pool::stream`](crate::Pool::stream), which makes the sender; the
/// caller passes the other parameters (`Input`) as for
/// [`Pool::call`](crate::Pool::call). `#[task]` implements it.
pub trait StreamTask: Task {
    /// What the task sends.
    type Item: Send + 'static;
    /// The call arguments without the sender: `()`, the one other
    /// parameter's type, or a tuple.
    type Input: Send + 'static;

    /// The task's arguments: `input` with the sender in its place. Not
    /// meant for user code.
    #[doc(hidden)]
    fn with_sender(input: Self::Input, sender: crate::Sender<Self::Item>) -> Self::Args;
}

/// The future of one call of an `async fn` task (see [`Task::run_async`]):
/// it may borrow the call's [`Signal`].
#[doc(hidden)]
pub type TaskFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + 'a>>;

/// A stable task id: a 64-bit FNV-1a hash of the task's name.
///
/// The name is the task's module path and function name
/// (`my_crate::jobs::resize`) unless `#[task(name = "...")]` sets it, so the
/// id is the same in every build of the program and in every process.
///
/// ```
/// #[knitting::task(name = "resize")]
/// fn resize(width: u32) -> u32 { width / 2 }
///
/// use knitting::Task as _;
/// assert_eq!(resize.info().id(), knitting::TaskId::of("resize"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    /// The id of the task called `name`.
    ///
    /// ```
    /// assert_eq!(knitting::TaskId::of("a"), knitting::TaskId::of("a"));
    /// assert_ne!(knitting::TaskId::of("a"), knitting::TaskId::of("b"));
    /// ```
    pub const fn of(name: &str) -> Self {
        let bytes = name.as_bytes();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        Self(hash)
    }

    /// The raw 64-bit value.
    ///
    /// ```
    /// let id = knitting::TaskId::of("x");
    /// assert_eq!(format!("{id}"), format!("{:016x}", id.as_u64()));
    /// ```
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The id whose raw value is `raw` (one read back from a message, for
    /// example).
    ///
    /// ```
    /// let id = knitting::TaskId::of("x");
    /// assert_eq!(knitting::TaskId::from_u64(id.as_u64()), id);
    /// ```
    pub const fn from_u64(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({:016x})", self.0)
    }
}

/// What the program knows about one task: its name, id and where it is
/// defined.
///
/// ```
/// #[knitting::task]
/// fn square(v: i64) -> i64 { v * v }
///
/// use knitting::Task as _;
/// let info = square.info();
/// assert!(info.name().ends_with("::square"));
/// assert!(info.file().ends_with(".rs"));
/// ```
#[derive(Clone, Copy)]
pub struct TaskInfo {
    name: &'static str,
    id: TaskId,
    file: &'static str,
    line: u32,
    /// How a process worker runs the task; `None` when its arguments or
    /// output are not serde types (or the task is imported).
    entry: Option<fn() -> Option<WorkerEntry>>,
    /// `#[task(timeout = ..)]`.
    timeout: Option<Duration>,
    /// `#[task(hard_timeout = ..)]`.
    hard_timeout: Option<Duration>,
    /// `#[task(inline)]`.
    inline: bool,
}

impl fmt::Debug for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskInfo")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("file", &self.file)
            .field("line", &self.line)
            .field("timeout", &self.timeout)
            .field("hard_timeout", &self.hard_timeout)
            .field("inline", &self.inline)
            .finish_non_exhaustive()
    }
}

impl TaskInfo {
    pub(crate) const fn new(name: &'static str, file: &'static str, line: u32) -> Self {
        Self::with_id(name, TaskId::of(name), file, line)
    }

    /// The info of a closure run as a task (see `closure`): named by its
    /// type; its id is the same for every closure, since no worker process
    /// ever looks one up (hashing each closure's name would cost every
    /// call).
    pub(crate) fn closure(name: &'static str, file: &'static str, line: u32) -> Self {
        const ID: TaskId = TaskId::of("knitting::closure");
        Self::with_id(name, ID, file, line)
    }

    const fn with_id(name: &'static str, id: TaskId, file: &'static str, line: u32) -> Self {
        Self {
            name,
            id,
            file,
            line,
            entry: None,
            timeout: None,
            hard_timeout: None,
            inline: false,
        }
    }

    /// Marks the task to run on the caller's thread (used by
    /// `#[task(inline)]`).
    #[doc(hidden)]
    pub const fn with_inline(mut self) -> Self {
        self.inline = true;
        self
    }

    /// True for a task marked `#[task(inline)]`: a thread pool runs its
    /// calls on the caller's thread (see [`Call`](crate::Call#the-inline-lane)).
    ///
    /// ```
    /// #[knitting::task(inline)]
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    /// # use knitting::Task as _;
    /// assert!(add.info().is_inline());
    /// ```
    pub fn is_inline(&self) -> bool {
        self.inline
    }

    /// Sets the deadline of every call, counted from the call (used by
    /// `#[task(timeout = ..)]`).
    #[doc(hidden)]
    pub const fn with_timeout(mut self, nanos: u64) -> Self {
        self.timeout = Some(Duration::from_nanos(nanos));
        self
    }

    /// Sets the hard time limit of every call (used by
    /// `#[task(hard_timeout = ..)]`).
    #[doc(hidden)]
    pub const fn with_hard_timeout(mut self, nanos: u64) -> Self {
        self.hard_timeout = Some(Duration::from_nanos(nanos));
        self
    }

    /// The task's deadline, counted from each call, if it declares one
    /// (`#[task(timeout = "200ms")]`).
    ///
    /// ```
    /// #[knitting::task(timeout = "200ms", default = 0u32)]
    /// fn slow() -> u32 { 1 }
    /// # use knitting::Task as _;
    /// assert_eq!(slow.info().timeout(), Some(std::time::Duration::from_millis(200)));
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The task's hard time limit, if it declares one
    /// (`#[task(hard_timeout = "1s")]`).
    ///
    /// ```
    /// #[knitting::task(hard_timeout = "1s")]
    /// fn bounded() {}
    /// # use knitting::Task as _;
    /// assert_eq!(bounded.info().hard_timeout(), Some(std::time::Duration::from_secs(1)));
    /// ```
    pub fn hard_timeout(&self) -> Option<Duration> {
        self.hard_timeout
    }

    pub(crate) const fn with_entry(mut self, entry: fn() -> Option<WorkerEntry>) -> Self {
        self.entry = Some(entry);
        self
    }

    /// How a process worker runs this task, if it can.
    pub(crate) fn worker_entry(&self) -> Option<WorkerEntry> {
        self.entry.and_then(|entry| entry())
    }

    /// The task's name: `module::path::function`, or the `name` option.
    ///
    /// ```
    /// # #[knitting::task(name = "n")] fn t() {}
    /// # use knitting::Task as _;
    /// assert_eq!(t.info().name(), "n");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The task's stable id.
    ///
    /// ```
    /// # #[knitting::task(name = "n")] fn t() {}
    /// # use knitting::Task as _;
    /// assert_eq!(t.info().id(), knitting::TaskId::of("n"));
    /// ```
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The source file of the task's definition.
    ///
    /// ```
    /// # #[knitting::task] fn t() {}
    /// # use knitting::Task as _;
    /// assert!(t.info().file().ends_with(".rs"));
    /// ```
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// The line of the task's definition.
    ///
    /// ```
    /// # #[knitting::task] fn t() {}
    /// # use knitting::Task as _;
    /// assert!(t.info().line() > 0);
    /// ```
    pub fn line(&self) -> u32 {
        self.line
    }
}

/// Every task of the program, gathered at link time.
#[linkme::distributed_slice]
pub static TASKS: [&'static TaskInfo];

/// All tasks linked into this program, in link order.
///
/// ```
/// #[knitting::task]
/// fn listed() {}
///
/// assert!(knitting::tasks().iter().any(|t| t.name().ends_with("::listed")));
/// ```
pub fn tasks() -> &'static [&'static TaskInfo] {
    &TASKS
}

/// Fails when two tasks of the program share an id.
pub(crate) fn check_unique_ids() -> Result<(), Error> {
    let mut seen: HashMap<TaskId, &TaskInfo> = HashMap::with_capacity(TASKS.len());
    for info in TASKS.iter() {
        if let Some(first) = seen.insert(info.id, info) {
            return Err(Error::duplicate_task(format!(
                "two tasks share the id {}: `{}` at {}:{} and `{}` at {}:{}; \
                 give one of them another #[task(name = \"...\")]",
                info.id, first.name, first.file, first.line, info.name, info.file, info.line
            )));
        }
    }
    Ok(())
}

/// Support for the expansion of `#[task]`: turning a task's `Err(e)` into an
/// [`Error`], picked by the type of `e` (autoref specialization: the
/// most specific impl that applies wins, at compile time).
pub(crate) mod failure;

/// A task that can run on a [`ProcessPool`](crate::ProcessPool): its
/// arguments and its output are owned serde types, both ways
/// (`Serialize + DeserializeOwned`), since the host encodes the arguments
/// and decodes the result while the worker does the opposite.
///
/// It is implemented for every `#[knitting::task]` whose types qualify
/// (unless it is `threads_only`) and for every [`ImportedTask`](crate::ImportedTask)
/// with such types; never by hand. [`ProcessPool::call`](crate::ProcessPool::call)
/// requires it, so a task that a worker could not run does not compile
/// there, with an error that names what to change:
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Point { x: i32, y: i32 }
///
/// #[knitting::task]
/// fn norm(p: Point) -> u32 { p.x.unsigned_abs() + p.y.unsigned_abs() }
///
/// fn process_ready<T: knitting::ProcessTask>(_: T) {}
/// process_ready(norm);
/// ```
///
/// A type that is only `Serialize` (or only `Deserialize`), a borrowed
/// type such as `&'static str`, or a `threads_only` task is refused:
///
/// ```compile_fail
/// #[derive(serde::Serialize)] // no Deserialize: a worker cannot read it
/// struct Point { x: i32, y: i32 }
///
/// #[knitting::task]
/// fn norm(p: Point) -> u32 { p.x.unsigned_abs() + p.y.unsigned_abs() }
///
/// fn process_ready<T: knitting::ProcessTask>(_: T) {}
/// process_ready(norm);
/// ```
#[diagnostic::on_unimplemented(
    message = "task `{Self}` cannot run on a process pool",
    label = "this task runs on thread pools only",
    note = "a process call encodes the arguments in the host and decodes them in a worker, and the output the other way round: both must be owned serde types (`Serialize` and `DeserializeOwned`)",
    note = "for a type that borrows, use an owned type: `String` instead of `&str`, `Vec<T>` instead of `&[T]`",
    note = "a `threads_only` task runs on thread pools only: remove `threads_only`, or call it on a thread pool"
)]
pub trait ProcessTask: Wired<ArgsWire: Wire<Self::Args>, OutputWire: Wire<Self::Output>> {}

impl<T> ProcessTask for T
where
    T: Wired + marks::NoBorrowedTypes + marks::NotThreadsOnly,
    T::ArgsWire: Wire<T::Args>,
    T::OutputWire: Wire<T::Output>,
{
}

/// How a task's arguments and output cross to a worker process: the
/// [`Wire`] adapters `#[task]` picks from the types as written (see
/// `payload::wire`). Implemented by the expansion of `#[task]` and by
/// [`ImportedTask`](crate::ImportedTask); not by hand.
///
/// # Safety
///
/// When `ArgsWire` contains [`Lent`](crate::payload::wire::Lent), the
/// worker lends `run` buffers that view the request in the shared mapping:
/// `run` must drop every argument read through `Lent` before it returns
/// (the expansion hands the task only a borrow of them).
#[doc(hidden)]
pub unsafe trait Wired: Task {
    /// The adapter of the arguments (a tuple of adapters for several).
    type ArgsWire;
    /// The adapter of the output.
    type OutputWire;
}

/// The two conditions of [`ProcessTask`] that serde cannot state, set by
/// the expansion of `#[task]`. A failed `ProcessTask` bound names the one
/// that is missing, so their names say what is wrong.
pub(crate) mod marks {
    /// The task's argument and output types own their data (the attribute
    /// found no reference or lifetime in them).
    #[diagnostic::on_unimplemented(
        message = "task `{Self}` cannot run on a process pool",
        label = "its arguments or output borrow data",
        note = "a process call encodes the arguments in the host and decodes them in a worker, and the output the other way round: both must be owned serde types (`Serialize` and `DeserializeOwned`)",
        note = "for a type that borrows, use an owned type: `String` instead of `&str`, `Vec<T>` instead of `&[T]`"
    )]
    pub trait NoBorrowedTypes {}

    /// The task is not `threads_only`.
    #[diagnostic::on_unimplemented(
        message = "task `{Self}` cannot run on a process pool",
        label = "this task runs on thread pools only",
        note = "a `threads_only` task runs on thread pools only: remove `threads_only`, or call it on a thread pool"
    )]
    pub trait NotThreadsOnly {}
}

/// How a process worker runs one task: decode the arguments, run, encode
/// the reply; and the fingerprint of its types, which each request must
/// match. Made by [`probe`]'s autoref pick, so tasks whose types are not
/// serde types still compile (they just cannot run on process workers).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct WorkerEntry {
    pub(crate) run: entry::EntryFn,
    /// How an `async fn` task starts as a future; `None` for a sync task.
    pub(crate) start: Option<entry::StartFn>,
    /// [`shape::of`] of the task.
    pub(crate) shape: u64,
    /// The task's argument and output type names, for a mismatch's message.
    pub(crate) types: (&'static str, &'static str),
}

impl WorkerEntry {
    /// The error a worker sends for a request whose type fingerprint is not
    /// this task's: it names this side's types; the host adds its own (see
    /// `Error::for_remote_task`).
    pub(crate) fn mismatch(&self, host_shape: u64) -> Error {
        Error::of(
            crate::ErrorKind::TypeMismatch,
            format!(
                "the worker's takes `{}` and returns `{}` (type fingerprint {:016x}; the call's is {host_shape:016x})",
                shape::stripped(self.types.0),
                shape::stripped(self.types.1),
                self.shape,
            ),
        )
    }
}

/// Support for the expansion of `#[task]`: the worker entry of a task that
/// is a [`ProcessTask`], `None` otherwise (autoref specialization, as in
/// [`failure`]).
pub(crate) mod probe {
    use std::marker::PhantomData;

    use super::{ProcessTask, WorkerEntry};

    /// Stands for a task type.
    #[derive(Debug)]
    pub struct Probe<T>(PhantomData<T>);

    impl<T> Probe<T> {
        /// The probe of `T`.
        pub const fn new() -> Self {
            Self(PhantomData)
        }
    }

    impl<T> Default for Probe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Arguments and output are serde types: the task can run in a process.
    pub trait ViaSerde {
        /// The entry, if any.
        fn knitting_entry(&self) -> Option<WorkerEntry>;
    }
    impl<T: ProcessTask> ViaSerde for &Probe<T> {
        fn knitting_entry(&self) -> Option<WorkerEntry> {
            Some(WorkerEntry {
                run: super::entry::run::<T>,
                start: T::ASYNC.then_some(super::entry::start::<T> as super::entry::StartFn),
                shape: super::shape::of::<T>(),
                types: (
                    std::any::type_name::<T::Args>(),
                    std::any::type_name::<T::Output>(),
                ),
            })
        }
    }

    /// Anything else: thread workers only.
    pub trait NoSerde {
        /// The entry, if any.
        fn knitting_entry(&self) -> Option<WorkerEntry>;
    }
    impl<T> NoSerde for Probe<T> {
        fn knitting_entry(&self) -> Option<WorkerEntry> {
            None
        }
    }
}

/// The type fingerprint of a task: what a host and a worker compare on
/// every process call, so that a host whose [`ImportedTask`](crate::ImportedTask)
/// declares other types than the worker's task gets a
/// [`TypeMismatch`](crate::ErrorKind::TypeMismatch) error instead of
/// whatever the bytes happen to decode to.
///
/// It is a 64-bit FNV-1a hash of the argument type's and the output type's
/// names ([`std::any::type_name`]) with module paths stripped:
/// `alloc::vec::Vec<my_app::Stats>` counts as `Vec<Stats>`. So a host may
/// mirror the worker's `Stats` struct in a module of its own, and type
/// aliases count as what they stand for; but `String` and `Vec<u8>`
/// differ, and so do `(u8, u8, f64)` and `Stats`, even where the bytes
/// would decode.
///
/// What it cannot see: the fields of a struct (two `Stats` with different
/// fields match; postcard then fails to decode them, or decodes other
/// values), and two types of the same name in different modules. A mirror
/// with another name (`WorkerStats` for `Stats`) does not match, even with
/// the same fields. Names come from the compiler; host and worker built by
/// one toolchain always agree.
pub(crate) mod shape;

/// Names the `Ok` type of a task's `Result` return type.
pub trait TaskResult {
    /// The success type.
    type Ok;
}

impl<T, E> TaskResult for Result<T, E> {
    type Ok = T;
}
