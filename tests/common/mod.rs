//! Helpers shared by the integration test files.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

pub(crate) mod bwrap;

use std::time::Duration;

use knitting::Pool;

/// Upper bound for anything a test waits on: a hang fails, never blocks CI.
pub(crate) const LONG: Duration = Duration::from_secs(10);

/// A pool of `threads` workers.
pub(crate) fn pool(threads: usize) -> Pool {
    Pool::builder()
        .threads(threads)
        .build()
        .expect("pool builds")
}

/// Set (to `host`) in a test executable started by [`host_child`].
pub(crate) const ROLE: &str = "KNITTING_TEST_ROLE";

/// True in a test executable that [`host_child`] started as a host.
pub(crate) fn is_host_child() -> bool {
    std::env::var(ROLE).as_deref() == Ok("host")
}

/// A host process started by [`host_child`]: killed (if still running)
/// and reaped when dropped, so that a failed assertion leaves nothing.
pub(crate) struct HostChild(pub(crate) std::process::Child);

impl Drop for HostChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs this test executable again, as a host: only the test `test`
/// (which does nothing unless [`is_host_child`]), with `envs` added.
/// Returns the child and the numbers that follow `marker` on the first
/// stdout line that has it (libtest's `test <name> ... ` may start that
/// line). A child that prints no such line within 60 s fails the test.
pub(crate) fn host_child(test: &str, marker: &str, envs: &[(&str, &str)]) -> (HostChild, Vec<u32>) {
    use std::{
        io::{BufRead as _, BufReader},
        process::{Command, Stdio},
        sync::mpsc,
    };
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, "host")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut host = HostChild(command.spawn().expect("this test executable runs again"));
    // Read in a thread, so that a host that hangs fails the test instead
    // of blocking it.
    let stdout = host.0.stdout.take().unwrap();
    let marker = format!("{marker} ");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find(&marker) {
                let _ = tx.send(Ok(line[at + marker.len()..].to_owned()));
                return;
            }
            seen.push(line);
        }
        let _ = tx.send(Err(seen));
    });
    let numbers = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(rest)) => rest
            .split_whitespace()
            .map(|n| n.parse().expect("a number"))
            .collect(),
        Ok(Err(lines)) => panic!("the host child printed no `{test}` marker line: {lines:#?}"),
        Err(_) => panic!("no marker line from the host child `{test}` within 60 s"),
    };
    (host, numbers)
}

/// A process seen alive, told apart from a later process that reuses its
/// pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proc {
    pub(crate) pid: u32,
    pub(crate) start: u64,
}

/// `(state, parent pid, start time)` from `/proc/<pid>/stat`.
pub(crate) fn stat(pid: u32) -> Option<(char, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?; // field 22
    Some((state, ppid, start))
}

impl Proc {
    /// The process `pid`, which must be running now.
    pub(crate) fn of(pid: u32) -> Proc {
        let (state, _, start) = stat(pid).unwrap_or_else(|| panic!("process {pid} is not running"));
        assert!(
            !matches!(state, 'Z' | 'X'),
            "process {pid} is already dead ({state})"
        );
        Proc { pid, start }
    }

    /// Still running (a zombie counts as dead: it runs nothing).
    pub(crate) fn alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, _, start)) if start == self.start && !matches!(state, 'Z' | 'X'))
    }
}

/// Waits (generously) until none of `procs` runs; kills the ones that
/// still do (so that a failure leaves nothing running that holds the
/// harness's output open) and panics naming them.
pub(crate) fn assert_all_gone(procs: &[Proc], what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<&Proc> = procs.iter().filter(|p| p.alive()).collect();
        if alive.is_empty() {
            return;
        }
        if std::time::Instant::now() >= deadline {
            for p in &alive {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &p.pid.to_string()])
                    .status();
            }
            panic!("{what}: still running: {alive:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to 5 s) until process `pid` runs no more: reaped, or a zombie
/// waiting for a reaper that is not us. False if it still runs.
pub(crate) fn wait_gone(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        match stat(pid) {
            None | Some(('Z' | 'X', _, _)) => return true,
            Some(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}

/// The shared memory objects this worker has mapped, as its
/// `/proc/self/maps` names them (one entry per distinct path): its lane's
/// memfd (`/memfd:knitting-lane (deleted)`) or named object
/// (`/dev/shm/knitting-<pid>-<pidns>-<lane>-<n>-<nonce>`, `(deleted)` once
/// unlinked). Nothing else counts, whatever its path: the worker executable
/// lies in a directory called `knitting` in a checkout cloned as is.
#[knitting::task]
pub(crate) fn mapped_objects() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut paths: Vec<String> = maps
        .lines()
        // No field before the path holds a `/`.
        .filter_map(|line| line.find('/').map(|at| line[at..].trim().to_owned()))
        .filter(|path| is_lane_object(path))
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// True for a `/proc/<pid>/maps` path that names a lane's shared memory:
/// the memfd, or a named object (see [`mapped_objects`]).
pub(crate) fn is_lane_object(path: &str) -> bool {
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    if path == "/memfd:knitting-lane" {
        return true;
    }
    let Some(name) = path.strip_prefix("/dev/shm/knitting-") else {
        return false;
    };
    let fields: Vec<&str> = name.split('-').collect();
    let decimal = |f: &str| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit());
    fields.len() == 5
        && fields[..4].iter().all(|f| decimal(f))
        && !fields[4].is_empty()
        && fields[4].bytes().all(|b| b.is_ascii_hexdigit())
}

/// In a worker process: the base address of its lane mapping (found in
/// `/proc/self/maps`), for tasks that corrupt it on purpose.
pub(crate) fn lane_mapping() -> *mut u8 {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps
        .lines()
        .find(|l| l.contains("knitting-lane"))
        .expect("the worker maps its lane");
    let start = line.split('-').next().unwrap();
    usize::from_str_radix(start, 16).unwrap() as *mut u8
}

/// In a worker process: the 64-bit word at `offset` of its lane mapping.
pub(crate) fn lane_word(offset: usize) -> &'static std::sync::atomic::AtomicU64 {
    // SAFETY: the callers pass offsets inside the control block or the
    // slots of the mapping, which stays mapped for the worker's life; every
    // field there is an aligned 64-bit word shared through atomics.
    unsafe {
        &*(lane_mapping()
            .add(offset)
            .cast::<std::sync::atomic::AtomicU64>())
    }
}

/// The example `name`, built (or brought up to date) by cargo into the
/// target directory and profile of this test: `cargo test --test X` alone
/// does not build examples, and an example left from an older build could
/// speak another protocol version. The target directory is the one the
/// test was built in, the profile the one of the directory it runs from
/// (`<profile>/deps/<test>-<hash>`): the example is
/// `<target>/<profile>/examples/<name>`. Where cargo cannot run, the
/// example already built is used.
pub(crate) fn build_example(name: &str) -> std::path::PathBuf {
    use std::path::Path;
    let test_exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    // The target directory this test was built in (a copy of the test
    // run from elsewhere still uses it, and the examples built there).
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target's tmp directory is inside the target directory");
    let exe = target_dir
        .join(profile_dir.file_name().expect("a profile directory"))
        .join("examples")
        .join(name);
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let built = std::process::Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--example", name, "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .output();
    match built {
        Ok(out) => assert!(
            out.status.success(),
            "`cargo build --example {name}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("could not run cargo ({e}); using {}", exe.display()),
    }
    assert!(
        exe.is_file(),
        "the example is not at {}; run `cargo build --example {name}`",
        exe.display()
    );
    exe
}

/// A one-worker process pool with `permissions` (the pool's default
/// without), or why the kernel cannot enforce them.
pub(crate) fn sandboxed_pool(
    permissions: Option<knitting::Permissions>,
) -> Result<knitting::ProcessPool, String> {
    let builder = Pool::builder().processes(1).arena_bytes(1 << 20);
    let builder = match permissions {
        Some(p) => builder.permissions(p),
        None => builder,
    };
    match builder.build() {
        Ok(pool) => Ok(pool),
        Err(e) if e.kind() == knitting::ErrorKind::Startup && e.message().contains("Landlock") => {
            Err(e.message().to_owned())
        }
        Err(e) => panic!("a sandboxed pool did not build: {e}"),
    }
}

/// Defines each test function `$test(RuntimeKind)` as a test on a thread
/// pool (`threads::$test`) and, on Linux, on a process pool
/// (`processes::$test`).
#[macro_export]
macro_rules! for_each_runtime {
    ($($(#[$attr:meta])* $test:ident),* $(,)?) => {
        mod threads {
            $(
                $(#[$attr])*
                #[test]
                fn $test() {
                    super::$test(knitting::RuntimeKind::Threads);
                }
            )*
        }

        #[cfg(target_os = "linux")]
        mod processes {
            $(
                $(#[$attr])*
                #[test]
                fn $test() {
                    super::$test(knitting::RuntimeKind::Processes);
                }
            )*
        }
    };
}
