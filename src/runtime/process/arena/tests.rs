//! The producer's ring and the consumer's check: fixed cases and a long
//! deterministic run.

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
