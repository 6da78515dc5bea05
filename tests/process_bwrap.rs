//! Process workers behind a real `bwrap` sandbox: calls answered from inside it, named shared memory through it, and prefixes that cannot start a worker.

knitting::init_before_main!();

mod common;

use common::{
    assert_all_gone,
    bwrap::{bwrap_prefix, bwrap_unavailable, exe_dir, sandbox_flags},
    stat, Proc, LONG,
};

use std::{
    io::Write as _,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use knitting::{ErrorKind, Pool, ProcessPool};

/// The tests that look at this process's named shared memory objects run
/// one at a time, so that one test's starting workers do not show up in
/// another's leak check.
static NAMED: Mutex<()> = Mutex::new(());

#[knitting::task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// What a worker process sees of the machine: the network interfaces
/// listed in `/proc/net/dev`, how connecting to `port` on 127.0.0.1 went
/// (`None`: it connected), and whether the file `marker` exists.
#[knitting::task]
fn look_around(port: u16, marker: String) -> (Result<Vec<String>, String>, Option<String>, bool) {
    let interfaces = std::fs::read_to_string("/proc/net/dev")
        .map(|text| {
            text.lines()
                .skip(2) // two header lines
                .filter_map(|line| line.split(':').next())
                .map(|name| name.trim().to_owned())
                .collect()
        })
        .map_err(|e| e.to_string());
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let connected = TcpStream::connect_timeout(&address, Duration::from_secs(3))
        .err()
        .map(|e| e.to_string());
    (interfaces, connected, Path::new(&marker).exists())
}

/// Returns early from a test, saying so, when bwrap cannot run here.
macro_rules! require_bwrap {
    () => {
        if let Some(reason) = bwrap_unavailable() {
            eprintln!("skipped: bwrap cannot run here: {reason}");
            return;
        }
    };
}

/// Every running process below `root` (children, grandchildren, ...).
fn descendants(root: u32) -> Vec<Proc> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((state, ppid, start)) = stat(pid) {
            if !matches!(state, 'Z' | 'X') {
                parents.push((Proc { pid, start }, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (proc, _) in parents.iter().filter(|(_, ppid)| *ppid == parent) {
            found.push(*proc);
            frontier.push(proc.pid);
        }
    }
    found
}

/// The worker processes of `pool` and everything they started (bwrap's
/// own init and the sandboxed worker itself).
fn worker_tree(pool: &ProcessPool) -> Vec<Proc> {
    let mut all = Vec::new();
    for (lane, pid) in pool.worker_pids().into_iter().enumerate() {
        let pid = pid.unwrap_or_else(|| panic!("lane {lane} has no worker"));
        all.push(Proc::of(pid));
        all.extend(descendants(pid));
    }
    all
}

/// A file in the host's `/tmp`, removed when dropped.
struct Marker(PathBuf);

impl Marker {
    fn new() -> Marker {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = PathBuf::from(format!(
            "/tmp/knitting-bwrap-marker-{}-{nanos:08x}",
            std::process::id()
        ));
        let mut file = std::fs::File::create(&path).expect("a marker file in /tmp");
        file.write_all(b"seen from the host\n").unwrap();
        assert!(path.exists());
        Marker(path)
    }

    fn as_string(&self) -> String {
        self.0.to_str().expect("a UTF-8 path").to_owned()
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn wait<T: Send + 'static>(mut call: knitting::Call<T>) -> Result<T, knitting::Error> {
    call.wait_timeout(LONG)
        .expect("the call was answered in time")
}

#[test]
fn a_call_runs_inside_the_sandbox() {
    require_bwrap!();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a loopback listener");
    let port = listener.local_addr().unwrap().port();
    let marker = Marker::new();

    // The control: the same task in a worker without a sandbox connects
    // to the host's port and sees the host's /tmp.
    let plain = Pool::builder()
        .processes(1)
        .permissions(knitting::Permissions::unrestricted())
        .start_timeout(LONG)
        .build()
        .expect("a plain process pool");
    let (_, connected, seen) = wait(plain.call(look_around, (port, marker.as_string()))).unwrap();
    assert_eq!(
        connected, None,
        "an unsandboxed worker reaches the host's port"
    );
    assert!(seen, "an unsandboxed worker sees the host's /tmp");
    let plain_workers = worker_tree(&plain);
    plain.shutdown();
    assert_all_gone(&plain_workers, "unsandboxed workers after shutdown");

    let pool = Pool::builder()
        .processes(2)
        .command_prefix(bwrap_prefix())
        .start_timeout(LONG)
        .build()
        .expect("a pool of sandboxed workers");
    let workers = worker_tree(&pool);
    // Each lane's child is bwrap, which runs the worker below it.
    assert!(
        workers.len() > pool.processes(),
        "bwrap runs the workers as its descendants: {workers:?}"
    );

    assert_eq!(wait(pool.call(add, (2, 3))).unwrap(), 5);
    let calls: Vec<_> = (0..200).map(|i| pool.call(add, (i, 1000))).collect();
    for (i, call) in (0..200).zip(calls) {
        assert_eq!(wait(call).unwrap(), i + 1000);
    }

    // Several at once, so that they spread over the lanes (a call goes to
    // an idle lane first).
    let looks: Vec<_> = (0..4)
        .map(|_| pool.call(look_around, (port, marker.as_string())))
        .collect();
    for look in looks {
        let (interfaces, connected, seen) = wait(look).unwrap();
        let interfaces = interfaces.expect("the worker reads /proc/net/dev");
        assert!(
            interfaces.iter().all(|name| name == "lo"),
            "a sandboxed worker has only a loopback interface, got {interfaces:?}"
        );
        assert!(
            connected.is_some(),
            "a sandboxed worker must not reach the host's 127.0.0.1:{port}"
        );
        assert!(!seen, "a sandboxed worker must not see the host's /tmp");
    }

    pool.shutdown();
    assert_all_gone(&workers, "sandboxed workers after shutdown");
    assert!(pool.worker_pids().iter().all(Option::is_none));
    drop(listener);
}

#[test]
fn named_shared_memory_works_through_the_sandbox() {
    require_bwrap!();
    let _serial = NAMED.lock().unwrap_or_else(|e| e.into_inner());
    let me = std::process::id();
    let marker = Marker::new();

    let pool = Pool::builder()
        .processes(2)
        .command_prefix(bwrap_prefix())
        .named_shared_memory(true)
        .start_timeout(LONG)
        .build()
        .expect("a named pool of sandboxed workers");
    let workers = worker_tree(&pool);
    assert_eq!(
        knitting::shared_memory_objects_of(me),
        Vec::<String>::new(),
        "no name is left once the workers are ready"
    );

    let calls: Vec<_> = (0..100).map(|i| pool.call(add, (i, -7))).collect();
    for (i, call) in (0..100).zip(calls) {
        assert_eq!(wait(call).unwrap(), i - 7);
    }
    // Still the sandbox: the host's /tmp is out of sight.
    let (_, _, seen) = wait(pool.call(look_around, (1, marker.as_string()))).unwrap();
    assert!(!seen, "a sandboxed worker must not see the host's /tmp");
    // And really named: the worker maps the host's /dev/shm object, whose
    // name is gone already.
    let prefix = format!("/dev/shm/knitting-{me}-");
    let mapped = wait(pool.call(common::mapped_objects, ())).unwrap();
    assert!(
        !mapped.is_empty()
            && mapped
                .iter()
                .all(|m| m.starts_with(&prefix) && m.ends_with("(deleted)")),
        "a sandboxed worker maps an unlinked {prefix}* object, got {mapped:?}"
    );

    pool.shutdown();
    assert_all_gone(&workers, "sandboxed workers after shutdown");
    assert_eq!(knitting::shared_memory_objects_of(me), Vec::<String>::new());
}

/// A `Startup` error's message names the command; the worker it mentions
/// (if any) is not running.
fn assert_startup_error(err: &knitting::Error, program: &str) {
    assert_eq!(err.kind(), ErrorKind::Startup, "{err:?}");
    let message = err.message();
    assert!(
        message.contains(program),
        "the message names {program}: {message}"
    );
    let exe = std::env::current_exe().unwrap();
    assert!(
        message.contains(&exe.display().to_string()),
        "the message names the worker executable: {message}"
    );
    if let Some(rest) = message.split("(pid ").nth(1) {
        let pid: u32 = rest
            .split(')')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a pid after `(pid `");
        assert!(
            !matches!(stat(pid), Some((state, ..)) if !matches!(state, 'Z' | 'X')),
            "the failed worker {pid} is not left running"
        );
    }
}

#[test]
fn a_missing_prefix_program_fails_the_build_with_startup() {
    // No bwrap needed: the prefix program does not exist at all.
    let _serial = NAMED.lock().unwrap_or_else(|e| e.into_inner());
    for named in [false, true] {
        let err = Pool::builder()
            .processes(2)
            .command_prefix(["/nonexistent-wrapper", "--some-flag"])
            .named_shared_memory(named)
            .start_timeout(LONG)
            .build()
            .expect_err("a prefix that does not exist cannot start workers");
        assert_startup_error(&err, "/nonexistent-wrapper");
        // A failed start removes the name it made for the worker.
        assert_eq!(
            knitting::shared_memory_objects_of(std::process::id()),
            Vec::<String>::new(),
            "named: {named}"
        );
    }
}

#[test]
fn a_sandbox_that_hides_the_executable_fails_the_build_with_startup() {
    require_bwrap!();
    // The same sandbox without the bind that brings the executable back:
    // a tmpfs over its directory hides it (as `--tmpfs /tmp` alone does
    // when the target directory is under /tmp), so bwrap cannot exec it.
    let dir = exe_dir().into_os_string();
    let mut prefix = sandbox_flags();
    prefix.extend(["--tmpfs".into(), dir, "--die-with-parent".into()]);

    let err = Pool::builder()
        .processes(1)
        .command_prefix(prefix)
        .start_timeout(Duration::from_secs(60))
        .build()
        .expect_err("a worker the sandbox cannot see does not start");
    assert_startup_error(&err, "bwrap");
    // bwrap exits at once: the failure is noticed, not waited out.
    assert!(
        err.message().contains("before it was ready"),
        "the worker's exit is reported: {}",
        err.message()
    );
}

/// Not a test on its own: with `KNITTING_TEST_ROLE=host` set (by
/// `a_killed_host_takes_its_sandboxed_workers_along`) it is the host that
/// gets killed. Prints every process of its sandboxed workers.
#[test]
fn bwrap_host_child() {
    if !common::is_host_child() {
        return;
    }
    let mut prefix = bwrap_prefix();
    if std::env::var_os(WITHOUT_DIE_WITH_PARENT).is_some() {
        prefix.retain(|flag| flag != "--die-with-parent");
    }
    let pool = Pool::builder()
        .processes(2)
        .command_prefix(prefix)
        .start_timeout(LONG)
        .build()
        .expect("a pool of sandboxed workers");
    assert_eq!(wait(pool.call(add, (1, 2))).unwrap(), 3);
    let tree: Vec<String> = worker_tree(&pool)
        .iter()
        .map(|p| p.pid.to_string())
        .collect();
    println!("\nTREE {}", tree.join(" "));
    std::thread::sleep(Duration::from_secs(30));
    panic!("the host was not killed within 30 s");
}

/// Set for the host child: build the prefix without `--die-with-parent`.
const WITHOUT_DIE_WITH_PARENT: &str = "KNITTING_TEST_WITHOUT_DIE_WITH_PARENT";

/// The parent-death signal the host arms reaches only its direct child
/// (the outer bwrap); `--die-with-parent` carries it on to bwrap's init
/// and the worker inside.
#[test]
fn a_killed_host_takes_its_sandboxed_workers_along() {
    require_bwrap!();
    killed_host_takes_its_workers(true);
}

/// Without `--die-with-parent` nothing carries the death signal into the
/// sandbox: the worker learns of it from the lifeline pipe it inherited.
#[test]
fn a_killed_host_takes_its_sandboxed_workers_along_without_die_with_parent() {
    require_bwrap!();
    killed_host_takes_its_workers(false);
}

fn killed_host_takes_its_workers(die_with_parent: bool) {
    let envs: &[(&str, &str)] = if die_with_parent {
        &[]
    } else {
        &[(WITHOUT_DIE_WITH_PARENT, "1")]
    };
    let (mut host, pids) = common::host_child("bwrap_host_child", "TREE", envs);
    let host_pid = host.0.id();
    let tree: Vec<Proc> = pids.iter().map(|&pid| Proc::of(pid)).collect();
    // Two lanes, each a bwrap with the worker somewhere below it.
    assert!(tree.len() > 2, "{tree:?}");
    assert!(
        tree.iter()
            .any(|p| stat(p.pid).is_some_and(|(_, ppid, _)| ppid == host_pid)),
        "the tree hangs off the host: {tree:?}"
    );

    host.0.kill().unwrap();
    let status = host.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the host died of SIGKILL: {status}"
    );
    assert_all_gone(&tree, "sandboxed workers of the killed host");
}
