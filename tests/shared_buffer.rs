//! `SharedBuffer` through the public API: the same memory seen by the host
//! and its workers (threads, processes, processes behind bwrap), with
//! atomics and raw copies both ways; slices; bounds and alignment errors;
//! a worker that tries to resize the memory; repeat sends; a worker that
//! closes things; named mode.

knitting::init_before_main!();

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use knitting::{ErrorKind, Pool, Runs, SharedBuffer};

use common::{
    bwrap::{bwrap_prefix, bwrap_unavailable},
    LONG,
};

/// The original's example: the worker loads what the host stored.
#[knitting::task]
fn load_first(shared: SharedBuffer) -> u32 {
    shared.view::<AtomicU32>().unwrap()[0].load(Ordering::Acquire)
}

/// Writes through atomics and raw copies; returns the worker's pid.
#[knitting::task]
fn scribble(shared: SharedBuffer) -> u32 {
    let words = shared.view::<AtomicU64>().unwrap();
    words[1].store(0xfeed_f00d, Ordering::Relaxed);
    shared.write(16, b"from the worker").unwrap();
    // Release: the host's Acquire load of the flag sees the writes above.
    shared.view::<AtomicU32>().unwrap()[0].store(1, Ordering::Release);
    std::process::id()
}

/// Reads what the host wrote, raw.
#[knitting::task]
fn read_back(shared: SharedBuffer, offset: usize, len: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0; len];
    shared.read(offset, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// One more on the counter at index 0; returns the new value.
#[knitting::task]
fn bump(shared: SharedBuffer) -> u64 {
    shared.view::<AtomicU64>().unwrap()[0].fetch_add(1, Ordering::AcqRel) + 1
}

/// Every error a worker sees when it misuses a buffer, as messages.
#[knitting::task]
fn misuse(shared: SharedBuffer) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let mut push = |e: knitting::Error| errors.push((format!("{:?}", e.kind()), e.to_string()));
    if let Err(e) = shared.slice(shared.len() - 4, 8) {
        push(e);
    }
    if let Err(e) = shared
        .slice(1, 8)
        .and_then(|s| s.view::<AtomicU32>().map(|_| ()))
    {
        push(e);
    }
    if let Err(e) = shared.write(usize::MAX, b"x") {
        push(e);
    }
    errors
}

/// A slice of what the host sent, back to the host.
#[knitting::task]
fn give_back(shared: SharedBuffer, offset: usize, len: usize) -> SharedBuffer {
    shared.slice(offset, len).unwrap()
}

/// A buffer made in the worker: it cannot go to the host.
#[knitting::task]
fn make_own(len: usize) -> SharedBuffer {
    SharedBuffer::new(len).unwrap()
}

/// Several buffers in one argument struct.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pair {
    left: SharedBuffer,
    right: Option<SharedBuffer>,
    label: String,
}

/// Copies `left` into `right`; returns the label.
#[knitting::task]
fn copy_pair(pair: Pair) -> String {
    let right = pair.right.unwrap();
    right.write(0, &pair.left.to_vec()).unwrap();
    pair.label
}

/// Tries to shrink and grow every shared buffer's memory this worker
/// process holds (reopened through `/proc/self/fd`): how many it found,
/// and the OS error of each attempt (`None`: it worked).
#[knitting::task]
fn try_resize(shared: SharedBuffer) -> (usize, Vec<Option<i32>>) {
    let _keep = shared;
    let mut found = 0;
    let mut outcomes = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target
            .to_string_lossy()
            .starts_with("/memfd:knitting-shared")
        {
            continue;
        }
        found += 1;
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(entry.path()) else {
            outcomes.push(Some(-1));
            continue;
        };
        for size in [0, 1 << 30] {
            outcomes.push(
                file.set_len(size)
                    .err()
                    .map(|e| e.raw_os_error().unwrap_or(-1)),
            );
        }
    }
    (found, outcomes)
}

/// Closes the worker's stdin and panics, holding the buffer.
#[knitting::task]
fn close_and_panic(shared: SharedBuffer) {
    let _keep = shared.clone();
    // SAFETY: fd 0 is stdin, which nothing of the test holds a handle to.
    drop(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(0) });
    panic!("closed stdin");
}

/// The value of `call`, which must end in time and succeed.
fn ok<T: Send + 'static>(call: knitting::Call<T>) -> T {
    wait(call).unwrap_or_else(|e| panic!("the call failed: {e}"))
}

/// The error of `call`, which must end in time and fail.
fn fail<T: Send + 'static>(call: knitting::Call<T>) -> knitting::Error {
    match wait(call) {
        Ok(_) => panic!("the call succeeded"),
        Err(e) => e,
    }
}

fn wait<T: Send + 'static>(mut call: knitting::Call<T>) -> Result<T, knitting::Error> {
    call.wait_timeout(LONG).expect("the call ends in time")
}

/// Loads the first word of a buffer taken by reference.
#[knitting::task]
fn first_by_ref(shared: &SharedBuffer) -> u64 {
    shared.view::<AtomicU64>().unwrap()[0].load(Ordering::Acquire)
}

/// Ends the worker process at once.
#[knitting::task]
fn die() {
    std::process::abort()
}

/// Bumps the counter at index 0 of `shared`; returns it and how many
/// bytes came along.
#[knitting::task]
fn bump_with(shared: SharedBuffer, bytes: serde_bytes::ByteBuf) -> (u64, usize) {
    let n = shared.view::<AtomicU64>().unwrap()[0].fetch_add(1, Ordering::AcqRel) + 1;
    (n, bytes.len())
}

fn processes(n: usize) -> knitting::ProcessPool {
    Pool::builder()
        .processes(n)
        .build()
        .expect("process pool builds")
}

/// The host's store, the worker's load: through a thread pool or a
/// process pool, the same memory.
fn host_to_worker<R: Runs<load_first> + Runs<read_back>>(pool: &Pool<R>) {
    let shared = SharedBuffer::new(4096).unwrap();
    shared.view::<AtomicU32>().unwrap()[0].store(42, Ordering::Release);
    shared.write(100, b"knitting").unwrap();
    assert_eq!(ok(pool.call(load_first, shared.clone())), 42);
    let bytes = ok(pool.call(read_back, (shared.clone(), 100, 8)));
    assert_eq!(bytes, b"knitting");
    let err = fail(pool.call(read_back, (shared, 4090, 8)));
    assert!(err.is_task_error(), "{err}");
    let why = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        why.contains("at offset 4090") && why.contains("4096 bytes"),
        "{why}"
    );
}

fn worker_to_host<R: Runs<scribble>>(pool: &Pool<R>) {
    let shared = SharedBuffer::new(64).unwrap();
    ok(pool.call(scribble, shared.clone()));
    assert_eq!(
        shared.view::<AtomicU32>().unwrap()[0].load(Ordering::Acquire),
        1
    );
    assert_eq!(
        shared.view::<AtomicU64>().unwrap()[1].load(Ordering::Relaxed),
        0xfeed_f00d
    );
    let mut text = [0u8; 15];
    shared.read(16, &mut text).unwrap();
    assert_eq!(&text, b"from the worker");
}

#[test]
fn the_host_stores_42_and_a_worker_process_loads_it() {
    let pool = processes(1);
    host_to_worker(&pool);
}

#[test]
fn a_worker_process_writes_and_the_host_reads() {
    let pool = processes(1);
    worker_to_host(&pool);
}

#[test]
fn on_a_thread_pool_the_worker_shares_the_same_memory() {
    let pool = common::pool(2);
    host_to_worker(&pool);
    worker_to_host(&pool);
    let shared = SharedBuffer::new(8).unwrap();
    for _ in 0..10 {
        ok(pool.call(bump, shared.clone()));
    }
    assert_eq!(
        shared.view::<AtomicU64>().unwrap()[0].load(Ordering::Acquire),
        10
    );
}

#[test]
fn slices_cross_with_their_offsets_and_misuse_is_an_error_with_a_clear_message() {
    let pool = processes(1);
    let whole = SharedBuffer::new(256).unwrap();
    let middle = whole.slice(64, 128).unwrap();
    middle.write(8, b"middle").unwrap();
    assert_eq!(
        ok(pool.call(read_back, (middle.slice(8, 6).unwrap(), 0, 6))),
        b"middle".to_vec()
    );
    // The worker's view of a slice starts where the slice does.
    assert_eq!(ok(pool.call(bump, whole.slice(128, 8).unwrap())), 1);
    assert_eq!(
        whole.view::<AtomicU64>().unwrap()[16].load(Ordering::Acquire),
        1
    );

    let errors = ok(pool.call(misuse, middle.clone()));
    assert_eq!(errors.len(), 3, "{errors:?}");
    for (kind, _) in &errors {
        assert_eq!(kind, "OutOfBounds");
    }
    assert!(errors[0].1.contains("8 bytes at offset 124") && errors[0].1.contains("128 bytes"));
    assert!(errors[1].1.contains("offset 65") && errors[1].1.contains("multiple of 4"));
    assert!(errors[2].1.contains(&format!("offset {}", usize::MAX)));

    // The host's own misuse, the same way.
    let err = whole.slice(200, 57).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfBounds);
    assert_eq!(
        err.message(),
        "a slice of 57 bytes at offset 200 does not fit a shared buffer of 256 bytes"
    );
    let err = whole.slice(2, 8).unwrap().view::<AtomicU64>().unwrap_err();
    assert!(err.message().contains("offset 2") && err.message().contains("multiple of 8"));
    assert_eq!(
        whole.slice(2, 8).unwrap().view::<AtomicU8>().unwrap().len(),
        8
    );
}

#[test]
fn buffers_cross_inside_structs_and_options() {
    let pool = processes(1);
    let (left, right) = (SharedBuffer::new(8).unwrap(), SharedBuffer::new(8).unwrap());
    left.write(0, b"abcdefgh").unwrap();
    let pair = Pair {
        left: left.clone(),
        right: Some(right.clone()),
        label: "pair".into(),
    };
    assert_eq!(ok(pool.call(copy_pair, pair)).as_str(), "pair");
    assert_eq!(right.to_vec(), b"abcdefgh");
}

#[test]
fn a_worker_may_return_only_a_buffer_the_host_sent() {
    let pool = processes(1);
    let shared = SharedBuffer::new(64).unwrap();
    let back = ok(pool.call(give_back, (shared.clone(), 8, 16)));
    assert_eq!(back.len(), 16);
    back.write(0, b"returned").unwrap();
    assert_eq!(&shared.to_vec()[8..16], b"returned", "the same memory");

    let err = fail(pool.call(make_own, 16));
    assert_eq!(err.kind(), ErrorKind::Codec);
    assert!(err.message().contains("made in a worker process"), "{err}");
    // The worker is fine afterwards.
    assert_eq!(ok(pool.call(bump, shared)), 1);
}

#[test]
fn a_worker_cannot_shrink_or_grow_the_memory_and_the_host_reads_on() {
    let pool = processes(1);
    let shared = SharedBuffer::new(1 << 20).unwrap();
    shared.write((1 << 20) - 4, b"tail").unwrap();
    let (found, outcomes) = ok(pool.call(try_resize, shared.clone()));
    assert!(found >= 1, "the worker holds the buffer's memfd");
    assert_eq!(outcomes.len(), 2 * found);
    for outcome in outcomes {
        assert_eq!(outcome, Some(1), "ftruncate fails with EPERM (sealed)");
    }
    // Every page is still there, on both sides.
    let mut tail = [0u8; 4];
    shared.read((1 << 20) - 4, &mut tail).unwrap();
    assert_eq!(&tail, b"tail");
    assert!(shared.to_vec()[..16].iter().all(|&b| b == 0));
    assert_eq!(
        ok(pool.call(read_back, (shared, (1 << 20) - 4, 4))),
        b"tail".to_vec()
    );
}

#[test]
fn repeat_sends_see_the_same_memory_and_many_buffers_cross() {
    let pool = processes(1);
    let shared = SharedBuffer::new(8).unwrap();
    for i in 1..=200 {
        assert_eq!(ok(pool.call(bump, shared.clone())), i);
    }
    assert_eq!(
        shared.view::<AtomicU64>().unwrap()[0].load(Ordering::Acquire),
        200
    );
    // Many buffers, each sent once and dropped: the worker is told to let
    // them go, and calls keep working.
    for i in 0..300 {
        let fresh = SharedBuffer::new(64).unwrap();
        fresh.view::<AtomicU64>().unwrap()[0].store(i, Ordering::Relaxed);
        assert_eq!(ok(pool.call(bump, fresh)), i + 1);
    }
    // Pipelined: many calls in flight, each with a buffer of its own.
    let buffers: Vec<SharedBuffer> = (0..64).map(|_| SharedBuffer::new(8).unwrap()).collect();
    let calls: Vec<_> = buffers.iter().map(|b| pool.call(bump, b.clone())).collect();
    for call in calls {
        assert_eq!(ok(call), 1);
    }
    assert_eq!(ok(pool.call(bump, shared)), 201);
}

#[test]
fn a_worker_that_closes_its_stdin_and_panics_does_not_break_the_next_calls() {
    let pool = processes(1);
    let shared = SharedBuffer::new(8).unwrap();
    assert_eq!(ok(pool.call(bump, shared.clone())), 1);
    let err = fail(pool.call(close_and_panic, shared.clone()));
    assert!(err.is_panic(), "{err}");
    assert_eq!(ok(pool.call(bump, shared.clone())), 2);
    let fresh = SharedBuffer::new(8).unwrap();
    assert_eq!(ok(pool.call(bump, fresh)), 1);
}

#[test]
fn in_named_mode_a_call_with_a_buffer_is_unsupported_and_others_run() {
    let pool = Pool::builder()
        .processes(1)
        .named_shared_memory(true)
        .build()
        .unwrap();
    let shared = SharedBuffer::new(8).unwrap();
    let err = fail(pool.call(bump, shared.clone()));
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("named_shared_memory"), "{err}");
    assert_eq!(
        shared.view::<AtomicU64>().unwrap()[0].load(Ordering::Acquire),
        0,
        "not run"
    );
    let bytes = wait(pool.call(read_back, (shared, 0, 0)));
    assert_eq!(bytes.unwrap_err().kind(), ErrorKind::Unsupported);
}

#[test]
fn a_buffer_serializes_only_inside_a_process_call() {
    let shared = SharedBuffer::new(8).unwrap();
    assert!(postcard::to_stdvec(&shared).is_err());
}

#[test]
fn behind_bwrap_the_buffer_is_the_same_memory() {
    if let Some(reason) = bwrap_unavailable() {
        eprintln!("skipped: bwrap cannot run here: {reason}");
        return;
    }
    let pool = Pool::builder()
        .processes(1)
        .command_prefix(bwrap_prefix())
        .build()
        .expect("a pool behind bwrap builds");
    host_to_worker(&pool);
    worker_to_host(&pool);
    let shared = SharedBuffer::new(8).unwrap();
    for i in 1..=20 {
        assert_eq!(ok(pool.call(bump, shared.clone())), i);
    }
}

#[test]
fn only_a_descriptor_crosses_whatever_the_size() {
    // 64 MiB of buffer through a pool that takes at most 1 KiB per
    // argument: the bytes never enter the arena.
    let pool = Pool::builder()
        .processes(1)
        .max_payload_bytes(1024)
        .build()
        .unwrap();
    let shared = SharedBuffer::new(64 << 20).unwrap();
    shared.write((64 << 20) - 3, b"end").unwrap();
    assert_eq!(
        ok(pool.call(read_back, (shared, (64 << 20) - 3, 3))),
        b"end"
    );
}

#[test]
fn calls_replayed_on_a_replacement_worker_bring_their_buffers() {
    let pool = processes(1);
    let shared = SharedBuffer::new(8).unwrap();
    assert_eq!(
        ok(pool.call(bump, shared.clone())),
        1,
        "the first worker holds it"
    );
    // Queued behind a call that kills the worker: they cannot have
    // started, so they run on its replacement, which has never seen the
    // buffer.
    let dying = pool.call(die, ());
    let behind: Vec<_> = (0..5).map(|_| pool.call(bump, shared.clone())).collect();
    assert_eq!(fail(dying).kind(), ErrorKind::WorkerDied);
    let mut seen: Vec<u64> = behind.into_iter().map(ok).collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![2, 3, 4, 5, 6]);
    assert_eq!(ok(pool.call(bump, shared.clone())), 7);
}

#[test]
fn arguments_that_wait_for_room_in_the_arena_keep_their_buffers() {
    // A small arena: each call's bytes take most of it, so calls made in
    // a burst wait (encoded aside) for the ones before them.
    let pool = Pool::builder()
        .processes(1)
        .arena_bytes(1 << 20)
        .max_payload_bytes(600 << 10)
        .build()
        .unwrap();
    let shared = SharedBuffer::new(8).unwrap();
    let bytes = serde_bytes::ByteBuf::from(vec![7u8; 500 << 10]);
    let calls: Vec<_> = (0..8)
        .map(|_| pool.call(bump_with, (shared.clone(), bytes.clone())))
        .collect();
    let mut seen: Vec<(u64, usize)> = calls.into_iter().map(ok).collect();
    seen.sort_unstable();
    let wanted: Vec<(u64, usize)> = (1..=8).map(|n| (n, 500 << 10)).collect();
    assert_eq!(seen, wanted);
}

#[test]
fn a_buffer_parameter_may_be_taken_by_reference() {
    let pool = processes(1);
    let shared = SharedBuffer::new(8).unwrap();
    shared.view::<AtomicU64>().unwrap()[0].store(9, Ordering::Release);
    assert_eq!(ok(pool.call(first_by_ref, shared.clone())), 9);
    let threads = common::pool(1);
    assert_eq!(ok(threads.call(first_by_ref, shared)), 9);
}
