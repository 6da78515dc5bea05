//! The system calls a strict worker may make: an allow-list, each entry
//! with why a program needs it. Every other call fails with `EPERM`.
//!
//! The list covers what the worker runtime, Rust's standard library,
//! glibc and ordinary task code use. Landlock, not this list, decides
//! which files a call may reach; so the file calls are all here, except
//! those that change a file by its path without Landlock seeing it
//! (`chmod`, `chown`, setting times or extended attributes by path).
//! Some entries allow a call only with certain arguments (see
//! [`Rule`]).

/// When an allowed call is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Always.
    Always,
    /// Only when argument `.0` equals `.1` (compared as 32 bits: the
    /// arguments it is used for are `int`s).
    ArgIs(u8, u64),
    /// Only when argument `.0` (a pointer) is null.
    ArgIsNull(u8),
    /// Only when argument `.0` is 0 or `.1` (a pid: 0 is the caller).
    ArgIsZeroOr(u8, u64),
    /// Only when argument `.0` has none of the bits of `.1`.
    ArgLacks(u8, u64),
    /// Only when argument `.0` is neither `.1` nor `.2`.
    ArgIsNeither(u8, u64, u64),
}

/// One allowed call: its number, its name (for the docs and their test),
/// when it is allowed, and why a worker needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Allowed {
    pub(crate) nr: i64,
    // Read by the test that keeps docs/safety.md's list of calls true.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) name: &'static str,
    pub(crate) rule: Rule,
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) why: &'static str,
}

macro_rules! allow {
    ($($call:ident $(if $rule:expr)? => $why:literal,)*) => {
        &[$(Allowed {
            nr: libc::$call,
            name: strip(stringify!($call)),
            rule: allow!(@rule $($rule)?),
            why: $why,
        },)*]
    };
    (@rule) => { Rule::Always };
    (@rule $rule:expr) => { $rule };
}

/// `SYS_read` → `read`.
const fn strip(name: &'static str) -> &'static str {
    let (_, rest) = name.as_bytes().split_at(4);
    match std::str::from_utf8(rest) {
        Ok(name) => name,
        Err(_) => name,
    }
}

/// `clone` flags that make new namespaces (`CLONE_NEWNS`, `NEWCGROUP`,
/// `NEWUTS`, `NEWIPC`, `NEWUSER`, `NEWPID`, `NEWNET`, `NEWTIME`).
pub(crate) const NAMESPACE_FLAGS: u64 = 0x7e02_0080;

/// The terminal `ioctl`s that push input into a terminal (`TIOCSTI`) or
/// reach the console (`TIOCLINUX`): a worker's standard error may be the
/// host's terminal.
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541c;

/// Calls every strict worker may make, on every architecture.
pub(crate) const COMMON: &[Allowed] = allow! {
    // Memory.
    SYS_brk => "grows the heap (malloc)",
    SYS_mmap => "maps memory: allocations, the lane's shared mapping, libraries",
    SYS_munmap => "unmaps memory",
    SYS_mremap => "grows large allocations in place (realloc)",
    SYS_mprotect => "guard pages of thread stacks; the loader",
    SYS_madvise => "the allocator returns memory",
    SYS_msync => "flushes a file mapping",
    SYS_mincore => "asks which pages are resident",
    SYS_mlock => "pins memory (bounded by RLIMIT_MEMLOCK)",
    SYS_mlock2 => "pins memory (bounded by RLIMIT_MEMLOCK)",
    SYS_munlock => "unpins memory",
    SYS_mlockall => "pins memory (bounded by RLIMIT_MEMLOCK)",
    SYS_munlockall => "unpins memory",
    SYS_membarrier => "memory barriers across the process's threads",
    SYS_get_mempolicy => "NUMA placement of the process's own memory",
    SYS_set_mempolicy => "NUMA placement of the process's own memory",
    SYS_mbind => "NUMA placement of the process's own memory",
    SYS_memfd_create => "anonymous memory as a file (shared buffers)",
    // Threads and their synchronisation.
    SYS_futex => "locks, condition variables, the lane's doorbells",
    SYS_futex_waitv => "waits on several futexes",
    SYS_set_robust_list => "glibc sets up each thread",
    SYS_get_robust_list => "reads the caller's robust futex list",
    SYS_rseq => "glibc registers each thread's restartable sequences",
    SYS_set_tid_address => "glibc sets up each thread",
    SYS_clone if Rule::ArgLacks(0, NAMESPACE_FLAGS) => "new threads (and, with exec, processes), without new namespaces",
    SYS_sched_yield => "spinning locks back off",
    SYS_sched_getaffinity => "std::thread::available_parallelism",
    SYS_sched_setaffinity if Rule::ArgIs(0, 0) => "pins the calling thread to cores",
    SYS_sched_getparam => "reads scheduling parameters",
    SYS_sched_getscheduler => "reads the scheduling policy",
    SYS_sched_get_priority_max => "reads the priority range",
    SYS_sched_get_priority_min => "reads the priority range",
    SYS_sched_rr_get_interval => "reads the round-robin time slice",
    SYS_getcpu => "which core the thread runs on",
    SYS_gettid => "the thread's id",
    SYS_getpid => "the process's id",
    SYS_getppid => "the worker checks that its host is alive",
    SYS_exit => "a thread ends",
    SYS_exit_group => "the process ends",
    SYS_wait4 => "waits for the worker's own children",
    SYS_waitid => "waits for the worker's own children",
    SYS_pidfd_open => "a handle on a child process",
    SYS_prctl => "thread names, the parent-death signal; no option lifts this filter or Landlock",
    SYS_getpriority => "reads a nice value",
    SYS_setpriority if Rule::ArgIs(1, 0) => "lowers the caller's own priority",
    SYS_prlimit64 if Rule::ArgIsZeroOr(0, 0) => "reads or lowers the process's own limits",
    SYS_getrusage => "the process's own resource use",
    SYS_times => "the process's own CPU time",
    SYS_setsid => "a child process in its own session",
    SYS_setpgid => "a child process in its own group",
    SYS_getpgid => "reads a process group",
    SYS_getsid => "reads a session",
    SYS_getuid => "the process's user",
    SYS_geteuid => "the process's user",
    SYS_getgid => "the process's group",
    SYS_getegid => "the process's group",
    SYS_getgroups => "the process's groups",
    SYS_getresuid => "the process's users",
    SYS_getresgid => "the process's groups",
    SYS_seccomp => "adds stricter filters of the task's own",
    SYS_landlock_create_ruleset => "adds stricter Landlock rules of the task's own",
    SYS_landlock_add_rule => "adds stricter Landlock rules of the task's own",
    SYS_landlock_restrict_self => "adds stricter Landlock rules of the task's own",
    SYS_restart_syscall => "the kernel resumes an interrupted call",
    // Signals, to the process itself.
    SYS_rt_sigaction => "signal handlers (stack overflow, panics)",
    SYS_rt_sigprocmask => "blocks signals",
    SYS_rt_sigreturn => "returns from a signal handler",
    SYS_rt_sigsuspend => "waits for a signal",
    SYS_rt_sigtimedwait => "waits for a signal",
    SYS_rt_sigpending => "reads pending signals",
    SYS_sigaltstack => "the stack-overflow handler's stack",
    SYS_kill if Rule::ArgIs(0, 0) => "signals the process itself (raise); not its group, not others",
    SYS_tgkill if Rule::ArgIs(0, 0) => "signals a thread of the process itself (abort, raise)",
    // Time.
    SYS_clock_gettime => "reads a clock (when the vDSO cannot)",
    SYS_clock_getres => "a clock's resolution",
    SYS_clock_nanosleep => "sleeps",
    SYS_nanosleep => "sleeps",
    SYS_gettimeofday => "reads the time (when the vDSO cannot)",
    SYS_getitimer => "interval timers",
    SYS_setitimer => "interval timers",
    SYS_timer_create => "POSIX timers",
    SYS_timer_settime => "POSIX timers",
    SYS_timer_gettime => "POSIX timers",
    SYS_timer_getoverrun => "POSIX timers",
    SYS_timer_delete => "POSIX timers",
    SYS_timerfd_create => "timers as descriptors (event loops)",
    SYS_timerfd_settime => "timers as descriptors (event loops)",
    SYS_timerfd_gettime => "timers as descriptors (event loops)",
    // Descriptors and files (Landlock decides which files).
    SYS_read => "reads a descriptor",
    SYS_write => "writes a descriptor (standard error, files)",
    SYS_readv => "reads a descriptor",
    SYS_writev => "writes a descriptor",
    SYS_pread64 => "reads at an offset (the loader, files)",
    SYS_pwrite64 => "writes at an offset",
    SYS_preadv => "reads at an offset",
    SYS_pwritev => "writes at an offset",
    SYS_preadv2 => "reads at an offset",
    SYS_pwritev2 => "writes at an offset",
    SYS_openat => "opens a file Landlock allows",
    SYS_openat2 => "opens a file Landlock allows",
    SYS_close => "closes a descriptor",
    SYS_close_range => "closes descriptors",
    SYS_lseek => "moves a file offset",
    SYS_fstat => "a descriptor's metadata",
    SYS_newfstatat => "a file's metadata",
    SYS_statx => "a file's metadata (std::fs::metadata)",
    SYS_statfs => "a file system's metadata",
    SYS_fstatfs => "a file system's metadata",
    SYS_faccessat => "whether a file may be opened",
    SYS_faccessat2 => "whether a file may be opened",
    SYS_readlinkat => "reads a symbolic link (std::env::current_exe)",
    SYS_getdents64 => "lists a directory Landlock allows",
    SYS_getcwd => "the working directory",
    SYS_chdir => "changes the working directory",
    SYS_fchdir => "changes the working directory",
    SYS_mkdirat => "makes a directory where Landlock allows",
    SYS_unlinkat => "removes a file where Landlock allows",
    SYS_renameat2 => "renames a file where Landlock allows",
    SYS_linkat => "links a file where Landlock allows",
    SYS_symlinkat => "makes a symbolic link where Landlock allows",
    SYS_truncate => "truncates a file Landlock allows",
    SYS_ftruncate => "truncates an open file",
    SYS_fallocate => "reserves space in an open file",
    SYS_fsync => "flushes an open file",
    SYS_fdatasync => "flushes an open file",
    SYS_fchmod => "changes the mode of a file already opened",
    SYS_utimensat if Rule::ArgIsNull(1) => "sets the times of a file already opened (futimens)",
    SYS_copy_file_range => "copies between open files (std::fs::copy)",
    SYS_sendfile => "copies between open descriptors",
    SYS_splice => "moves data through a pipe (std::io::copy)",
    SYS_tee => "duplicates pipe data",
    SYS_flock => "locks an open file",
    SYS_fcntl => "descriptor flags and record locks",
    SYS_dup => "duplicates a descriptor",
    SYS_dup3 => "duplicates a descriptor",
    SYS_pipe2 => "pipes (std::process, event loops)",
    SYS_ioctl if Rule::ArgIsNeither(1, TIOCSTI, TIOCLINUX) => "terminal size, FIONBIO, FIONREAD; not pushing input into a terminal",
    SYS_ppoll => "waits on descriptors",
    SYS_pselect6 => "waits on descriptors",
    SYS_epoll_create1 => "event loops",
    SYS_epoll_ctl => "event loops",
    SYS_epoll_pwait => "event loops",
    SYS_epoll_pwait2 => "event loops",
    SYS_eventfd2 => "event loop wake-ups",
    SYS_signalfd4 => "signals as descriptors",
    SYS_fadvise64 => "read-ahead hints",
    SYS_readahead => "read-ahead",
    SYS_getxattr => "reads extended attributes",
    SYS_lgetxattr => "reads extended attributes",
    SYS_fgetxattr => "reads extended attributes",
    SYS_listxattr => "lists extended attributes",
    SYS_llistxattr => "lists extended attributes",
    SYS_flistxattr => "lists extended attributes",
    SYS_umask => "the file-creation mask",
    SYS_uname => "the kernel's name and version",
    SYS_sysinfo => "memory and uptime figures",
    SYS_getrandom => "random numbers (HashMap seeds)",
    // Sockets: AF_UNIX only (see `socket` below); Landlock bounds TCP.
    SYS_socketpair if Rule::ArgIs(0, libc::AF_UNIX as u64) => "connected AF_UNIX pairs",
    SYS_connect => "connects a socket it may have",
    SYS_bind => "binds a socket it may have (TCP ports: Landlock)",
    SYS_listen => "listens on a socket it may have",
    SYS_accept => "accepts on a socket it may have",
    SYS_accept4 => "accepts on a socket it may have",
    SYS_sendto => "sends on a socket",
    SYS_recvfrom => "receives on a socket",
    SYS_sendmsg => "sends on a socket",
    SYS_recvmsg => "receives on a socket (shared buffers' descriptors arrive so)",
    SYS_sendmmsg => "sends on a socket",
    SYS_recvmmsg => "receives on a socket",
    SYS_shutdown => "shuts a socket down",
    SYS_getsockopt => "socket options",
    SYS_setsockopt => "socket options",
    SYS_getsockname => "a socket's address",
    SYS_getpeername => "a socket's peer",
};

/// The calls of the older x86-64 interface glibc and static programs
/// still make.
#[cfg(target_arch = "x86_64")]
pub(crate) const ARCH: &[Allowed] = allow! {
    SYS_arch_prctl => "sets up thread-local storage",
    SYS_open => "opens a file Landlock allows",
    SYS_creat => "creates a file where Landlock allows",
    SYS_stat => "a file's metadata",
    SYS_lstat => "a file's metadata",
    SYS_access => "whether a file may be opened",
    SYS_readlink => "reads a symbolic link",
    SYS_getdents => "lists a directory Landlock allows",
    SYS_mkdir => "makes a directory where Landlock allows",
    SYS_rmdir => "removes a directory where Landlock allows",
    SYS_unlink => "removes a file where Landlock allows",
    SYS_rename => "renames a file where Landlock allows",
    SYS_renameat => "renames a file where Landlock allows",
    SYS_link => "links a file where Landlock allows",
    SYS_symlink => "makes a symbolic link where Landlock allows",
    SYS_sync_file_range => "flushes part of an open file",
    SYS_pipe => "pipes",
    SYS_dup2 => "duplicates a descriptor (std::process)",
    SYS_poll => "waits on descriptors",
    SYS_select => "waits on descriptors",
    SYS_epoll_create => "event loops",
    SYS_epoll_wait => "event loops",
    SYS_eventfd => "event loop wake-ups",
    SYS_signalfd => "signals as descriptors",
    SYS_getrlimit => "reads the process's own limits",
    SYS_setrlimit => "lowers the process's own limits",
    SYS_fork => "a child process (with exec)",
    SYS_vfork => "a child process (with exec; std::process)",
    SYS_alarm => "a timer signal",
    SYS_pause => "waits for a signal",
    SYS_time => "reads the time (when the vDSO cannot)",
    SYS_getpgrp => "reads the process group",
};

/// No calls beyond the common ones on other architectures.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const ARCH: &[Allowed] = &[];

/// With [`allow_exec`](crate::Permissions::allow_exec).
pub(crate) const EXEC: &[Allowed] = allow! {
    SYS_execve => "runs another program (allowed by Permissions::allow_exec)",
    SYS_execveat => "runs another program (allowed by Permissions::allow_exec)",
};

/// Every call a strict worker may make, for `sandbox`; `pid` is the
/// worker's own, which `kill`, `tgkill` and `prlimit64` may also name.
pub(crate) fn allowed(net: bool, exec: bool, pid: u32) -> Vec<Allowed> {
    let pid = u64::from(pid);
    let mut calls: Vec<Allowed> = COMMON
        .iter()
        .chain(ARCH)
        .chain(if exec { EXEC } else { &[] })
        .map(|call| {
            let rule = match (call.nr, call.rule) {
                (libc::SYS_kill | libc::SYS_tgkill, Rule::ArgIs(arg, _)) => Rule::ArgIs(arg, pid),
                (libc::SYS_prlimit64, Rule::ArgIsZeroOr(arg, _)) => Rule::ArgIsZeroOr(arg, pid),
                (_, rule) => rule,
            };
            Allowed { rule, ..*call }
        })
        .collect();
    calls.push(Allowed {
        nr: libc::SYS_socket,
        name: "socket",
        rule: if net {
            Rule::Always
        } else {
            Rule::ArgIs(0, libc::AF_UNIX as u64)
        },
        why: if net {
            "sockets of every family (allowed by Permissions::allow_net)"
        } else {
            "AF_UNIX sockets only: the runtime's own; no TCP, UDP, raw or netlink"
        },
    });
    calls
}

/// `clone3` passes its flags in memory, where a filter cannot look: it
/// fails with `ENOSYS`, and glibc falls back to `clone`, whose flags the
/// filter checks.
pub(crate) const CLONE3: i64 = libc::SYS_clone3;

#[cfg(test)]
mod tests {
    use super::*;

    /// When `call` is allowed, in words.
    fn condition(call: &Allowed) -> String {
        if EXEC.iter().any(|e| e.nr == call.nr) {
            return "with `allow_exec` only".to_owned();
        }
        let rule = match (call.name, call.rule) {
            (_, Rule::Always) => "always",
            ("socket" | "socketpair", _) => "`AF_UNIX` only (any family with `allow_net`)",
            ("kill" | "tgkill", _) => "the worker itself only",
            ("prlimit64", _) => "the worker itself only (pid 0 or its own)",
            ("clone", _) => "no `CLONE_NEW*` flag",
            ("ioctl", _) => "not `TIOCSTI` or `TIOCLINUX`",
            ("sched_setaffinity", _) => "the calling thread only (pid 0)",
            ("setpriority", _) => "the caller only (who = 0)",
            ("utimensat", _) => "on a descriptor only (no path)",
            (name, rule) => panic!("say in words when {name} is allowed ({rule:?})"),
        };
        rule.to_owned()
    }

    /// docs/safety.md's list of the calls a strict worker may make, from
    /// the list the filter is built from (`KNITTING_UPDATE_DOCS=1`
    /// rewrites it).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_safety_page_lists_every_allowed_call() {
        let (start, end) = (
            "<!-- allowed system calls: start -->\n",
            "<!-- allowed system calls: end -->",
        );
        let mut table = String::from("| call | allowed | why |\n|---|---|---|\n");
        let mut calls = allowed(false, true, 0);
        calls.sort_by_key(|c| c.name);
        for call in &calls {
            table += &format!("| `{}` | {} | {} |\n", call.name, condition(call), call.why);
        }
        table += "| `clone3` | fails with `ENOSYS` | glibc then falls back to `clone`, whose flags the filter sees |\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/safety.md");
        let page = std::fs::read_to_string(path).unwrap();
        let (Some(a), Some(b)) = (page.find(start), page.find(end)) else {
            panic!("docs/safety.md has no {start:?}...{end:?} section");
        };
        let (a, b) = (a + start.len(), b);
        if page[a..b] != table {
            if std::env::var_os("KNITTING_UPDATE_DOCS").is_some() {
                std::fs::write(path, format!("{}{table}{}", &page[..a], &page[b..])).unwrap();
            } else {
                panic!("docs/safety.md's list of system calls is stale: run the test with KNITTING_UPDATE_DOCS=1");
            }
        }
    }

    #[test]
    fn names_and_numbers_are_unique() {
        let calls = allowed(true, true, 1);
        let mut names: Vec<_> = calls.iter().map(|c| c.name).collect();
        let mut nrs: Vec<_> = calls.iter().map(|c| c.nr).collect();
        names.sort_unstable();
        nrs.sort_unstable();
        let (n, k) = (names.len(), nrs.len());
        names.dedup();
        nrs.dedup();
        assert_eq!((names.len(), nrs.len()), (n, k));
        assert!(names.contains(&"read") && names.contains(&"execve"));
    }

    #[test]
    fn the_dangerous_calls_are_not_allowed() {
        let calls = allowed(false, false, 7);
        for nr in [
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_mount,
            libc::SYS_bpf,
            libc::SYS_io_uring_setup,
            libc::SYS_userfaultfd,
            libc::SYS_fchmodat,
            libc::SYS_fchownat,
            libc::SYS_tkill,
            libc::SYS_pidfd_send_signal,
            libc::SYS_pidfd_getfd,
            libc::SYS_msgget,
            libc::SYS_shmget,
            CLONE3,
        ] {
            assert!(calls.iter().all(|c| c.nr != nr), "{nr} is allowed");
        }
        let rule = |nr| calls.iter().find(|c| c.nr == nr).map(|c| c.rule);
        assert_eq!(
            rule(libc::SYS_socket),
            Some(Rule::ArgIs(0, libc::AF_UNIX as u64))
        );
        assert_eq!(rule(libc::SYS_kill), Some(Rule::ArgIs(0, 7)));
        assert_eq!(rule(libc::SYS_prlimit64), Some(Rule::ArgIsZeroOr(0, 7)));
    }
}
