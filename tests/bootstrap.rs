//! Worker bootstraps: each worker runs the pool's bootstrap once, before
//! any task, with the host's data and its context; a bootstrap that fails
//! or panics fails `build()` with its message; process workers keep what
//! their bootstrap did (environment, open files), and a replacement worker
//! runs it again.

knitting::init_before_main!();

use std::{
    cell::RefCell,
    sync::atomic::{AtomicUsize, Ordering},
};

use knitting::{BootContext, ErrorKind, RuntimeKind};

// ---- thread pools ----------------------------------------------------

thread_local! {
    static BOOTED: RefCell<Option<(String, usize, usize, RuntimeKind)>> = const { RefCell::new(None) };
}

static PER_THREAD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[knitting::bootstrap]
fn per_thread(tag: String, ctx: &BootContext) {
    PER_THREAD_RUNS.fetch_add(1, Ordering::SeqCst);
    BOOTED.with(|b| *b.borrow_mut() = Some((tag, ctx.worker(), ctx.workers(), ctx.runtime())));
}

#[knitting::task]
fn booted() -> Option<(String, usize, usize, String)> {
    BOOTED.with(|b| {
        b.borrow()
            .clone()
            .map(|(tag, i, n, rt)| (tag, i, n, format!("{rt:?}")))
    })
}

#[test]
fn a_thread_pool_runs_the_bootstrap_once_per_thread_before_any_task() {
    let pool = knitting::Pool::builder()
        .threads(3)
        .bootstrap(per_thread, "warm".to_owned())
        .build()
        .unwrap();
    // build() waited for every thread.
    assert_eq!(PER_THREAD_RUNS.load(Ordering::SeqCst), 3);
    let calls: Vec<_> = (0..30).map(|_| pool.call(booted, ())).collect();
    for call in calls {
        let (tag, index, workers, runtime) = call.wait().unwrap().expect("bootstrapped");
        assert_eq!(tag, "warm");
        assert!(index < 3, "{index}");
        assert_eq!(workers, 3);
        assert_eq!(runtime, "Threads");
    }
    assert_eq!(PER_THREAD_RUNS.load(Ordering::SeqCst), 3);
}

#[test]
fn a_pool_without_bootstrap_is_unchanged() {
    let pool = knitting::Pool::builder().threads(2).build().unwrap();
    assert_eq!(pool.call(booted, ()).wait().unwrap(), None);
}

#[knitting::bootstrap]
fn fails_on_worker_one(ctx: &BootContext) -> Result<(), String> {
    if ctx.worker() == 1 {
        return Err(format!("no disk for worker {}", ctx.worker()));
    }
    Ok(())
}

#[knitting::bootstrap]
fn panics_in_setup(message: String) {
    panic!("{message}");
}

#[test]
fn a_failing_bootstrap_fails_a_thread_pool_build_with_its_message() {
    let err = knitting::Pool::builder()
        .threads(3)
        .bootstrap(fails_on_worker_one, ())
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup);
    let msg = err.message();
    assert!(
        msg.contains("bootstrap `") && msg.contains("fails_on_worker_one"),
        "{msg}"
    );
    assert!(msg.contains("worker thread 1"), "{msg}");
    assert!(msg.contains("no disk for worker 1"), "{msg}");
}

#[test]
fn a_panicking_bootstrap_fails_a_thread_pool_build_with_its_message() {
    let err = knitting::Pool::builder()
        .threads(2)
        .bootstrap(panics_in_setup, "boom in setup".into())
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup);
    let msg = err.message();
    assert!(msg.contains("panics_in_setup"), "{msg}");
    assert!(
        msg.contains("panicked") && msg.contains("boom in setup"),
        "{msg}"
    );
}

static RETIRE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[knitting::bootstrap]
fn count_threads(fail_after: usize) -> Result<(), String> {
    let run = RETIRE_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if run > fail_after {
        return Err(format!("run {run} refused"));
    }
    BOOTED.with(|b| *b.borrow_mut() = Some((format!("run {run}"), 0, 1, RuntimeKind::Threads)));
    Ok(())
}

#[knitting::task]
fn sleep_ms(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

/// A hard time limit gives the lane a fresh thread: it runs the bootstrap
/// too, and when that fails, the lane's calls fail with its error.
#[test]
fn a_thread_that_replaces_a_retired_one_runs_the_bootstrap_again() {
    let pool = knitting::Pool::builder()
        .threads(1)
        .hard_timeout(std::time::Duration::from_millis(50))
        .bootstrap(count_threads, 2)
        .build()
        .unwrap();
    let first = pool.call(booted, ()).wait().unwrap().expect("bootstrapped");
    assert_eq!(first.0, "run 1");
    let err = pool.call(sleep_ms, 300).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HardTimeout);
    let second = pool.call(booted, ()).wait().unwrap().expect("bootstrapped");
    assert_eq!(second.0, "run 2");
    assert_eq!(RETIRE_RUNS.load(Ordering::SeqCst), 2);

    // The third thread's bootstrap fails: the lane has no worker left, and
    // the call queued on it fails with the bootstrap's error.
    let stuck = pool.call(sleep_ms, 300);
    std::thread::sleep(std::time::Duration::from_millis(10));
    let queued = pool.call(booted, ());
    assert_eq!(stuck.wait().unwrap_err().kind(), ErrorKind::HardTimeout);
    let err = queued.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err}");
    assert!(err.message().contains("run 3 refused"), "{err}");
    // Later calls fail at once rather than wait for a thread that never comes.
    assert!(pool.call(booted, ()).wait().is_err());
}

// ---- process pools ---------------------------------------------------

#[cfg(target_os = "linux")]
mod processes {
    use std::{
        fs::File,
        io::{Read, Seek},
        sync::{Mutex, OnceLock},
        time::{Duration, Instant},
    };

    use knitting::{BootContext, ErrorKind, RuntimeKind};

    const SECRET: &str = "KNITTING_BOOTSTRAP_TEST_SECRET";

    #[knitting::bootstrap]
    fn forget_var(name: String) {
        std::env::remove_var(name);
    }

    #[knitting::task]
    fn read_var(name: String) -> Option<String> {
        std::env::var(name).ok()
    }

    #[test]
    fn an_environment_variable_removed_in_bootstrap_is_gone_for_tasks() {
        std::env::set_var(SECRET, "hunter2");
        // Unrestricted workers inherit the host's environment (a strict one
        // would not see the variable at all)...
        let plain = knitting::Pool::builder()
            .processes(1)
            .permissions(knitting::Permissions::unrestricted())
            .build()
            .unwrap();
        // ...so without the bootstrap a worker has it.
        assert_eq!(
            plain
                .call(read_var, SECRET.into())
                .wait()
                .unwrap()
                .as_deref(),
            Some("hunter2")
        );
        let pool = knitting::Pool::builder()
            .processes(1)
            .permissions(knitting::Permissions::unrestricted())
            .bootstrap(forget_var, SECRET.into())
            .build()
            .unwrap();
        assert_eq!(pool.call(read_var, SECRET.into()).wait().unwrap(), None);
    }

    static OPENED: Mutex<Option<File>> = Mutex::new(None);

    #[knitting::bootstrap]
    fn open_file(path: std::path::PathBuf) -> std::io::Result<()> {
        *OPENED.lock().unwrap() = Some(File::open(path)?);
        Ok(())
    }

    #[knitting::task]
    fn read_opened() -> Result<String, String> {
        let mut guard = OPENED.lock().unwrap();
        let file = guard.as_mut().ok_or("no file was opened")?;
        file.rewind().map_err(|e| e.to_string())?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| e.to_string())?;
        Ok(text)
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("knitting-boot-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_file_opened_in_bootstrap_is_readable_by_tasks() {
        let path = temp_path("opened");
        std::fs::write(&path, "opened before any task").unwrap();
        let pool = knitting::Pool::builder()
            .processes(1)
            .bootstrap(open_file, path.clone())
            .build()
            .unwrap();
        // Gone from the file system: only the worker's open file is left.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            pool.call(read_opened, ()).wait().unwrap(),
            "opened before any task"
        );
    }

    #[test]
    fn a_bootstrap_error_fails_a_process_pool_build_with_its_message() {
        let path = temp_path("missing");
        let err = knitting::Pool::builder()
            .processes(2)
            .bootstrap(open_file, path)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Startup, "{err}");
        let msg = err.message();
        assert!(
            msg.contains("bootstrap `") && msg.contains("open_file"),
            "{msg}"
        );
        assert!(msg.contains("No such file"), "{msg}");
    }

    #[test]
    fn a_bootstrap_panic_fails_a_process_pool_build_with_its_message() {
        let err = knitting::Pool::builder()
            .processes(1)
            .bootstrap(super::panics_in_setup, "boom in a worker".into())
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Startup, "{err}");
        let msg = err.message();
        assert!(msg.contains("panics_in_setup"), "{msg}");
        assert!(
            msg.contains("panicked") && msg.contains("boom in a worker"),
            "{msg}"
        );
    }

    #[test]
    fn a_bootstrap_the_program_does_not_have_fails_the_build() {
        let err = knitting::Pool::builder()
            .processes(1)
            .bootstrap_named("no-such-bootstrap", &())
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Startup, "{err}");
        assert!(err.message().contains("no bootstrap"), "{err}");
    }

    /// What the worker's bootstrap saw: its data, context and pid.
    static SEEN: OnceLock<(u64, usize, usize, bool, u32)> = OnceLock::new();

    #[knitting::bootstrap(name = "bootstrap-test-record")]
    fn record(data: u64, ctx: &BootContext) {
        let process = ctx.runtime() == RuntimeKind::Processes;
        let seen = (
            data,
            ctx.worker(),
            ctx.workers(),
            process,
            std::process::id(),
        );
        SEEN.set(seen)
            .expect("a bootstrap runs once per worker process");
    }

    #[knitting::task]
    fn seen_by_boot() -> Option<(u64, usize, usize, bool, u32)> {
        SEEN.get().copied()
    }

    #[knitting::task]
    fn worker_pid() -> u32 {
        std::process::id()
    }

    #[test]
    fn a_process_worker_gets_the_data_and_its_context() {
        let pool = knitting::Pool::builder()
            .processes(2)
            .bootstrap_named("bootstrap-test-record", &41_u64)
            .build()
            .unwrap();
        let (data, index, workers, process, pid) = pool
            .call(seen_by_boot, ())
            .wait()
            .unwrap()
            .expect("bootstrapped");
        assert_eq!((data, workers, process), (41, 2, true));
        let lanes = pool.stats().lanes;
        assert_eq!(
            lanes[index].pid,
            Some(pid),
            "index {index} is the lane of pid {pid}"
        );
    }

    #[test]
    fn a_replacement_worker_runs_the_bootstrap_again() {
        let pool = knitting::Pool::builder()
            .processes(1)
            .bootstrap(record, 7)
            .build()
            .unwrap();
        let first = pool
            .call(seen_by_boot, ())
            .wait()
            .unwrap()
            .expect("bootstrapped");
        let old = pool.call(worker_pid, ()).wait().unwrap();
        assert_eq!(first.4, old);
        let victim = rustix::process::Pid::from_raw(old as i32).unwrap();
        rustix::process::kill_process(victim, rustix::process::Signal::KILL).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let again = loop {
            assert!(Instant::now() < deadline, "no replacement worker");
            match pool.call(seen_by_boot, ()).wait() {
                Ok(Some(seen)) if seen.4 != old => break seen,
                Ok(_) | Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        assert_eq!((again.0, again.1, again.2, again.3), (7, 0, 1, true));
        assert_eq!(pool.call(worker_pid, ()).wait().unwrap(), again.4);
    }

    #[knitting::bootstrap]
    fn fails_if_marked(marker: std::path::PathBuf) -> Result<(), String> {
        if marker.exists() {
            return Err("the marker says no".into());
        }
        Ok(())
    }

    #[test]
    fn a_replacement_whose_bootstrap_fails_shows_it_as_the_lanes_start_up_error() {
        let marker = temp_path("marker");
        let pool = knitting::Pool::builder()
            .processes(1)
            .bootstrap(fails_if_marked, marker.clone())
            .build()
            .unwrap();
        let old = pool.call(worker_pid, ()).wait().unwrap();
        std::fs::write(&marker, "").unwrap();
        let victim = rustix::process::Pid::from_raw(old as i32).unwrap();
        rustix::process::kill_process(victim, rustix::process::Signal::KILL).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let err = loop {
            assert!(Instant::now() < deadline, "the lane did not give up");
            match pool.call(worker_pid, ()).wait() {
                Err(err) if err.kind() == ErrorKind::Startup => break err,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        std::fs::remove_file(&marker).unwrap();
        let msg = err.message();
        assert!(
            msg.contains("fails_if_marked") && msg.contains("the marker says no"),
            "{msg}"
        );
    }
}
