//! Balancers through the public API: where each one sends calls under a
//! known load, on thread pools and on process pools. Lanes are held busy
//! by calls that wait on a gate (a shared buffer's first byte), and
//! `stats()` tells where calls went.

knitting::init_before_main!();

use std::{
    sync::atomic::{AtomicU32, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use knitting::{
    Balance, Balancer, Call, LaneLoad, LaneLoads, Pool, PoolBuilder, Runs, Runtime, SharedBuffer,
};

/// Counts itself started in the gate's second word, then waits until its
/// first word is set.
#[knitting::task]
fn hold(gate: SharedBuffer) {
    let words = gate.view::<AtomicU32>().expect("two words");
    words[1].fetch_add(1, Ordering::Relaxed);
    while words[0].load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[knitting::task]
fn echo(v: u32) -> u32 {
    v
}

/// Two words: open (set by the test), started (counted by the calls).
struct Gate(SharedBuffer);

impl Gate {
    fn new() -> Self {
        Self(SharedBuffer::new(8).expect("shared buffer"))
    }
    fn words(&self) -> &[AtomicU32] {
        self.0.view::<AtomicU32>().expect("two words")
    }
    fn open(&self) {
        self.words()[0].store(1, Ordering::Relaxed);
    }
    fn started(&self) -> u32 {
        self.words()[1].load(Ordering::Relaxed)
    }
}

/// Builds a thread pool and a process pool of `lanes` lanes with the same
/// options, and runs `check` on each. The thread pool does not steal: an
/// idle worker taking queued calls would hide where the balancer put
/// them (`completed` counts a call on the lane that ran it).
fn on_both(lanes: usize, options: impl Fn(PoolBuilder) -> PoolBuilder, check: impl Fn(Lanes)) {
    let threads = options(Pool::builder().threads(lanes).work_stealing(false))
        .build()
        .expect("threads");
    check(Lanes::of(threads.into()));
    let processes = options(Pool::builder())
        .processes(lanes)
        .build()
        .expect("processes");
    check(Lanes::of(processes.into()));
}

/// A pool under test, with what the checks read of it.
struct Lanes(Pool<knitting::AnyRuntime>);

impl Lanes {
    fn of(pool: Pool<knitting::AnyRuntime>) -> Self {
        Self(pool)
    }

    fn in_flight(&self) -> Vec<usize> {
        self.0.stats().lanes.iter().map(|l| l.in_flight).collect()
    }

    fn completed(&self) -> Vec<usize> {
        self.0.stats().lanes.iter().map(|l| l.completed).collect()
    }

    /// Waits (up to 20 s) until `f` holds of the pool's stats.
    fn until(&self, what: &str, f: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "{:?}: never {what}: in flight {:?}, completed {:?}",
                self.0.runtime(),
                self.in_flight(),
                self.completed()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn settled(&self) {
        self.until("idle", |p| p.in_flight().iter().all(|&n| n == 0));
    }

    /// A call held until `gate` opens, once the stats show it where it
    /// stays: running, when some lane was idle (every balancer here then
    /// picks an idle lane), else queued. (A thread lane's worker that has
    /// just taken a call from its queue and not yet started it reads as
    /// idle for that instant; waiting keeps the checks to the balancer's
    /// own rule.)
    fn hold(&self, gate: &Gate) -> Call<()> {
        let before = self.in_flight();
        let started = gate.started();
        let held = call(&self.0, hold, gate.0.clone());
        if before.contains(&0) {
            self.until("the held call started", |_| gate.started() > started);
        }
        let total = before.iter().sum::<usize>() + 1;
        self.until("the held call seen", |p| {
            p.in_flight().iter().sum::<usize>() == total
        });
        held
    }

    /// One echo, waited for, then the pool idle again.
    fn echo_one(&self, v: u32) {
        assert_eq!(call(&self.0, echo, v).wait().expect("echo"), v);
        self.settled();
    }
}

fn call<R: Runtime + Runs<T>, T: knitting::Task>(
    pool: &Pool<R>,
    task: T,
    args: T::Args,
) -> Call<T::Output> {
    pool.call(task, args)
}

fn wait_all<T: Send + 'static>(calls: Vec<Call<T>>) {
    for call in calls {
        call.wait().expect("call");
    }
}

#[test]
fn first_idle_keeps_a_trickle_on_lane_zero_and_takes_the_next_idle_lane() {
    // The default (least loaded) does the same while a lane is idle.
    for balancer in [Some(Balancer::FirstIdle), Some(Balancer::LeastLoaded), None] {
        on_both(3, with(balancer), trickle_then_next_idle);
    }
}

/// The default balancer, or `balancer`.
fn with(balancer: Option<Balancer>) -> impl Fn(PoolBuilder) -> PoolBuilder {
    move |b| match balancer {
        Some(balancer) => b.balancer(balancer),
        None => b,
    }
}

fn trickle_then_next_idle(pool: Lanes) {
    for v in 0..5 {
        pool.echo_one(v);
    }
    pool.until("done", |p| p.completed() == [5, 0, 0]);
    let gate = Gate::new();
    let held = vec![pool.hold(&gate), pool.hold(&gate)];
    pool.until("held", |p| p.in_flight() == [1, 1, 0]);
    gate.open();
    wait_all(held);
}

#[test]
fn round_robin_takes_each_lane_in_turn_even_when_idle() {
    on_both(
        2,
        |b| b.balancer(Balancer::RoundRobin),
        |pool| {
            for v in 0..6 {
                pool.echo_one(v);
            }
            pool.until("done", |p| p.completed() == [3, 3]);
        },
    );
}

#[test]
fn least_loaded_the_default_fills_the_shortest_queue_first() {
    for balancer in [Some(Balancer::LeastLoaded), None] {
        on_both(2, with(balancer), |pool| four_on_uneven_lanes(pool, [3, 3]));
    }
}

#[test]
fn first_idle_turns_round_robin_once_no_lane_is_idle() {
    // Lane 1 (idle), then the count's turns: lane 0, lane 1, lane 0.
    on_both(2, with(Some(Balancer::FirstIdle)), |pool| {
        four_on_uneven_lanes(pool, [4, 2]);
    });
}

/// Two calls held on each lane, lane 1's released, then four more held:
/// they must end as `expected` in flight.
fn four_on_uneven_lanes(pool: Lanes, expected: [usize; 2]) {
    let (a, b) = (Gate::new(), Gate::new());
    // Idle lanes: 0, then 1, then the first of equals, 0, then 1.
    let mut on_a = vec![pool.hold(&a)];
    let mut on_b = vec![pool.hold(&b)];
    on_a.push(pool.hold(&a));
    on_b.push(pool.hold(&b));
    pool.until("held", |p| p.in_flight() == [2, 2]);
    // Lane 1 drains; lane 0 still holds two.
    b.open();
    wait_all(on_b);
    pool.settled_lane(1);
    // Four more. Least loaded: lane 1 (0 < 2), lane 1 (1 < 2), lane 0
    // (first of equals), lane 1: the queues end even.
    let c = Gate::new();
    let more: Vec<_> = (0..4).map(|_| pool.hold(&c)).collect();
    pool.until("as expected", |p| p.in_flight() == expected);
    a.open();
    c.open();
    wait_all(on_a);
    wait_all(more);
}

impl Lanes {
    fn settled_lane(&self, lane: usize) {
        self.until("lane idle", |p| p.in_flight()[lane] == 0);
    }
}

#[test]
fn random_balancers_reach_every_lane() {
    for balancer in [Balancer::Random, Balancer::FirstIdleOrRandom] {
        on_both(
            3,
            |b| b.balancer(balancer),
            |pool| {
                // Random spreads even a trickle (first-idle-or-random would
                // keep it on lane 0, so it gets busy lanes instead).
                let gate = Gate::new();
                let held: Vec<_> = if balancer == Balancer::Random {
                    Vec::new()
                } else {
                    let held: Vec<_> = (0..3).map(|_| pool.hold(&gate)).collect();
                    pool.until("held", |p| p.in_flight() == [1, 1, 1]);
                    held
                };
                let calls: Vec<_> = (0..90).map(|v| call(&pool.0, echo, v)).collect();
                if balancer == Balancer::FirstIdleOrRandom {
                    // Nothing ran yet: every lane holds some of the 90 queued.
                    let queued = pool.in_flight();
                    assert_eq!(queued.iter().sum::<usize>(), 93, "{queued:?}");
                    assert!(
                        queued.iter().all(|&n| n > 1 + 5),
                        "{balancer:?}: {queued:?}"
                    );
                }
                gate.open();
                wait_all(held);
                wait_all(calls);
                pool.until("all done", |p| p.completed().iter().sum::<usize>() >= 90);
                let done = pool.completed();
                assert!(done.iter().all(|&n| n > 5), "{balancer:?}: {done:?}");
            },
        );
    }
}

#[test]
fn a_custom_balancer_gets_every_call_where_it_says() {
    let picks = &*Box::leak(Box::new(AtomicUsize::new(0)));
    let last = move |lanes: &LaneLoads<'_>| {
        picks.fetch_add(1, Ordering::Relaxed);
        assert_eq!(lanes.len(), 3);
        assert!(lanes.iter().all(|l| l.usable));
        lanes.len() - 1
    };
    on_both(
        3,
        |b| b.balancer_with(last),
        |pool| {
            let before = picks.load(Ordering::Relaxed);
            let calls: Vec<_> = (0..20).map(|v| call(&pool.0, echo, v)).collect();
            wait_all(calls);
            pool.until("done", |p| p.completed() == [0, 0, 20]);
            assert_eq!(picks.load(Ordering::Relaxed) - before, 20);
        },
    );
}

#[test]
fn a_custom_balancer_sees_the_load_of_each_lane() {
    // The emptiest lane, counting down from the last: lanes fill from the
    // top.
    let emptiest_last = |lanes: &LaneLoads<'_>| {
        lanes
            .iter()
            .rev()
            .min_by_key(|l| l.in_flight)
            .map_or(0, |l| l.index)
    };
    on_both(
        3,
        |b| b.balancer_with(emptiest_last),
        |pool| {
            let gate = Gate::new();
            let held: Vec<_> = (0..3).map(|_| pool.hold(&gate)).collect();
            pool.until("one each", |p| p.in_flight() == [1, 1, 1]);
            let more: Vec<_> = (0..2).map(|_| pool.hold(&gate)).collect();
            pool.until("top first", |p| p.in_flight() == [1, 2, 2]);
            gate.open();
            wait_all(held);
            wait_all(more);
        },
    );
}

/// A user's balancer, tested on fixed loads without a pool: the loads it
/// reads are the ones given, the indexes are the slice's.
#[test]
fn a_custom_balancer_can_be_tested_on_fixed_loads() {
    struct IdleUsableElseLast;
    impl Balance for IdleUsableElseLast {
        fn pick(&self, lanes: &LaneLoads<'_>) -> usize {
            lanes
                .iter()
                .find(|l| l.idle && l.usable)
                .map_or(lanes.len() - 1, |l| l.index)
        }
    }
    let pick = |loads: &[LaneLoad]| IdleUsableElseLast.pick(&LaneLoads::from_slice(loads));
    let (busy, idle) = (LaneLoad::new(2), LaneLoad::new(0));
    assert_eq!(pick(&[busy, idle, idle]), 1);
    assert_eq!(pick(&[busy, idle.unusable(), idle]), 2);
    assert_eq!(pick(&[busy, busy, busy]), 2);
    // No lanes given: one idle lane, as no pool has fewer.
    assert_eq!(pick(&[]), 0);

    let loads = [LaneLoad::new(4), LaneLoad::new(0).unusable()];
    let lanes = LaneLoads::from_slice(&loads);
    let read: Vec<_> = lanes
        .iter()
        .map(|l| (l.index, l.in_flight, l.idle, l.usable))
        .collect();
    assert_eq!(read, [(0, 4, false, true), (1, 0, true, false)]);
    assert_eq!(lanes.get(1).map(|l| l.index), Some(1));
    assert_eq!(lanes.get(2), None);
}

#[test]
fn an_out_of_range_lane_wraps_around_and_the_pool_goes_on() {
    on_both(
        3,
        |b| b.balancer_with(|lanes: &LaneLoads<'_>| lanes.len() + 1),
        |pool| {
            for v in 0..4 {
                pool.echo_one(v);
            }
            pool.until("done", |p| p.completed() == [0, 4, 0]);
        },
    );
    on_both(
        2,
        |b| b.balancer_with(|_: &LaneLoads<'_>| usize::MAX),
        |pool| {
            pool.echo_one(7);
            pool.until("done", |p| p.completed() == [0, 1]);
        },
    );
}

#[test]
fn a_process_pool_keeps_the_balancer_of_its_builder_or_its_own() {
    let pool = Pool::builder()
        .balancer(Balancer::RoundRobin)
        .processes(2)
        .build()
        .expect("processes");
    let pool = Lanes::of(pool.into());
    for v in 0..4 {
        pool.echo_one(v);
    }
    pool.until("spread", |p| p.completed() == [2, 2]);
    let pool = Pool::builder()
        .balancer(Balancer::RoundRobin)
        .processes(2)
        .balancer(Balancer::FirstIdle)
        .build()
        .expect("processes");
    let pool = Lanes::of(pool.into());
    for v in 0..4 {
        pool.echo_one(v);
    }
    pool.until("on lane 0", |p| p.completed() == [4, 0]);
}
