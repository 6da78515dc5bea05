//! Diagnostics through a real `tracing` subscriber: events arrive when a
//! pool's namespaces are on (from the builder or `KNITTING_DEBUG`), none
//! when they are off, and a process worker's events (its own and its
//! tasks') reach the host with the worker's pid.
//!
//! One test: the subscriber is the process's global one, and the steps
//! must not see each other's events.

knitting::init_before_main!();

mod common;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use common::LONG;
use knitting::{Diagnostics, Pool};
use tracing::{
    field::{Field, Visit},
    span, Event, Metadata, Subscriber,
};

/// One event as the subscriber saw it.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

struct Collector {
    next: AtomicU64,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.0.insert(field.name().to_owned(), text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        SEEN.lock().unwrap().push(Seen {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields,
        });
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// The events seen so far, and forgets them.
fn take() -> Vec<Seen> {
    std::mem::take(&mut *SEEN.lock().unwrap())
}

/// Waits (bounded) until an event matching `wanted` arrives; all events
/// seen until then.
fn wait_for(what: &str, wanted: impl Fn(&Seen) -> bool) -> Vec<Seen> {
    let started = Instant::now();
    let mut all = Vec::new();
    loop {
        all.extend(take());
        if all.iter().any(&wanted) {
            return all;
        }
        assert!(
            started.elapsed() < LONG,
            "no {what} event arrived; saw {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn knitting_events(events: &[Seen]) -> Vec<&Seen> {
    events
        .iter()
        .filter(|e| e.target.starts_with("knitting"))
        .collect()
}

#[knitting::task]
fn square(v: u64) -> u64 {
    v * v
}

/// Logs from inside a process worker.
#[knitting::task]
fn shout(word: String) -> u32 {
    tracing::warn!(target: "app::task", word = %word, "shouting");
    std::process::id()
}

/// Says goodbye, then takes its worker down.
#[knitting::task]
fn crash() {
    tracing::error!(target: "app::task", "last words");
    std::process::abort()
}

#[test]
fn diagnostics_arrive_when_on_and_not_when_off() {
    tracing::subscriber::set_global_default(Collector {
        next: AtomicU64::new(1),
    })
    .unwrap();

    // Off: calls, crashes and shutdown say nothing.
    let quiet = Pool::builder().threads(2).build().unwrap();
    assert_eq!(quiet.call(square, 3).wait().unwrap(), 9);
    quiet.shutdown();
    let quiet = Pool::builder().processes(1).build().unwrap();
    quiet.call(crash, ()).wait().unwrap_err();
    assert!(quiet.call(shout, "unheard".into()).wait().is_ok());
    quiet.shutdown();
    std::thread::sleep(Duration::from_millis(200));
    let seen = take();
    assert!(
        knitting_events(&seen).is_empty(),
        "a pool without diagnostics emitted {seen:#?}"
    );

    // Calls and lifecycle on a thread pool.
    let threads = Pool::builder()
        .threads(2)
        .debug(Diagnostics::CALLS | Diagnostics::LIFECYCLE)
        .build()
        .unwrap();
    threads.call(square, 4).wait().unwrap();
    threads.shutdown();
    let seen = take();
    let built = seen
        .iter()
        .find(|e| e.target == "knitting::lifecycle" && e.fields["message"] == "pool built")
        .unwrap_or_else(|| panic!("no pool-built event in {seen:#?}"));
    assert_eq!(built.fields["workers"], "2");
    assert_eq!(built.fields["runtime"], "threads");
    let sent = seen
        .iter()
        .find(|e| e.target == "knitting::calls")
        .unwrap_or_else(|| panic!("no call event in {seen:#?}"));
    assert!(sent.fields["task"].ends_with("::square"), "{sent:?}");
    assert_eq!(sent.level, tracing::Level::DEBUG);
    assert!(seen
        .iter()
        .any(|e| e.target == "knitting::lifecycle" && e.fields["message"] == "pool shutting down"));
    for lane in ["0", "1"] {
        for what in ["worker thread ready", "worker thread stopped"] {
            assert!(
                seen.iter().any(|e| e.fields["message"] == what
                    && e.fields.get("lane").map(String::as_str) == Some(lane)),
                "no {what:?} for lane {lane} in {seen:#?}"
            );
        }
    }

    // A thread retired by a hard time limit is a crash of its lane.
    #[knitting::task(hard_timeout = "10ms")]
    fn runaway() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let limited = Pool::builder()
        .threads(1)
        .debug(Diagnostics::CRASH)
        .build()
        .unwrap();
    limited.call(runaway, ()).wait().unwrap_err();
    let seen = wait_for("thread crash", |e| e.target == "knitting::crash");
    let retired = seen.iter().find(|e| e.target == "knitting::crash").unwrap();
    assert!(
        retired.fields["message"].contains("worker thread was retired"),
        "{retired:?}"
    );
    assert!(
        !seen.iter().any(|e| e.target == "knitting::lifecycle"),
        "only crash events were asked for"
    );
    limited.shutdown();
    take();

    // A process pool, asked through KNITTING_DEBUG: its worker's own
    // events come to the host with its pid, and its crash is told.
    std::env::set_var("KNITTING_DEBUG", "crash,lifecycle");
    let processes = Pool::builder().processes(1).build().unwrap();
    std::env::remove_var("KNITTING_DEBUG");
    let first = processes.stats().lanes[0].pid.unwrap();
    let seen = wait_for("worker ready", |e| {
        e.target == "knitting::lifecycle" && e.fields["message"] == "worker process ready"
    });
    assert!(seen
        .iter()
        .any(|e| e.fields.get("pid") == Some(&first.to_string())));
    let pid = processes.call(shout, "hello".into()).wait().unwrap();
    let seen = wait_for("forwarded", |e| e.target == "knitting::worker");
    let forwarded = seen
        .iter()
        .find(|e| e.target == "knitting::worker")
        .unwrap();
    assert_eq!(forwarded.fields["pid"], pid.to_string());
    assert_eq!(forwarded.fields["lane"], "0");
    assert_eq!(forwarded.fields["event_target"], "app::task");
    assert_eq!(forwarded.level, tracing::Level::WARN);
    assert!(
        forwarded.fields["message"].contains("shouting word=hello"),
        "{forwarded:?}"
    );

    processes.call(crash, ()).wait().unwrap_err();
    let seen = wait_for("crash", |e| e.target == "knitting::crash");
    let last = seen
        .iter()
        .position(|e| e.target == "knitting::worker" && e.fields["message"] == "last words")
        .unwrap_or_else(|| panic!("a crashed worker's last event was lost: {seen:#?}"));
    let crash_at = seen
        .iter()
        .position(|e| e.target == "knitting::crash")
        .unwrap();
    assert!(last < crash_at, "its last words come before the crash");
    let crashed = seen.iter().find(|e| e.target == "knitting::crash").unwrap();
    assert_eq!(crashed.fields["pid"], pid.to_string());
    assert_eq!(crashed.fields["calls"], "1");
    assert!(crashed.fields["message"].contains("SIGABRT"), "{crashed:?}");
    assert_eq!(crashed.level, tracing::Level::WARN);
    // The replacement starts, and says so.
    wait_for("replacement ready", |e| {
        e.fields.get("message").map(String::as_str) == Some("worker process ready")
            && e.fields.get("pid") != Some(&pid.to_string())
    });
    processes.shutdown();

    // An unknown namespace in the environment does not stop a build.
    std::env::set_var("KNITTING_DEBUG", "sparks");
    let pool = Pool::builder().threads(1).build().unwrap();
    std::env::remove_var("KNITTING_DEBUG");
    let seen = take();
    assert!(
        seen.iter().any(|e| e
            .fields
            .get("message")
            .is_some_and(|m| m.contains("sparks"))),
        "{seen:#?}"
    );
    assert_eq!(pool.call(square, 2).wait().unwrap(), 4);
}
