//! [`Permissions`]: what a process worker's tasks may do, enforced by the
//! kernel.

use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
};

/// What the tasks of a process worker may reach: files, the network,
/// other programs, the host's environment. The kernel enforces it:
/// Landlock for the file system and TCP, a seccomp filter for other
/// sockets, `exec` and tracing, and a cleared environment.
///
/// [`strict`](Self::strict) allows what a program needs to run and
/// nothing that reaches outside:
///
/// - **files**: read-only access to the system's libraries and data
///   (`/usr`, `/lib*`, `/etc/ld.so.*`, `/etc/localtime`, locale data), the
///   worker's own executable, `/dev/null`, `/dev/zero`, `/dev/urandom` and
///   `/proc/self`; no writes (except to `/dev/null`). Nothing else: not the
///   home directory (`~/.ssh`, `~/.aws`, `~/.config`), not the host's
///   working tree or its `.env` files, not `/tmp`;
/// - **network**: no TCP connect or bind (Landlock), and no socket of any
///   family but `AF_UNIX` (seccomp: UDP, raw, netlink and the rest fail with
///   `EPERM`);
/// - **programs**: no `execve`/`execveat`, no `ptrace`, no
///   `process_vm_readv`/`writev`, no signal to another process, no new
///   namespaces or mounts, no `bpf`, `perf_event_open`, `io_uring` or
///   kernel keyrings; `no_new_privs` is set;
/// - **environment**: cleared, except `PATH`, `LANG`, `LANGUAGE`, `LC_*`,
///   `TZ`, `TERM`, `RUST_BACKTRACE` and `RUST_LIB_BACKTRACE`, and what
///   [`env`](Self::env) and [`inherit_env`](Self::inherit_env) add.
///
/// A worker locks itself down once it is set up, before its first task;
/// a call that tries what is not allowed gets the system's error (for
/// example `Permission denied` or `Operation not permitted`) and the
/// worker goes on. If the kernel cannot enforce what was asked (no
/// Landlock, or an older one without TCP rules), `build()` fails with a
/// [`Startup`](crate::ErrorKind::Startup) error, unless
/// [`best_effort`](Self::best_effort) accepts less.
///
/// Thread workers share the host's process: permissions do not apply to
/// them, and untrusted code belongs in a process worker.
///
/// ```no_run
/// use knitting::Permissions;
///
/// knitting::init();
/// let pool = knitting::Pool::builder()
///     .processes(2)
///     .permissions(
///         Permissions::strict()
///             .allow_read("/srv/models")
///             .allow_write("/var/tmp/scratch")
///             .inherit_env("MODEL_NAME"),
///     )
///     .build()?;
/// # Ok::<(), knitting::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    pub(crate) restricted: bool,
    pub(crate) read: Vec<PathBuf>,
    pub(crate) write: Vec<PathBuf>,
    pub(crate) net: bool,
    pub(crate) exec: bool,
    pub(crate) best_effort: bool,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) inherit: Vec<OsString>,
}

/// The host's environment variables a strict worker keeps.
pub(crate) const KEPT_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
];

impl Permissions {
    /// Only what a program needs to run (see the type's docs).
    pub fn strict() -> Self {
        Self {
            restricted: true,
            read: Vec::new(),
            write: Vec::new(),
            net: false,
            exec: false,
            best_effort: false,
            env: Vec::new(),
            inherit: Vec::new(),
        }
    }

    /// No restriction: the worker has the host's files, network and
    /// environment.
    pub fn unrestricted() -> Self {
        Self {
            restricted: false,
            ..Self::strict()
        }
    }

    /// Also read `path` and everything under it.
    pub fn allow_read(mut self, path: impl AsRef<Path>) -> Self {
        self.read.push(path.as_ref().to_owned());
        self
    }

    /// Also read, write, create and remove under `path` (a scratch
    /// directory, say).
    pub fn allow_write(mut self, path: impl AsRef<Path>) -> Self {
        self.write.push(path.as_ref().to_owned());
        self
    }

    /// Allow the network: TCP and sockets of every family.
    pub fn allow_net(mut self) -> Self {
        self.net = true;
        self
    }

    /// Allow running other programs (`execve`), from the readable paths.
    pub fn allow_exec(mut self) -> Self {
        self.exec = true;
        self
    }

    /// Set `key` to `value` in the workers' environment.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Keep the host's `key` in the workers' environment (if it is set).
    pub fn inherit_env(mut self, key: impl AsRef<OsStr>) -> Self {
        self.inherit.push(key.as_ref().to_owned());
        self
    }

    /// Enforce what the kernel can, instead of failing `build()` where it
    /// cannot enforce everything.
    pub fn best_effort(mut self) -> Self {
        self.best_effort = true;
        self
    }

    /// True unless [`unrestricted`](Self::unrestricted).
    pub fn is_restricted(&self) -> bool {
        self.restricted
    }
}

impl Default for Permissions {
    /// [`unrestricted`](Self::unrestricted), for now: a pool asks for
    /// [`strict`](Self::strict) with
    /// [`permissions`](crate::ProcessPoolBuilder::permissions).
    fn default() -> Self {
        Self::unrestricted()
    }
}
