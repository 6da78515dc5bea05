//! Streaming tasks on both runtimes: items in order, back-pressure (the
//! task never runs more than the bound ahead of its reader), dropping the
//! stream stops the task, a failed call ends the stream after the items
//! sent before it, and the stream as a `futures_core::Stream`.

knitting::init_before_main!();

mod common;

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use common::LONG;
use knitting::{AnyRuntime, ErrorKind, Pool, RuntimeKind, Sender, SharedBuffer, Signal};

#[knitting::task]
fn count(n: u64, out: Sender<u64>) -> u64 {
    for i in 0..n {
        if out.send(i).is_err() {
            return i;
        }
    }
    n
}

/// Sends `n` items, keeping in `progress[0]` how many `send`s returned,
/// and sets `progress[1]` when it stops.
#[knitting::task]
fn watched(n: u64, progress: SharedBuffer, out: Sender<u64>) -> u64 {
    let words = progress.view::<AtomicU64>().expect("two words");
    let mut sent = 0;
    for i in 0..n {
        if out.send(i).is_err() {
            break;
        }
        sent += 1;
        words[0].store(sent, Ordering::Release);
    }
    words[1].store(1, Ordering::Release);
    sent
}

/// Sends `before` lines, then fails as `how` says.
#[knitting::task]
fn fails_midway(before: u32, how: String, out: Sender<String>) -> Result<u32, String> {
    for i in 0..before {
        let _ = out.send(format!("line {i}"));
    }
    match how.as_str() {
        "error" => Err("the input ran out".to_owned()),
        "panic" => panic!("stream task panicked"),
        _ => {
            // Waits to be killed (or told to stop).
            let start = Instant::now();
            while start.elapsed() < LONG && !out.is_closed() {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(before)
        }
    }
}

/// Sends until told to stop; the signal and the sender work together.
#[knitting::task(timeout = "150ms")]
fn until_its_deadline(signal: &Signal, out: Sender<u64>) -> u64 {
    let mut i = 0;
    while !signal.aborted() && out.send(i).is_ok() {
        i += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    i
}

/// Sends until a send fails, never looking at its signal.
#[knitting::task(timeout = "100ms")]
fn floods(out: Sender<u64>) -> u64 {
    let mut i = 0;
    while out.send(i).is_ok() {
        i += 1;
    }
    i
}

#[knitting::task]
fn echo(v: u64) -> u64 {
    v
}

fn pool(runtime: RuntimeKind, workers: usize, bound: usize) -> Pool<AnyRuntime> {
    match runtime {
        RuntimeKind::Threads => Pool::builder()
            .threads(workers)
            .stream_bound(bound)
            .build()
            .expect("thread pool")
            .into(),
        _ => Pool::builder()
            .processes(workers)
            .stream_bound(bound)
            .build()
            .expect("process pool")
            .into(),
    }
}

fn progress() -> SharedBuffer {
    SharedBuffer::new(16).expect("a shared buffer")
}

fn words(buffer: &SharedBuffer) -> (u64, u64) {
    let words = buffer.view::<AtomicU64>().unwrap();
    (
        words[0].load(Ordering::Acquire),
        words[1].load(Ordering::Acquire),
    )
}

fn a_hundred_thousand_items_arrive_in_order(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 64);
    let buffer = progress();
    let mut stream = pool.stream(watched, (100_000, buffer.clone()));
    let mut expected = 0;
    let mut ahead = 0;
    for item in stream.by_ref() {
        assert_eq!(item.unwrap(), expected);
        expected += 1;
        // Bounded memory: the task is never more than the bound ahead.
        let (sent, _) = words(&buffer);
        ahead = ahead.max(sent.saturating_sub(expected));
    }
    assert_eq!(expected, 100_000);
    assert_eq!(stream.finish().unwrap(), 100_000);
    assert!(
        ahead <= 64,
        "the task ran {ahead} items ahead of a bound of 64"
    );
}

fn a_slow_reader_holds_the_task_at_the_bound(runtime: RuntimeKind) {
    const BOUND: u64 = 16;
    let pool = pool(runtime, 1, BOUND as usize);
    let buffer = progress();
    let mut stream = pool.stream(watched, (1_000, buffer.clone()));
    assert_eq!(stream.bound(), BOUND as usize);
    for read in 1..=20u64 {
        assert_eq!(stream.next().unwrap().unwrap(), read - 1);
        std::thread::sleep(Duration::from_millis(10));
        // The task filled the stream up to the bound and waits there.
        let start = Instant::now();
        loop {
            let (sent, _) = words(&buffer);
            assert!(
                sent <= read + BOUND,
                "after {read} reads the task sent {sent}, past the bound of {BOUND}"
            );
            if sent == read + BOUND {
                break;
            }
            assert!(start.elapsed() < LONG, "the task stopped at {sent}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let rest = stream.by_ref().count();
    assert_eq!(rest, 1_000 - 20);
    assert_eq!(stream.finish().unwrap(), 1_000);
}

fn dropping_the_stream_stops_the_task(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 8);
    let buffer = progress();
    let mut stream = pool.stream(watched, (u64::MAX, buffer.clone()));
    for i in 0..10 {
        assert_eq!(stream.next().unwrap().unwrap(), i);
    }
    drop(stream);
    let start = Instant::now();
    while words(&buffer).1 == 0 {
        assert!(start.elapsed() < LONG, "the task went on after the drop");
        std::thread::sleep(Duration::from_millis(2));
    }
    let (sent, _) = words(&buffer);
    assert!(
        sent <= 10 + 8 + 1,
        "sent {sent} items for a reader that took 10"
    );
    // Its worker is free again.
    assert_eq!(pool.stream(count, 3).finish().unwrap(), 3);
}

fn a_failed_call_ends_the_stream_after_its_items(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 64);
    for (how, kind) in [("error", ErrorKind::Task), ("panic", ErrorKind::Panic)] {
        let mut stream = pool.stream(fails_midway, (5, how.to_owned()));
        let items: Vec<_> = stream.by_ref().collect();
        assert_eq!(items.len(), 6, "{how}: {items:?}");
        for (i, item) in items[..5].iter().enumerate() {
            assert_eq!(item.as_ref().unwrap(), &format!("line {i}"));
        }
        assert_eq!(items[5].as_ref().unwrap_err().kind(), kind, "{how}");
        assert!(stream.next().is_none());
        assert_eq!(stream.finish().unwrap_err().kind(), kind);
    }
}

fn a_deadline_ends_the_stream(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 4);
    let start = Instant::now();
    let mut stream = pool.stream(until_its_deadline, ());
    let mut items = 0;
    let mut last = None;
    for item in stream.by_ref() {
        match item {
            Ok(_) => items += 1,
            Err(err) => last = Some(err.kind()),
        }
    }
    assert!(items > 0);
    assert_eq!(last, Some(ErrorKind::Timeout));
    assert_eq!(stream.finish().unwrap_err().kind(), ErrorKind::Timeout);
    assert!(start.elapsed() < LONG);
    // The worker is free again: the task saw its signal or a failed send.
    assert_eq!(pool.stream(count, 2).finish().unwrap(), 2);
}

/// Nobody reads: the task waits at the bound, and the call's deadline
/// wakes it (its send fails) without the reader's help; the items sent
/// before the deadline are still read after it.
fn a_call_that_ends_unread_frees_its_worker(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 4);
    let stream = pool.stream(floods, ());
    let bound = stream.bound();
    let mut next = pool.call(echo, 7);
    let answer = next.wait_timeout(LONG).map(|r| r.unwrap());
    assert_eq!(answer, Some(7), "the worker is free after the deadline");
    let items: Vec<_> = stream.collect();
    let (ok, err): (Vec<_>, Vec<_>) = items.into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), bound, "the items sent before the deadline");
    let kinds: Vec<_> = err.into_iter().map(|e| e.unwrap_err().kind()).collect();
    assert_eq!(kinds, [ErrorKind::Timeout]);
}

fn the_stream_is_a_futures_stream(runtime: RuntimeKind) {
    use std::{future::poll_fn, pin::Pin};
    let pool = pool(runtime, 1, 8);
    let mut stream = pool.stream(count, 1_000);
    let sum = pollster::block_on(async {
        let mut sum = 0;
        while let Some(item) =
            poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx)).await
        {
            sum += item.unwrap();
        }
        sum
    });
    assert_eq!(sum, (0..1_000).sum::<u64>());
    assert_eq!(stream.finish().unwrap(), 1_000);
}

fn streams_share_a_worker_one_after_another(runtime: RuntimeKind) {
    let pool = pool(runtime, 1, 4);
    // The first is left unread while the second runs: its items wait for
    // their reader, and do not hold the worker back.
    let mut first = pool.stream(count, 3);
    let second = pool.stream(count, 100);
    assert_eq!(second.map(Result::unwrap).sum::<u64>(), 4950);
    assert_eq!(first.next().unwrap().unwrap(), 0);
    assert_eq!(first.finish().unwrap(), 3);
}

for_each_runtime!(
    a_hundred_thousand_items_arrive_in_order,
    a_slow_reader_holds_the_task_at_the_bound,
    dropping_the_stream_stops_the_task,
    a_failed_call_ends_the_stream_after_its_items,
    a_deadline_ends_the_stream,
    a_call_that_ends_unread_frees_its_worker,
    the_stream_is_a_futures_stream,
    streams_share_a_worker_one_after_another,
);

/// A worker process killed mid-stream: the items it sent, then
/// `WorkerDied`; and the call is not run again on the replacement.
#[cfg(target_os = "linux")]
#[test]
fn a_killed_worker_ends_the_stream_with_worker_died() {
    let pool = Pool::builder().processes(1).build().expect("process pool");
    let mut stream = pool.stream(fails_midway, (7, "wait".to_owned()));
    for i in 0..7 {
        assert_eq!(stream.next().unwrap().unwrap(), format!("line {i}"));
    }
    kill_the_worker(&pool);
    let err = stream
        .next()
        .expect("the crash ends the stream")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err}");
    assert!(stream.next().is_none());
    assert_eq!(stream.finish().unwrap_err().kind(), ErrorKind::WorkerDied);
    // The replacement serves the next stream.
    assert_eq!(pool.stream(count, 5).finish().unwrap(), 5);
}

/// SIGKILLs the one worker of `pool`.
#[cfg(target_os = "linux")]
fn kill_the_worker(pool: &Pool<knitting::Processes>) {
    let pid = pool.worker_pids()[0].expect("a worker");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Holds the front of its worker's queue for a long time.
#[knitting::task]
async fn front(ms: u64) -> u64 {
    knitting::sleep(Duration::from_millis(ms)).await;
    ms
}

/// A stream call behind another call when its worker is killed: it sent
/// items, so it ran, and it fails instead of running again on the
/// replacement (its reader would get its items twice).
#[cfg(target_os = "linux")]
#[test]
fn a_stream_that_delivered_items_is_never_run_again() {
    let pool = Pool::builder().processes(1).build().expect("process pool");
    let ahead = pool.call(front, LONG.as_millis() as u64);
    let mut stream = pool.stream(fails_midway, (7, "wait".to_owned()));
    for i in 0..7 {
        assert_eq!(stream.next().unwrap().unwrap(), format!("line {i}"));
    }
    kill_the_worker(&pool);
    assert_eq!(ahead.wait().unwrap_err().kind(), ErrorKind::WorkerDied);
    let next = stream.next().expect("the crash ends the stream");
    assert_eq!(next.unwrap_err().kind(), ErrorKind::WorkerDied);
    assert!(stream.next().is_none());
}

/// A channel sender of another crate is an argument like any other.
#[knitting::task]
fn report(n: u32, tx: std::sync::mpsc::Sender<u32>) {
    tx.send(n).unwrap();
}

#[test]
fn another_crates_sender_is_an_argument() {
    let pool = common::pool(1);
    let (tx, rx) = std::sync::mpsc::channel();
    pool.call(report, (3, tx)).wait().unwrap();
    assert_eq!(rx.recv().unwrap(), 3);
}
