//! What each worker of a process pool is set up with before its first
//! task: its bootstrap, resource limits and permissions.

use super::ProcessPoolBuilder;
use crate::{task::bootstrap::Boot, Bootstrap};

impl ProcessPoolBuilder {
    /// Runs `bootstrap` with `data` in each worker process, once, after it
    /// has mapped its lane and before it takes calls; a replacement worker
    /// runs it again. See [`#[knitting::bootstrap]`](macro@crate::bootstrap)
    /// for what it is for. The data is encoded once, and travels in the
    /// worker's mapping (not on its command line): it must fit in
    /// [`arena_bytes`](Self::arena_bytes). Its run counts toward the
    /// [`start_timeout`](Self::start_timeout). Default: none.
    ///
    /// A bootstrap that fails or panics fails [`build`](Self::build) with a
    /// [`Startup`](crate::ErrorKind::Startup) error that names it and
    /// carries its message (for a replacement worker, the lane's start-up
    /// error).
    ///
    /// ```
    /// use std::sync::OnceLock;
    ///
    /// static TOKEN: OnceLock<String> = OnceLock::new();
    ///
    /// /// Keeps the token for the tasks, and takes it out of the
    /// /// environment before any task runs.
    /// #[knitting::bootstrap]
    /// fn take_token(name: String) {
    ///     TOKEN.get_or_init(|| std::env::var(&name).unwrap_or_default());
    ///     std::env::remove_var(name);
    /// }
    ///
    /// /// Whether the task has the token, and whether the environment does.
    /// #[knitting::task]
    /// fn token() -> (bool, bool) {
    ///     (TOKEN.get().is_some_and(|t| !t.is_empty()), std::env::var("API_TOKEN").is_ok())
    /// }
    ///
    /// fn main() -> Result<(), knitting::Error> {
    ///     knitting::init();
    ///     std::env::set_var("API_TOKEN", "hunter2");
    ///     let pool = knitting::Pool::builder()
    ///         .processes(1)
    ///         // Strict workers see only the variables they are given.
    ///         .permissions(knitting::Permissions::strict().inherit_env("API_TOKEN"))
    ///         .bootstrap(take_token, "API_TOKEN".into())
    ///         .build()?;
    ///     assert_eq!(pool.call(token, ()).wait()?, (true, false));
    ///     Ok(())
    /// }
    /// ```
    pub fn bootstrap<B: Bootstrap>(mut self, bootstrap: B, data: B::Data) -> Self {
        self.boot = Some(Boot::new(bootstrap.info().name(), &data));
        self
    }

    /// Runs the bootstrap called `name` (its `#[bootstrap(name = "...")]`)
    /// in each worker, for a [worker executable](Self::worker_executable)
    /// that defines it while this program does not (see
    /// [`ImportedTask`](crate::ImportedTask)). `data` must encode as the
    /// bootstrap's data type does; otherwise, as
    /// [`bootstrap`](Self::bootstrap). A worker that has no bootstrap of
    /// that name fails to start, and so does [`build`](Self::build).
    ///
    /// ```
    /// #[knitting::bootstrap(name = "setup")]
    /// fn setup(level: u8) { assert!(level < 10) }
    ///
    /// fn main() -> Result<(), knitting::Error> {
    ///     knitting::init();
    ///     let pool = knitting::Pool::builder()
    ///         .processes(1)
    ///         .bootstrap_named("setup", &3_u8)
    ///         .build()?;
    ///     Ok(())
    /// }
    /// ```
    pub fn bootstrap_named<D: serde::Serialize + ?Sized>(mut self, name: &str, data: &D) -> Self {
        self.boot = Some(Boot::new(name, data));
        self
    }

    /// Resource limits of each worker process: memory, CPU time, open
    /// files (see [`ResourceLimits`](crate::ResourceLimits)). Default: none.
    pub fn limits(mut self, limits: crate::ResourceLimits) -> Self {
        self.opts.limits = limits;
        self
    }

    /// What the workers' tasks may do: files, network, other programs, the
    /// environment, enforced by the kernel (see
    /// [`Permissions`](crate::Permissions)). Default:
    /// [`strict`](crate::Permissions::strict); grant what the tasks need
    /// on top of it, or pass
    /// [`unrestricted`](crate::Permissions::unrestricted) for trusted code
    /// that needs the whole machine.
    pub fn permissions(mut self, permissions: crate::Permissions) -> Self {
        self.opts.permissions = permissions;
        self
    }
}
