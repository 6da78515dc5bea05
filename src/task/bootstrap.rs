//! Worker bootstraps: the setup function a pool's workers run once, before
//! any task, made by [`#[knitting::bootstrap]`](macro@crate::bootstrap);
//! their link-time registry, and running one.

use std::{fmt, sync::Arc};

use serde::{de::DeserializeOwned, Serialize};

use super::TaskId;
use crate::{payload::codec, role::RuntimeKind, Error, ErrorKind};

/// A worker bootstrap, made by [`#[knitting::bootstrap]`](macro@crate::bootstrap).
///
/// You do not implement this trait by hand: put the attribute on a
/// function and pass its name to a builder's `bootstrap` option
/// ([`PoolBuilder::bootstrap`](crate::PoolBuilder::bootstrap),
/// [`ProcessPoolBuilder::bootstrap`](crate::ProcessPoolBuilder::bootstrap)).
pub trait Bootstrap: Copy + Send + Sync + 'static {
    /// What the host hands every worker: the function's data parameter, or
    /// `()` when it has none.
    type Data: Serialize + DeserializeOwned + Send + 'static;

    /// The bootstrap's name, id and definition site.
    fn info(&self) -> &'static BootInfo;
}

/// What a bootstrap learns about the worker it runs in.
///
/// ```
/// #[knitting::bootstrap]
/// fn setup(ctx: &knitting::BootContext) {
///     assert!(ctx.worker() < ctx.workers());
///     assert_eq!(ctx.runtime(), knitting::RuntimeKind::Threads);
/// }
///
/// let pool = knitting::Pool::builder().threads(2).bootstrap(setup, ()).build()?;
/// # Ok::<(), knitting::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootContext {
    worker: usize,
    workers: usize,
    runtime: RuntimeKind,
}

impl BootContext {
    pub(crate) fn new(worker: usize, workers: usize, runtime: RuntimeKind) -> Self {
        Self {
            worker,
            workers,
            runtime,
        }
    }

    /// The worker's index in its pool (its lane), from 0. A replacement
    /// worker has the index of the one it replaces.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// How many workers the pool has.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Whether the worker is a thread or a process.
    pub fn runtime(&self) -> RuntimeKind {
        self.runtime
    }
}

/// What the program knows about one bootstrap: its name, id and where it
/// is defined, and how to run it.
#[derive(Clone, Copy)]
pub struct BootInfo {
    name: &'static str,
    id: TaskId,
    file: &'static str,
    line: u32,
    run: fn(&[u8], &BootContext) -> Result<(), Error>,
}

impl BootInfo {
    pub(crate) const fn new(
        name: &'static str,
        file: &'static str,
        line: u32,
        run: fn(&[u8], &BootContext) -> Result<(), Error>,
    ) -> Self {
        Self {
            name,
            id: TaskId::of(name),
            file,
            line,
            run,
        }
    }

    /// The bootstrap's name: its module path and function name, or the
    /// `name` of `#[bootstrap(name = "...")]`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its stable id: the same hash of the name as a [`TaskId`].
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The source file that defines it.
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// The line of its definition.
    pub fn line(&self) -> u32 {
        self.line
    }
}

impl fmt::Debug for BootInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootInfo")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("file", &self.file)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// Every bootstrap of the program, gathered at link time.
#[linkme::distributed_slice]
pub static BOOTSTRAPS: [&'static BootInfo];

/// A pool's bootstrap: which one (by name, so that a worker program built
/// elsewhere finds its own), and its data, encoded once.
#[derive(Clone, Debug)]
pub(crate) struct Boot {
    pub(crate) name: Arc<str>,
    pub(crate) data: Arc<[u8]>,
}

impl Boot {
    /// Encodes `data` for the bootstrap called `name`.
    /// The error is for [`into_setting`].
    pub(crate) fn new<D: Serialize + ?Sized>(name: &str, data: &D) -> Result<Self, String> {
        let data = codec::encode_vec(data)
            .map_err(|e| format!("could not encode the data of bootstrap `{name}`: {e}"))?;
        Ok(Self {
            name: name.into(),
            data: data.into(),
        })
    }

    /// A builder's setting (a bootstrap whose data could not be encoded
    /// fails the build) as what the runtimes take.
    pub(crate) fn into_setting(
        setting: Option<Result<Self, String>>,
    ) -> Result<Option<Self>, Error> {
        setting.transpose().map_err(Error::build)
    }

    pub(crate) fn id(&self) -> u64 {
        TaskId::of(&self.name).as_u64()
    }
}

/// The bootstrap of this program with id `id`; `what` names it in the
/// message (`` `name` ``, or "of that name").
pub(crate) fn find(id: u64, what: &str) -> Result<&'static BootInfo, String> {
    let mut found = BOOTSTRAPS.iter().filter(|b| b.id.as_u64() == id);
    match (found.next(), found.next()) {
        (Some(info), None) => Ok(info),
        (None, _) => Err(format!(
            "this program has no bootstrap {what} (is the function marked \
             #[knitting::bootstrap], with that name?)"
        )),
        (Some(a), Some(b)) => Err(format!(
            "two bootstraps share the id of {what}: `{}` at {}:{} and `{}` at {}:{}; give one \
             of them another #[bootstrap(name = \"...\")]",
            a.name, a.file, a.line, b.name, b.file, b.line
        )),
    }
}

/// Runs `info` with its encoded data, a panic caught; the error says what
/// went wrong, in words (the runtimes name the bootstrap and the worker).
pub(crate) fn run(info: &BootInfo, data: &[u8], ctx: &BootContext) -> Result<(), String> {
    super::panics::install_hook();
    super::panics::catch(|| (info.run)(data, ctx)).map_err(|err| describe(&err))
}

fn describe(err: &Error) -> String {
    match (err.kind(), err.location()) {
        (ErrorKind::Panic, Some(at)) => format!("panicked at {at}: {}", err.message()),
        (ErrorKind::Panic, None) => format!("panicked: {}", err.message()),
        _ => err.message().to_owned(),
    }
}

/// The start-up error of a worker whose bootstrap failed.
pub(crate) fn failed(name: &str, worker: &str, message: &str) -> Error {
    Error::of(
        ErrorKind::Startup,
        format!("bootstrap `{name}` failed in {worker}: {message}"),
    )
}

/// Decodes a bootstrap's data (for the expansion of the attribute).
pub(crate) fn decode<D: DeserializeOwned>(bytes: &[u8]) -> Result<D, Error> {
    codec::decode(bytes)
        .map_err(|e| Error::from_task_message(format!("could not decode its data: {e}")))
}
