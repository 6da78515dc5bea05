//! Starting, watching and stopping worker processes, and describing how
//! they ended: everything about a worker that is about the process rather
//! than its mapping.

use std::{
    os::unix::process::{CommandExt, ExitStatusExt},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::runtime::permissions::Enforcement;

use super::{
    bell,
    courier::{self, Courier},
    futex,
    handover::Handover,
    host::Config,
    link::Gen,
    shm::{self, Dir, Locator, Mapping},
};
use crate::{payload::Response, task::bootstrap, Error, ErrorKind};

pub(crate) fn start_worker(
    index: usize,
    cfg: &Config,
    abandoned: &AtomicBool,
) -> Result<Gen, Error> {
    let name = cfg.named.then(|| super::names::fresh(index));
    let shm = Mapping::create(cfg.layout, cfg.max_payload, name.as_deref())?;
    let unlink = || {
        if let Some(name) = &name {
            let _ = rustix::shm::unlink(name.as_str());
        }
    };
    let mut cmd = match cfg.prefix.split_first() {
        None => Command::new(&cfg.exe),
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(&cfg.exe);
            cmd
        }
    };
    let locator = match &name {
        Some(name) => Locator::Named(name.clone()),
        None => Locator::Stdin,
    };
    if let Some(boot) = &cfg.boot {
        // The worker reads the data before it says it is ready, and the
        // host sends no request before that: the arena is free until then.
        let mut window = shm
            .window(Dir::Request, 0, boot.data.len())
            .ok_or_else(|| Error::build("the bootstrap's data does not fit in the arena"))?;
        window.write(0, &boot.data);
    }
    let host_pid = std::process::id();
    let handover = Handover {
        version: shm::VERSION,
        locator: locator.clone(),
        lane: index,
        spin: cfg.spin,
        heartbeat: cfg.heartbeat,
        lifeline: (!cfg.prefix.is_empty()).then_some(LIFELINE_FD),
        host_pid: cfg.prefix.is_empty().then_some(host_pid as i32),
        limits: cfg.limits,
        workers: cfg.workers,
        boot: cfg.boot.as_ref().map(|b| (b.id(), b.data.len())),
        sandbox: cfg
            .permissions
            .restricted
            .then(|| super::handover::Sandbox {
                read: cfg.permissions.read.clone(),
                write: cfg.permissions.write.clone(),
                net: cfg.permissions.net,
                exec: cfg.permissions.exec,
                best_effort: cfg.permissions.best_effort,
            }),
        diagnostics: cfg.diagnostics,
        async_concurrency: cfg.async_concurrency,
    };
    if cfg.permissions.restricted {
        set_environment(&mut cmd, &cfg.permissions);
    }
    // Everything on the command line, which every wrapper passes on
    // (see `handover.rs`).
    cmd.args(handover.to_args());
    // Fd 0 is a socket (see `courier.rs`): its first message is the
    // mapping, the later ones shared buffers' descriptors.
    let courier = match locator {
        Locator::Stdin => {
            let (host_end, worker_end) = courier::pair()?;
            courier::send_lane(&host_end, shm.fd())?;
            cmd.stdin(Stdio::from(worker_end));
            Some(Courier::new(host_end))
        }
        Locator::Named(_) => {
            cmd.stdin(Stdio::null());
            None
        }
    };
    if !cfg.prefix.is_empty() {
        // Behind a wrapper the worker is not our child: hand it the
        // lifeline and arm the parent-death signal on the wrapper.
        // Without one, the worker arms its own death signal and checks
        // that its parent is still us (its hand-over's host pid), so no hook runs
        // between fork and exec, and std can spawn with posix_spawn
        // (vfork) instead of copying this process's page tables with
        // fork: start-up is much faster for a big host.
        let lifeline = lifeline()?;
        // The closure allocates nothing and takes no lock.
        // SAFETY: it runs in the forked child before exec and only makes
        // async-signal-safe raw system calls (fcntl/dup2, prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                // The lifeline's read end on a fixed number, without
                // close-on-exec (dup2 onto itself would keep the flag).
                if lifeline == LIFELINE_FD {
                    if libc::fcntl(lifeline, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(lifeline, LIFELINE_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                // The host may have died before the signal was armed.
                match rustix::process::getppid() {
                    Some(parent) if parent.as_raw_nonzero().get() as u32 == host_pid => Ok(()),
                    _ => Err(std::io::Error::other("the host exited")),
                }
            });
        }
    }
    let mut child = cmd.spawn().map_err(|e| {
        unlink();
        Error::of(
            ErrorKind::Startup,
            format!(
                "worker {} could not be started ({}): {e}",
                index,
                describe_command(cfg)
            ),
        )
    })?;
    let pid = child.id();
    let control = shm.control();
    let deadline = Instant::now() + cfg.start_timeout;
    loop {
        // Acquire: pairs with the worker's Release store of READY.
        if control.worker_state.load(Ordering::Acquire) == shm::READY {
            break;
        }
        let exited = child.try_wait();
        // Acquire: pairs with the worker's Release store of FAILED, which
        // comes before its exit; so looked at after `try_wait`.
        if control.worker_state.load(Ordering::Acquire) == shm::FAILED {
            let message = failure_message(&shm);
            let _ = child.kill();
            let _ = child.wait();
            unlink();
            let name = cfg.boot.as_ref().map_or("?", |b| &*b.name);
            return Err(bootstrap::failed(
                name,
                &format!("worker {index} (pid {pid})"),
                &message,
            ));
        }
        if let Ok(Some(status)) = exited {
            unlink();
            return Err(Error::of(
                ErrorKind::Startup,
                format!(
                    "worker {} (pid {pid}) {} before it was ready ({}){}",
                    index,
                    describe_exit(status),
                    describe_command(cfg),
                    startup_hint(status, !cfg.prefix.is_empty())
                ),
            ));
        }
        if Instant::now() >= deadline || abandoned.load(Ordering::Acquire) {
            let _ = child.kill();
            let _ = child.wait();
            unlink();
            return Err(Error::of(
                ErrorKind::Startup,
                format!(
                    "worker {} (pid {pid}) was not ready within {:?} and was killed ({}); \
                     does the program call knitting::init() first thing in main?",
                    index,
                    cfg.start_timeout,
                    describe_command(cfg)
                ),
            ));
        }
        let seen = control.host_bell.word.load(Ordering::Acquire);
        if control.worker_state.load(Ordering::Acquire) != shm::READY {
            futex::wait(
                &control.host_bell.word,
                seen,
                Some(Duration::from_millis(2)),
            );
        }
    }
    // The worker opened the object (and unlinked it itself); make sure
    // no name is left even if it could not.
    unlink();
    // Relaxed: ordered by the Acquire load of READY above. Read before
    // the worker has run any task (none was sent yet).
    let sandbox = Enforcement::from_word(control.sandbox.load(Ordering::Relaxed));
    if let Err(why) = check_sandbox(cfg, sandbox) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::of(
            ErrorKind::Startup,
            format!("worker {index} (pid {pid}) {why}"),
        ));
    }
    let shm = Arc::new(shm);
    watch_exit(pid, &shm);
    let mut gen = Gen::new(shm, child, pid, cfg.layout.arena, cfg.stream_bound);
    gen.courier = courier;
    gen.sandbox = sandbox;
    Ok(gen)
}

/// Whether what a worker says it enforces is what the pool asked for:
/// a worker that was to lock itself down and did not is not used.
fn check_sandbox(cfg: &Config, enforced: Option<Enforcement>) -> Result<(), String> {
    let asked = &cfg.permissions;
    if !asked.restricted {
        return Ok(());
    }
    let Some(enforced) = enforced else {
        return Err("did not lock itself down to its permissions".to_owned());
    };
    let whole = enforced.files && enforced.syscalls && (enforced.tcp || asked.net);
    if whole || asked.best_effort {
        Ok(())
    } else {
        Err(format!(
            "enforces only part of its permissions ({enforced})"
        ))
    }
}

/// The message a worker whose bootstrap failed left at the start of its
/// response arena (a length, then UTF-8): untrusted, so bounded by the
/// arena and by 64 KiB, and read lossily.
fn failure_message(shm: &Mapping) -> String {
    let mut scratch = Vec::new();
    let read = |at: usize, len: usize, scratch: &mut Vec<u8>| -> Option<Vec<u8>> {
        let window = shm.window(Dir::Response, at, len)?;
        Some(Response::new(window, scratch).copied().to_vec())
    };
    let Some(head) = read(0, 8, &mut scratch) else {
        return "(no message)".to_owned();
    };
    let len = u64::from_le_bytes(head.try_into().unwrap_or([0; 8]));
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(64 << 10);
    match read(8, len, &mut scratch) {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => "(its message does not fit in the arena)".to_owned(),
    }
}

/// Rings the host bell of `shm` the moment process `pid` exits, so that the
/// reactor notices a dead worker at once rather than on its next poll: a
/// small thread waits on the process's pidfd (it ends when the process
/// does, however it ends). Without pidfds (Linux before 5.3) the reactor's
/// poll is all there is.
fn watch_exit(pid: u32, shm: &Arc<Mapping>) {
    use rustix::{
        event::{poll, PollFd, PollFlags},
        process::{pidfd_open, Pid, PidfdFlags},
    };
    let Some(pidfd) =
        Pid::from_raw(pid as i32).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok())
    else {
        return;
    };
    let shm = Arc::clone(shm);
    let _ = std::thread::Builder::new()
        .name("knitting-exit-watch".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
            // Readable once the process has exited; EINTR just retries.
            while let Ok(0) | Err(rustix::io::Errno::INTR) = poll(&mut fds, None) {}
            bell::ring(&shm.control().host_bell);
        });
}

/// The file descriptor number on which a worker finds the lifeline.
const LIFELINE_FD: i32 = 3;

/// The read end of this process's lifeline: a pipe whose write end only
/// the host holds, so that every worker sees end-of-file the moment the host
/// dies, however it dies and whatever stands between them. The parent-death
/// signal covers a worker that is the host's direct child; behind a command
/// prefix (bwrap, systemd-run) the worker's parent is the wrapper, and the
/// lifeline is what tells it. Made once per process; both ends live until
/// the process exits.
fn lifeline() -> Result<i32, Error> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    static LIFELINE: std::sync::OnceLock<Result<i32, String>> = std::sync::OnceLock::new();
    LIFELINE
        .get_or_init(|| {
            let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| format!("could not make the workers' lifeline pipe: {e}"))?;
            let fd = read.as_raw_fd();
            // Kept open for the life of the process, on purpose.
            let _ = read.into_raw_fd();
            let _ = write.into_raw_fd();
            Ok(fd)
        })
        .clone()
        .map_err(|e| Error::of(ErrorKind::Startup, e))
}

/// Gives a killed worker a few milliseconds to be reaped, so that the
/// reactor starts its replacement on its next round rather than after a
/// poll interval; never blocks longer (the reactor reaps it later if need
/// be).
pub(crate) fn reap_soon(child: &mut Child) {
    for _ in 0..50 {
        if let Ok(Some(_)) | Err(_) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Asks a worker to exit once its requests are done; kills it if it takes
/// too long.
pub(crate) fn stop_worker(mut gen: Gen, last_words: impl Fn(&Gen)) {
    let control = gen.shm.control();
    // Release suffices: the unconditional ring below bumps the bell word
    // after this store, and a worker that sees the bump (its Acquire load
    // in `bell::arm`, or a futex wake) then sees STOP; nothing else orders
    // against this word, so SeqCst would add nothing.
    control.host_ctl.store(shm::STOP, Ordering::Release);
    bell::ring(&control.worker_bell);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match gen.child.try_wait() {
            Ok(Some(_)) | Err(_) => return last_words(&gen),
            Ok(None) if Instant::now() >= deadline => {
                let _ = gen.child.kill();
                let _ = gen.child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// "exited with code 3", "was killed by signal 11 (SIGSEGV)".
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = crate::error::signals::signal_name(signal)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("was killed by signal {signal}{name}{core}")
        }
        None => format!("ended ({status})"),
    }
}

fn startup_hint(status: ExitStatus, prefixed: bool) -> &'static str {
    match status.code() {
        Some(super::worker::EXIT_STARTUP) => "; its reason is on stderr",
        Some(_) if prefixed => {
            "; can the command prefix run the worker executable (a sandbox that hides its \
             directory, a missing binary)? The prefix's message is on stderr"
        }
        Some(_) => {
            "; a worker runs the same program: does main call knitting::init() first \
             (or the test file use knitting::init_before_main!)?"
        }
        None => "",
    }
}

fn describe_command(cfg: &Config) -> String {
    let mut parts: Vec<String> = cfg
        .prefix
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    parts.push(cfg.exe.display().to_string());
    parts.join(" ")
}

/// A strict worker's environment: the host's kept variables (see
/// `Permissions`), those it inherits by name, and those it sets. The
/// command prefix, if any, runs with it too.
fn set_environment(cmd: &mut Command, permissions: &crate::runtime::permissions::Permissions) {
    use crate::runtime::permissions::KEPT_ENV;
    cmd.env_clear();
    for (key, value) in std::env::vars_os() {
        let kept = key
            .to_str()
            .is_some_and(|k| KEPT_ENV.contains(&k) || k.starts_with("LC_"))
            || permissions.inherit.contains(&key);
        if kept {
            cmd.env(key, value);
        }
    }
    for (key, value) in &permissions.env {
        cmd.env(key, value);
    }
}
