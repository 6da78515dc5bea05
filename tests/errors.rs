//! How calls fail: panics, task errors with their source chain, and the `Error` type itself.

mod common;

use common::pool;

use std::{error::Error as StdError, fmt, panic::AssertUnwindSafe, thread::ThreadId};

use knitting::{ErrorKind, Pool, RemoteError, Task as _};

// ---------------------------------------------------------------------------
// Panics.

#[knitting::task]
fn static_boom() -> u32 {
    panic!("static boom")
}

#[knitting::task]
fn formatted_boom(value: u32) -> u32 {
    // The line is in the message so the test can check the location exactly.
    panic!("formatted boom {value} at line {}", line!())
}

#[knitting::task]
fn worker_id() -> ThreadId {
    std::thread::current().id()
}

/// Splits a `file:line:column` location.
fn parse_location(location: &str) -> (&str, u32, u32) {
    let mut parts = location.rsplitn(3, ':');
    let column = parts.next().unwrap().parse().expect("a column number");
    let line = parts.next().unwrap().parse().expect("a line number");
    let file = parts.next().expect("a file");
    (file, line, column)
}

#[test]
fn panic_payloads_have_the_expected_types() {
    // Guards the premise of the next test: one task panics with a `&str`
    // payload, the other with a formatted `String`.
    let payload = std::panic::catch_unwind(*static_boom).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"static boom"));
    let payload = std::panic::catch_unwind(AssertUnwindSafe(|| formatted_boom(1))).unwrap_err();
    assert!(payload.downcast_ref::<String>().is_some());
}

#[test]
fn a_panicking_task_becomes_a_panic_error_and_the_worker_survives() {
    let pool = pool(1);
    let worker = pool.call(worker_id, ()).wait().unwrap();
    assert_ne!(worker, std::thread::current().id());

    // A `&'static str` payload.
    let err = pool.call(static_boom, ()).wait().unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert!(!err.is_task_error() && !err.is_closed() && !err.is_cancelled());
    assert_eq!(err.message(), "static boom");
    assert_eq!(err.task(), Some(static_boom.info().name()));
    let location = err.location().expect("a panic has a location");
    assert!(location.contains("tests/"), "{location}");
    assert!(location.contains("errors.rs"), "{location}");
    let (file, line, column) = parse_location(location);
    assert_eq!(file, file!());
    assert!(line > static_boom.info().line(), "{location}");
    assert!(column > 0);
    let shown = err.to_string();
    assert!(shown.contains("errors::static_boom"), "{shown}");
    assert!(shown.contains("static boom"), "{shown}");
    assert!(shown.contains(location), "{shown}");
    assert!(err.source().is_none());

    // The same worker goes on serving.
    assert_eq!(pool.call(worker_id, ()).wait().unwrap(), worker);

    // A formatted `String` payload.
    let err = pool.call(formatted_boom, 7).wait().unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    let message = err.message().to_owned();
    let prefix = "formatted boom 7 at line ";
    assert!(message.starts_with(prefix), "{message}");
    let panic_line: u32 = message[prefix.len()..].parse().unwrap();
    let location = err.location().expect("a panic has a location");
    let (file, line, _) = parse_location(location);
    assert_eq!((file, line), (file!(), panic_line), "{location}");
    let shown = err.to_string();
    assert!(shown.contains("errors::formatted_boom"), "{shown}");
    assert!(shown.contains(&message), "{shown}");

    // Still the same worker, still serving, many times over.
    for _ in 0..3 {
        assert!(pool.call(static_boom, ()).wait().unwrap_err().is_panic());
        assert_eq!(pool.call(worker_id, ()).wait().unwrap(), worker);
    }
}

#[knitting::task]
fn unwrap_none(value: Option<u32>) -> u32 {
    value.unwrap()
}

#[test]
fn a_panic_in_library_code_points_at_the_task() {
    let pool = pool(1);
    assert_eq!(pool.call(unwrap_none, Some(3)).wait().unwrap(), 3);
    let err = pool.call(unwrap_none, None).wait().unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(err.message(), "called `Option::unwrap()` on a `None` value");
    // `unwrap` is `#[track_caller]`: the location is the task's line.
    let (file, line, _) = parse_location(err.location().expect("a location"));
    assert_eq!(file, file!());
    assert!(line > unwrap_none.info().line());
}

// ---------------------------------------------------------------------------
// Task errors.

#[derive(Debug)]
struct RootCause;

impl fmt::Display for RootCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("disk sector 7 unreadable")
    }
}

impl StdError for RootCause {}

#[derive(Debug)]
struct ReadFailed {
    source: RootCause,
}

impl fmt::Display for ReadFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("could not read config.toml")
    }
}

impl StdError for ReadFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

#[derive(Debug)]
struct LoadFailed {
    source: ReadFailed,
}

impl fmt::Display for LoadFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("loading settings failed")
    }
}

impl StdError for LoadFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

fn load_failed() -> LoadFailed {
    LoadFailed {
        source: ReadFailed { source: RootCause },
    }
}

#[knitting::task]
fn load(ok: bool) -> Result<u32, LoadFailed> {
    if ok {
        Ok(7)
    } else {
        Err(load_failed())
    }
}

#[knitting::task]
fn check_positive(value: i32) -> Result<i32, String> {
    if value > 0 {
        Ok(value)
    } else {
        Err(format!("{value} is not positive"))
    }
}

#[knitting::task]
fn boxed_failure(kind: u8) -> Result<&'static str, Box<dyn StdError + Send + Sync>> {
    match kind {
        0 => Ok("fine"),
        1 => Err("plain boxed message".into()),
        _ => Err(Box::new(load_failed())),
    }
}

#[knitting::task]
fn io_result(fail: bool) -> std::io::Result<u64> {
    if fail {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such widget",
        ))
    } else {
        Ok(11)
    }
}

#[knitting::task]
fn str_error(fail: bool) -> Result<u8, &'static str> {
    if fail {
        Err("a static reason")
    } else {
        Ok(1)
    }
}

/// The messages of a `source()` chain, outermost first.
fn chain(err: &(dyn StdError + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e.to_string());
        next = e.source();
    }
    out
}

#[test]
fn a_task_error_keeps_its_whole_source_chain() {
    let pool = pool(1);
    assert_eq!(pool.call(load, true).wait().unwrap(), 7);

    let err = pool.call(load, false).wait().unwrap_err();
    assert!(err.is_task_error(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Task);
    assert!(!err.is_panic());
    assert_eq!(err.message(), "loading settings failed");
    assert_eq!(err.task(), Some(load.info().name()));
    assert!(err.location().is_none());
    let shown = err.to_string();
    assert!(shown.contains("errors::load"), "{shown}");

    let outer = err.source().expect("the task's error");
    assert_eq!(outer.to_string(), "loading settings failed");
    let middle = outer.source().expect("the middle error");
    assert_eq!(middle.to_string(), "could not read config.toml");
    let root = middle.source().expect("the root cause");
    assert_eq!(root.to_string(), "disk sector 7 unreadable");
    assert!(root.source().is_none());

    // Each link is a `RemoteError`.
    let remote: &RemoteError = outer.downcast_ref().expect("a RemoteError");
    assert_eq!(remote.message(), "loading settings failed");
    let remote_root: &RemoteError = root.downcast_ref().expect("a RemoteError");
    assert_eq!(remote_root.message(), "disk sector 7 unreadable");

    assert_eq!(
        chain(&err)[1..],
        [
            "loading settings failed",
            "could not read config.toml",
            "disk sector 7 unreadable"
        ]
    );
}

#[test]
fn string_errors_become_task_errors() {
    let pool = pool(1);
    assert_eq!(pool.call(check_positive, 3).wait().unwrap(), 3);
    let err = pool.call(check_positive, -2).wait().unwrap_err();
    assert!(err.is_task_error(), "{err:?}");
    assert_eq!(err.message(), "-2 is not positive");
    let source = err.source().expect("the message as a source");
    assert_eq!(source.to_string(), "-2 is not positive");
    assert!(source.source().is_none());
}

#[test]
fn boxed_errors_become_task_errors_with_their_chain() {
    let pool = pool(1);
    assert_eq!(pool.call(boxed_failure, 0).wait().unwrap(), "fine");

    let err = pool.call(boxed_failure, 1).wait().unwrap_err();
    assert!(err.is_task_error(), "{err:?}");
    assert_eq!(err.message(), "plain boxed message");
    assert_eq!(chain(&err)[1..], ["plain boxed message"]);

    let err = pool.call(boxed_failure, 2).wait().unwrap_err();
    assert!(err.is_task_error(), "{err:?}");
    assert_eq!(err.message(), "loading settings failed");
    assert_eq!(
        chain(&err)[1..],
        [
            "loading settings failed",
            "could not read config.toml",
            "disk sector 7 unreadable"
        ]
    );
}

#[test]
fn str_errors_become_task_errors() {
    let pool = pool(1);
    assert_eq!(pool.call(str_error, false).wait().unwrap(), 1);
    let err = pool.call(str_error, true).wait().unwrap_err();
    assert!(err.is_task_error(), "{err:?}");
    assert_eq!(err.message(), "a static reason");
    assert_eq!(err.source().unwrap().to_string(), "a static reason");
}

#[test]
fn io_result_alias_is_recognised_as_a_result() {
    let pool = pool(1);
    let value: u64 = pool.call(io_result, false).wait().unwrap();
    assert_eq!(value, 11);
    let err = pool.call(io_result, true).wait().unwrap_err();
    assert!(err.is_task_error(), "{err:?}");
    assert_eq!(err.message(), "no such widget");
}

// ---------------------------------------------------------------------------
// The `Error` type.

#[knitting::task]
fn double(value: i64) -> i64 {
    value * 2
}

fn assert_send_sync_static<T: Send + Sync + 'static>() {}

#[test]
fn error_and_pool_are_send_sync_static() {
    assert_send_sync_static::<knitting::Error>();
    assert_send_sync_static::<knitting::ErrorKind>();
    assert_send_sync_static::<RemoteError>();
    assert_send_sync_static::<Pool>();
    // A handle can move to another thread (or into `tokio::spawn`).
    fn assert_send<T: Send + 'static>() {}
    assert_send::<knitting::Call<String>>();

    // An error can be moved to and shared with other threads.
    let pool = pool(1);
    let err = pool.call(static_boom, ()).wait().unwrap_err();
    let shared = std::sync::Arc::new(err);
    let seen = std::thread::scope(|s| s.spawn(|| shared.message().to_owned()).join().unwrap());
    assert_eq!(seen, "static boom");
}

fn via_question_mark(pool: &Pool, fail: bool) -> Result<i64, Box<dyn StdError>> {
    let doubled = pool.call(double, 21).wait()?;
    if fail {
        pool.call(load, false).wait()?;
    }
    Ok(doubled)
}

fn via_question_mark_send_sync(pool: &Pool) -> Result<(), Box<dyn StdError + Send + Sync>> {
    pool.call(check_positive, 0).wait()?;
    Ok(())
}

#[test]
fn errors_convert_with_question_mark() {
    let pool = pool(1);
    assert_eq!(via_question_mark(&pool, false).unwrap(), 42);

    let boxed = via_question_mark(&pool, true).unwrap_err();
    let err: &knitting::Error = boxed.downcast_ref().expect("a knitting::Error");
    assert!(err.is_task_error());
    // The chain survives the boxing.
    assert_eq!(
        chain(&*boxed)[1..],
        [
            "loading settings failed",
            "could not read config.toml",
            "disk sector 7 unreadable"
        ]
    );

    let boxed = via_question_mark_send_sync(&pool).unwrap_err();
    let err: &knitting::Error = boxed.downcast_ref().expect("a knitting::Error");
    assert_eq!(err.message(), "0 is not positive");

    // A build that succeeds goes through `?` too.
    fn build() -> Result<Pool, Box<dyn StdError + Send + Sync>> {
        Ok(Pool::builder().threads(1).build()?)
    }
    assert_eq!(build().unwrap().threads(), 1);
}
