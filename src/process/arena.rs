//! Where the next payload goes in a circular arena.
//!
//! Each arena carries one direction's payloads as a byte stream: the
//! producer writes at increasing *stream positions* (offset = position mod
//! arena size), the consumer frees in order by publishing how far it has
//! consumed. A payload is always contiguous: when it does not fit before
//! the arena's end, the producer skips to the next lap. When everything is
//! consumed, the producer restarts at offset 0 (a fresh lap), which keeps
//! the touched pages few under light traffic.
//!
//! The consumer only knows what it consumed, not what the producer skipped,
//! so the producer keeps a `floor`: after a restart everything below it is
//! free, whatever the consumer last said.

/// The producer's side of one arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    arena: u64,
    /// Stream position of the next byte to write.
    write: u64,
    /// Everything before this position is free (see the module docs).
    floor: u64,
}

/// A place to write: stream position and the contiguous bytes available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Room {
    pub(crate) start: u64,
    pub(crate) len: usize,
}

impl Room {
    /// The offset of `start` in the arena.
    pub(crate) fn offset(&self, arena: usize) -> usize {
        (self.start % arena as u64) as usize
    }
}

impl Cursor {
    pub(crate) fn new(arena: usize) -> Self {
        Self {
            arena: arena as u64,
            write: 0,
            floor: 0,
        }
    }

    /// The two candidate places given the consumer's `freed` position: at
    /// the write position, and at the start of the next lap.
    fn places(&self, freed: u64) -> (Room, Room) {
        let freed = freed.max(self.floor).min(self.write);
        let used = self.write - freed;
        let free = self.arena - used.min(self.arena);
        let offset = self.write % self.arena;
        let to_end = self.arena - offset;
        let next_lap = self.write + if offset == 0 { 0 } else { to_end };
        if used == 0 {
            // Everything is consumed: a fresh lap has the whole arena.
            let whole = Room {
                start: next_lap,
                len: self.arena as usize,
            };
            return (whole, whole);
        }
        let here = Room {
            start: self.write,
            len: to_end.min(free) as usize,
        };
        let lap = Room {
            start: next_lap,
            len: free.saturating_sub(to_end) as usize,
        };
        (here, lap)
    }

    /// The largest contiguous room for the next payload.
    pub(crate) fn room(&self, freed: u64) -> Room {
        let (here, lap) = self.places(freed);
        if lap.len > here.len {
            lap
        } else {
            here
        }
    }

    /// A room of at least `n` bytes, if there is one now.
    pub(crate) fn reserve(&self, freed: u64, n: usize) -> Option<Room> {
        let (here, lap) = self.places(freed);
        [here, lap].into_iter().find(|r| r.len >= n)
    }

    /// Records that `len` bytes were written at `room.start`.
    pub(crate) fn commit(&mut self, room: Room, len: usize) {
        debug_assert!(len <= room.len);
        if room.len as u64 == self.arena {
            // Only an empty arena offers all of it: everything before this
            // room is free, whatever the consumer said last.
            self.floor = room.start;
        }
        self.write = room.start + len as u64;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    const ARENA: usize = 64;

    /// Payloads written and not yet consumed, as (start, len).
    struct Model {
        cursor: Cursor,
        live: VecDeque<(u64, usize)>,
        freed: u64,
    }

    impl Model {
        fn new() -> Self {
            Self {
                cursor: Cursor::new(ARENA),
                live: VecDeque::new(),
                freed: 0,
            }
        }

        fn live_bytes(&self) -> usize {
            self.live.iter().map(|&(_, len)| len).sum()
        }

        /// Writes `n` bytes if there is room; checks the room against every
        /// live payload.
        fn write(&mut self, n: usize) -> bool {
            let Some(room) = self.cursor.reserve(self.freed, n) else {
                return false;
            };
            let offset = room.offset(ARENA);
            assert!(offset + n <= ARENA, "the payload stays inside the arena");
            for &(start, len) in &self.live {
                let o = (start % ARENA as u64) as usize;
                let disjoint = offset + n <= o || o + len <= offset;
                assert!(
                    disjoint || n == 0 || len == 0,
                    "room overlaps a live payload"
                );
            }
            self.cursor.commit(room, n);
            self.live.push_back((room.start, n));
            true
        }

        fn consume(&mut self) {
            if let Some((start, len)) = self.live.pop_front() {
                self.freed = start + len as u64;
            }
        }
    }

    #[test]
    fn an_empty_arena_offers_all_of_it_from_offset_zero() {
        let mut m = Model::new();
        assert!(m.write(10));
        m.consume();
        let room = m.cursor.room(m.freed);
        assert_eq!(room.len, ARENA);
        assert_eq!(room.offset(ARENA), 0);
    }

    #[test]
    fn a_restart_does_not_count_the_skipped_tail_as_used() {
        // The bug this guards against: after a restart the consumer's
        // position lags a lap behind, which looked like a full arena.
        let mut m = Model::new();
        assert!(m.write(40));
        m.consume();
        for _ in 0..6 {
            assert!(m.write(8), "room for small payloads after a restart");
        }
        assert_eq!(m.live_bytes(), 48);
    }

    #[test]
    fn a_payload_that_does_not_fit_before_the_end_goes_to_the_next_lap() {
        let mut m = Model::new();
        assert!(m.write(40));
        assert!(m.write(16));
        m.consume(); // frees the first 40
        assert!(m.write(20), "20 bytes fit at the start of the next lap");
        assert_eq!(m.live.back().unwrap().0 % ARENA as u64, 0);
        assert!(!m.write(30), "only what is really free is offered");
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
        assert_eq!(m.cursor.room(m.freed).len, ARENA, "all of it is free again");
    }
}
