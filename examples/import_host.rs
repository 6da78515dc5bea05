//! Calling tasks that another program defines: this host names each task by
//! its name and its types (`knitting::ImportedTask`), and the `import_worker`
//! example, a separate executable, runs them in worker processes. This
//! program does not contain the tasks' code, nor depend on it.
//!
//! Build the worker first, then run the host:
//!
//! ```text
//! cargo build --example import_worker && cargo run --example import_host
//! ```
//!
//! The host looks for `import_worker` next to its own executable, which is
//! where cargo puts both examples.

use std::{path::PathBuf, process::ExitCode};

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

const TEXT: &str = "The quick brown fox jumps over the lazy dog. \
                    The dog sleeps; the fox runs off, and the dog does not care.";

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    knitting::init(); // a no-op here: this program is only ever a host

    let worker = worker_path()?;
    if !worker.exists() {
        eprintln!(
            "the worker program {} is missing: run `cargo build --example import_worker` first",
            worker.display()
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
    assert_eq!(err.kind(), ErrorKind::Codec);
    println!("text::word_count as String failed: {:?}: {err}", err.kind());

    pool.shutdown();
    println!("shut down; {:?}", pool.stats());
    Ok(ExitCode::SUCCESS)
}

/// Where cargo puts the worker example: next to this one.
fn worker_path() -> std::io::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name("import_worker"))
}
