//! Permissions of process workers, enforced by the kernel: under
//! `Permissions::strict()` each escape below fails with the system's error
//! inside a real worker, and succeeds once the matching permission is
//! granted. Where the kernel cannot enforce them (no Landlock, or one
//! without TCP rules), the tests say so and skip.

knitting::init_before_main!();

mod common;

use std::{
    net::{TcpListener, TcpStream, UdpSocket},
    path::PathBuf,
    process::Command,
};

use knitting::{Permissions, Pool, ProcessPool};

#[knitting::task]
fn write_file(path: PathBuf) -> Result<(), String> {
    std::fs::write(&path, b"knit").map_err(|e| e.to_string())
}

#[knitting::task]
fn read_file(path: PathBuf) -> Result<String, String> {
    std::fs::read_to_string(&path).map_err(|e| e.to_string())
}

#[knitting::task]
fn env_var(key: String) -> Option<String> {
    std::env::var(key).ok()
}

#[knitting::task]
fn exec_true() -> Result<bool, String> {
    Command::new("/bin/true")
        .status()
        .map(|s| s.success())
        .map_err(|e| e.to_string())
}

#[knitting::task]
fn tcp_connect(port: u16) -> Result<(), String> {
    TcpStream::connect(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| e.to_string())
}

#[knitting::task]
fn udp_socket() -> Result<(), String> {
    UdpSocket::bind("127.0.0.1:0")
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Asks to be traced by its parent: harmless unrestricted, refused strict.
#[knitting::task]
fn trace_me() -> Result<(), String> {
    // SAFETY: PTRACE_TRACEME takes no pointers.
    let r = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// A pool with `permissions`, or why the kernel cannot enforce them.
fn pool(permissions: Permissions) -> Result<ProcessPool, String> {
    common::sandboxed_pool(Some(permissions))
}

/// A strict pool, or `None` after saying why the test skips.
macro_rules! strict_or_skip {
    ($permissions:expr) => {
        match pool($permissions) {
            Ok(pool) => pool,
            Err(why) => {
                eprintln!("skipped: the kernel cannot enforce the permissions here: {why}");
                return;
            }
        }
    };
}

/// A fresh directory of this test under the target directory (denied to
/// strict workers; seen by a bwrap sandbox, which binds `/` read-only).
fn dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("knitting-sandbox-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn refused(outcome: Result<impl std::fmt::Debug, knitting::Error>, what: &str) {
    let err = outcome.expect_err(&format!("{what} was allowed"));
    let message = err.message();
    assert!(
        message.contains("Permission denied") || message.contains("Operation not permitted"),
        "{what}: {message}"
    );
}

#[test]
fn writes_outside_the_scratch_directory_are_refused() {
    let (scratch, other) = (dir("scratch"), dir("other"));
    let strict = strict_or_skip!(Permissions::strict());
    refused(
        strict.call(write_file, scratch.join("x")).wait(),
        "a write to an ungranted directory",
    );
    let granted = strict_or_skip!(Permissions::strict().allow_write(&scratch));
    granted.call(write_file, scratch.join("x")).wait().unwrap();
    assert_eq!(std::fs::read(scratch.join("x")).unwrap(), b"knit");
    refused(
        granted.call(write_file, other.join("x")).wait(),
        "a write next to the scratch directory",
    );
}

#[test]
fn reads_of_ungranted_paths_are_refused() {
    let secrets = dir("secrets");
    let secret = secrets.join("token");
    std::fs::write(&secret, "hunter2").unwrap();
    let strict = strict_or_skip!(Permissions::strict());
    refused(
        strict.call(read_file, secret.clone()).wait(),
        "reading a secret",
    );
    // What a program needs to run stays readable.
    assert!(strict
        .call(read_file, PathBuf::from("/proc/self/status"))
        .wait()
        .unwrap()
        .contains("Pid:"));
    let granted = strict_or_skip!(Permissions::strict().allow_read(&secrets));
    assert_eq!(granted.call(read_file, secret).wait().unwrap(), "hunter2");
}

#[test]
fn the_hosts_environment_is_not_passed_unless_asked() {
    // Cargo sets it for the test process: a variable of the host's.
    let key = "CARGO_PKG_NAME".to_owned();
    assert!(std::env::var(&key).is_ok(), "the host has {key}");
    let strict = strict_or_skip!(Permissions::strict());
    assert_eq!(strict.call(env_var, key.clone()).wait().unwrap(), None);
    assert!(strict
        .call(env_var, "PATH".to_owned())
        .wait()
        .unwrap()
        .is_some());
    let granted = strict_or_skip!(Permissions::strict()
        .inherit_env(&key)
        .env("KNITTING_GIVEN", "yes"));
    assert_eq!(
        granted.call(env_var, key.clone()).wait().unwrap(),
        std::env::var(&key).ok()
    );
    assert_eq!(
        granted
            .call(env_var, "KNITTING_GIVEN".to_owned())
            .wait()
            .unwrap(),
        Some("yes".to_owned())
    );
}

#[test]
fn running_another_program_is_refused() {
    let strict = strict_or_skip!(Permissions::strict());
    refused(strict.call(exec_true, ()).wait(), "exec of /bin/true");
    let granted = strict_or_skip!(Permissions::strict().allow_exec());
    assert!(granted.call(exec_true, ()).wait().unwrap());
}

#[test]
fn the_network_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let strict = strict_or_skip!(Permissions::strict());
    refused(
        strict.call(tcp_connect, port).wait(),
        "a TCP connect to 127.0.0.1",
    );
    refused(strict.call(udp_socket, ()).wait(), "a UDP socket");
    let granted = strict_or_skip!(Permissions::strict().allow_net());
    granted.call(tcp_connect, port).wait().unwrap();
    granted.call(udp_socket, ()).wait().unwrap();
}

#[test]
fn tracing_is_refused() {
    let strict = strict_or_skip!(Permissions::strict());
    refused(strict.call(trace_me, ()).wait(), "ptrace");
    // The worker goes on.
    assert!(strict
        .call(read_file, PathBuf::from("/proc/self/status"))
        .wait()
        .is_ok());
    drop(strict);
    let unrestricted = pool(Permissions::unrestricted()).unwrap();
    unrestricted.call(trace_me, ()).wait().unwrap();
}

#[test]
fn a_strict_worker_still_serves_calls_of_every_kind() {
    let strict = strict_or_skip!(Permissions::strict());
    #[knitting::task]
    fn echo(bytes: Vec<u8>) -> Vec<u8> {
        bytes
    }
    for len in [0usize, 10, 100_000] {
        let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
        assert_eq!(strict.call(echo, bytes.clone()).wait().unwrap(), bytes);
    }
    let shared = knitting::SharedBuffer::new(64).unwrap();
    #[knitting::task]
    fn first_byte(shared: knitting::SharedBuffer) -> u8 {
        let mut b = [0u8];
        shared.read(0, &mut b).unwrap();
        b[0]
    }
    shared.write(0, &[42]).unwrap();
    assert_eq!(strict.call(first_byte, shared).wait().unwrap(), 42);
}

/// The escapes of a strict pool built by `builder`, checked in one go.
fn escapes_are_refused(builder: knitting::ProcessPoolBuilder, secrets: PathBuf, writable: bool) {
    let what = secrets.display().to_string();
    let _ = std::fs::remove_dir_all(&secrets);
    std::fs::create_dir_all(&secrets).unwrap();
    let secret = secrets.join("token");
    std::fs::write(&secret, "hunter2").unwrap();
    let pool = match builder.permissions(Permissions::strict()).build() {
        Ok(pool) => pool,
        Err(e) if e.message().contains("Landlock") => {
            eprintln!("skipped: the kernel cannot enforce the permissions here: {e}");
            return;
        }
        Err(e) => panic!("a strict pool for {what}: {e}"),
    };
    refused(pool.call(read_file, secret).wait(), "reading a secret");
    if writable {
        refused(pool.call(write_file, secrets.join("x")).wait(), "a write");
    }
    refused(pool.call(exec_true, ()).wait(), "exec");
    refused(pool.call(udp_socket, ()).wait(), "a UDP socket");
    assert_eq!(
        pool.call(env_var, "CARGO_PKG_NAME".to_owned())
            .wait()
            .unwrap(),
        None
    );
}

#[test]
fn escapes_are_refused_in_named_mode() {
    let builder = Pool::builder()
        .processes(1)
        .arena_bytes(1 << 20)
        .named_shared_memory(true);
    escapes_are_refused(builder, dir("named"), true);
}

#[test]
fn escapes_are_refused_behind_bwrap() {
    if let Some(reason) = common::bwrap::bwrap_unavailable() {
        eprintln!("skipped: bwrap cannot run here: {reason}");
        return;
    }
    let builder = Pool::builder()
        .processes(1)
        .arena_bytes(1 << 20)
        .command_prefix(common::bwrap::bwrap_prefix());
    // Next to the test executable, which the sandbox shows wherever the
    // checkout is (its own `/tmp` hides a target directory under `/tmp`);
    // it binds the file system read-only, so a write fails there anyway.
    let secrets = common::bwrap::exe_dir().join(format!("knitting-sandbox-{}", std::process::id()));
    escapes_are_refused(builder, secrets.clone(), false);
    let _ = std::fs::remove_dir_all(secrets);
}
