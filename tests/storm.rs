//! The fault storm: caller threads make a mix of calls (every payload
//! kind, streams, async tasks, deadlines, aborts, cancels, drops, tasks
//! that panic, exit, abort or run past their hard limit) on a thread pool
//! and on process pools (memfd and named, the strict sandbox, a bwrap
//! prefix where bwrap runs), while a chaos thread SIGKILLs and SIGSTOPs
//! the process workers. At the end every call has ended exactly once, no
//! `Ok` carries a wrong value or came from a call that could not finish
//! before its deadline, every pool still answers, and once the pools are
//! gone no worker process, shared-memory object, descriptor or mapping of
//! theirs is left.
//!
//! It runs for `KNITTING_STORM_SECS` seconds (20 by default): set it
//! higher to soak, for example
//! `KNITTING_STORM_SECS=600 cargo test --release --test storm -- --nocapture`.

knitting::init_before_main!();

mod common;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use knitting::{AnyRuntime, Buffer, ErrorKind, Pool, Sender, Signal};

#[knitting::task]
fn echo(v: u64) -> u64 {
    v
}

#[knitting::task]
fn echo_bytes(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

#[knitting::task]
fn sum(values: &[u64]) -> u64 {
    values.iter().sum()
}

#[knitting::task]
fn nap(v: u64, ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    v
}

#[knitting::task]
async fn async_nap(v: u64, ms: u64) -> u64 {
    knitting::sleep(Duration::from_millis(ms)).await;
    v
}

#[knitting::task]
fn count(n: u64, out: Sender<u64>) -> u64 {
    for i in 0..n {
        if out.send(i).is_err() {
            return i;
        }
    }
    n
}

#[knitting::task]
fn until_aborted(signal: &Signal) -> u64 {
    let start = Instant::now();
    while !signal.aborted() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    7
}

#[knitting::task]
fn panics(v: u64) -> u64 {
    panic!("storm panic {v}")
}

#[knitting::task]
fn exits() {
    std::process::exit(9);
}

#[knitting::task]
fn aborts() {
    std::process::abort();
}

#[knitting::task(hard_timeout = "100ms")]
fn over_its_limit() {
    std::thread::sleep(Duration::from_secs(2));
}

/// A small deterministic generator, so that a failing storm can be told
/// apart by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the storm counted.
#[derive(Default)]
struct Tally {
    /// Outcomes by call kind and outcome.
    outcomes: BTreeMap<(&'static str, String), u64>,
    /// Broken promises: wrong values, unexpected errors, hangs.
    broken: Vec<String>,
    issued: u64,
    ended: u64,
}

impl Tally {
    fn count(&mut self, kind: &'static str, outcome: &str) {
        self.ended += 1;
        *self.outcomes.entry((kind, outcome.to_owned())).or_default() += 1;
    }
}

/// Makes one call of a random kind and checks how it ended.
fn one_call(pool: &Pool<AnyRuntime>, processes: bool, rng: &mut Rng, tally: &Mutex<Tally>) {
    let v = rng.next() >> 1;
    // Errors any call of a process pool may end with in the storm.
    let storm_error = |kind: ErrorKind| processes && kind == ErrorKind::WorkerDied;
    let note = |kind: &'static str, outcome: Result<String, String>| {
        let mut t = tally.lock().unwrap();
        match outcome {
            Ok(o) => t.count(kind, &o),
            Err(why) => {
                t.count(kind, "BROKEN");
                t.broken.push(format!("{kind}: {why}"));
            }
        }
    };
    tally.lock().unwrap().issued += 1;
    let wait = common::LONG * 3;
    match rng.below(12) {
        0 => {
            let got = pool.call(echo, v).wait_timeout(wait);
            note("echo", check(got, |r| r == v, storm_error));
        }
        1 => {
            let bytes: Vec<u8> = (0..rng.below(4096))
                .map(|i| (i as u8) ^ (v as u8))
                .collect();
            let got = pool.call(echo_bytes, bytes.clone()).wait_timeout(wait);
            note("bytes", check(got, |r| r == bytes, storm_error));
        }
        2 => {
            let values: Vec<u64> = (0..rng.below(512)).map(|i| i * 3).collect();
            let expected: u64 = values.iter().sum();
            let got = pool.call(sum, Buffer::from(values)).wait_timeout(wait);
            note("slice", check(got, |r| r == expected, storm_error));
        }
        3 => {
            // Cannot finish before its deadline: never `Ok`.
            let got = pool
                .call(nap, (v, 30))
                .timeout(Duration::from_millis(5))
                .wait_timeout(wait);
            note(
                "late",
                check(
                    got,
                    |_| false,
                    |k| k == ErrorKind::Timeout || storm_error(k),
                ),
            );
        }
        4 => {
            let got = pool
                .call(nap, (v, 1))
                .timeout(Duration::from_secs(20))
                .wait_timeout(wait);
            note("in time", check(got, |r| r == v, storm_error));
        }
        5 => {
            let got = pool.call(async_nap, (v, rng.below(3))).wait_timeout(wait);
            note("async", check(got, |r| r == v, storm_error));
        }
        6 => {
            let n = rng.below(2000);
            note("stream", check_stream(pool.stream(count, n), n, processes));
        }
        7 => {
            let mut call = pool.call(until_aborted, ());
            std::thread::sleep(Duration::from_millis(rng.below(5)));
            call.abort();
            let got = call.wait_timeout(wait);
            note("abort", check(got, |r| r == 7, storm_error));
        }
        8 => {
            let call = pool.call(nap, (v, 20));
            std::thread::sleep(Duration::from_millis(rng.below(3)));
            let got = call.cancel();
            let outcome = match got {
                Ok(r) if r == v => Ok("Ok".into()),
                Ok(r) => Err(format!("wrong value {r}, not {v}")),
                Err(e) if e.kind() == ErrorKind::Cancelled => Ok("Cancelled".into()),
                Err(e) if storm_error(e.kind()) => Ok("WorkerDied".into()),
                Err(e) => Err(format!("unexpected error {e}")),
            };
            note("cancel", outcome);
        }
        9 => {
            drop(pool.call(nap, (v, 5)));
            note("drop", Ok("dropped".into()));
        }
        10 => {
            let got = pool.call(panics, v).wait_timeout(wait);
            note(
                "panic",
                check(got, |_| false, |k| k == ErrorKind::Panic || storm_error(k)),
            );
        }
        _ => match (processes, rng.below(3)) {
            (true, 0) => {
                let got = pool.call(exits, ()).wait_timeout(wait);
                note("exit", check(got, |()| false, storm_error));
            }
            (true, 1) => {
                let got = pool.call(aborts, ()).wait_timeout(wait);
                note("abort()", check(got, |()| false, storm_error));
            }
            (true, _) => {
                let got = pool.call(over_its_limit, ()).wait_timeout(wait);
                note(
                    "hard limit",
                    check(
                        got,
                        |()| false,
                        |k| k == ErrorKind::HardTimeout || storm_error(k),
                    ),
                );
            }
            (false, _) => {
                let got = pool.call(echo, v).wait_timeout(wait);
                note("echo", check(got, |r| r == v, storm_error));
            }
        },
    }
}

/// How a call ended: `Ok` only with a value `right` accepts, `Err` only
/// of a kind `allowed` accepts; and it ended at all.
fn check<T: std::fmt::Debug>(
    got: Option<Result<T, knitting::Error>>,
    right: impl FnOnce(T) -> bool,
    allowed: impl FnOnce(ErrorKind) -> bool,
) -> Result<String, String> {
    match got {
        None => Err("no outcome within the wait: lost or hung".to_owned()),
        Some(Ok(value)) => {
            let shown = format!("{value:?}");
            if right(value) {
                Ok("Ok".into())
            } else {
                Err(format!("a wrong or impossible value: {shown}"))
            }
        }
        Some(Err(e)) if allowed(e.kind()) => Ok(format!("{:?}", e.kind())),
        Some(Err(e)) => Err(format!("an unexpected error: {e}")),
    }
}

/// A stream's items must be 0, 1, 2, ... and its end `Ok(n)` after all `n`
/// of them, or a worker's death after some of them.
fn check_stream(
    mut stream: knitting::Stream<u64, u64>,
    n: u64,
    processes: bool,
) -> Result<String, String> {
    let mut next = 0;
    for item in stream.by_ref() {
        match item {
            Ok(i) if i == next => next += 1,
            Ok(i) => return Err(format!("item {i} where {next} was due")),
            Err(e) if processes && e.kind() == ErrorKind::WorkerDied => {
                return match stream.finish() {
                    Err(f) if f.kind() == ErrorKind::WorkerDied => Ok("WorkerDied".into()),
                    other => Err(format!("ended with {e}, then finished with {other:?}")),
                };
            }
            Err(e) => return Err(format!("an unexpected error after {next} items: {e}")),
        }
    }
    match stream.finish() {
        Ok(total) if total == n && next == n => Ok("Ok".into()),
        other => Err(format!("{next} of {n} items, then {other:?}")),
    }
}

/// SIGKILLs or SIGSTOPs (then SIGCONTs) a random worker of the process
/// pools now and then, until `stop`.
fn chaos(
    pools: &[Pool<AnyRuntime>],
    stop: &AtomicBool,
    faults: &Mutex<BTreeMap<&'static str, u64>>,
) {
    let mut rng = Rng(0x5eed_c4a0_5000_0001);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20 + rng.below(60)));
        let pids: Vec<u32> = pools
            .iter()
            .flat_map(|p| p.stats().lanes.into_iter().filter_map(|lane| lane.pid))
            .collect();
        if pids.is_empty() {
            continue;
        }
        let pid = pids[rng.below(pids.len() as u64) as usize].to_string();
        let signal = if rng.below(4) == 0 { "-STOP" } else { "-KILL" };
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !sent {
            continue; // it went meanwhile
        }
        if signal == "-STOP" {
            // Mostly back before the liveness rule notices; sometimes not.
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid])
                .stderr(std::process::Stdio::null())
                .status();
        }
        *faults
            .lock()
            .unwrap()
            .entry(if signal == "-STOP" {
                "SIGSTOP"
            } else {
                "SIGKILL"
            })
            .or_default() += 1;
    }
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// What this process's descriptors are (for a leak's message).
fn open_descriptors() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            )
        })
        .collect()
}

fn lane_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| {
        m.lines().filter(|l| l.contains("knitting-lane")).count()
    })
}

/// This process's children that still run (or wait to be reaped).
fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: the comm may hold spaces.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        if rest.split(' ').nth(1) == Some(me.as_str()) {
            found.extend(
                entry
                    .file_name()
                    .to_str()
                    .and_then(|p| p.parse::<u32>().ok()),
            );
        }
    }
    found
}

#[test]
fn the_storm_loses_nothing_and_leaves_nothing() {
    let secs: u64 = std::env::var("KNITTING_STORM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let process = || {
        Pool::builder()
            .processes(2)
            .liveness_timeout(Duration::from_millis(300))
            .ring_slots(32)
    };
    // What a process makes once for all its pools (the workers' lifeline
    // behind a command prefix, for one) is made before the count.
    if common::bwrap::bwrap_unavailable().is_none() {
        let warm = process()
            .command_prefix(common::bwrap::bwrap_prefix())
            .build()
            .unwrap();
        assert_eq!(warm.call(echo, 1).wait().unwrap(), 1);
        warm.shutdown();
    }
    let fds_before = descriptors();
    let mut pools: Vec<(String, Pool<AnyRuntime>, bool)> = vec![(
        "threads".to_owned(),
        Pool::builder().threads(2).build().unwrap().into(),
        false,
    )];
    pools.push((
        "processes (memfd)".into(),
        process().build().unwrap().into(),
        true,
    ));
    pools.push((
        "processes (named)".into(),
        process().named_shared_memory(true).build().unwrap().into(),
        true,
    ));
    match process()
        .permissions(knitting::Permissions::strict())
        .build()
    {
        Ok(pool) => pools.push(("processes (strict sandbox)".into(), pool.into(), true)),
        Err(e) => eprintln!("storm: no strict-sandbox pool here ({e})"),
    }
    match common::bwrap::bwrap_unavailable() {
        None => pools.push((
            "processes (bwrap)".into(),
            process()
                .command_prefix(common::bwrap::bwrap_prefix())
                .build()
                .unwrap()
                .into(),
            true,
        )),
        Some(why) => eprintln!("storm: no bwrap pool here ({why})"),
    }
    let tally = Mutex::new(Tally::default());
    let faults = Mutex::new(BTreeMap::new());
    let stop = AtomicBool::new(false);
    let seeds = AtomicU64::new(1);
    let end = Instant::now() + Duration::from_secs(secs);
    std::thread::scope(|s| {
        let process_pools: Vec<Pool<AnyRuntime>> =
            pools.iter().filter(|p| p.2).map(|p| p.1.clone()).collect();
        let (stop, faults) = (&stop, &faults);
        let chaos_thread = s.spawn(move || chaos(&process_pools, stop, faults));
        let callers: Vec<_> = (0..6)
            .map(|t| {
                let (pools, tally, seeds) = (&pools, &tally, &seeds);
                s.spawn(move || {
                    let seed = seeds.fetch_add(1, Ordering::Relaxed);
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (seed * 0x1000_0001));
                    let mut i = 0;
                    while Instant::now() < end {
                        let (_, pool, processes) = &pools[(t + i) % pools.len()];
                        one_call(pool, *processes, &mut rng, tally);
                        i += 1;
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().expect("a caller panicked");
        }
        stop.store(true, Ordering::Relaxed);
        chaos_thread.join().unwrap();
    });
    // Every pool still answers, once the last fault has played out (a
    // worker killed or stopped at the very end fails the call it holds).
    std::thread::sleep(Duration::from_millis(500));
    for (name, pool, _) in &pools {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match pool.call(echo, 41).wait_timeout(common::LONG) {
                Some(Ok(v)) => {
                    assert_eq!(v, 41);
                    break;
                }
                Some(Err(e)) if e.kind() == ErrorKind::WorkerDied && attempts < 3 => {
                    println!("  {name}: a last fault: {e}");
                }
                other => panic!("{name} does not answer: {other:?}"),
            }
        }
    }
    let tally = tally.into_inner().unwrap();
    println!("storm: {} pools, {secs} s", pools.len());
    for ((kind, outcome), n) in &tally.outcomes {
        println!("  {kind:>10} {outcome:<12} {n}");
    }
    for (fault, n) in faults.lock().unwrap().iter() {
        println!("  injected {fault}: {n}");
    }
    println!(
        "  calls issued {}, outcomes counted {}",
        tally.issued, tally.ended
    );
    assert!(
        tally.broken.is_empty(),
        "broken promises: {:#?}",
        tally.broken
    );
    assert_eq!(tally.issued, tally.ended);
    assert!(
        tally.issued > 100,
        "the storm made only {} calls",
        tally.issued
    );
    // Nothing outlives the pools.
    for (_, pool, _) in &pools {
        pool.shutdown();
    }
    drop(pools);
    let start = Instant::now();
    loop {
        let left = (
            children(),
            lane_mappings(),
            knitting::shared_memory_objects_of(std::process::id()),
        );
        if left.0.is_empty() && left.1 == 0 && left.2.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < common::LONG,
            "left behind: worker processes {:?}, lane mappings {}, shared-memory objects {:?}",
            left.0,
            left.1,
            left.2
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The pools' threads close their descriptors as they finish.
    let start = Instant::now();
    while descriptors() > fds_before && start.elapsed() < common::LONG {
        std::thread::sleep(Duration::from_millis(20));
    }
    let fds_after = descriptors();
    assert!(
        fds_after <= fds_before,
        "descriptors: {fds_before} before the pools, {fds_after} after: {:?}",
        open_descriptors()
    );
}
