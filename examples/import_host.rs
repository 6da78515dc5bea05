//! Calling tasks that another program defines: this host names each task by
//! its name and its types (`knitting::ImportedTask`), and the `import_worker`
//! example, a separate executable, runs them in worker processes. This
//! program does not contain the tasks' code, nor depend on it.
//!
//! Build the worker first, with the same profile, then run the host:
//!
//! ```text
//! cargo build --example import_worker && cargo run --example import_host
//! cargo build --release --example import_worker && cargo run --release --example import_host
//! ```
//!
//! The host looks for `import_worker` next to its own executable, which is
//! where cargo puts both examples of one profile.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use knitting::{ErrorKind, ImportedTask};

// The worker's tasks, as this host sees them: a name and the types.
// Several parameters are one tuple, no parameter is `()`.

/// `fn word_count(text: String) -> usize` in the worker.
const WORD_COUNT: ImportedTask<String, usize> = ImportedTask::new("text::word_count");
/// `fn top_words(text: String, n: usize) -> Vec<(String, usize)>`.
const TOP_WORDS: ImportedTask<(String, usize), Vec<(String, usize)>> =
    ImportedTask::new("text::top_words");
/// `fn sum_numbers(text: String) -> Result<i64, String>`: the call yields
/// the `i64`, and the `Err` arrives as an error of kind `Task`.
const SUM_NUMBERS: ImportedTask<String, i64> = ImportedTask::new("text::sum_numbers");
/// `fn worker_pid() -> u32`.
const WORKER_PID: ImportedTask<(), u32> = ImportedTask::new("worker::pid");

// Two mistakes, to show how they fail.

/// A name the worker does not define.
const SENTIMENT: ImportedTask<String, f64> = ImportedTask::new("text::sentiment");
/// The right name with the wrong output type (the worker returns `usize`).
const WORD_COUNT_AS_TEXT: ImportedTask<String, String> = ImportedTask::new("text::word_count");
/// The right name with types whose encodings the worker's would decode as:
/// `fn byte_stats(bytes: Vec<u8>) -> Result<Stats, String>` in the worker.
/// Without the type check this would return `(101, 111, 106.4)` for
/// "hello"; with it, the call fails and names both sides' types.
const BYTE_STATS_AS_TUPLE: ImportedTask<String, (u8, u8, f64)> = ImportedTask::new("bytes::stats");

/// The worker's `Stats`, declared here: the type check compares type names
/// without module paths, so this copy matches the worker's.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[allow(dead_code)] // read through `Debug`
struct Stats {
    min: u8,
    max: u8,
    mean: f64,
}
/// `fn byte_stats(bytes: Vec<u8>) -> Result<Stats, String>`.
const BYTE_STATS: ImportedTask<Vec<u8>, Stats> = ImportedTask::new("bytes::stats");

const TEXT: &str = "The quick brown fox jumps over the lazy dog. \
                    The dog sleeps; the fox runs off, and the dog does not care.";

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    knitting::init(); // a no-op here: this program is only ever a host

    let worker = worker_path()?;
    if !worker.exists() {
        eprintln!(
            "the worker program {} is missing: run `cargo build{} --example import_worker` first",
            worker.display(),
            profile_flag(&worker)
        );
        return Ok(ExitCode::from(1));
    }
    let pool = knitting::Pool::builder()
        .processes(2)
        .worker_executable(&worker)
        .build()?;
    println!("worker program: {}", worker.display());
    println!(
        "host pid {}, worker pids {:?}",
        std::process::id(),
        pool.worker_pids()
    );

    // Calls in flight together, then waited for.
    let count = pool.call(WORD_COUNT, TEXT.to_string());
    let top = pool.call(TOP_WORDS, (TEXT.to_string(), 3));
    let pid = pool.call(WORKER_PID, ());
    println!("word_count   = {}", count.wait()?);
    println!("top_words(3) = {:?}", top.wait()?);
    println!("worker::pid  = {}", pid.wait()?);

    println!(
        "sum_numbers(\"1 2 39\") = {}",
        pool.call(SUM_NUMBERS, "1 2 39".into()).wait()?
    );
    let err = pool
        .call(SUM_NUMBERS, "1 two 3".into())
        .wait()
        .expect_err("`two` is not a number");
    assert_eq!(err.kind(), ErrorKind::Task);
    println!(
        "sum_numbers(\"1 two 3\") failed: {:?}: {}",
        err.kind(),
        err.message()
    );

    println!(
        "bytes::stats(\"hello\") = {:?}",
        pool.call(BYTE_STATS, b"hello".to_vec()).wait()?
    );

    let err = pool
        .call(SENTIMENT, TEXT.to_string())
        .wait()
        .expect_err("the worker has no such task");
    assert_eq!(err.kind(), ErrorKind::UnknownTask);
    println!("text::sentiment failed: {:?}: {err}", err.kind());

    let err = pool
        .call(WORD_COUNT_AS_TEXT, TEXT.to_string())
        .wait()
        .expect_err("a usize is not a String");
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    println!("text::word_count as String failed: {:?}: {err}", err.kind());

    let err = pool
        .call(BYTE_STATS_AS_TUPLE, "hello".to_string())
        .wait()
        .expect_err("the worker's task takes other types");
    assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    println!(
        "bytes::stats as (u8, u8, f64) failed: {:?}: {err}",
        err.kind()
    );

    pool.shutdown();
    println!("shut down; {:?}", pool.stats());
    Ok(ExitCode::SUCCESS)
}

/// Where cargo puts the worker example: next to this one.
fn worker_path() -> std::io::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name("import_worker"))
}

/// The cargo flag that builds the worker into `worker`'s directory,
/// `target/<profile>/examples`: none for `debug`, `--release`, or
/// `--profile <name>`.
fn profile_flag(worker: &Path) -> String {
    let profile = worker
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str());
    match profile {
        Some("debug") | None => String::new(),
        Some("release") => " --release".to_owned(),
        Some(other) => format!(" --profile {other}"),
    }
}
