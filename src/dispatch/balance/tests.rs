//! Lane choice over fixed lanes: each strategy's pick for a known load.

use std::sync::Arc;

use super::{Balancer, LaneLoads, Spread, Strategy};
use crate::runtime::Lanes;

/// Lanes as (calls in flight, usable) pairs; idle means none in flight.
struct Fixed(Vec<(usize, bool)>);

impl Lanes for Fixed {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn is_idle(&self, i: usize) -> bool {
        self.0[i].0 == 0
    }
    fn is_usable(&self, i: usize) -> bool {
        self.0[i].1
    }
    fn in_flight(&self, i: usize) -> usize {
        self.0[i].0
    }
}

fn spread(balancer: Balancer) -> Spread {
    Spread::new(Strategy::Builtin(balancer))
}

fn picks(spread: &Spread, lanes: &Fixed, n: usize) -> Vec<usize> {
    (0..n).map(|_| spread.pick(lanes)).collect()
}

#[test]
fn first_idle_takes_the_first_idle_usable_lane_then_round_robin_over_usable_ones() {
    let spread = spread(Balancer::FirstIdle);
    // Lane 1 is idle but not usable: lane 2 is the first idle usable one.
    let lanes = Fixed(vec![(3, true), (0, false), (0, true), (1, true)]);
    assert_eq!(spread.pick(&lanes), 2);
    // No idle lane: round-robin from the count, skipping lane 1.
    let busy = Fixed(vec![(1, true), (1, false), (9, true), (1, true)]);
    assert_eq!(picks(&spread, &busy, 5), [0, 2, 2, 3, 0]);
    // Nothing usable: the count's lane anyway (it fails the call there).
    let none = Fixed(vec![(0, false); 3]);
    assert_eq!(spread.pick(&none), 5 % 3);
    // One lane: always it, without touching the count.
    assert_eq!(spread.pick(&Fixed(vec![(7, false)])), 0);
    assert_eq!(spread.pick(&none), 6 % 3);
}

#[test]
fn round_robin_ignores_idleness_and_skips_unusable_lanes() {
    let spread = spread(Balancer::RoundRobin);
    let lanes = Fixed(vec![(0, true), (5, true), (0, false)]);
    assert_eq!(picks(&spread, &lanes, 6), [0, 1, 0, 0, 1, 0]);
}

#[test]
fn least_loaded_takes_the_shortest_queue_and_the_first_of_equals() {
    let spread = spread(Balancer::LeastLoaded);
    assert_eq!(spread.pick(&Fixed(vec![(30, true), (2, true)])), 1);
    assert_eq!(
        spread.pick(&Fixed(vec![(4, true), (2, true), (2, true)])),
        1
    );
    // The emptiest lane is not usable: the next emptiest.
    assert_eq!(
        spread.pick(&Fixed(vec![(4, true), (0, false), (3, true)])),
        2
    );
    // An idle lane ends the search (the first one, as first-idle would).
    assert_eq!(
        spread.pick(&Fixed(vec![(4, true), (0, true), (0, true)])),
        1
    );
    // Nothing usable: round-robin, so the call fails on some lane.
    let none = Fixed(vec![(1, false), (0, false)]);
    assert_eq!(picks(&spread, &none, 3), [0, 1, 0]);
}

#[test]
fn random_reaches_every_usable_lane_and_no_other() {
    for balancer in [Balancer::Random, Balancer::FirstIdleOrRandom] {
        let spread = spread(balancer);
        let lanes = Fixed(vec![(1, true), (1, false), (1, true), (1, true)]);
        let mut seen = [0usize; 4];
        for i in picks(&spread, &lanes, 4000) {
            seen[i] += 1;
        }
        assert_eq!(seen[1], 0, "{balancer:?}: {seen:?}");
        // Lane 2 also takes lane 1's draws: about 1000, 2000, 1000.
        for (lane, want) in [(0, 1000), (2, 2000), (3, 1000)] {
            assert!(
                seen[lane].abs_diff(want) < want / 4,
                "{balancer:?}: {seen:?}"
            );
        }
    }
    // With an idle lane, first-idle-or-random takes it.
    let spread = spread(Balancer::FirstIdleOrRandom);
    let lanes = Fixed(vec![(1, true), (1, true), (0, true)]);
    assert_eq!(picks(&spread, &lanes, 20), [2; 20]);
}

#[test]
fn a_custom_balancer_sees_every_lane_and_its_index_wraps() {
    let last = Spread::new(Strategy::Custom(Arc::new(|lanes: &LaneLoads<'_>| {
        lanes.len() - 1
    })));
    let lanes = Fixed(vec![(3, true), (0, true), (2, false)]);
    assert_eq!(last.pick(&lanes), 2);
    let far = Spread::new(Strategy::Custom(Arc::new(|_: &LaneLoads<'_>| usize::MAX)));
    assert_eq!(far.pick(&lanes), usize::MAX % 3);
    let view = |lanes: &LaneLoads<'_>| {
        let seen: Vec<_> = lanes
            .iter()
            .map(|l| (l.index, l.in_flight, l.idle, l.usable))
            .collect();
        assert_eq!(
            seen,
            [
                (0, 3, false, true),
                (1, 0, true, true),
                (2, 2, false, false)
            ]
        );
        assert!(lanes.get(3).is_none());
        1
    };
    assert_eq!(
        Spread::new(Strategy::Custom(Arc::new(view))).pick(&lanes),
        1
    );
}
