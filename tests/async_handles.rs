//! The call handle as a future (tokio, pollster, a hand-written executor) and as a bounded blocking waiter.

mod common;

use common::{pool, LONG};

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::{pin, Pin},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll, Wake, Waker},
    thread::Thread,
    time::{Duration, Instant},
};

// ---------------------------------------------------------------------------
// Tasks.

#[knitting::task]
fn square(value: i64) -> i64 {
    value * value
}

#[knitting::task]
fn greet(name: String) -> String {
    format!("hello {name}")
}

#[knitting::task]
fn fails(message: String) -> Result<(), String> {
    Err(message)
}

/// One gate per test, so tests running in parallel do not open each other's.
static GATES: [AtomicBool; 8] = [const { AtomicBool::new(false) }; 8];

/// Returns `value` once gate `gate` opens (or after 10 s, so a broken test
/// cannot hang the suite).
#[knitting::task]
fn gated(gate: usize, value: u32) -> u32 {
    let start = Instant::now();
    while !GATES[gate].load(Ordering::SeqCst) && start.elapsed() < LONG {
        std::thread::sleep(Duration::from_millis(1));
    }
    value
}

fn open(gate: usize) {
    GATES[gate].store(true, Ordering::SeqCst);
}

// ---------------------------------------------------------------------------
// A minimal executor: poll, park until woken, poll again.

struct ThreadWaker {
    thread: Thread,
    wakes: AtomicUsize,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Runs `future` to completion on this thread; also returns how many times
/// its waker was woken.
fn block_on<F: Future>(future: F) -> (F::Output, usize) {
    let mut future = pin!(future);
    let state = Arc::new(ThreadWaker {
        thread: std::thread::current(),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(Arc::clone(&state));
    let mut cx = Context::from_waker(&waker);
    let start = Instant::now();
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return (output, state.wakes.load(Ordering::SeqCst));
        }
        assert!(start.elapsed() < LONG, "future never completed");
        // A wake that comes before the park leaves a token: no lost wake-up.
        // The timeout only bounds a broken test.
        std::thread::park_timeout(LONG);
    }
}

/// A waker that only counts.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------
// Executors.

#[test]
fn hand_written_executor_runs_calls() {
    let pool = pool(2);
    let (sum, _) = block_on(async {
        let mut sum = 0;
        for i in 0..20 {
            sum += pool.call(square, i).await.unwrap();
        }
        sum
    });
    assert_eq!(sum, (0..20).map(|i| i * i).sum::<i64>());

    let (message, _) = block_on(pool.call(greet, "executor".into()));
    assert_eq!(message.unwrap(), "hello executor");

    let (err, _) = block_on(pool.call(fails, "nope".into()));
    assert_eq!(err.unwrap_err().message(), "nope");
}

#[test]
fn hand_written_executor_is_woken_when_a_pending_call_ends() {
    const GATE: usize = 0;
    let pool = pool(1);
    let mut call = pool.call(gated, (GATE, 5));
    let (value, wakes) = block_on(async {
        // First poll: the task is held at its gate, so the call is pending
        // and has our waker. Only then may it finish.
        std::future::poll_fn(|cx| {
            assert!(Pin::new(&mut call).poll(cx).is_pending());
            open(GATE);
            Poll::Ready(())
        })
        .await;
        call.await
    });
    assert_eq!(value.unwrap(), 5);
    assert!(wakes >= 1, "the executor was never woken");
}

#[test]
fn the_latest_registered_waker_is_woken() {
    const GATE: usize = 1;
    let pool = pool(1);
    let mut call = pool.call(gated, (GATE, 6));
    let first = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let second = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let first_waker = Waker::from(Arc::clone(&first));
    let second_waker = Waker::from(Arc::clone(&second));
    assert!(Pin::new(&mut call)
        .poll(&mut Context::from_waker(&first_waker))
        .is_pending());
    assert!(Pin::new(&mut call)
        .poll(&mut Context::from_waker(&second_waker))
        .is_pending());
    open(GATE);
    let start = Instant::now();
    while second.0.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < LONG, "the second waker was never woken");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(call.is_finished());
    match Pin::new(&mut call).poll(&mut Context::from_waker(&second_waker)) {
        Poll::Ready(result) => assert_eq!(result.unwrap(), 6),
        Poll::Pending => panic!("woken but not ready"),
    }
}

#[test]
fn pollster_runs_calls() {
    const GATE: usize = 2;
    let pool = pool(2);
    let slow = pool.call(gated, (GATE, 9));
    let fast = pool.call(square, 12);
    let opener = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(5));
        open(GATE);
    });
    let (a, b, c) = pollster::block_on(async {
        let b = fast.await;
        let a = slow.await;
        let c = pool.call(greet, "pollster".into()).await;
        (a, b, c)
    });
    opener.join().unwrap();
    assert_eq!(a.unwrap(), 9);
    assert_eq!(b.unwrap(), 144);
    assert_eq!(c.unwrap(), "hello pollster");
}

#[tokio::test(flavor = "current_thread")]
async fn tokio_current_thread_awaits_calls() {
    let pool = pool(2);
    for i in 0..50 {
        assert_eq!(pool.call(square, i).await.unwrap(), i * i);
    }
    let (a, b, c) = tokio::join!(
        pool.call(square, 3),
        pool.call(greet, "tokio".into()),
        pool.call(fails, "joined failure".into()),
    );
    assert_eq!(a.unwrap(), 9);
    assert_eq!(b.unwrap(), "hello tokio");
    assert_eq!(c.unwrap_err().message(), "joined failure");

    // A call still running while the runtime's only thread waits on it.
    const GATE: usize = 3;
    let call = pool.call(gated, (GATE, 4));
    let opener = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(5));
        open(GATE);
    });
    assert_eq!(call.await.unwrap(), 4);
    opener.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_multi_thread_awaits_calls_from_spawned_tasks() {
    let pool = Arc::new(pool(2));
    let tasks: Vec<_> = (0..8i64)
        .map(|t| {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                let mut sum = 0;
                for i in 0..200 {
                    let v = t * 1_000 + i;
                    assert_eq!(pool.call(square, v).await.unwrap(), v * v);
                    sum += 1;
                }
                sum
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 8 * 200);

    let (a, b) = tokio::join!(pool.call(square, -4), pool.call(greet, "multi".into()));
    assert_eq!((a.unwrap(), b.unwrap().as_str()), (16, "hello multi"));

    // A handle moved into a spawned task and awaited there.
    let call = pool.call(greet, "moved".into());
    let joined = tokio::spawn(call).await.unwrap();
    assert_eq!(joined.unwrap(), "hello moved");
}

// ---------------------------------------------------------------------------
// Bounded blocking waits.

#[test]
fn wait_timeout_expires_and_the_handle_stays_usable() {
    const GATE: usize = 4;
    let pool = pool(1);
    let mut call = pool.call(gated, (GATE, 21));

    let timeout = Duration::from_millis(30);
    let before = Instant::now();
    assert!(call.wait_timeout(timeout).is_none());
    assert!(before.elapsed() >= timeout, "returned early");
    assert!(call.wait_timeout(Duration::ZERO).is_none());
    assert!(!call.is_finished());
    assert!(call.try_wait().is_none());

    open(GATE);
    assert_eq!(call.wait().unwrap(), 21);
}

#[test]
fn wait_deadline_expires_and_the_handle_stays_usable() {
    const GATE: usize = 5;
    let pool = pool(1);
    let mut call = pool.call(gated, (GATE, 22));

    let deadline = Instant::now() + Duration::from_millis(20);
    assert!(call.wait_deadline(deadline).is_none());
    assert!(Instant::now() >= deadline, "returned early");
    // A deadline in the past only looks.
    assert!(call.wait_deadline(deadline).is_none());

    open(GATE);
    let result = call
        .wait_deadline(Instant::now() + LONG)
        .expect("finished before the deadline");
    assert_eq!(result.unwrap(), 22);
}

#[test]
fn try_wait_and_is_finished_follow_the_call() {
    const GATE: usize = 6;
    let pool = pool(1);
    let mut call = pool.call(gated, (GATE, 23));
    assert!(!call.is_finished());
    assert!(call.try_wait().is_none());
    assert!(!call.is_finished());

    open(GATE);
    let start = Instant::now();
    while !call.is_finished() {
        assert!(start.elapsed() < LONG, "never finished");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(call.try_wait().expect("finished").unwrap(), 23);

    // The result was taken: a second look panics, as documented.
    assert!(!call.is_finished());
    let again = std::panic::catch_unwind(AssertUnwindSafe(|| call.try_wait()));
    assert!(again.is_err(), "taking a result twice must panic");
}

#[test]
fn huge_timeouts_mean_forever() {
    let pool = pool(1);
    let mut call = pool.call(square, 11);
    let result = call
        .wait_timeout(Duration::MAX)
        .expect("an overflowing timeout waits until the end");
    assert_eq!(result.unwrap(), 121);
}
