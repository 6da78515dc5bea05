//! The core behaviour every runtime must show, run once on thread workers
//! and once on process workers through the one pool type
//! (`Pool<AnyRuntime>`): values of several types, task errors with their
//! source chains, panics, shutdown with calls in flight, and calls after
//! shutdown.

knitting::init_before_main!();

use std::{collections::BTreeMap, error::Error as StdError, fmt, time::Duration};

use knitting::{AnyRuntime, ErrorKind, Pool, RuntimeKind};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: f64,
    y: f64,
    label: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Dot(Point),
    Polygon(Vec<Point>),
    Empty,
}

#[knitting::task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[knitting::task]
fn shout(text: String) -> String {
    text.to_uppercase()
}

#[knitting::task]
fn reverse_bytes(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.reverse();
    bytes
}

#[knitting::task]
fn centroid(shape: Shape) -> Option<Point> {
    match shape {
        Shape::Dot(p) => Some(p),
        Shape::Polygon(points) if !points.is_empty() => {
            let n = points.len() as f64;
            Some(Point {
                x: points.iter().map(|p| p.x).sum::<f64>() / n,
                y: points.iter().map(|p| p.y).sum::<f64>() / n,
                label: Some(format!("{} points", points.len())),
            })
        }
        _ => None,
    }
}

#[knitting::task]
fn histogram(words: Vec<String>) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for word in words {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

#[knitting::task]
fn nothing() {}

#[knitting::task]
fn on_main() -> bool {
    knitting::is_main()
}

#[knitting::task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[derive(Debug)]
struct DiskFull;

impl fmt::Display for DiskFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("disk full")
    }
}

impl StdError for DiskFull {}

#[derive(Debug)]
struct SaveFailed(DiskFull);

impl fmt::Display for SaveFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("could not save the report")
    }
}

impl StdError for SaveFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

#[knitting::task]
fn save(ok: bool) -> Result<u32, SaveFailed> {
    if ok {
        Ok(7)
    } else {
        Err(SaveFailed(DiskFull))
    }
}

#[knitting::task]
fn validate(value: i32) -> Result<i32, String> {
    if value >= 0 {
        Ok(value)
    } else {
        Err(format!("{value} is negative"))
    }
}

#[knitting::task]
fn boom(value: u32) -> u32 {
    if value > 1 {
        panic!("value {value} is too big");
    }
    value
}

/// Counts until its caller aborts (or `limit`), sleeping a little per step
/// so that a test can abort it midway.
#[knitting::task]
fn count_until_stopped(limit: u64, signal: &knitting::Signal) -> u64 {
    let mut n = 0;
    while !signal.aborted() && n < limit {
        n += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    n
}

/// As `count_until_stopped`, keeping its count in `progress[0]`.
#[knitting::task]
fn count_in_view(limit: u64, progress: knitting::SharedBuffer, signal: &knitting::Signal) -> u64 {
    let words = progress
        .view::<std::sync::atomic::AtomicU64>()
        .expect("a word");
    let mut n = 0;
    while !signal.aborted() && n < limit {
        n += 1;
        words[0].store(n, std::sync::atomic::Ordering::Release);
        std::thread::sleep(Duration::from_millis(1));
    }
    n
}

/// A waker that runs `f` (once) when woken.
fn waker_fn(f: impl Fn() + Send + Sync + 'static) -> std::task::Waker {
    struct FnWaker<F>(F, std::sync::Once);
    impl<F: Fn() + Send + Sync + 'static> std::task::Wake for FnWaker<F> {
        fn wake(self: std::sync::Arc<Self>) {
            self.1.call_once(|| (self.0)());
        }
    }
    std::task::Waker::from(std::sync::Arc::new(FnWaker(f, std::sync::Once::new())))
}

/// Waits at most 10 s: a call that does not end fails the test instead of
/// hanging it.
fn within<T: Send + 'static>(mut call: knitting::Call<T>) -> Result<T, knitting::Error> {
    call.wait_timeout(Duration::from_secs(10))
        .expect("the call ended within 10 s")
}

fn chain(err: &(dyn StdError + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = err.source();
    while let Some(e) = next {
        out.push(e.to_string());
        next = e.source();
    }
    out
}

fn values_of_several_types_round_trip(pool: Pool<AnyRuntime>) {
    assert_eq!(pool.call(add, (40, 2)).wait().unwrap(), 42);
    assert_eq!(pool.call(shout, "knit".into()).wait().unwrap(), "KNIT");
    assert_eq!(
        pool.call(reverse_bytes, vec![1, 2, 3]).wait().unwrap(),
        vec![3, 2, 1]
    );
    pool.call(nothing, ()).wait().unwrap();
    let square = Shape::Polygon(vec![
        Point {
            x: 0.0,
            y: 0.0,
            label: None,
        },
        Point {
            x: 2.0,
            y: 0.0,
            label: None,
        },
        Point {
            x: 2.0,
            y: 2.0,
            label: None,
        },
        Point {
            x: 0.0,
            y: 2.0,
            label: Some("corner".into()),
        },
    ]);
    assert_eq!(
        pool.call(centroid, square).wait().unwrap(),
        Some(Point {
            x: 1.0,
            y: 1.0,
            label: Some("4 points".into())
        })
    );
    assert_eq!(pool.call(centroid, Shape::Empty).wait().unwrap(), None);
    let words = ["a", "b", "a", "c", "a"].map(String::from).to_vec();
    let counts = pool.call(histogram, words).wait().unwrap();
    assert_eq!(counts.get("a"), Some(&3));
    assert_eq!(counts.len(), 3);
    assert!(!pool.call(on_main, ()).wait().unwrap());
    assert!(knitting::is_main());
}

fn many_calls_from_many_threads_all_arrive(pool: Pool<AnyRuntime>) {
    std::thread::scope(|s| {
        for t in 0..4i64 {
            let pool = &pool;
            s.spawn(move || {
                let calls: Vec<_> = (0..250)
                    .map(|i| (i, pool.call(add, (t * 1000, i))))
                    .collect();
                for (i, call) in calls {
                    assert_eq!(call.wait().unwrap(), t * 1000 + i);
                }
            });
        }
    });
    // Counted once the workers are done: a worker counts a call just
    // after it publishes the result.
    pool.shutdown();
    let done: usize = pool.stats().lanes.iter().map(|l| l.completed).sum();
    assert_eq!(done, 1000);
}

fn async_handles_resolve(pool: Pool<AnyRuntime>) {
    let value = pollster::block_on(pool.call(shout, "async".into())).unwrap();
    assert_eq!(value, "ASYNC");
}

fn task_errors_keep_their_source_chain(pool: Pool<AnyRuntime>) {
    assert_eq!(pool.call(save, true).wait().unwrap(), 7);
    let err = pool.call(save, false).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Task);
    assert!(err.task().unwrap().ends_with("::save"));
    assert_eq!(err.message(), "could not save the report");
    assert_eq!(chain(&err), ["could not save the report", "disk full"]);

    let err = pool.call(validate, -3).wait().unwrap_err();
    assert!(err.is_task_error());
    assert_eq!(err.message(), "-3 is negative");
}

fn panics_arrive_with_message_and_location_and_the_worker_survives(pool: Pool<AnyRuntime>) {
    let err = pool.call(boom, 5).wait().unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(err.message(), "value 5 is too big");
    let location = err.location().expect("a panic has a location");
    assert!(location.contains("conformance.rs:"), "{location}");
    assert!(err.to_string().contains("panicked at"), "{err}");
    for v in 0..2 {
        assert_eq!(pool.call(boom, v).wait().unwrap(), v);
    }
}

fn abort_reaches_the_running_task(pool: Pool<AnyRuntime>) {
    let progress = knitting::SharedBuffer::new(8).expect("a shared buffer");
    let call = pool.call(count_in_view, (1_000_000, progress.clone()));
    // Abort once the task counts (a slow worker, under valgrind say, may
    // take longer than any fixed pause to start it).
    let count = progress
        .view::<std::sync::atomic::AtomicU64>()
        .expect("a word");
    let started = std::time::Instant::now();
    while count[0].load(std::sync::atomic::Ordering::Acquire) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the call never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    call.abort();
    let counted = within(call).unwrap();
    assert!((1..1_000_000).contains(&counted), "{counted}");
}

fn an_abort_before_the_call_starts_is_kept(pool: Pool<AnyRuntime>) {
    // One lane busy, so the aborted call waits its turn.
    let busy: Vec<_> = (0..2).map(|_| pool.call(nap, 50)).collect();
    let call = pool.call(count_until_stopped, 1_000_000);
    call.abort();
    assert_eq!(within(call).unwrap(), 0);
    for b in busy {
        b.wait().unwrap();
    }
}

fn dropping_a_call_cancels_it_and_stops_the_task(pool: Pool<AnyRuntime>) {
    let (first, second) = (
        pool.call(count_until_stopped, 1_000_000),
        pool.call(count_until_stopped, 1_000_000),
    );
    std::thread::sleep(Duration::from_millis(30));
    drop(first);
    let cancelled = second.cancel().unwrap_err();
    assert!(cancelled.is_cancelled(), "{cancelled:?}");
    // Both workers are free again: the tasks saw their signal
    // (left alone they would count for a quarter of an hour).
    let calls: Vec<_> = (0..4).map(|i| pool.call(add, (i, 1))).collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(within(call).unwrap(), i as i64 + 1);
    }
}

fn a_result_does_not_wait_for_the_next_call(pool: Pool<AnyRuntime>) {
    // A short call, then a long one on the same worker: the
    // short call's awaited result arrives long before the long
    // call ends (nobody spins on it: it is awaited).
    let busy: Vec<_> = (0..2).map(|_| pool.call(nap, 0)).collect();
    for b in busy {
        within(b).unwrap();
    }
    let short = pool.call(add, (1, 1));
    let long = pool.call(nap, 400);
    let also_long = pool.call(nap, 400);
    let started = std::time::Instant::now();
    assert_eq!(pollster::block_on(short).unwrap(), 2);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(200), "{took:?}");
    within(long).unwrap();
    within(also_long).unwrap();
}

fn a_waker_may_call_the_same_pool(pool: Pool<AnyRuntime>) {
    // A waker that runs code of its own (some executors poll
    // inline) and calls the pool again must not find a lock of
    // the pool held.
    let (again, seen) = (
        pool.clone(),
        std::sync::Arc::new(std::sync::Mutex::new(None)),
    );
    let seen_by_waker = std::sync::Arc::clone(&seen);
    let waker = waker_fn(move || {
        let value = again.call(add, (1, 2)).wait();
        *seen_by_waker.lock().unwrap() = Some(value.map_err(|e| e.to_string()));
    });
    let mut call = pool.call(nap, 20);
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(std::future::Future::poll(std::pin::Pin::new(&mut call), &mut cx).is_pending());
    let started = std::time::Instant::now();
    while seen.lock().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the waker never ran"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(seen.lock().unwrap().clone().unwrap(), Ok(3));
    assert_eq!(within(call).unwrap(), 20);
}

fn shutdown_finishes_calls_in_flight(pool: Pool<AnyRuntime>) {
    let calls: Vec<_> = (0..6).map(|i| pool.call(nap, 20 + i)).collect();
    pool.shutdown();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.wait().unwrap(), 20 + i as u64);
    }
    assert!(pool.is_closed());
}

fn calls_after_shutdown_fail_closed(pool: Pool<AnyRuntime>) {
    pool.shutdown();
    let err = pool.call(add, (1, 1)).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

fn dropping_the_pool_still_finishes_queued_calls(pool: Pool<AnyRuntime>) {
    let calls: Vec<_> = (0..4).map(|i| pool.call(nap, 10 + i)).collect();
    drop(pool);
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.wait().unwrap(), 10 + i as u64);
    }
}

fn shutdown_timeout_fails_what_is_left(pool: Pool<AnyRuntime>) {
    let long = pool.call(nap, 5_000);
    // Let the call start.
    std::thread::sleep(Duration::from_millis(50));
    let err = pool
        .shutdown_timeout(Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(long.wait().unwrap_err().is_closed());
}

/// A 2-worker pool of the given runtime, as the one pool type the tests
/// above take.
fn pool(runtime: RuntimeKind) -> Pool<AnyRuntime> {
    let builder = Pool::builder();
    match runtime {
        RuntimeKind::Threads => builder.threads(2).build().expect("thread pool").into(),
        _ => builder.processes(2).build().expect("process pool").into(),
    }
}

/// One `#[test]` per runtime for each test above.
macro_rules! for_each_runtime {
    ($($test:ident),* $(,)?) => {
        mod threads {
            $(
                #[test]
                fn $test() {
                    let pool = super::pool(knitting::RuntimeKind::Threads);
                    assert_eq!(pool.runtime(), knitting::RuntimeKind::Threads);
                    super::$test(pool);
                }
            )*
        }
        mod processes {
            $(
                #[test]
                fn $test() {
                    let pool = super::pool(knitting::RuntimeKind::Processes);
                    assert_eq!(pool.runtime(), knitting::RuntimeKind::Processes);
                    super::$test(pool);
                }
            )*
        }
    };
}

for_each_runtime!(
    a_result_does_not_wait_for_the_next_call,
    an_abort_before_the_call_starts_is_kept,
    values_of_several_types_round_trip,
    many_calls_from_many_threads_all_arrive,
    async_handles_resolve,
    task_errors_keep_their_source_chain,
    panics_arrive_with_message_and_location_and_the_worker_survives,
    abort_reaches_the_running_task,
    dropping_a_call_cancels_it_and_stops_the_task,
    a_waker_may_call_the_same_pool,
    shutdown_finishes_calls_in_flight,
    calls_after_shutdown_fail_closed,
    dropping_the_pool_still_finishes_queued_calls,
    shutdown_timeout_fails_what_is_left,
);
