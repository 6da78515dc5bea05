//! Where payloads go in a circular arena, and the check that a peer's
//! claimed payloads do not overlap.
//!
//! Each arena carries one direction's payloads, consumed in the order they
//! were written. The producer keeps its own record of the payloads not yet
//! consumed ([`Ring`]) and learns only *how many* were consumed; it never
//! trusts the other side for where free space is. Payloads are contiguous
//! and addressed by offset: the next one goes right after the newest, or
//! at the arena's start when that has room ("wrapping"), and a ring that
//! empties starts over at offset 0. Wrapping as soon as the start has room
//! for a sizeable payload keeps the touched pages of the arena few, which
//! is what makes a fresh mapping (a replaced worker) cheap under load.
//!
//! The consumer cannot see the producer's record, so it checks what it
//! reads with [`check_unread`]: every payload published and not yet
//! consumed must lie in the arena, and the list must follow the rule above
//! (contiguous, with at most one wrap that stays below the oldest one).
//! Payloads that pass are pairwise disjoint, whatever the producer wrote.

use std::collections::VecDeque;

/// A payload's place in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

impl Span {
    /// One past the payload's last byte (in the arena, by construction).
    pub(crate) fn end(&self) -> usize {
        self.offset + self.len
    }
}

/// The start of the arena is used for the next payload, even while more
/// room is left after the newest one, once it has at least this much, or
/// twice the size of recent payloads if that is more (see the module docs).
pub(crate) const WRAP_EARLY: usize = 64 << 10;

/// The producer's side of one arena.
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    arena: usize,
    /// Payloads written and not yet consumed, oldest first.
    live: VecDeque<Span>,
    /// One past the newest payload (0 when the ring is empty).
    write: usize,
    /// The newest payloads lie before the oldest one (the ring wrapped).
    wrapped: bool,
    /// The size of recent payloads: the largest, decaying by an eighth
    /// with each payload written.
    recent: usize,
}

impl Ring {
    pub(crate) fn new(arena: usize) -> Self {
        Self {
            arena,
            live: VecDeque::new(),
            write: 0,
            wrapped: false,
            recent: 0,
        }
    }

    /// Payloads written and not yet consumed.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live.len()
    }

    /// The free room after the newest payload, and at the arena's start.
    fn places(&self) -> (Span, Span) {
        let Some(oldest) = self.live.front() else {
            let whole = Span {
                offset: 0,
                len: self.arena,
            };
            return (whole, Span { offset: 0, len: 0 });
        };
        if self.wrapped {
            let here = Span {
                offset: self.write,
                len: oldest.offset - self.write,
            };
            (here, Span { offset: 0, len: 0 })
        } else {
            let here = Span {
                offset: self.write,
                len: self.arena - self.write,
            };
            (
                here,
                Span {
                    offset: 0,
                    len: oldest.offset,
                },
            )
        }
    }

    /// Prefer the arena's start when it has more room than after the
    /// newest payload, or a room that recent payloads fit in with margin.
    fn prefers_start(&self, here: Span, start: Span) -> bool {
        start.len >= here.len || start.len >= WRAP_EARLY.max(self.recent.saturating_mul(2))
    }

    /// The room to encode the next payload into, whose size is not known
    /// yet: the larger of the two, or the arena's start once it has room
    /// for recent payloads (see [`WRAP_EARLY`]).
    pub(crate) fn room(&self) -> Span {
        let (here, start) = self.places();
        if self.prefers_start(here, start) {
            start
        } else {
            here
        }
    }

    /// A room of at least `n` bytes, if there is one now.
    pub(crate) fn reserve(&self, n: usize) -> Option<Span> {
        let (here, start) = self.places();
        let fits = |s: Span| s.len >= n;
        match (fits(here), fits(start)) {
            (true, true) if self.prefers_start(here, start) => Some(start),
            (true, _) => Some(here),
            (false, true) => Some(start),
            (false, false) => None,
        }
    }

    /// Records that `len` bytes were written at `room.offset`, a room this
    /// ring offered.
    pub(crate) fn commit(&mut self, room: Span, len: usize) -> Span {
        debug_assert!(len <= room.len);
        let span = Span {
            offset: room.offset,
            len,
        };
        if !self.live.is_empty() && !self.wrapped && room.offset < self.write {
            self.wrapped = true;
        }
        self.write = span.end();
        self.live.push_back(span);
        self.recent = len.max(self.recent - self.recent / 8);
        span
    }

    /// The oldest payload was consumed.
    pub(crate) fn pop(&mut self) {
        let Some(gone) = self.live.pop_front() else {
            return;
        };
        match self.live.front() {
            None => {
                self.write = 0;
                self.wrapped = false;
            }
            // The oldest payload now lies before the one consumed: the
            // consumer followed the wrap.
            Some(next) if next.offset < gone.offset => self.wrapped = false,
            Some(_) => {}
        }
    }
}

/// Checks the payloads a peer published and this side has not consumed,
/// oldest first: each lies in the arena, and together they follow the
/// producer's rule, so no two overlap. `Err` says what is wrong.
pub(crate) fn check_unread(
    spans: impl IntoIterator<Item = (u64, u64)>,
    arena: usize,
) -> Result<(), String> {
    let mut first: Option<Span> = None;
    let mut prev_end = 0usize;
    let mut wrapped = false;
    for (i, (offset, len)) in spans.into_iter().enumerate() {
        let span = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .filter(|&(o, l)| o.checked_add(l).is_some_and(|end| end <= arena))
            .map(|(offset, len)| Span { offset, len })
            .ok_or_else(|| {
                format!("payload {i} claims {len} bytes at offset {offset} (arena {arena} bytes)")
            })?;
        let Some(oldest) = first else {
            first = Some(span);
            prev_end = span.end();
            continue;
        };
        if span.offset == prev_end && (!wrapped || span.end() <= oldest.offset) {
            // Right after the previous one.
        } else if span.offset == 0 && !wrapped && span.end() <= oldest.offset {
            wrapped = true;
        } else {
            return Err(format!(
                "payload {i} at offset {} ({} bytes) overlaps unread payloads or skips \
                 free room (previous ends at {prev_end}, oldest unread at {})",
                span.offset, span.len, oldest.offset
            ));
        }
        prev_end = span.end();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
