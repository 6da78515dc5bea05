//! The examples that can check themselves run here: the axum service asks
//! itself a few requests on loopback, the bwrap sandbox runs (or says why
//! it cannot) and checks what its workers see.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

/// The example `name`, built (or brought up to date) by cargo into the
/// target directory and profile of this test: `cargo test --test examples`
/// alone does not build examples.
fn example(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let target_dir = profile_dir
        .parent()
        .expect("the profile directory is inside the target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let built = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--example", name, "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .expect("cargo runs");
    assert!(
        built.status.success(),
        "`cargo build --example {name}` failed ({}):\n{}",
        built.status,
        String::from_utf8_lossy(&built.stderr)
    );
    profile_dir.join("examples").join(name)
}

/// Runs `exe` with `args`; kills it and fails if it takes longer than
/// `limit`.
fn run(exe: &Path, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let started = Instant::now();
    while child
        .try_wait()
        .expect("the example can be waited for")
        .is_none()
    {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{} {args:?} did not end within {limit:?}; stdout:\n{}\nstderr:\n{}",
                exe.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stdout_of(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}); stdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_axum_service_answers_its_own_requests() {
    let out = run(&example("axum_service"), &["--self-test"], common::LONG * 3);
    let stdout = stdout_of(&out, "axum_service --self-test");
    assert!(stdout.contains("/square/12 -> 144"), "{stdout}");
    assert!(stdout.contains("self-test passed"), "{stdout}");
}

#[test]
fn the_bwrap_example_runs_sandboxed_or_says_why_not() {
    let out = run(&example("sandbox_bwrap"), &[], common::LONG * 3);
    let stdout = stdout_of(&out, "sandbox_bwrap");
    if let Some(reason) = stdout.lines().find(|l| l.starts_with("skipped:")) {
        eprintln!("{reason}");
        return;
    }
    assert!(stdout.contains("sandbox ok"), "{stdout}");
}
