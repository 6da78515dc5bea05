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

    /// Prefer the arena's start when it has room, and more than after the
    /// newest payload, or a room that recent payloads fit in with margin.
    /// A start without room is never taken, not even for an empty payload:
    /// going back to offset 0 there would break the rule (a second wrap,
    /// or one onto the oldest payload).
    fn prefers_start(&self, here: Span, start: Span) -> bool {
        start.len > 0
            && (start.len >= here.len || start.len >= WRAP_EARLY.max(self.recent.saturating_mul(2)))
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
mod tests;
