//! A worker process that dies costs that worker, never the pool: every
//! way to die (panic that aborts, `exit`, `abort`, a real SIGSEGV, SIGKILL
//! from outside) fails the calls in flight with an error naming the worker,
//! its pid and how it died; a replacement takes later calls; workers die
//! with their host; a worker that keeps dying at start-up is given up.

knitting::init_before_main!();

mod common;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use knitting::{ErrorKind, ProcessPool};

#[knitting::task]
fn echo(v: u32) -> u32 {
    v
}

#[knitting::task]
fn worker_pid() -> u32 {
    std::process::id()
}

#[knitting::task]
fn exit_with(code: i32) {
    std::process::exit(code)
}

#[knitting::task]
fn abort() {
    std::process::abort()
}

/// What a panic does in a program built with `panic = "abort"`: the panic
/// message is printed, then the process aborts.
#[knitting::task]
fn panic_and_abort() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("{info}");
        std::process::abort();
    }));
    panic!("this worker was built with panic = abort");
}

/// A real segmentation fault signal, delivered by the kernel.
#[knitting::task]
fn segfault() {
    let me = rustix::process::getpid();
    rustix::process::kill_process(me, rustix::process::Signal::SEGV).unwrap();
    std::thread::sleep(Duration::from_secs(5));
}

#[knitting::task]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn one_worker() -> ProcessPool {
    knitting::Pool::builder()
        .processes(1)
        .build()
        .expect("process pool")
}

/// Runs `crash` on a one-worker pool; checks the error and that a new
/// worker answers afterwards.
fn crash_costs_one_worker(crash: impl FnOnce(&ProcessPool) -> knitting::Error, how: &str) {
    let pool = one_worker();
    let first = pool.call(worker_pid, ()).wait().unwrap();
    let err = crash(&pool);
    assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err:?}");
    let message = err.message();
    assert!(message.contains("worker 0"), "{message}");
    assert!(message.contains(&format!("pid {first}")), "{message}");
    assert!(message.contains(how), "{message}");
    assert!(common::wait_gone(first), "the dead worker was reaped");

    let second = pool.call(worker_pid, ()).wait().unwrap();
    assert_ne!(first, second, "a replacement worker answers");
    assert_eq!(pool.call(echo, 9).wait().unwrap(), 9);
    assert_eq!(pool.stats().lanes[0].restarts, 1);
    pool.shutdown();
    assert!(
        common::wait_gone(second),
        "shutdown leaves no worker behind"
    );
}

#[test]
fn exit_fails_the_call_with_the_exit_code() {
    crash_costs_one_worker(
        |pool| pool.call(exit_with, 3).wait().unwrap_err(),
        "exited with code 3",
    );
}

#[test]
fn exit_zero_is_a_death_too() {
    crash_costs_one_worker(
        |pool| pool.call(exit_with, 0).wait().unwrap_err(),
        "exited with code 0",
    );
}

#[test]
fn abort_fails_the_call_with_sigabrt() {
    crash_costs_one_worker(
        |pool| pool.call(abort, ()).wait().unwrap_err(),
        "signal 6 (SIGABRT)",
    );
}

#[test]
fn a_panic_that_aborts_fails_the_call_with_sigabrt() {
    crash_costs_one_worker(
        |pool| pool.call(panic_and_abort, ()).wait().unwrap_err(),
        "signal 6 (SIGABRT)",
    );
}

#[test]
fn a_segfault_fails_the_call_with_sigsegv() {
    crash_costs_one_worker(
        |pool| pool.call(segfault, ()).wait().unwrap_err(),
        "signal 11 (SIGSEGV)",
    );
}

#[test]
fn sigkill_from_outside_fails_the_running_call() {
    crash_costs_one_worker(
        |pool| {
            let call = pool.call(sleep_ms, 10_000);
            std::thread::sleep(Duration::from_millis(50));
            let pid = pool.worker_pids()[0].unwrap();
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
            call.wait().unwrap_err()
        },
        "signal 9 (SIGKILL)",
    );
}

#[test]
fn only_the_running_call_fails_and_the_calls_behind_it_go_to_the_replacement() {
    // Two ring slots: the crash and one call behind it are in the worker's
    // ring (sent, never started: a worker serves in order); the rest wait
    // in the host. All of them run on the new worker.
    let pool = knitting::Pool::builder()
        .processes(1)
        .ring_slots(2)
        .build()
        .unwrap();
    let crash = pool.call(exit_with, 4);
    let behind = pool.call(echo, 1);
    let queued: Vec<_> = (10..20).map(|v| pool.call(echo, v)).collect();
    let err = crash.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied);
    assert!(err.message().contains("exited with code 4"), "{err}");
    let mut behind = behind;
    assert_eq!(
        behind.wait_timeout(common::LONG).expect("in time").unwrap(),
        1
    );
    for (v, mut call) in (10..20).zip(queued) {
        assert_eq!(
            call.wait_timeout(common::LONG).expect("in time").unwrap(),
            v
        );
    }
    assert_eq!(pool.stats().lanes[0].restarts, 1);
}

#[test]
fn other_lanes_are_untouched_by_a_crash() {
    let pool = knitting::Pool::builder().processes(2).build().unwrap();
    let pids = pool.worker_pids();
    // Keep lane 0 busy so the crash goes to lane 1, then crash it.
    let busy = pool.call(sleep_ms, 300);
    std::thread::sleep(Duration::from_millis(30));
    let crash = pool.call(exit_with, 5);
    assert_eq!(crash.wait().unwrap_err().kind(), ErrorKind::WorkerDied);
    assert_eq!(busy.wait().unwrap(), 300, "the other lane's call finished");
    let after = pool.worker_pids();
    let survivors = pids.iter().filter(|p| after.contains(p)).count();
    assert_eq!(
        survivors, 1,
        "exactly one worker was replaced: {pids:?} -> {after:?}"
    );
}

#[test]
fn a_worker_program_that_cannot_start_fails_the_build() {
    let err = knitting::Pool::builder()
        .processes(1)
        .worker_executable("/bin/false")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err:?}");
    assert!(
        err.message()
            .contains("exited with code 1 before it was ready"),
        "{err}"
    );
    assert!(err.message().contains("/bin/false"), "{err}");

    let err = knitting::Pool::builder()
        .processes(1)
        .worker_executable("/nonexistent/worker")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err:?}");
    assert!(err.message().contains("could not be started"), "{err}");
}

#[test]
fn a_worker_that_never_gets_ready_times_out_at_start() {
    // `sleep` ignores the mapping and never reports ready.
    let dir = scratch_dir("never-ready");
    let script = dir.join("worker.sh");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
    make_executable(&script);
    let started = Instant::now();
    let err = knitting::Pool::builder()
        .processes(1)
        .worker_executable(&script)
        .start_timeout(Duration::from_millis(300))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err:?}");
    assert!(err.message().contains("was not ready within"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_worker_of_another_protocol_version_fails_the_build_clearly() {
    // The worker program is this one, told it speaks another version (the
    // hand-over's first entry is the version: `v=N;...`).
    let dir = scratch_dir("other-version");
    let script = dir.join("worker.sh");
    let exe = std::env::current_exe().unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh
exec '{}' \"$1\" \"v=999;${{2#*;}}\"
",
            exe.display()
        ),
    )
    .unwrap();
    make_executable(&script);
    let err = knitting::Pool::builder()
        .processes(1)
        .worker_executable(&script)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err:?}");
    // The worker explains on stderr and exits with the start-up code.
    assert!(err.message().contains("exited with code 97"), "{err}");
    assert!(err.message().contains("its reason is on stderr"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_worker_that_keeps_dying_at_start_is_given_up() {
    // The first start runs the real worker; every later start fails.
    let dir = scratch_dir("dies-at-start");
    let marker = dir.join("started-once");
    let script = dir.join("worker.sh");
    let exe = std::env::current_exe().unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e '{m}' ]; then exit 7; fi\ntouch '{m}'\nexec '{e}' \"$@\"\n",
            m = marker.display(),
            e = exe.display()
        ),
    )
    .unwrap();
    make_executable(&script);
    let pool = knitting::Pool::builder()
        .processes(1)
        .worker_executable(&script)
        .build()
        .unwrap();
    assert_eq!(pool.call(echo, 1).wait().unwrap(), 1);
    assert_eq!(
        pool.call(exit_with, 1).wait().unwrap_err().kind(),
        ErrorKind::WorkerDied
    );
    // The replacement keeps failing; the lane gives up after a few tries
    // and calls fail with a start-up error instead of waiting forever.
    let err = pool.call(echo, 2).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err:?}");
    assert!(err.message().contains("exited with code 7"), "{err}");
    assert!(err.message().contains("gave up after 3 attempts"), "{err}");
    let err = pool.call(echo, 3).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_process_worker_cannot_start_a_process_pool() {
    #[knitting::task]
    fn nested_pool() -> String {
        match knitting::Pool::builder().processes(1).build() {
            Ok(_) => "built".to_owned(),
            Err(err) => format!("{:?}: {}", err.kind(), err.message()),
        }
    }
    let pool = one_worker();
    let outcome = pool.call(nested_pool, ()).wait().unwrap();
    assert!(outcome.starts_with("Startup: "), "{outcome}");
    assert!(outcome.contains("cannot start process pools"), "{outcome}");
}

/// Not a test of its own: the host process for
/// `workers_die_with_their_host`, started as a child of the test.
#[test]
fn host_child() {
    if !common::is_host_child() {
        return;
    }
    let pool = knitting::Pool::builder().processes(2).build().unwrap();
    assert_eq!(pool.call(echo, 1).wait().unwrap(), 1);
    let pids: Vec<String> = pool
        .worker_pids()
        .into_iter()
        .map(|p| p.unwrap().to_string())
        .collect();
    println!("PIDS {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn workers_die_with_their_host() {
    let (mut host, pids) = common::host_child("host_child", "PIDS", &[]);
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| common::stat(p).is_some()));
    host.0.kill().unwrap();
    host.0.wait().unwrap();
    for pid in pids {
        // Re-parented to init (or a subreaper) and killed by the
        // parent-death signal; a reaped process leaves no /proc entry.
        assert!(common::wait_gone(pid), "worker {pid} outlived its host");
    }
}

/// A fresh directory for scripts that run as worker executables: beside
/// this test executable, not in `/tmp`, which may be mounted `noexec`.
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .expect("the executable has a directory")
        .join(format!("scratch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
