//! Named shared memory mode: calls work, no `/dev/shm` object outlives a worker's start, stale objects are swept, and a killed host leaves nothing behind.

knitting::init_before_main!();

mod common;

use common::{assert_all_gone, stat, Proc, LONG};

use std::{
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use knitting::{Pool, ProcessPool};

/// The tests of this file run one at a time: each looks at `/dev/shm`,
/// where another test's starting workers (or its sweep) would show.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[knitting::task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[knitting::task]
fn worker_pid() -> u32 {
    std::process::id()
}

fn workers_of(pool: &ProcessPool) -> Vec<Proc> {
    pool.worker_pids()
        .into_iter()
        .enumerate()
        .map(|(lane, pid)| Proc::of(pid.unwrap_or_else(|| panic!("lane {lane} has no worker"))))
        .collect()
}

fn wait<T: Send + 'static>(mut call: knitting::Call<T>) -> Result<T, knitting::Error> {
    call.wait_timeout(LONG)
        .expect("the call was answered in time")
}

fn named_pool(processes: usize) -> ProcessPool {
    Pool::builder()
        .processes(processes)
        .named_shared_memory(true)
        .start_timeout(LONG)
        .build()
        .expect("a named process pool")
}

fn no_objects() -> Vec<String> {
    Vec::new()
}

#[test]
fn a_named_pool_answers_and_leaves_no_names() {
    let _serial = serial();
    let me = std::process::id();
    assert_eq!(knitting::shared_memory_objects_of(me), no_objects());

    let pool = named_pool(2);
    let workers = workers_of(&pool);
    // Each worker unlinked its object's name as soon as it had opened it.
    assert_eq!(
        knitting::shared_memory_objects_of(me),
        no_objects(),
        "names left while the pool runs"
    );

    let calls: Vec<_> = (0..500).map(|i| pool.call(add, (i, 1))).collect();
    for (i, call) in (0..500).zip(calls) {
        assert_eq!(wait(call).unwrap(), i + 1);
    }
    let pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
    for _ in 0..4 {
        let answered_by = wait(pool.call(worker_pid, ())).unwrap();
        assert!(
            pids.contains(&answered_by),
            "{answered_by} is not one of {pids:?}"
        );
    }

    // The mode really is named: each worker maps a /dev/shm object of this
    // host, whose name is already gone.
    let prefix = format!("/dev/shm/knitting-{me}-");
    for _ in 0..4 {
        let mapped = wait(pool.call(common::mapped_objects, ())).unwrap();
        assert!(
            !mapped.is_empty()
                && mapped
                    .iter()
                    .all(|m| m.starts_with(&prefix) && m.ends_with("(deleted)")),
            "a worker maps an unlinked {prefix}* object, got {mapped:?}"
        );
    }
    assert_eq!(knitting::shared_memory_objects_of(me), no_objects());

    pool.shutdown();
    assert_all_gone(&workers, "workers after shutdown");
    assert_eq!(knitting::shared_memory_objects_of(me), no_objects());
    let completed: usize = pool.stats().lanes.iter().map(|l| l.completed).sum();
    assert_eq!(completed, 500 + 4 + 4);
}

/// A pid that no process has now: that of a child that ran and was reaped.
fn dead_pid() -> u32 {
    for _ in 0..10 {
        let mut child = Command::new("true").spawn().expect("`true` runs");
        let pid = child.id();
        child.wait().unwrap();
        if stat(pid).is_none() {
            return pid;
        }
    }
    panic!("no dead pid found");
}

/// A file under `/dev/shm` (that is, a POSIX shared memory object),
/// removed when dropped if still there.
struct ShmFile(PathBuf);

impl ShmFile {
    fn create(name: &str) -> ShmFile {
        let path = Path::new("/dev/shm").join(name);
        std::fs::File::create(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        ShmFile(path)
    }

    fn exists(&self) -> bool {
        self.0.exists()
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// This process's pid namespace, as the name of a shared memory object
/// carries it: the inode of `/proc/self/ns/pid`.
fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").unwrap().ino()
}

#[test]
fn a_named_pool_sweeps_objects_of_dead_hosts() {
    let _serial = serial();
    let dead = dead_pid();
    let ns = pid_namespace();
    let stale = ShmFile::create(&format!("knitting-{dead}-{ns}-0-0-deadbeef"));
    // Another pid namespace's object: its pid means nothing here, keep it.
    let foreign = ShmFile::create(&format!("knitting-{dead}-{}-0-0-f0f0f0f0", ns + 1));
    // An object of a host that still runs must be kept.
    let mut live_host = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("`sleep` runs");
    let live = ShmFile::create(&format!("knitting-{}-{ns}-0-0-cafef00d", live_host.id()));
    assert!(stale.exists() && live.exists() && foreign.exists());
    let mut before = knitting::shared_memory_objects_of(dead);
    before.sort();
    assert_eq!(
        before,
        vec![
            format!("knitting-{dead}-{ns}-0-0-deadbeef"),
            format!("knitting-{dead}-{}-0-0-f0f0f0f0", ns + 1),
        ]
    );

    let pool = named_pool(1);
    let workers = workers_of(&pool);
    let kept = live.exists();
    live_host.kill().unwrap();
    live_host.wait().unwrap();

    assert!(
        !stale.exists(),
        "the object of dead host {dead} was not swept"
    );
    assert_eq!(
        knitting::shared_memory_objects_of(dead),
        vec![format!("knitting-{dead}-{}-0-0-f0f0f0f0", ns + 1)],
        "only the object of this namespace's dead host was swept"
    );
    drop(foreign);
    assert!(kept, "the object of a running host was swept");
    assert_eq!(wait(pool.call(add, (40, 2))).unwrap(), 42);

    pool.shutdown();
    assert_all_gone(&workers, "workers after shutdown");
    assert_eq!(
        knitting::shared_memory_objects_of(std::process::id()),
        no_objects()
    );
}

/// Not a test on its own: with `KNITTING_TEST_ROLE=host` set (by
/// `a_killed_host_leaves_nothing_behind`) it is the host that gets killed.
#[test]
fn named_host_child() {
    if !common::is_host_child() {
        return;
    }
    let pool = named_pool(2);
    assert_eq!(wait(pool.call(add, (1, 2))).unwrap(), 3);
    let pids: Vec<String> = pool
        .worker_pids()
        .into_iter()
        .map(|p| p.expect("every lane has a worker").to_string())
        .collect();
    println!("PIDS {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(30));
    panic!("the host was not killed within 30 s");
}

#[test]
fn a_killed_host_leaves_nothing_behind() {
    let _serial = serial();
    let (mut host, pids) = common::host_child("named_host_child", "PIDS", &[]);
    let host_pid = host.0.id();
    assert_eq!(pids.len(), 2, "{pids:?}");
    let workers: Vec<Proc> = pids.iter().map(|&pid| Proc::of(pid)).collect();
    for worker in &workers {
        let (_, parent, _) = stat(worker.pid).expect("the worker runs");
        assert_eq!(
            parent, host_pid,
            "worker {} is the host's child",
            worker.pid
        );
    }

    host.0.kill().unwrap();
    let status = host.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the host died of SIGKILL: {status}"
    );

    // The workers die with their host (parent-death signal) ...
    assert_all_gone(&workers, "workers of the killed host");
    // ... and no name of the killed host's is left in /dev/shm.
    assert_eq!(knitting::shared_memory_objects_of(host_pid), no_objects());
}

/// A copy of this test executable in a directory whose name contains
/// `knitting` (as a checkout at `.../knitting/` has), removed on drop.
struct KnittingNamedCopy(PathBuf);

impl KnittingNamedCopy {
    fn new() -> Self {
        let exe = std::env::current_exe().expect("the test executable's path");
        let dir = exe
            .parent()
            .expect("the executable has a directory")
            .join(format!("knitting-copy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory beside the test executable");
        let copy = dir.join(exe.file_name().expect("the executable has a name"));
        std::fs::copy(&exe, &copy).expect("the test executable copies");
        KnittingNamedCopy(copy)
    }
}

impl Drop for KnittingNamedCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

/// The leak checks above count a worker's lane objects by the paths in its
/// `/proc/self/maps`: that count must not depend on where the checkout (and
/// so the worker executable) lies, such as under a directory `knitting/`.
#[test]
fn lane_objects_are_told_apart_from_a_worker_executable_named_knitting() {
    let _serial = serial();
    let copy = KnittingNamedCopy::new();
    for named in [false, true] {
        let pool = Pool::builder()
            .processes(1)
            .named_shared_memory(named)
            .worker_executable(&copy.0)
            .start_timeout(LONG)
            .build()
            .expect("a process pool running the copy");
        let mapped = wait(pool.call(common::mapped_objects, ())).unwrap();
        let expected = if named {
            "/dev/shm/knitting-"
        } else {
            "/memfd:knitting-lane"
        };
        assert!(
            mapped.len() == 1 && mapped[0].starts_with(expected),
            "named {named}: one {expected}* object, got {mapped:?}"
        );
        pool.shutdown();
    }
}
