//! Imported tasks: this test program calls, by name and declared types,
//! tasks that only the `import_worker` example executable defines.

knitting::init_before_main!();

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use common::LONG;
use knitting::{Call, Error, ErrorKind, ImportedTask, ProcessPool, Task as _, TaskId};

// The worker's tasks (examples/import_worker.rs), as a host declares them.
const WORD_COUNT: ImportedTask<String, usize> = ImportedTask::new("text::word_count");
const TOP_WORDS: ImportedTask<(String, usize), Vec<(String, usize)>> =
    ImportedTask::new("text::top_words");
const SUM_NUMBERS: ImportedTask<String, i64> = ImportedTask::new("text::sum_numbers");
const WORKER_PID: ImportedTask<(), u32> = ImportedTask::new("worker::pid");
const GREET: ImportedTask<String, String> = ImportedTask::new("text::greet");

/// The worker's `usize` result declared as a `String`.
const WORD_COUNT_AS_TEXT: ImportedTask<String, String> = ImportedTask::new("text::word_count");
/// The worker's `String` argument declared as a `u64`.
const WORD_COUNT_OF_NUMBER: ImportedTask<u64, usize> = ImportedTask::new("text::word_count");

/// The worker's `Stats` struct, mirrored in a module of the host's own.
mod mirror {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub(crate) struct Stats {
        pub(crate) min: u8,
        pub(crate) max: u8,
        pub(crate) mean: f64,
    }
}
/// `fn(Vec<u8>) -> Result<Stats, String>` in the worker, declared right.
const BYTE_STATS: ImportedTask<Vec<u8>, mirror::Stats> = ImportedTask::new("bytes::stats");
/// The same task declared with types whose encodings happen to be
/// readable as the worker's: postcard is not self-describing, so the
/// `String` "hello" arrives as the bytes of "hello", and the `Stats`
/// `{101, 111, 106.4}` reads as the tuple `(101, 111, 106.4)`.
const BYTE_STATS_AS_TUPLE: ImportedTask<String, (u8, u8, f64)> = ImportedTask::new("bytes::stats");
/// A name the worker does not define.
const SENTIMENT: ImportedTask<String, f64> = ImportedTask::new("text::sentiment");

const TEXT: &str = "The quick brown fox jumps over the lazy dog. \
                    The dog sleeps; the fox runs off, and the dog does not care.";

/// The `import_worker` example executable, built once per test run.
fn worker_exe() -> &'static Path {
    static WORKER: OnceLock<PathBuf> = OnceLock::new();
    WORKER.get_or_init(|| common::build_example("import_worker"))
}

fn process_pool(processes: usize) -> ProcessPool {
    knitting::Pool::builder()
        .processes(processes)
        .worker_executable(worker_exe())
        .build()
        .expect("the process pool starts with the import_worker example")
}

/// Waits for `call`, failing the test instead of hanging.
fn ended<T: Send + 'static>(mut call: Call<T>) -> Result<T, Error> {
    call.wait_timeout(LONG).expect("the call ends in time")
}

fn shut_down(pool: ProcessPool) {
    pool.shutdown_timeout(LONG)
        .expect("the pool shuts down in time");
}

#[test]
fn imported_calls_return_the_workers_values() {
    let pool = process_pool(2);
    let count = pool.call(WORD_COUNT, TEXT.to_string());
    let top = pool.call(TOP_WORDS, (TEXT.to_string(), 3));
    let sum = pool.call(SUM_NUMBERS, "1 2 39 -10".to_string());
    assert_eq!(ended(count).unwrap(), 22);
    assert_eq!(
        ended(top).unwrap(),
        vec![
            ("the".to_string(), 5),
            ("dog".to_string(), 3),
            ("fox".to_string(), 2)
        ]
    );
    assert_eq!(ended(sum).unwrap(), 32);

    // Many calls, spread over both workers, each with its own answer.
    let calls: Vec<_> = (0..200)
        .map(|i| pool.call(WORD_COUNT, "word ".repeat(i)))
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(ended(call).unwrap(), i);
    }
    shut_down(pool);
}

#[test]
fn a_task_error_arrives_with_its_message() {
    let pool = process_pool(1);
    let err = ended(pool.call(SUM_NUMBERS, "1 two 3".to_string())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Task);
    assert_eq!(
        err.message(),
        "`two` is not an integer: invalid digit found in string"
    );
    assert_eq!(err.task(), Some("text::sum_numbers"));
    // The worker goes on serving.
    assert_eq!(
        ended(pool.call(SUM_NUMBERS, "40 2".to_string())).unwrap(),
        42
    );
    shut_down(pool);
}

#[test]
fn a_name_the_worker_lacks_is_an_unknown_task() {
    let pool = process_pool(1);
    let err = ended(pool.call(SENTIMENT, TEXT.to_string())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTask, "{err}");
    assert_eq!(err.task(), Some("text::sentiment"));
    assert!(
        err.message()
            .contains(&TaskId::of("text::sentiment").to_string()),
        "the message names the missing id: {err}"
    );
    assert!(
        err.to_string().contains("`text::sentiment`"),
        "the message names the missing task: {err}"
    );
    // Not a protocol failure: the same worker answers the next call.
    let pid_before = pool.worker_pids();
    assert_eq!(
        ended(pool.call(WORD_COUNT, "one two".to_string())).unwrap(),
        2
    );
    assert_eq!(pool.worker_pids(), pid_before);
    assert_eq!(pool.stats().lanes[0].restarts, 0);
    shut_down(pool);
}

/// Asserts that `err` is a type mismatch that names the task and each of
/// `types` (as the message prints them: no module paths, no spaces).
fn assert_type_mismatch(err: &Error, task: &str, types: &[&str]) {
    assert_eq!(err.kind(), ErrorKind::TypeMismatch, "{err}");
    assert_eq!(err.task(), Some(task));
    assert!(err.message().contains(&format!("`{task}`")), "{err}");
    for ty in types {
        assert!(err.message().contains(&format!("`{ty}`")), "{ty} in: {err}");
    }
}

#[test]
fn mismatched_declared_types_are_type_mismatch_errors() {
    let pool = process_pool(1);

    // Wire-compatible, so before the check this returned a wrong value.
    let err = ended(pool.call(BYTE_STATS_AS_TUPLE, "hello".to_string())).unwrap_err();
    assert_type_mismatch(
        &err,
        "bytes::stats",
        &["String", "(u8,u8,f64)", "Vec<u8>", "Stats"],
    );
    assert!(err.message().contains("this host declares"), "{err}");
    assert!(err.message().contains("the worker's takes"), "{err}");

    // A wrong result type, and a wrong argument type.
    let err = ended(pool.call(WORD_COUNT_AS_TEXT, "one two three".to_string())).unwrap_err();
    assert_type_mismatch(&err, "text::word_count", &["String", "usize"]);
    let err = ended(pool.call(WORD_COUNT_OF_NUMBER, 1000)).unwrap_err();
    assert_type_mismatch(&err, "text::word_count", &["u64", "usize", "String"]);

    // None of them cost the worker.
    assert_eq!(
        ended(pool.call(WORD_COUNT, "one two three".to_string())).unwrap(),
        3
    );
    assert_eq!(pool.stats().lanes[0].restarts, 0);
    shut_down(pool);
}

#[test]
fn a_mirror_of_the_workers_struct_in_another_module_matches() {
    let pool = process_pool(1);
    let stats = ended(pool.call(BYTE_STATS, b"hello".to_vec())).unwrap();
    assert_eq!(
        stats,
        mirror::Stats {
            min: b'e',
            max: b'o',
            mean: 106.4
        }
    );
    let err = ended(pool.call(BYTE_STATS, Vec::new())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Task, "{err}");
    assert_eq!(err.message(), "no bytes");
    shut_down(pool);
}

#[test]
fn the_tasks_run_in_other_processes() {
    let pool = process_pool(2);
    let me = std::process::id();
    let pids: Vec<u32> = pool
        .worker_pids()
        .into_iter()
        .map(|p| p.expect("every worker is running"))
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(!pids.contains(&me), "workers {pids:?} vs test {me}");
    assert_ne!(pids[0], pids[1]);

    let ran_in = ended(pool.call(WORKER_PID, ())).unwrap();
    assert_ne!(ran_in, me);
    assert!(pids.contains(&ran_in), "{ran_in} is one of {pids:?}");
    shut_down(pool);
}

#[test]
fn this_program_does_not_contain_the_workers_tasks() {
    for name in [
        "text::word_count",
        "text::top_words",
        "text::sum_numbers",
        "bytes::stats",
        "worker::pid",
    ] {
        assert!(
            knitting::tasks()
                .iter()
                .all(|t| t.name() != name && t.id() != TaskId::of(name)),
            "{name} is linked into the test program"
        );
    }
    // The declaration alone carries the name and the id the worker uses.
    assert_eq!(WORD_COUNT.info().name(), "text::word_count");
    assert_eq!(WORD_COUNT.info().id(), TaskId::of("text::word_count"));
}

#[test]
fn an_imported_task_on_a_thread_pool_is_unsupported() {
    let pool = knitting::Pool::builder().threads(1).build().unwrap();
    let err = ended(pool.call(WORD_COUNT, TEXT.to_string())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    pool.shutdown();
}

#[test]
fn a_missing_worker_program_fails_the_build() {
    let missing = worker_exe().with_file_name("no_such_import_worker");
    let err = knitting::Pool::builder()
        .processes(1)
        .worker_executable(&missing)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err}");
}

#[test]
fn the_worker_run_by_hand_says_what_it_is() {
    let out = Command::new(worker_exe()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run the import_host example"), "{stderr}");
}

#[test]
fn a_worker_program_runs_its_bootstrap_by_the_name_the_host_gives() {
    let pool = knitting::Pool::builder()
        .processes(2)
        .worker_executable(worker_exe())
        .bootstrap_named("text::greeting", "hello")
        .build()
        .unwrap();
    assert_eq!(ended(pool.call(GREET, "fox".into())).unwrap(), "hello, fox");
    shut_down(pool);

    // Its error fails the build, named and with its message.
    let err = knitting::Pool::builder()
        .processes(1)
        .worker_executable(worker_exe())
        .bootstrap_named("text::greeting", "")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err}");
    let msg = err.message();
    assert!(
        msg.contains("`text::greeting`") && msg.contains("the greeting is empty"),
        "{msg}"
    );

    // A name the worker program does not define fails the build too.
    let err = knitting::Pool::builder()
        .processes(1)
        .worker_executable(worker_exe())
        .bootstrap_named("text::farewell", &())
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Startup, "{err}");
    assert!(err.message().contains("no bootstrap of that name"), "{err}");
}
