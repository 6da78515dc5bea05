//! Resource limits of process workers: a worker past its memory or CPU-time
//! limit dies and is replaced, and the call's error names the limit; a
//! task past its open-file limit gets the error itself and the worker goes
//! on. Real limits (`setrlimit`), real signals.

knitting::init_before_main!();

use std::time::{Duration, Instant};

use knitting::{ErrorKind, Pool, ProcessPool, ResourceLimits};

#[knitting::task]
fn worker_pid() -> u32 {
    std::process::id()
}

/// Allocates `mib` MiB and touches every page.
#[knitting::task]
fn allocate(mib: usize) -> usize {
    let mut block = vec![0u8; mib << 20];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    block.iter().step_by(4096).map(|&b| usize::from(b)).sum()
}

/// Burns CPU for `ms` milliseconds of its own CPU time (wall time as a
/// stand-in: the worker has a core to itself here).
#[knitting::task]
fn spin(ms: u64) -> u64 {
    let until = Instant::now() + Duration::from_millis(ms);
    let mut x = 0u64;
    while Instant::now() < until {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    x
}

/// Opens `/dev/null` `count` times and keeps them open; the error, if any.
#[knitting::task]
fn open_many(count: usize) -> Result<usize, String> {
    let mut files = Vec::new();
    for i in 0..count {
        match std::fs::File::open("/dev/null") {
            Ok(file) => files.push(file),
            Err(e) => return Err(format!("open #{i}: {e}")),
        }
    }
    Ok(files.len())
}

fn pool(limits: ResourceLimits) -> ProcessPool {
    Pool::builder()
        .processes(1)
        .arena_bytes(1 << 20)
        .limits(limits)
        .build()
        .expect("a process pool with limits")
}

#[test]
fn a_worker_past_its_memory_limit_is_replaced_and_the_error_says_why() {
    let pool = pool(ResourceLimits::new().memory(512 << 20));
    let first = pool.call(worker_pid, ()).wait().unwrap();
    assert_eq!(
        pool.call(allocate, 16).wait().unwrap(),
        16 << 8,
        "under the limit"
    );
    let err = pool.call(allocate, 1024).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err:?}");
    assert!(err.message().contains("SIGABRT"), "{err}");
    assert!(
        err.message().contains("memory limit of 536870912 bytes"),
        "{err}"
    );
    let second = pool.call(worker_pid, ()).wait().unwrap();
    assert_ne!(first, second, "a new worker took the lane");
    assert_eq!(pool.call(allocate, 16).wait().unwrap(), 16 << 8);
}

#[test]
fn a_worker_past_its_cpu_time_limit_is_replaced_and_the_error_says_why() {
    let pool = pool(ResourceLimits::new().cpu_time(Duration::from_secs(1)));
    let first = pool.call(worker_pid, ()).wait().unwrap();
    // Well past one second of CPU: the kernel sends SIGXCPU at one.
    let err = pool.call(spin, 30_000).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err:?}");
    assert!(err.message().contains("CPU-time limit of 1 s"), "{err}");
    let second = pool.call(worker_pid, ()).wait().unwrap();
    assert_ne!(first, second, "a new worker took the lane");
    assert!(pool.call(spin, 1).wait().is_ok());
}

#[test]
fn a_task_past_the_open_file_limit_gets_the_error_and_the_worker_goes_on() {
    let pool = pool(ResourceLimits::new().open_files(32));
    let first = pool.call(worker_pid, ()).wait().unwrap();
    assert_eq!(pool.call(open_many, 8).wait().unwrap(), 8);
    let err = pool.call(open_many, 64).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Task, "{err:?}");
    assert!(err.message().contains("Too many open files"), "{err}");
    assert_eq!(
        pool.call(worker_pid, ()).wait().unwrap(),
        first,
        "the same worker"
    );
}

#[test]
fn a_limit_the_worker_cannot_set_fails_the_build() {
    // Above any hard limit an unprivileged process may raise itself to.
    let err = Pool::builder()
        .processes(1)
        .limits(ResourceLimits::new().open_files(u64::MAX - 1))
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err:?}");
    assert!(err.message().contains("before it was ready"), "{err}");
}
