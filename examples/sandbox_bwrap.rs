//! Process workers inside a bubblewrap sandbox: no network, a read-only
//! file system, an empty `/tmp` of their own, their own pid namespace.
//!
//! ```sh
//! sudo apt-get install bubblewrap   # or your distribution's package
//! cargo run --example sandbox_bwrap
//! ```
//!
//! Where bwrap is missing or cannot run (unprivileged user namespaces
//! turned off, as in some containers), the example says why and exits
//! without error.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// What a worker sees of the machine.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct View {
    pid: u32,
    /// The network interfaces in `/proc/net/dev`.
    interfaces: Vec<String>,
    /// Whether the host's file is there.
    sees_host_file: bool,
    /// Why writing to `/` failed (`None`: it worked).
    write_refused: Option<String>,
}

#[knitting::task]
fn look_around(host_file: String) -> View {
    let interfaces = std::fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2) // two header lines
        .filter_map(|line| Some(line.split(':').next()?.trim().to_owned()))
        .collect();
    View {
        pid: std::process::id(),
        interfaces,
        sees_host_file: Path::new(&host_file).exists(),
        write_refused: std::fs::write("/knitting-sandbox-probe", b"x")
            .err()
            .map(|e| e.to_string()),
    }
}

/// Sums bytes: real work, answered from inside the sandbox.
#[knitting::task]
fn sum(bytes: serde_bytes::ByteBuf) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

/// The sandbox: everything unshared (network, pids, IPC, ...), the whole
/// file system read-only, a fresh `/dev` and `/proc`, an empty private
/// `/tmp`, and the worker dies with its host.
fn sandbox() -> Vec<OsString> {
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
    // `--tmpfs /tmp` also hides a worker executable built under `/tmp`
    // (`CARGO_TARGET_DIR=/tmp/...`): bind its directory back, read-only,
    // after the tmpfs (bwrap mounts in order). Elsewhere this rebinds a
    // directory onto itself, which is harmless.
    let dir = exe_dir().into_os_string();
    flags.extend(["--ro-bind".into(), dir.clone(), dir]);
    flags
}

fn exe_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("this program's path");
    exe.parent().expect("a directory").to_owned()
}

/// Why the sandbox cannot run here, or `None` when it can.
fn sandbox_unavailable() -> Option<String> {
    let flags = sandbox();
    let probe = Command::new(&flags[0])
        .args(&flags[1..])
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Err(e) => Some(format!("cannot run `bwrap` ({e}); install bubblewrap")),
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`bwrap ... true` failed ({}): {} (are unprivileged user namespaces enabled?)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    knitting::init(); // first thing: the sandboxed workers start here

    if let Some(reason) = sandbox_unavailable() {
        println!("skipped: the bwrap sandbox cannot run here: {reason}");
        return Ok(());
    }

    // A file in the host's /tmp, which the workers must not see.
    let host_file = Path::new("/tmp").join(format!("knitting-host-{}", std::process::id()));
    std::fs::write(&host_file, b"host only")?;
    let host_file_name = host_file.to_string_lossy().into_owned();

    let pool = knitting::Pool::builder()
        .processes(2)
        .command_prefix(sandbox())
        .build()?;
    println!("host: pid {}", std::process::id());
    println!(
        "worker pids as the host sees them: {:?}",
        pool.worker_pids()
    );
    let view = pool.call(look_around, host_file_name).wait()?;
    println!("a worker sees: {view:?}");
    let total = pool
        .call(sum, serde_bytes::ByteBuf::from(vec![1u8; 1 << 20]))
        .wait()?;
    println!("sum of 1 MiB of ones, computed in the sandbox: {total}");

    pool.shutdown();
    std::fs::remove_file(&host_file)?;

    let sandboxed = view.interfaces == ["lo"]
        && !view.sees_host_file
        && view.write_refused.is_some()
        && total == 1 << 20;
    if !sandboxed {
        return Err(format!("the workers were not sandboxed as expected: {view:?}").into());
    }
    println!("sandbox ok");
    Ok(())
}
