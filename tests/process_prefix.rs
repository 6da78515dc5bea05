//! Workers behind command prefixes that drop what the host hands over: the
//! environment (`env -i`, `systemd-run`, `docker run` without `-e`), or
//! everything but the command line. A worker knows it is a worker from its
//! command line, and a process started as a worker never runs `main`, even
//! when part of its hand-over is missing.
//!
//! The wrappers count their runs in a file next to the test executable
//! (shared by every process of this test session) and refuse to run more
//! than a few times, so that a worker that ran `main` again (and so this
//! test, which starts another worker) shows up as a count, not as a fork
//! bomb.

knitting::init_before_main!();

use std::{os::unix::fs::PermissionsExt, path::PathBuf};

use knitting::{ErrorKind, Pool};

#[knitting::task]
fn pid() -> u32 {
    std::process::id()
}

#[knitting::task]
fn worker_env_count() -> usize {
    std::env::vars_os().count()
}

/// Runs of the wrapper beyond this are refused (exit 9).
const MAX_RUNS: usize = 4;

/// A wrapper script `name` that counts its runs, then runs `exec_line`
/// (which gets the worker's command line as `"$@"`). Returns the script
/// and its counter file.
fn wrapper(name: &str, exec_line: &str) -> Wrapper {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    // The session id is inherited by every process the test starts, so a
    // worker that ran this test again counts in the same file.
    let sid = session_id();
    let count = dir.join(format!("{name}-{sid}.count"));
    let script = dir.join(format!("{name}-{sid}.sh"));
    let body = format!(
        "#!/bin/sh\necho run >> '{count}'\n[ \"$(wc -l < '{count}')\" -le {MAX_RUNS} ] || exit 9\n{exec_line}\n",
        count = count.display()
    );
    // Only the outermost test writes (and later removes) the files: a
    // nested run (the bug) must not reset the count.
    let owner = !script.exists();
    if owner {
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _ = std::fs::remove_file(&count);
    }
    Wrapper {
        script,
        count,
        owner,
    }
}

/// A counting wrapper script; its owner removes it when dropped.
struct Wrapper {
    script: PathBuf,
    count: PathBuf,
    owner: bool,
}

impl Wrapper {
    fn runs(&self) -> usize {
        std::fs::read_to_string(&self.count).map_or(0, |s| s.lines().count())
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        if self.owner {
            let _ = std::fs::remove_file(&self.script);
            let _ = std::fs::remove_file(&self.count);
        }
    }
}

/// This process's session id, from `/proc/self/stat` (the field after
/// the process group).
fn session_id() -> u32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn workers_behind_env_i_serve_calls_and_start_once() {
    let wrapper = wrapper("knitting-env-i", "exec env -i \"$@\"");
    let pool = Pool::builder()
        .processes(1)
        .command_prefix([&wrapper.script])
        .build();
    let started = wrapper.runs();
    let outcome = pool.map(|pool| {
        let worker = pool.call(pid, ()).wait();
        let env = pool.call(worker_env_count, ()).wait();
        pool.shutdown();
        (worker, env)
    });
    let (worker, env) = outcome.expect("a pool behind `env -i` builds");
    assert_eq!(started, 1, "one worker, started once (no worker ran main)");
    assert_ne!(worker.unwrap(), std::process::id());
    assert_eq!(
        env.unwrap(),
        0,
        "the worker really ran without an environment"
    );
}

#[test]
fn a_wrapper_that_passes_only_the_command_line_fails_the_build_clearly() {
    // No environment, and stdin (where the mapping is handed over) replaced.
    let wrapper = wrapper("knitting-bare", "exec env -i \"$@\" </dev/null");
    let err = Pool::builder()
        .processes(1)
        .command_prefix([&wrapper.script])
        .build()
        .expect_err("a worker without its mapping cannot start");
    let started = wrapper.runs();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err}");
    assert_eq!(started, 1, "the worker started once and did not run main");
    assert!(err.message().contains("before it was ready"), "{err}");
}
