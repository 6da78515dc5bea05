//! Untrusted tasks, locked in: a worker program whose tasks this host
//! never links (`sandbox_worker`, called through `ImportedTask`) runs
//! behind bubblewrap with `Permissions::strict()` (the default, spelled
//! out here) on top, and tries, one at a time, to write to `/tmp`, connect
//! to the host over TCP, read a key in `~/.ssh` and run `/bin/true`. Each
//! attempt is refused, and the host prints the system's error and who
//! refused it. Then a worker granted one scratch directory
//! (`allow_write`) writes a file there, and the host reads it back.
//!
//! Build the worker first, with the same profile, then run the host:
//!
//! ```sh
//! sudo apt-get install bubblewrap   # or your distribution's package
//! cargo build --example sandbox_worker && cargo run --example sandbox
//! ```
//!
//! Where bwrap is missing or cannot run, the workers run under
//! `Permissions::strict()` alone and the example says so; where the kernel
//! cannot enforce the permissions (no Landlock, or one without TCP rules),
//! it says why and exits without error. An attempt that is not refused
//! prints `ALLOWED` and the example fails.

use std::{
    ffi::OsString,
    io::ErrorKind as IoKind,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use knitting::{ErrorKind, ImportedTask, Permissions, Pool, ProcessPool};

/// How one attempt went: the worker's `Attempt`, declared here (the type
/// check compares names without module paths; the variants are in the
/// worker's order).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Attempt {
    /// It happened; for a read, how many bytes were read.
    Done(u64),
    /// The system refused it, with this error.
    Refused { error: String, errno: Option<i32> },
}

// The worker's tasks, as this host sees them.

/// `fn write(path: PathBuf, text: String) -> Attempt`.
const WRITE: ImportedTask<(PathBuf, String), Attempt> = ImportedTask::new("sandbox::write");
/// `fn connect(port: u16) -> Attempt`, to 127.0.0.1.
const CONNECT: ImportedTask<u16, Attempt> = ImportedTask::new("sandbox::connect");
/// `fn read(path: PathBuf) -> Attempt`.
const READ: ImportedTask<PathBuf, Attempt> = ImportedTask::new("sandbox::read");
/// `fn exec(program: PathBuf) -> Attempt`.
const EXEC: ImportedTask<PathBuf, Attempt> = ImportedTask::new("sandbox::exec");

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    knitting::init(); // a no-op here: this program is only ever a host

    let worker = std::env::current_exe()?.with_file_name("sandbox_worker");
    if !worker.exists() {
        eprintln!(
            "the worker program {} is missing: run `cargo build --example sandbox_worker` \
             (with this example's profile) first",
            worker.display()
        );
        return Ok(ExitCode::from(1));
    }
    let dir = worker.parent().expect("a directory").to_owned();
    let id = std::process::id();

    let behind_bwrap = match bwrap_unavailable(&dir) {
        None => {
            println!(
                "sandbox: bwrap (no network, read-only /, private /tmp) \
                 with Permissions::strict() inside"
            );
            true
        }
        Some(reason) => {
            println!("bwrap cannot run here ({reason}): the workers run under Permissions::strict() alone");
            false
        }
    };
    let prefix = |writable: Option<&Path>| behind_bwrap.then(|| bwrap(&dir, writable));

    let strict = match pool(&worker, Permissions::strict(), prefix(None)) {
        Ok(pool) => pool,
        Err(e) if e.kind() == ErrorKind::Startup && e.message().contains("Landlock") => {
            println!(
                "skipped: the kernel cannot enforce Permissions::strict() here: {}",
                e.message()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };

    // Something the worker could reach without the sandbox: a listener on
    // the host's loopback, and a file only the host's user may read.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (key, stand_in) = ssh_file(&dir, id)?;
    if let Some(home) = &stand_in {
        println!(
            "no file in $HOME/.ssh here: the read tries a stand-in key the example wrote under {}",
            home.display()
        );
    }
    // Behind bwrap, `/tmp` is the sandbox's own; without it, a write that
    // got through would land in the host's `/tmp`, so it gets a name of
    // its own there.
    let tmp = if behind_bwrap {
        PathBuf::from("/tmp/x")
    } else {
        PathBuf::from(format!("/tmp/knitting-sandbox-{id}"))
    };

    let mut allowed = Vec::new();
    let mut attempt = |what: String, outcome: Attempt| {
        if !refused(&what, outcome) {
            allowed.push(what);
        }
    };
    attempt(
        format!("write {}", tmp.display()),
        strict.call(WRITE, (tmp.clone(), "x".into())).wait()?,
    );
    attempt(
        format!("connect 127.0.0.1:{port}"),
        strict.call(CONNECT, port).wait()?,
    );
    attempt(
        format!("read {}", key.display()),
        strict.call(READ, key.clone()).wait()?,
    );
    attempt(
        "exec /bin/true".to_owned(),
        strict.call(EXEC, PathBuf::from("/bin/true")).wait()?,
    );
    strict.shutdown();
    drop(listener);
    if !behind_bwrap && allowed.iter().any(|w| w.starts_with("write ")) {
        std::fs::remove_file(&tmp)?;
    }

    // The same worker program, granted one scratch directory (and, behind
    // bwrap, given it writable).
    let scratch = dir.join(format!("sandbox-scratch-{id}"));
    std::fs::create_dir_all(&scratch)?;
    let granted = pool(
        &worker,
        Permissions::strict().allow_write(&scratch),
        prefix(Some(&scratch)),
    )?;
    let file = scratch.join("granted.txt");
    let text = format!("written by a strict worker of host {id}");
    let wrote = granted.call(WRITE, (file.clone(), text.clone())).wait()?;
    granted.shutdown();
    let read_back = std::fs::read_to_string(&file).ok();
    let granted_ok = match (&wrote, &read_back) {
        (Attempt::Done(_), Some(back)) if *back == text => {
            println!(
                "write {}: ok (the host read back {} bytes)",
                file.display(),
                back.len()
            );
            true
        }
        (Attempt::Refused { error, .. }, _) => {
            println!(
                "write {}: REFUSED although granted ({error})",
                file.display()
            );
            false
        }
        _ => {
            println!(
                "write {}: the host read back {read_back:?}, not {text:?}",
                file.display()
            );
            false
        }
    };

    std::fs::remove_dir_all(&scratch)?;
    if let Some(home) = stand_in {
        std::fs::remove_dir_all(home)?;
    }
    if !allowed.is_empty() || !granted_ok {
        println!("sandbox FAILED: allowed {allowed:?}, granted write ok: {granted_ok}");
        return Ok(ExitCode::FAILURE);
    }
    println!("sandbox ok");
    Ok(ExitCode::SUCCESS)
}

/// Prints how `what` went: `refused (error) by ...`, or `ALLOWED`.
/// Returns whether it was refused.
fn refused(what: &str, outcome: Attempt) -> bool {
    match outcome {
        Attempt::Refused { error, errno } => {
            println!("{what}: refused ({error}) {}", refused_by(errno));
            true
        }
        Attempt::Done(_) => {
            println!("{what}: ALLOWED");
            false
        }
    }
}

/// Who refuses with `errno`. In this example the permissions are the only
/// thing that answers `EACCES` or `EPERM`: the files tried are readable by
/// the host's user, and bwrap's `/tmp` is writable. Landlock refuses with
/// `EACCES`, the seccomp filter with `EPERM` (a socket other than
/// `AF_UNIX`, `execve`).
fn refused_by(errno: Option<i32>) -> &'static str {
    let Some(errno) = errno else {
        return "(by whom is not known)";
    };
    // Linux's numbers, the one system process workers run on.
    const EPERM: i32 = 1;
    const EACCES: i32 = 13;
    match std::io::Error::from_raw_os_error(errno).kind() {
        _ if errno == EACCES => "by Permissions::strict() (Landlock)",
        _ if errno == EPERM => "by Permissions::strict() (its seccomp filter)",
        IoKind::ConnectionRefused | IoKind::NetworkUnreachable => {
            "by bwrap (the worker's network namespace has no such listener)"
        }
        IoKind::ReadOnlyFilesystem => "by bwrap (a read-only file system)",
        IoKind::NotFound => "by bwrap (the path is not in the sandbox)",
        _ => "(by whom is not known)",
    }
}

/// A process pool of one worker running `worker`.
fn pool(
    worker: &Path,
    permissions: Permissions,
    prefix: Option<Vec<OsString>>,
) -> Result<ProcessPool, knitting::Error> {
    let builder = Pool::builder()
        .processes(1)
        .worker_executable(worker)
        .permissions(permissions);
    match prefix {
        Some(prefix) => builder.command_prefix(prefix),
        None => builder,
    }
    .build()
}

/// The sandbox: everything unshared (network, pids, IPC, ...), the whole
/// file system read-only, a fresh `/dev` and `/proc`, an empty private
/// `/tmp`, and the worker dies with its host. `dir`, where the worker
/// program is, is bound back read-only after the `/tmp` (bwrap mounts in
/// order), in case it lies under `/tmp`; `writable` is bound writable.
fn bwrap(dir: &Path, writable: Option<&Path>) -> Vec<OsString> {
    let mut flags: Vec<OsString> = [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    flags.extend(["--ro-bind".into(), dir.into(), dir.into()]);
    if let Some(path) = writable {
        flags.extend(["--bind".into(), path.into(), path.into()]);
    }
    flags
}

/// Why the sandbox cannot run here, or `None` when it can.
fn bwrap_unavailable(dir: &Path) -> Option<String> {
    let flags = bwrap(dir, None);
    let probe = Command::new(&flags[0])
        .args(&flags[1..])
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Err(e) => Some(format!("cannot run `bwrap`: {e}; install bubblewrap")),
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`bwrap ... true` failed ({}): {}; are unprivileged user namespaces enabled?",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// A file in `$HOME/.ssh` to try to read; where there is none, a stand-in
/// key that the example writes under a home of its own in `dir`, with
/// that home (to remove afterwards).
fn ssh_file(dir: &Path, id: u32) -> std::io::Result<(PathBuf, Option<PathBuf>)> {
    if let Some(home) = std::env::var_os("HOME") {
        if let Ok(entries) = std::fs::read_dir(Path::new(&home).join(".ssh")) {
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.is_file())
                .collect();
            files.sort();
            if let Some(file) = files.into_iter().next() {
                return Ok((file, None));
            }
        }
    }
    let home = dir.join(format!("sandbox-home-{id}"));
    let key = home.join(".ssh").join("id_ed25519");
    std::fs::create_dir_all(key.parent().expect("a directory"))?;
    std::fs::write(&key, "a stand-in, not a key\n")?;
    Ok((key, Some(home)))
}
