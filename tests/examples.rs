//! The examples that can check themselves run here: the axum service asks
//! itself a few requests on loopback, the bwrap sandbox runs (or says why
//! it cannot) and checks what its workers see, the sandbox example's
//! imported tasks try each escape and a granted write, and the progress
//! example reads every item a worker process streams.

mod common;

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

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
    let out = run(
        &common::build_example("axum_service"),
        &["--self-test"],
        common::LONG * 3,
    );
    let stdout = stdout_of(&out, "axum_service --self-test");
    assert!(stdout.contains("/square/12 -> 144"), "{stdout}");
    assert!(stdout.contains("self-test passed"), "{stdout}");
}

#[test]
fn the_bwrap_example_runs_sandboxed_or_says_why_not() {
    let out = run(
        &common::build_example("sandbox_bwrap"),
        &[],
        common::LONG * 3,
    );
    let stdout = stdout_of(&out, "sandbox_bwrap");
    if let Some(reason) = stdout.lines().find(|l| l.starts_with("skipped:")) {
        eprintln!("{reason}");
        return;
    }
    assert!(stdout.contains("sandbox ok"), "{stdout}");
}

#[test]
fn the_sandbox_example_refuses_each_escape_and_allows_the_granted_write() {
    common::build_example("sandbox_worker");
    let out = run(&common::build_example("sandbox"), &[], common::LONG * 3);
    let stdout = stdout_of(&out, "sandbox");
    if let Some(reason) = stdout.lines().find(|l| l.starts_with("skipped:")) {
        eprintln!("{reason}");
        return;
    }
    match common::bwrap::bwrap_unavailable() {
        None => assert!(stdout.starts_with("sandbox: bwrap"), "{stdout}"),
        Some(reason) => {
            eprintln!("bwrap cannot run here ({reason}): checking the permissions alone");
            assert!(stdout.starts_with("bwrap cannot run here"), "{stdout}");
        }
    }
    let line = |start: &str, has: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(start) && l.contains(has))
            .unwrap_or_else(|| panic!("no line `{start}...{has}...`:\n{stdout}"))
    };
    for (start, has) in [
        ("write /tmp/", ": "),
        ("connect 127.0.0.1:", ": "),
        ("read ", "/.ssh/"),
        ("exec /bin/true", ": "),
    ] {
        let line = line(start, has);
        assert!(
            line.contains(": refused (") && line.contains(") by Permissions::strict() ("),
            "{line}\n{stdout}"
        );
    }
    line("write ", "/granted.txt: ok (the host read back ");
    assert!(!stdout.contains("ALLOWED"), "{stdout}");
    assert!(stdout.ends_with("sandbox ok\n"), "{stdout}");
}

#[test]
fn the_diagnostics_example_shows_a_forwarded_event_and_a_crash() {
    let out = run(&common::build_example("diagnostics"), &[], common::LONG * 3);
    let stdout = stdout_of(&out, "the diagnostics example");
    for wanted in [
        "knitting::lifecycle: pool built",
        "knitting::worker: resizing width=640",
        "knitting::crash: worker process was killed by signal 6 (SIGABRT)",
        "knitting::worker: resizing width=320",
        "the crashing call failed",
        "and the replacement answers: 160",
    ] {
        assert!(stdout.contains(wanted), "no {wanted:?} in:\n{stdout}");
    }
}

#[test]
fn the_maybe_slow_example_finishes_the_fast_calls_and_times_out_the_slow_ones() {
    let out = run(&common::build_example("maybe_slow"), &[], common::LONG * 3);
    let stdout = stdout_of(&out, "maybe_slow");
    for id in [1, 2, 4, 5] {
        let line = format!("finished:  call {id} slept 10ms");
        assert!(stdout.contains(&line), "no {line:?} in:\n{stdout}");
    }
    for id in [0, 3] {
        let line = format!("timed out: call {id} (would sleep 1s)");
        assert!(stdout.contains(&line), "no {line:?} in:\n{stdout}");
    }
    assert!(stdout.contains("4 finished, 2 timed out"), "{stdout}");
}

#[test]
fn the_progress_example_reads_every_chunk_of_a_worker_process() {
    let out = run(&common::build_example("progress"), &[], common::LONG * 3);
    let stdout = stdout_of(&out, "progress");
    let line = |start: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line `{start}...`:\n{stdout}"))
    };
    let processed = line("processed ");
    assert!(
        processed.starts_with("processed 200 chunks (100 MiB) in "),
        "{stdout}"
    );
    let checksum = processed
        .rsplit_once(", checksum ")
        .map(|(_, hex)| hex)
        .unwrap_or_else(|| panic!("no checksum in {processed:?}"));
    assert!(
        checksum.len() == 16 && checksum.chars().all(|c| c.is_ascii_hexdigit()),
        "{processed}"
    );
    // Every item arrived, from another process.
    let read = line("read ");
    let (worker, host) = read
        .strip_prefix("read 200 progress items from worker process ")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|rest| rest.split_once(" (this process is "))
        .unwrap_or_else(|| panic!("unexpected line {read:?}:\n{stdout}"));
    assert_ne!(worker, host, "{read}");
    assert!(
        stdout.ends_with("the items fold to the summary's checksum\n"),
        "{stdout}"
    );
}

#[test]
fn the_panic_abort_example_keeps_every_other_call() {
    let out = run(&common::build_example("panic_abort"), &[], common::LONG * 3);
    let stdout = stdout_of(&out, "panic_abort");
    for line in [
        "built with panic = unwind",
        "the panicking call: task `panic_abort::checked_div` panicked at",
        "1 divided by zero",
        "the other calls: [840, 420, 280, 210, 168, 140, 120, 105]",
        "the stream: 10 items",
        "the async call: 42",
        "workers replaced: 0",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
}
