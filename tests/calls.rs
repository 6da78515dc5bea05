//! Calls of every shape, many concurrent callers, the task registry and `is_main`.

mod common;

use common::{pool, LONG};

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        OnceLock,
    },
    time::Duration,
};

use knitting::{Pool, Signal, Task as _, TaskId};

// ---------------------------------------------------------------------------
// Tasks of several arities and types.

#[knitting::task]
fn answer() -> u64 {
    42
}

#[knitting::task]
fn negate(value: i32) -> i32 {
    -value
}

#[knitting::task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[knitting::task]
fn describe(name: String, count: u8, ratio: f64, tags: Vec<&'static str>) -> String {
    format!("{name}:{count}:{ratio}:{}", tags.join(","))
}

#[knitting::task]
fn shout(text: String) -> String {
    text.to_uppercase()
}

#[knitting::task]
fn reversed(items: Vec<u32>) -> Vec<u32> {
    items.into_iter().rev().collect()
}

#[derive(Debug, Clone, PartialEq)]
struct Point {
    x: i32,
    y: i32,
    label: String,
}

#[knitting::task]
fn mirror(point: Point) -> Point {
    Point {
        x: -point.x,
        y: -point.y,
        label: format!("mirrored {}", point.label),
    }
}

#[knitting::task]
fn halve_even(value: Option<u32>) -> Option<u32> {
    value.filter(|v| v % 2 == 0).map(|v| v / 2)
}

static UNIT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[knitting::task]
fn record_unit(amount: usize) {
    UNIT_RUNS.fetch_add(amount, Ordering::SeqCst);
}

/// Deliberately neither `Clone` nor `Copy`: it can only be moved back.
#[derive(Debug, PartialEq)]
struct Owned {
    bytes: Vec<u8>,
    name: String,
}

#[knitting::task]
fn make_owned(len: usize) -> Owned {
    Owned {
        bytes: vec![7; len],
        name: format!("owned-{len}"),
    }
}

static TOKEN_DROPS: AtomicUsize = AtomicUsize::new(0);

/// Counts its drops, to check that arguments and results are moved, never
/// duplicated or leaked.
#[derive(Debug)]
struct Token(u32);

impl Drop for Token {
    fn drop(&mut self) {
        TOKEN_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[knitting::task]
fn swap_token(token: Token) -> Token {
    Token(token.0 + 1)
}

#[test]
fn calls_of_several_arities_and_types() {
    let pool = pool(2);

    assert_eq!(pool.call(answer, ()).wait().unwrap(), 42);
    assert_eq!(pool.call(negate, 5).wait().unwrap(), -5);
    assert_eq!(pool.call(add, (40, 2)).wait().unwrap(), 42);
    assert_eq!(
        pool.call(describe, ("knit".to_string(), 3, 0.5, vec!["a", "b"]))
            .wait()
            .unwrap(),
        "knit:3:0.5:a,b"
    );
    assert_eq!(
        pool.call(shout, "hello".to_string()).wait().unwrap(),
        "HELLO"
    );
    assert_eq!(
        pool.call(reversed, vec![1, 2, 3]).wait().unwrap(),
        vec![3, 2, 1]
    );
    let point = Point {
        x: 1,
        y: -2,
        label: "p".into(),
    };
    assert_eq!(
        pool.call(mirror, point).wait().unwrap(),
        Point {
            x: -1,
            y: 2,
            label: "mirrored p".into()
        }
    );
    assert_eq!(pool.call(halve_even, Some(8)).wait().unwrap(), Some(4));
    assert_eq!(pool.call(halve_even, Some(7)).wait().unwrap(), None);
    assert_eq!(pool.call(halve_even, None).wait().unwrap(), None);

    let before = UNIT_RUNS.load(Ordering::SeqCst);
    pool.call(record_unit, 3).wait().unwrap();
    assert_eq!(UNIT_RUNS.load(Ordering::SeqCst), before + 3);

    let owned: Owned = pool.call(make_owned, 4).wait().unwrap();
    assert_eq!(
        owned,
        Owned {
            bytes: vec![7; 4],
            name: "owned-4".into()
        }
    );
}

#[test]
fn tasks_stay_callable_locally() {
    assert_eq!(answer(), 42);
    assert_eq!(add(2, 3), 5);
    assert_eq!(shout("x".into()), "X");
    assert_eq!(halve_even(Some(2)), Some(1));
}

#[test]
fn arguments_and_results_are_moved_exactly_once() {
    let pool = pool(1);
    // Only this test touches `Token`.
    let base = TOKEN_DROPS.load(Ordering::SeqCst);
    let back = pool.call(swap_token, Token(1)).wait().unwrap();
    // The argument was consumed (dropped) on the worker, once.
    assert_eq!(TOKEN_DROPS.load(Ordering::SeqCst), base + 1);
    assert_eq!(back.0, 2);
    drop(back);
    assert_eq!(TOKEN_DROPS.load(Ordering::SeqCst), base + 2);

    // A finished call whose handle is dropped without taking the result
    // drops the result once.
    let call = pool.call(swap_token, Token(10));
    let started = std::time::Instant::now();
    while !call.is_finished() {
        assert!(started.elapsed() < LONG, "call never finished");
        std::thread::yield_now();
    }
    assert_eq!(TOKEN_DROPS.load(Ordering::SeqCst), base + 3);
    drop(call);
    assert_eq!(TOKEN_DROPS.load(Ordering::SeqCst), base + 4);

    // A running call whose handle is dropped: the argument is dropped by
    // the task, and the unwanted result by the worker, once each.
    let call = pool.call(hold_token, Token(20));
    let started = std::time::Instant::now();
    while !HOLDING.load(Ordering::SeqCst) {
        assert!(started.elapsed() < LONG, "hold_token never started");
        std::thread::yield_now();
    }
    drop(call);
    // One lane: once this call is answered, the dropped one has ended.
    assert_eq!(pool.call(answer, ()).wait().unwrap(), 42);
    assert_eq!(TOKEN_DROPS.load(Ordering::SeqCst), base + 6);

    // A queued call whose handle is dropped: its argument is dropped once,
    // and nothing else.
    HOLDING.store(false, Ordering::SeqCst);
    let call = pool.call(hold_token, Token(30));
    let started = std::time::Instant::now();
    while !HOLDING.load(Ordering::SeqCst) {
        assert!(started.elapsed() < LONG, "hold_token never started");
        std::thread::yield_now();
    }
    let queued = pool.call(swap_token, Token(40));
    drop(queued);
    assert_eq!(TOKEN_DROPS.load(Ordering::SeqCst), base + 7);
    drop(call);
    pool.shutdown();
    // Token 30 (the argument) and token 31 (the discarded result); the
    // dropped `swap_token` call never ran, or there would be two more.
    assert_eq!(TOKEN_DROPS.load(Ordering::SeqCst), base + 9);
}

static HOLDING: AtomicBool = AtomicBool::new(false);

/// Holds `token` until its caller gives up on the call (or 10 s pass).
#[knitting::task]
fn hold_token(token: Token, signal: &Signal) -> Token {
    HOLDING.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    while !signal.aborted() && started.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(1));
    }
    Token(token.0 + 1)
}

// ---------------------------------------------------------------------------
// The signal parameter, nested calls, and the builder.

/// The signal can sit anywhere among the parameters; it is not an argument.
#[knitting::task]
fn around_signal(a: u32, signal: &Signal, b: String) -> String {
    format!("{a}-{b}-{}", signal.aborted())
}

static INNER_POOL: OnceLock<Pool> = OnceLock::new();

/// A task that is itself a caller, on another pool.
#[knitting::task]
fn fan_out(values: Vec<i32>) -> Result<Vec<i32>, knitting::Error> {
    let inner = INNER_POOL.get().expect("inner pool set");
    let calls: Vec<_> = values.into_iter().map(|v| inner.call(negate, v)).collect();
    calls.into_iter().map(knitting::Call::wait).collect()
}

#[test]
fn signal_parameter_is_not_an_argument() {
    let pool = pool(1);
    assert_eq!(
        pool.call(around_signal, (7, "x".to_string()))
            .wait()
            .unwrap(),
        "7-x-false"
    );
}

#[test]
fn tasks_can_call_other_pools() {
    INNER_POOL.get_or_init(|| pool(2));
    let outer = pool(1);
    assert_eq!(
        outer.call(fan_out, vec![1, -2, 3]).wait().unwrap(),
        vec![-1, 2, -3]
    );
}

#[test]
fn default_thread_count_is_the_available_parallelism() {
    let pool = Pool::builder().build().unwrap();
    let expected = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(pool.threads(), expected);
    assert_eq!(pool.stats().lanes.len(), expected);
    assert!(!pool.is_closed());
}

#[test]
#[should_panic(expected = "at least one worker thread")]
fn zero_threads_is_refused() {
    let _ = Pool::builder().threads(0);
}

#[test]
#[should_panic(expected = "queue_capacity")]
fn zero_queue_capacity_is_refused() {
    let _ = Pool::builder().queue_capacity(0);
}

#[test]
#[should_panic(expected = "queue_capacity")]
fn oversized_queue_capacity_is_refused() {
    let _ = Pool::builder().queue_capacity((1 << 20) + 1);
}

// ---------------------------------------------------------------------------
// Many callers at once.

#[knitting::task]
fn mix(thread: u64, i: u64) -> (u64, u64, u64) {
    (
        thread,
        i,
        thread.wrapping_mul(1_000_003) ^ i.wrapping_mul(7919),
    )
}

fn expected_mix(thread: u64, i: u64) -> (u64, u64, u64) {
    (
        thread,
        i,
        thread.wrapping_mul(1_000_003) ^ i.wrapping_mul(7919),
    )
}

fn hammer(pool: &Pool, threads: u64, per_thread: u64) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                if t % 2 == 0 {
                    // One call at a time.
                    for i in 0..per_thread {
                        assert_eq!(pool.call(mix, (t, i)).wait().unwrap(), expected_mix(t, i));
                    }
                } else {
                    // Everything in flight at once, then collect.
                    let calls: Vec<_> = (0..per_thread).map(|i| pool.call(mix, (t, i))).collect();
                    for (i, call) in (0..per_thread).zip(calls) {
                        assert_eq!(call.wait().unwrap(), expected_mix(t, i));
                    }
                }
            });
        }
    });
}

#[test]
fn many_threads_many_calls_every_result_checked() {
    let pool = pool(2);
    hammer(&pool, 8, 2_000);
    pool.shutdown();
    let stats = pool.stats();
    assert!(stats.closed);
    assert_eq!(stats.lanes.len(), 2);
    assert_eq!(
        stats.lanes.iter().map(|l| l.completed).sum::<usize>(),
        8 * 2_000
    );
    assert!(stats.lanes.iter().all(|l| l.in_flight == 0));
}

#[test]
fn many_calls_overflowing_a_tiny_queue() {
    // Calls beyond the ring capacity go to the overflow list; none is lost.
    let pool = Pool::builder()
        .threads(2)
        .queue_capacity(4)
        .build()
        .unwrap();
    hammer(&pool, 4, 1_000);
}

// ---------------------------------------------------------------------------
// Where code runs.

#[knitting::task]
fn on_main() -> bool {
    knitting::is_main()
}

#[knitting::task]
fn thread_name() -> Option<String> {
    std::thread::current().name().map(str::to_owned)
}

#[test]
fn is_main_is_true_in_host_code_and_false_in_tasks() {
    assert!(knitting::is_main());
    let pool = pool(2);
    for _ in 0..4 {
        assert!(!pool.call(on_main, ()).wait().unwrap());
    }
    // Still true here after the calls, and locally the function says so too.
    assert!(knitting::is_main());
    assert!(on_main());
}

#[test]
fn worker_threads_carry_the_configured_name() {
    let pool = Pool::builder()
        .threads(1)
        .thread_name("calls-test")
        .build()
        .unwrap();
    assert_eq!(pool.threads(), 1);
    assert_eq!(
        pool.call(thread_name, ()).wait().unwrap().as_deref(),
        Some("calls-test-0")
    );
}

// ---------------------------------------------------------------------------
// The registry.

mod nested {
    #[knitting::task]
    pub(crate) fn inner(v: u8) -> u8 {
        v + 1
    }
}

#[knitting::task(name = "calls-test/custom")]
fn custom_named() -> &'static str {
    "custom"
}

#[test]
fn tasks_lists_this_files_tasks_with_stable_ids() {
    let expected: BTreeSet<&str> = [
        answer.info().name(),
        negate.info().name(),
        add.info().name(),
        describe.info().name(),
        shout.info().name(),
        reversed.info().name(),
        mirror.info().name(),
        halve_even.info().name(),
        record_unit.info().name(),
        make_owned.info().name(),
        swap_token.info().name(),
        hold_token.info().name(),
        around_signal.info().name(),
        fan_out.info().name(),
        mix.info().name(),
        on_main.info().name(),
        thread_name.info().name(),
        nested::inner.info().name(),
        custom_named.info().name(),
    ]
    .into_iter()
    .collect();
    assert_eq!(expected.len(), 19, "names are distinct");

    let listed: BTreeSet<&str> = knitting::tasks()
        .iter()
        .filter(|t| t.file() == file!())
        .map(|t| t.name())
        .collect();
    assert_eq!(listed, expected);

    // Default names are `module::path::function`; the option overrides it.
    assert_eq!(answer.info().name(), "calls::answer");
    assert_eq!(nested::inner.info().name(), "calls::nested::inner");
    assert_eq!(custom_named.info().name(), "calls-test/custom");

    for info in knitting::tasks().iter().filter(|t| t.file() == file!()) {
        assert_eq!(info.id(), TaskId::of(info.name()), "{}", info.name());
        assert!(info.line() > 0);
    }
    assert_eq!(answer.info().id(), TaskId::of("calls::answer"));
    assert_eq!(custom_named.info().id(), TaskId::of("calls-test/custom"));
    assert_ne!(answer.info().id(), add.info().id());
    assert_eq!(answer.info().file(), file!());

    // The registry hands out the same static info as the task value.
    assert!(knitting::tasks()
        .iter()
        .any(|t| std::ptr::eq(*t, nested::inner.info())));

    let pool = pool(1);
    assert_eq!(pool.call(nested::inner, 1).wait().unwrap(), 2);
    assert_eq!(pool.call(custom_named, ()).wait().unwrap(), "custom");
}
