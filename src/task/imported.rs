//! Tasks defined in another program: the host knows their name and types,
//! a worker executable built elsewhere has the code.

use std::{fmt, marker::PhantomData};

use crate::{Error, ErrorKind, Signal, Task, TaskInfo};

/// A task that another program defines, called by name and type.
///
/// The host declares the task's argument type `A` (a tuple for several
/// parameters, as for [`#[task]`](macro@crate::task)), its output type `R`
/// and its name (the worker's `module::path::function`, or its
/// `#[task(name = "...")]`). The host binary does not contain the task's
/// code: a [`ProcessPool`](crate::ProcessPool) whose
/// [`worker_executable`](crate::ProcessPoolBuilder::worker_executable) is
/// the other program runs it.
///
/// `A` and `R` must be owned serde types both ways (`Serialize +
/// DeserializeOwned`, see [`ProcessTask`](crate::ProcessTask)); others do
/// not compile at the call.
///
/// The declared types are the host's promise, checked on every call: a
/// worker without the task answers with an
/// [`UnknownTask`](crate::ErrorKind::UnknownTask) error that names it, and
/// a worker whose task has other argument or output types answers with a
/// [`TypeMismatch`](crate::ErrorKind::TypeMismatch) error that names both
/// sides' types, before it decodes anything. The check compares the type
/// names without their module paths, so the host may declare its own copy
/// of a worker's struct, under the same name, in any module; it cannot see
/// the fields (two structs of one name with different fields pass it, and
/// then fail to decode, as a [`Codec`](crate::ErrorKind::Codec) error, or
/// decode to other values). An imported task never runs on a thread pool
/// (that call fails with [`Unsupported`](crate::ErrorKind::Unsupported)).
///
/// ```no_run
/// use knitting::ImportedTask;
///
/// // In the worker program: #[knitting::task(name = "thumbnail")]
/// //                        fn thumbnail(width: u32, height: u32) -> String
/// const THUMBNAIL: ImportedTask<(u32, u32), String> = ImportedTask::new("thumbnail");
///
/// knitting::init();
/// let pool = knitting::Pool::builder()
///     .processes(1)
///     .worker_executable("target/release/examples/image_worker")
///     .build()?;
/// let out = pool.call(THUMBNAIL, (64, 48)).wait()?;
/// # let _ = out;
/// # Ok::<(), knitting::Error>(())
/// ```
pub struct ImportedTask<A, R> {
    info: TaskInfo,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R> ImportedTask<A, R> {
    /// The task called `name` in the worker program.
    pub const fn new(name: &'static str) -> Self {
        Self {
            info: TaskInfo::new(name, "<imported>", 0),
            _types: PhantomData,
        }
    }
}

impl<A, R> Clone for ImportedTask<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R> Copy for ImportedTask<A, R> {}

impl<A, R> fmt::Debug for ImportedTask<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedTask")
            .field("name", &self.info.name())
            .field("args", &std::any::type_name::<A>())
            .field("output", &std::any::type_name::<R>())
            .finish()
    }
}

// The serde half of `ProcessTask` is checked on `A` and `R` themselves.
#[diagnostic::do_not_recommend]
impl<A, R> crate::task::marks::NoBorrowedTypes for ImportedTask<A, R> {}
#[diagnostic::do_not_recommend]
impl<A, R> crate::task::marks::NotThreadsOnly for ImportedTask<A, R> {}

// SAFETY: plain serde adapters lend nothing.
unsafe impl<A: Send + 'static, R: Send + 'static> crate::task::Wired for ImportedTask<A, R> {
    type ArgsWire = crate::payload::wire::Plain;
    type OutputWire = crate::payload::wire::Plain;
}

impl<A: Send + 'static, R: Send + 'static> Task for ImportedTask<A, R> {
    type Args = A;
    type Output = R;

    fn info(&self) -> &TaskInfo {
        &self.info
    }

    fn run(_: A, _: &Signal) -> Result<R, Error> {
        Err(Error::of(
            ErrorKind::Unsupported,
            "an imported task runs only on a process pool whose worker program defines it",
        ))
    }
}
