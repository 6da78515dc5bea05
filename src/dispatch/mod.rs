//! Dispatch: which lane a new call goes to, the same rule for every
//! runtime. (Balancers that steal work, and a lane that runs calls on the
//! caller's thread, belong here.)

/// The lane a call goes to, for threads and processes alike: the first
/// idle lane in index order, else the next usable one in round-robin order
/// (`ticket` hands out the round-robin count), else any.
///
/// First idle rather than plain round-robin: a trickle of calls keeps one
/// worker hot and lets the others park (on a machine with fewer free cores
/// than workers, idle spinners slow the busy one down).
#[inline]
pub(crate) fn pick_lane<L>(
    lanes: &[L],
    ticket: impl FnOnce() -> usize,
    usable: impl Fn(&L) -> bool,
    idle: impl Fn(&L) -> bool,
) -> &L {
    if let [only] = lanes {
        return only;
    }
    if let Some(lane) = lanes.iter().find(|l| idle(l) && usable(l)) {
        return lane;
    }
    let (start, n) = (ticket(), lanes.len());
    (0..n)
        .map(|i| &lanes[(start + i) % n])
        .find(|l| usable(l))
        .unwrap_or(&lanes[start % n])
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use super::pick_lane;

    #[test]
    fn the_first_idle_usable_lane_wins_then_round_robin_over_usable_ones() {
        let lanes = [(false, true), (true, false), (true, true), (false, true)];
        let usable = |l: &(bool, bool)| l.1;
        let idle = |l: &(bool, bool)| l.0;
        // Lane 1 is idle but not usable: lane 2 is the first idle usable one.
        assert!(std::ptr::eq(
            pick_lane(&lanes, || 0, usable, idle),
            &lanes[2]
        ));
        // No idle lane: round-robin from the ticket, skipping unusable ones.
        let busy = |_: &(bool, bool)| false;
        assert!(std::ptr::eq(
            pick_lane(&lanes, || 1, usable, busy),
            &lanes[2]
        ));
        assert!(std::ptr::eq(
            pick_lane(&lanes, || 3, usable, busy),
            &lanes[3]
        ));
        // Nothing usable: the ticket's lane anyway (it fails the call there).
        let none = |_: &(bool, bool)| false;
        assert!(std::ptr::eq(pick_lane(&lanes, || 5, none, busy), &lanes[1]));
    }
}
