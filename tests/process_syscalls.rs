//! The strict default of process workers: a seccomp allow-list (a call
//! that is not on it fails, whatever it is), Landlock's scopes, and the
//! report of what is enforced in `stats()`. Where the kernel cannot
//! enforce a part, the tests say so and skip it.

knitting::init_before_main!();

use std::{os::unix::fs::PermissionsExt, path::PathBuf};

use knitting::{Enforcement, Permissions, Pool};

mod common;

use common::sandboxed_pool as pool;

macro_rules! or_skip {
    ($pool:expr) => {
        match $pool {
            Ok(pool) => pool,
            Err(why) => {
                eprintln!("skipped: the kernel cannot enforce the permissions here: {why}");
                return;
            }
        }
    };
}

fn os_error() -> String {
    std::io::Error::last_os_error().to_string()
}

/// Makes (and removes) a System V message queue: not a file, so Landlock
/// cannot see it; a deny-list that forgot it would let it through.
#[knitting::task]
fn message_queue() -> Result<(), String> {
    // SAFETY: plain system calls on integers; the queue is private and
    // removed at once.
    unsafe {
        let id = libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600);
        if id < 0 {
            return Err(os_error());
        }
        libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut());
    }
    Ok(())
}

/// Changes a file's mode by its path: Landlock has no right for it.
#[knitting::task]
fn make_readable(path: PathBuf) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| e.to_string())
}

/// Connects to an abstract `AF_UNIX` socket (no file, so no Landlock path
/// rule; the scope of Landlock ABI 6 covers it).
#[knitting::task]
fn connect_abstract(name: Vec<u8>) -> Result<(), String> {
    use std::os::linux::net::SocketAddrExt;
    let addr =
        std::os::unix::net::SocketAddr::from_abstract_name(&name).map_err(|e| e.to_string())?;
    std::os::unix::net::UnixStream::connect_addr(&addr)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Threads, as task code starts them (glibc tries `clone3` first).
#[knitting::task]
fn threads(n: u64) -> u64 {
    let handles: Vec<_> = (0..n).map(|i| std::thread::spawn(move || i * 2)).collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

fn refused(outcome: Result<(), knitting::Error>, what: &str) {
    let err = outcome.expect_err(&format!("{what} was allowed"));
    let message = err.message();
    assert!(
        message.contains("Operation not permitted") || message.contains("Permission denied"),
        "{what}: {message}"
    );
}

#[test]
fn the_default_is_strict_and_stats_say_what_is_enforced() {
    let default = or_skip!(pool(None));
    let enforced = default.stats().lanes[0]
        .sandbox
        .expect("a default process worker is restricted");
    assert!(
        enforced.files && enforced.tcp && enforced.syscalls,
        "{enforced}"
    );
    refused(default.call(message_queue, ()).wait(), "a message queue");

    let unrestricted = pool(Some(Permissions::unrestricted())).unwrap();
    assert_eq!(unrestricted.stats().lanes[0].sandbox, None);
    unrestricted.call(message_queue, ()).wait().unwrap();
    let thread_pool = Pool::builder().threads(1).build().unwrap();
    assert_eq!(thread_pool.stats().lanes[0].sandbox, None);

    let net = pool(Some(Permissions::strict().allow_net())).unwrap();
    let with_net = net.stats().lanes[0].sandbox.unwrap();
    assert!(!with_net.tcp && with_net.files && with_net.syscalls);
    let best = pool(Some(Permissions::strict().best_effort())).unwrap();
    assert_eq!(best.stats().lanes[0].sandbox, Some(enforced));
}

#[test]
fn a_replacement_worker_reports_what_it_enforces() {
    let strict = or_skip!(pool(Some(Permissions::strict())));
    #[knitting::task]
    fn die() {
        std::process::exit(3)
    }
    let before = strict.stats().lanes[0].sandbox;
    strict.call(die, ()).wait().unwrap_err();
    strict.call(threads, 1).wait().unwrap();
    let after = strict.stats().lanes[0];
    assert_eq!(after.restarts, 1);
    assert_eq!(after.sandbox, before);
}

#[test]
fn changing_a_files_mode_by_path_is_refused() {
    let strict = or_skip!(pool(Some(Permissions::strict())));
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("knitting-mode-{}", std::process::id()));
    std::fs::write(&path, "secret").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    refused(
        strict.call(make_readable, path.clone()).wait(),
        "chmod by path",
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let unrestricted = pool(Some(Permissions::unrestricted())).unwrap();
    unrestricted
        .call(make_readable, path.clone())
        .wait()
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let _ = std::fs::remove_file(path);
}

#[test]
fn abstract_sockets_outside_the_sandbox_are_refused() {
    use std::os::linux::net::SocketAddrExt;
    let strict = or_skip!(pool(Some(Permissions::strict())));
    let enforced: Enforcement = strict.stats().lanes[0].sandbox.unwrap();
    if !enforced.scopes {
        eprintln!("skipped: Landlock here has no scopes (ABI 6, Linux 6.12): {enforced}");
        return;
    }
    let name = format!("knitting-test-{}", std::process::id()).into_bytes();
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    refused(
        strict.call(connect_abstract, name.clone()).wait(),
        "an abstract socket",
    );
    let unrestricted = pool(Some(Permissions::unrestricted())).unwrap();
    unrestricted.call(connect_abstract, name).wait().unwrap();
    drop(listener);
}

#[test]
fn strict_task_code_still_starts_threads() {
    let strict = or_skip!(pool(Some(Permissions::strict())));
    assert_eq!(strict.call(threads, 8).wait().unwrap(), 56);
}
