//! The producer's ring and the consumer's check: fixed cases, a long
//! deterministic run, and property tests of random traffic against a
//! model of the documented rule.

use super::*;

const ARENA: usize = 64;

/// A producer and the list of what it wrote, with the consumer's check.
struct Model {
    ring: Ring,
    live: VecDeque<Span>,
}

impl Model {
    fn new() -> Self {
        Self {
            ring: Ring::new(ARENA),
            live: VecDeque::new(),
        }
    }

    fn live_bytes(&self) -> usize {
        self.live.iter().map(|s| s.len).sum()
    }

    /// Writes `n` bytes if there is room; checks the room against every
    /// live payload, and the consumer's view of the whole list.
    fn write(&mut self, n: usize) -> bool {
        let Some(room) = self.ring.reserve(n) else {
            return false;
        };
        assert!(
            room.offset + n <= ARENA,
            "the payload stays inside the arena"
        );
        for s in &self.live {
            let disjoint = room.offset + n <= s.offset || s.end() <= room.offset;
            assert!(
                disjoint || n == 0 || s.len == 0,
                "room overlaps a live payload"
            );
        }
        let span = self.ring.commit(room, n);
        self.live.push_back(span);
        let claimed = self.live.iter().map(|s| (s.offset as u64, s.len as u64));
        check_unread(claimed, ARENA).expect("an honest producer passes the check");
        true
    }

    fn consume(&mut self) {
        if self.live.pop_front().is_some() {
            self.ring.pop();
        }
    }
}

#[test]
fn an_empty_ring_starts_over_at_offset_zero() {
    let mut m = Model::new();
    assert!(m.write(10));
    m.consume();
    let room = m.ring.room();
    assert_eq!((room.offset, room.len), (0, ARENA));
}

#[test]
fn a_payload_that_does_not_fit_before_the_end_wraps_to_the_start() {
    let mut m = Model::new();
    assert!(m.write(40));
    assert!(m.write(16));
    m.consume(); // frees the first 40
    assert!(m.write(20), "20 bytes fit at the start");
    assert_eq!(m.live.back().unwrap().offset, 0);
    assert!(!m.write(30), "only what is really free is offered");
    assert!(m.write(20), "the rest of the start is free");
    assert!(!m.write(1), "the ring is full up to the oldest payload");
}

#[test]
fn an_empty_payload_in_a_full_wrapped_ring_goes_after_the_newest() {
    // `()` arguments and results encode to no bytes at all.
    let mut m = Model::new();
    assert!(m.write(40));
    assert!(m.write(16));
    m.consume();
    assert!(m.write(40), "wraps to the start, up to the oldest");
    assert!(m.write(0), "an empty payload always has a place");
    assert_eq!(m.live.back().unwrap().offset, 40, "right after the newest");
    assert!(!m.write(1), "nothing is free until the oldest goes");
}

#[test]
fn an_empty_payload_after_a_full_arena_does_not_hide_the_free_room() {
    let mut m = Model::new();
    assert!(m.write(ARENA));
    assert!(m.write(0));
    m.consume();
    // Only the empty payload is left: everything before it is free.
    assert!(m.write(ARENA / 2), "the start is free again");
    m.consume();
    m.consume();
    assert_eq!(
        m.ring.room(),
        Span {
            offset: 0,
            len: ARENA
        }
    );
}

#[test]
fn the_start_is_reused_early_for_large_arenas() {
    // Under steady load the ring never empties; it must still come back
    // to the start rather than sweep the whole arena.
    let arena = 16 * WRAP_EARLY;
    let mut ring = Ring::new(arena);
    let chunk = WRAP_EARLY / 2;
    let mut highest = 0;
    for _ in 0..1000 {
        let room = ring.reserve(chunk).expect("room");
        ring.commit(room, chunk);
        highest = highest.max(room.offset + chunk);
        if ring.live() > 3 {
            ring.pop();
        }
    }
    assert!(
        highest <= 8 * WRAP_EARLY,
        "touched {highest} bytes of {arena} with 4 payloads of {chunk} live"
    );
}

#[test]
fn random_traffic_never_overlaps_and_always_drains() {
    // A small deterministic generator keeps the test reproducible.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut m = Model::new();
    // Miri is slow; the short run still wraps the arena many times.
    let rounds = if cfg!(miri) { 1_000 } else { 20_000 };
    for _ in 0..rounds {
        if next() % 3 == 0 {
            m.consume();
        } else {
            let n = (next() % 40) as usize;
            if !m.write(n) {
                m.consume();
            }
        }
        assert!(m.live_bytes() <= ARENA);
    }
    while !m.live.is_empty() {
        m.consume();
    }
    assert_eq!(m.ring.room().len, ARENA, "all of it is free again");
}

#[test]
fn the_check_refuses_payloads_outside_the_arena() {
    let err = |spans: &[(u64, u64)]| check_unread(spans.iter().copied(), ARENA).unwrap_err();
    assert!(err(&[(60, 8)]).contains("offset 60"));
    assert!(err(&[(u64::MAX - 3, 4)]).contains("arena"));
    assert!(err(&[(0, u64::MAX)]).contains("arena"));
    assert!(err(&[(0, 8), (8, 57)]).contains("payload 1"));
}

#[test]
fn the_check_refuses_overlapping_or_scattered_payloads() {
    let check = |spans: &[(u64, u64)]| check_unread(spans.iter().copied(), ARENA);
    assert!(
        check(&[(8, 8), (16, 8), (0, 8)]).is_ok(),
        "a wrap below the oldest"
    );
    assert!(
        check(&[(8, 8), (16, 8), (0, 9)]).is_err(),
        "a wrap into the oldest"
    );
    assert!(check(&[(8, 8), (8, 8)]).is_err(), "the same place twice");
    assert!(check(&[(8, 8), (20, 8)]).is_err(), "a gap");
    assert!(check(&[(8, 8), (4, 8)]).is_err(), "backwards");
    assert!(check(&[(32, 8), (0, 8), (0, 8)]).is_err(), "two wraps");
    assert!(
        check(&[(32, 8), (0, 8), (8, 30)]).is_err(),
        "past the oldest"
    );
    assert!(
        check(&[(32, 0), (32, 0), (32, 8)]).is_ok(),
        "empty payloads"
    );
    assert!(check(&[]).is_ok());
}

// Property tests: random traffic through the calls host and worker make,
// checked after every step against a model kept here. The ring has no
// unsafe code, so Miri learns nothing from them; they are skipped there.

use proptest::prelude::*;

/// The size of one payload, resolved against the arena and the ring's
/// state at the step it is used in.
#[derive(Clone, Copy, Debug)]
enum Size {
    Empty,
    /// Exactly what `room` offers, and one more byte.
    Room,
    RoomPlusOne,
    Arena,
    /// `arena + 1 + k % arena`: never fits.
    Over(usize),
    /// Up to twice the arena, in 1/256ths.
    Scaled(u16),
}

impl Size {
    fn bytes(self, ring: &Ring) -> usize {
        match self {
            Size::Empty => 0,
            Size::Room => ring.room().len,
            Size::RoomPlusOne => ring.room().len + 1,
            Size::Arena => ring.arena,
            Size::Over(k) => ring.arena + 1 + k % ring.arena,
            Size::Scaled(f) => ring.arena * usize::from(f) / 256,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// The worker's way (and the host's for a fresh call): encode into
    /// `room`, and if it did not fit, `reserve` the size it needs.
    Encode(Size),
    /// The host's way for a call encoded already: `reserve` its size.
    Spilled(Size),
    /// The consumer took the oldest payload.
    Pop,
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![
        1 => Just(Size::Empty),
        1 => Just(Size::Room),
        1 => Just(Size::RoomPlusOne),
        1 => Just(Size::Arena),
        1 => any::<usize>().prop_map(Size::Over),
        6 => (0u16..=512).prop_map(Size::Scaled),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => size().prop_map(Op::Encode),
        1 => size().prop_map(Op::Spilled),
        3 => Just(Op::Pop),
    ]
}

/// The test's own record of the live payloads, and the free room the
/// module docs promise: after the newest payload (up to the oldest once
/// the newest lie before it), and at the arena's start (up to the oldest).
struct Spans {
    arena: usize,
    live: VecDeque<Span>,
}

impl Spans {
    /// Some payload went back to the start, below the one before it.
    fn wrapped(&self) -> bool {
        self.live
            .iter()
            .zip(self.live.iter().skip(1))
            .any(|(a, b)| b.offset < a.end())
    }

    /// The room after the newest payload and the room at the start.
    fn free(&self) -> (Span, Span) {
        let (Some(oldest), Some(newest)) = (self.live.front(), self.live.back()) else {
            return (
                Span {
                    offset: 0,
                    len: self.arena,
                },
                Span { offset: 0, len: 0 },
            );
        };
        let limit = if self.wrapped() {
            oldest.offset
        } else {
            self.arena
        };
        let here = Span {
            offset: newest.end(),
            len: limit - newest.end(),
        };
        let start = Span {
            offset: 0,
            len: if self.wrapped() { 0 } else { oldest.offset },
        };
        (here, start)
    }

    fn claimed(&self) -> Vec<(u64, u64)> {
        self.live
            .iter()
            .map(|s| (s.offset as u64, s.len as u64))
            .collect()
    }
}

fn overlap(a: Span, b: Span) -> bool {
    a.offset < b.end() && b.offset < a.end()
}

/// The room a call got is one the model has free, and the ring offered
/// it by the documented choice.
fn check_room(spans: &Spans, room: Span, n: usize) -> Result<(), TestCaseError> {
    let (here, start) = spans.free();
    prop_assert!(
        room == here || room == start,
        "room {room:?} is neither {here:?} nor {start:?}"
    );
    prop_assert!(room.len >= n, "room {room:?} too small for {n}");
    if room == start && start != here {
        // Back to the start: it had room, and more than after the newest
        // or enough to wrap early; or the newest's room was too small.
        let early = start.len >= here.len || start.len >= WRAP_EARLY;
        prop_assert!(
            start.len > 0 && (early || here.len < n),
            "{room:?} over {here:?}"
        );
    }
    Ok(())
}

/// Everything the ring says agrees with the model, and the consumer's
/// check accepts the live payloads and refuses them broken.
fn check_state(
    ring: &Ring,
    spans: &Spans,
    fault: (usize, usize, u64),
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&ring.live, &spans.live);
    for (i, a) in spans.live.iter().enumerate() {
        prop_assert!(a.end() <= spans.arena, "{a:?} leaves the arena");
        for b in spans.live.iter().skip(i + 1) {
            prop_assert!(!overlap(*a, *b), "{a:?} overlaps {b:?}");
        }
    }
    let write = spans.live.back().map_or(0, Span::end);
    prop_assert_eq!(ring.write, write);
    prop_assert_eq!(ring.wrapped, spans.wrapped());
    let (here, start) = spans.free();
    let best = here.len.max(start.len);
    prop_assert_eq!(ring.reserve(best).map(|r| r.len), Some(best));
    prop_assert_eq!(ring.reserve(best + 1), None);
    check_room(spans, ring.room(), 0)?;

    let claimed = spans.claimed();
    let check = |c: &[(u64, u64)]| check_unread(c.iter().copied(), spans.arena);
    prop_assert!(check(&claimed).is_ok(), "{:?}", check(&claimed));
    // Every prefix and suffix is what the consumer may see too.
    let (a, b) = claimed.split_at(fault.0 % (claimed.len() + 1));
    prop_assert!(check(a).is_ok() && check(b).is_ok());

    let (i, j, shift) = fault;
    let full: Vec<usize> = (0..claimed.len()).filter(|&k| claimed[k].1 > 0).collect();
    if !claimed.is_empty() {
        // One payload made to reach past the arena's end.
        let k = i % claimed.len();
        let mut broken = claimed.clone();
        let o = broken[k].0;
        broken[k].1 = spans.arena as u64 + 1 - o + shift % 4;
        prop_assert!(check(&broken).is_err(), "past the end passes: {broken:?}");
    }
    if full.len() >= 2 {
        // One payload moved onto another, keeping its length.
        let (k, t) = (full[i % full.len()], full[j % full.len()]);
        if k != t {
            let target = claimed[t];
            let len = claimed[k].1.min(spans.arena as u64);
            let offset = (target.0 + shift % target.1).min(spans.arena as u64 - len);
            let mut broken = claimed.clone();
            broken[k] = (offset, len);
            let moved = Span {
                offset: offset as usize,
                len: len as usize,
            };
            let target = Span {
                offset: target.0 as usize,
                len: target.1 as usize,
            };
            if overlap(moved, target) {
                prop_assert!(check(&broken).is_err(), "an overlap passes: {broken:?}");
            }
        }
    }
    Ok(())
}

/// One step of traffic: the ring and the model move together.
fn step(ring: &mut Ring, spans: &mut Spans, op: Op) -> Result<(), TestCaseError> {
    let (here, start) = spans.free();
    let fits = |n: usize| here.len >= n || start.len >= n;
    match op {
        Op::Pop => {
            if spans.live.pop_front().is_some() {
                ring.pop();
            }
        }
        Op::Encode(size) => {
            let n = size.bytes(ring);
            let room = ring.room();
            check_room(spans, room, 0)?;
            let got = if n <= room.len {
                Some(room)
            } else {
                ring.reserve(n)
            };
            prop_assert_eq!(
                got.is_some(),
                fits(n),
                "{} bytes, free {:?} {:?}",
                n,
                here,
                start
            );
            if let Some(room) = got {
                check_room(spans, room, n)?;
                spans.live.push_back(ring.commit(room, n));
            }
        }
        Op::Spilled(size) => {
            let n = size.bytes(ring);
            let got = ring.reserve(n);
            prop_assert_eq!(
                got.is_some(),
                fits(n),
                "{} bytes, free {:?} {:?}",
                n,
                here,
                start
            );
            if let Some(room) = got {
                check_room(spans, room, n)?;
                spans.live.push_back(ring.commit(room, n));
            }
        }
    }
    Ok(())
}

/// Runs `ops` on a fresh ring of `arena` bytes, then drains it.
fn traffic(arena: usize, ops: &[Op], fault: (usize, usize, u64)) -> Result<(), TestCaseError> {
    let mut ring = Ring::new(arena);
    let mut spans = Spans {
        arena,
        live: VecDeque::new(),
    };
    for &op in ops {
        let before = format!("{ring:?}");
        let live = spans.live.len();
        step(&mut ring, &mut spans, op)?;
        if spans.live.len() == live && !matches!(op, Op::Pop) {
            prop_assert_eq!(
                format!("{ring:?}"),
                before,
                "a failed call changed the ring"
            );
        }
        check_state(&ring, &spans, fault)?;
        prop_assert!(spans.live.iter().map(|s| s.len).sum::<usize>() <= arena);
    }
    while spans.live.pop_front().is_some() {
        ring.pop();
        check_state(&ring, &spans, fault)?;
    }
    // Empty again: back at offset 0, with nothing leaked.
    prop_assert_eq!((ring.write, ring.wrapped, ring.live()), (0, false, 0));
    prop_assert_eq!(
        ring.room(),
        Span {
            offset: 0,
            len: arena
        }
    );
    prop_assert_eq!(
        ring.reserve(arena),
        Some(Span {
            offset: 0,
            len: arena
        })
    );
    prop_assert_eq!(ring.reserve(arena + 1), None);
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        // The same cases on every run; a failure is kept as a plain test.
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b6e_6974),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    #[cfg_attr(miri, ignore)]
    fn small_arenas_agree_with_the_model(
        arena in 64usize..=4096,
        ops in prop::collection::vec(op(), 0..200),
        fault in any::<(usize, usize, u64)>(),
    ) {
        traffic(arena, &ops, fault)?;
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn arenas_that_wrap_early_agree_with_the_model(
        arena in (2 * WRAP_EARLY)..=(16 * WRAP_EARLY),
        ops in prop::collection::vec(op(), 0..200),
        fault in any::<(usize, usize, u64)>(),
    ) {
        traffic(arena, &ops, fault)?;
    }

    /// Whatever one payload of an honest list is changed into, the check
    /// passes it only if all of them still lie in the arena, disjoint.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn what_the_check_passes_is_disjoint(
        arena in 64usize..=4096,
        ops in prop::collection::vec(op(), 0..100),
        pick in any::<usize>(),
        offset in any::<u64>(),
        len in any::<u64>(),
    ) {
        let mut ring = Ring::new(arena);
        let mut spans = Spans { arena, live: VecDeque::new() };
        for op in ops {
            step(&mut ring, &mut spans, op)?;
        }
        let mut claimed = spans.claimed();
        if !claimed.is_empty() {
            let k = pick % claimed.len();
            // Mostly near the arena, sometimes anywhere.
            let a = arena as u64;
            claimed[k] = if offset % 4 == 0 { (offset, len) } else { (offset % (a + 8), len % (a + 8)) };
        }
        if check_unread(claimed.iter().copied(), arena).is_ok() {
            let spans: Vec<Span> = claimed
                .iter()
                .map(|&(o, l)| Span { offset: o as usize, len: l as usize })
                .collect();
            for (i, a) in spans.iter().enumerate() {
                prop_assert!(a.end() <= arena, "{a:?} passed outside the arena");
                for b in &spans[i + 1..] {
                    prop_assert!(!overlap(*a, *b), "{a:?} and {b:?} passed");
                }
            }
        }
    }
}
