//! The bubblewrap sandbox the tests run workers in, and how to tell
//! whether it can run here.

use std::{
    ffi::OsString,
    path::PathBuf,
    process::{Command, Stdio},
};

/// The directory of this test executable (which is also the worker
/// executable).
pub(crate) fn exe_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .expect("the executable has a directory")
        .to_owned()
}

/// The sandbox's flags up to its own empty `/tmp`.
pub(crate) fn sandbox_flags() -> Vec<OsString> {
    [
        "bwrap",
        "--unshare-all",
        "--ro-bind",
        "/",
        "/",
        "--dev-bind",
        "/dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

/// The sandbox the workers run in. `--tmpfs /tmp` gives the sandbox an
/// empty `/tmp` of its own, which also hides anything the host keeps there
/// — including this very executable when the target directory lies under
/// `/tmp` (`CARGO_TARGET_DIR=/tmp/...`). The `--ro-bind` of the
/// executable's directory, placed *after* the `--tmpfs` (bwrap applies its
/// mounts in order), makes the worker executable visible again; when the
/// target directory is elsewhere it merely rebinds a directory onto itself.
/// `--dev-bind /dev /dev` keeps the host's `/dev/shm` (named mode).
pub(crate) fn bwrap_prefix() -> Vec<OsString> {
    let dir = exe_dir().into_os_string();
    let mut prefix = sandbox_flags();
    prefix.extend(["--ro-bind".into(), dir.clone(), dir]);
    prefix.push("--die-with-parent".into());
    prefix
}

/// Why bwrap cannot run here (not installed, no user namespaces, ...), or
/// `None` when it can.
pub(crate) fn bwrap_unavailable() -> Option<String> {
    let flags = sandbox_flags();
    let probe = Command::new(&flags[0])
        .args(&flags[1..])
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Err(e) => Some(format!("cannot run `bwrap`: {e}")),
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`bwrap --unshare-all ... true` {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}
