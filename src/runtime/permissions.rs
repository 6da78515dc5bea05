//! [`Permissions`]: what a process worker's tasks may do, enforced by the
//! kernel.

use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
};

/// What the tasks of a process worker may reach: files, the network,
/// other programs, the host's environment. The kernel enforces it:
/// Landlock for the file system, TCP, abstract sockets and signals, a
/// seccomp allow-list for the system calls, and a cleared environment.
///
/// **Process pools are [`strict`](Self::strict) by default**: a worker
/// gets what a program needs to run and nothing that reaches outside.
///
/// - **files**: read-only access to the system's libraries and data
///   (`/usr`, `/lib*`, `/etc/ld.so.*`, `/etc/localtime`, locale data), the
///   worker's own executable, `/dev/null`, `/dev/zero`, `/dev/urandom` and
///   `/proc/self`; no writes (except to `/dev/null`). Nothing else: not the
///   home directory (`~/.ssh`, `~/.aws`, `~/.config`), not the host's
///   working tree or its `.env` files, not `/tmp`;
/// - **network**: no TCP connect or bind (Landlock), no socket of any
///   family but `AF_UNIX` (UDP, raw, netlink and the rest fail with
///   `EPERM`), and no connecting to abstract `AF_UNIX` sockets outside the
///   sandbox (a desktop's D-Bus or X11; Landlock ABI 6, Linux 6.12, where
///   the kernel has it);
/// - **system calls**: an allow-list of what Rust's standard library,
///   glibc and ordinary code use (listed, each with its reason, in
///   `docs/safety.md`); every other call fails with `EPERM`. Among those
///   refused: `execve`/`execveat`, `ptrace`, `process_vm_readv`/`writev`,
///   signals to other processes, new namespaces and mounts, `bpf`,
///   `perf_event_open`, `io_uring`, System V IPC, kernel keyrings, and
///   changing a file's mode, owner or times by its path (Landlock cannot
///   see those); `no_new_privs` is set;
/// - **environment**: cleared, except `PATH`, `LANG`, `LANGUAGE`, `LC_*`,
///   `TZ`, `TERM`, `RUST_BACKTRACE` and `RUST_LIB_BACKTRACE`, and what
///   [`env`](Self::env) and [`inherit_env`](Self::inherit_env) add.
///
/// A worker locks itself down once it is set up (after the pool's
/// bootstrap), before its first task; a call that tries what is not
/// allowed gets the system's error (for example `Permission denied` or
/// `Operation not permitted`) and the worker goes on. If the kernel cannot
/// enforce what was asked (no Landlock, or one older than ABI 4 without
/// TCP rules, or no seccomp), `build()` fails with a
/// [`Startup`](crate::ErrorKind::Startup) error saying what is missing,
/// unless [`best_effort`](Self::best_effort) accepts less;
/// [`LaneStats::sandbox`](crate::LaneStats::sandbox) says what each worker
/// enforces.
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
    /// Only what a program needs to run (see the type's docs); the
    /// default.
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
    /// environment, and may make any system call.
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
    /// cannot enforce everything; [`LaneStats::sandbox`](crate::LaneStats::sandbox)
    /// then says what is enforced.
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
    /// [`strict`](Self::strict): a process pool's workers are locked down
    /// unless the pool grants more with
    /// [`permissions`](crate::ProcessPoolBuilder::permissions).
    #[cfg(not(knitting_valgrind))]
    fn default() -> Self {
        Self::strict()
    }

    /// [`unrestricted`](Self::unrestricted) in builds for valgrind, which
    /// does not implement Landlock's system calls (a strict worker under
    /// it cannot start).
    #[cfg(knitting_valgrind)]
    fn default() -> Self {
        Self::unrestricted()
    }
}

/// What the kernel enforces for a process worker's
/// [`Permissions`], as the worker found when it locked itself down; in
/// [`LaneStats::sandbox`](crate::LaneStats::sandbox).
///
/// Under [`Permissions::strict`] every part is enforced (else `build()`
/// fails), except `scopes`, which needs Landlock ABI 6 (Linux 6.12); with
/// [`best_effort`](Permissions::best_effort) any part may be missing.
///
/// ```no_run
/// # fn main() -> Result<(), knitting::Error> {
/// knitting::init();
/// let pool = knitting::Pool::builder()
///     .processes(1)
///     .permissions(knitting::Permissions::strict().best_effort())
///     .build()?;
/// let enforced = pool.stats().lanes[0].sandbox.expect("a restricted worker");
/// println!("enforced: {enforced}");
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Enforcement {
    /// Landlock bounds the file system: only the granted paths.
    pub files: bool,
    /// Landlock bounds TCP: no connect or bind (false where
    /// [`allow_net`](Permissions::allow_net) grants the network).
    pub tcp: bool,
    /// Landlock scopes the worker: no connecting to abstract `AF_UNIX`
    /// sockets (a desktop's D-Bus, X11) or signalling processes outside
    /// the sandbox.
    pub scopes: bool,
    /// The seccomp allow-list filters system calls (other sockets, exec,
    /// tracing, namespaces).
    pub syscalls: bool,
}

impl Enforcement {
    const FILES: u32 = 1;
    const TCP: u32 = 2;
    const SCOPES: u32 = 4;
    const SYSCALLS: u32 = 8;
    /// Set in every word of a restricted worker, so 0 means "none".
    const LOCKED: u32 = 0x100;

    /// As a word of the process protocol.
    pub(crate) fn to_word(self) -> u32 {
        let bit = |on: bool, bit: u32| if on { bit } else { 0 };
        Self::LOCKED
            | bit(self.files, Self::FILES)
            | bit(self.tcp, Self::TCP)
            | bit(self.scopes, Self::SCOPES)
            | bit(self.syscalls, Self::SYSCALLS)
    }

    /// From a word of the process protocol (`None`: not restricted).
    /// Unknown bits are ignored.
    pub(crate) fn from_word(word: u32) -> Option<Self> {
        (word & Self::LOCKED != 0).then_some(Self {
            files: word & Self::FILES != 0,
            tcp: word & Self::TCP != 0,
            scopes: word & Self::SCOPES != 0,
            syscalls: word & Self::SYSCALLS != 0,
        })
    }
}

impl std::fmt::Display for Enforcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            (self.files, "files"),
            (self.tcp, "TCP"),
            (self.scopes, "abstract sockets and signals"),
            (self.syscalls, "system calls"),
        ];
        let list = |on: bool| {
            parts
                .iter()
                .filter(|(enforced, _)| *enforced == on)
                .map(|(_, name)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (on, off) = (list(true), list(false));
        match (on.is_empty(), off.is_empty()) {
            (true, _) => write!(f, "nothing enforced; environment cleared"),
            (false, true) => write!(f, "{on} enforced; environment cleared"),
            (false, false) => write!(f, "{on} enforced, not {off}; environment cleared"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Enforcement;

    #[test]
    fn an_enforcement_survives_its_word() {
        for word in 0..16 {
            let e = Enforcement::from_word(Enforcement::LOCKED | word).unwrap();
            assert_eq!(e.to_word(), Enforcement::LOCKED | word);
        }
        assert_eq!(Enforcement::from_word(0), None);
        let some = Enforcement {
            files: true,
            tcp: true,
            ..Enforcement::default()
        };
        assert_eq!(
            some.to_string(),
            "files, TCP enforced, not abstract sockets and signals, system calls; environment cleared"
        );
    }
}
