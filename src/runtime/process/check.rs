//! The host's checks of what a worker wrote: pure functions over copies of
//! the worker's words, so that they run (and are tested with hand-made
//! hostile input) without a mapping or a process, also under Miri.
//!
//! The host reads each worker-written word once, into its own memory
//! ([`Answer`]), and decides everything on that copy: a worker that
//! rewrites a word after it was read changes nothing.

use super::{
    arena::check_unread,
    shm::{STATUS_ERR, STATUS_OK},
};

/// One response slot as read, once, from the worker's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) seq: u64,
    pub(crate) status: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Why the worker's memory cannot be trusted, and how many of the calls
/// in flight it claims to have answered (those may have run).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) why: String,
    pub(crate) answered: usize,
}

/// What the host knows from its own state when it reads responses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect {
    /// Responses consumed so far (the host's own count).
    pub(crate) consumed: u64,
    /// Requests published so far (the host's own count).
    pub(crate) sent: u64,
    pub(crate) max_payload: usize,
    pub(crate) arena: usize,
}

impl Expect {
    /// Checks the worker's response counter; returns how many responses
    /// it claims are ready beyond those consumed.
    ///
    /// The host takes a response as soon as its slot holds it, and the
    /// worker counts it right after filling the slot, so an honest counter
    /// may lag what was consumed by one.
    pub(crate) fn ready(&self, head: u64) -> Result<usize, Violation> {
        if head.saturating_add(1) < self.consumed || head > self.sent {
            return Err(Violation {
                why: format!(
                    "its response counter reads {head}, outside [{}, {}]",
                    self.consumed, self.sent
                ),
                answered: usize::try_from(self.sent - self.consumed).unwrap_or(usize::MAX),
            });
        }
        // At most the calls in flight (`sent - consumed`), a host count.
        Ok(usize::try_from(head.saturating_sub(self.consumed)).unwrap_or(usize::MAX))
    }

    /// Checks the responses `consumed..consumed + answers.len()` as read:
    /// each names its call, has a known status and a payload in the arena
    /// under the limit, and no two unread payloads overlap.
    pub(crate) fn answers(&self, answers: &[Answer]) -> Result<(), Violation> {
        let violation = |why: String| Violation {
            why,
            answered: answers.len(),
        };
        for (seq, a) in (self.consumed..).zip(answers) {
            if a.seq != seq {
                return Err(violation(format!(
                    "response for call {seq} names call {}",
                    a.seq
                )));
            }
            if a.status != u64::from(STATUS_OK) && a.status != u64::from(STATUS_ERR) {
                return Err(violation(format!(
                    "response {seq} has unknown status {}",
                    a.status
                )));
            }
            if a.len > self.max_payload as u64 {
                return Err(violation(format!(
                    "response {seq} claims {} bytes, over the limit of {}",
                    a.len, self.max_payload
                )));
            }
        }
        let last = self.consumed.saturating_add(answers.len() as u64);
        check_unread(answers.iter().map(|a| (a.offset, a.len)), self.arena)
            .map_err(|why| violation(format!("its responses {}..{last}: {why}", self.consumed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECT: Expect = Expect {
        consumed: 10,
        sent: 14,
        max_payload: 256,
        arena: 1024,
    };

    fn ok(seq: u64, offset: u64, len: u64) -> Answer {
        Answer {
            seq,
            status: u64::from(STATUS_OK),
            offset,
            len,
        }
    }

    #[test]
    fn honest_responses_pass() {
        assert_eq!(EXPECT.ready(10), Ok(0));
        assert_eq!(
            EXPECT.ready(9),
            Ok(0),
            "one behind: the slot was taken first"
        );
        assert_eq!(EXPECT.ready(14), Ok(4));
        let answers = [
            ok(10, 512, 100),
            ok(11, 612, 200),
            ok(12, 0, 256),
            ok(13, 256, 0),
        ];
        assert_eq!(EXPECT.answers(&answers), Ok(()));
    }

    #[test]
    fn a_counter_outside_what_was_sent_is_refused() {
        for head in [0, 8, 15, u64::MAX / 2, u64::MAX] {
            let err = EXPECT.ready(head).unwrap_err();
            assert!(err.why.contains("response counter"), "{}", err.why);
            assert_eq!(err.answered, 4, "every call in flight may have run");
        }
    }

    #[test]
    fn a_slot_for_another_call_or_an_unknown_status_is_refused() {
        let err = EXPECT.answers(&[ok(10, 0, 1), ok(1010, 1, 1)]).unwrap_err();
        assert!(err.why.contains("names call 1010"), "{}", err.why);
        assert_eq!(err.answered, 2);
        let bad = Answer {
            status: 77,
            ..ok(10, 0, 1)
        };
        assert!(EXPECT
            .answers(&[bad])
            .unwrap_err()
            .why
            .contains("status 77"));
    }

    #[test]
    fn ranges_that_overflow_or_leave_the_arena_are_refused() {
        for (offset, len) in [
            (u64::MAX - 3, 4),
            (u64::MAX, 1),
            (1020, 5),
            (1025, 0),
            (0, 257),
            (0, u64::MAX),
        ] {
            let err = EXPECT.answers(&[ok(10, offset, len)]).unwrap_err();
            assert!(
                err.why.contains("claims"),
                "({offset}, {len}) gives {}",
                err.why
            );
        }
    }

    #[test]
    fn unread_payloads_that_overlap_are_refused() {
        // The second response restarts at offset 0 over the unread first
        // one: what a worker does that believes everything was consumed.
        let err = EXPECT
            .answers(&[ok(10, 0, 100), ok(11, 0, 100)])
            .unwrap_err();
        assert!(err.why.contains("overlaps"), "{}", err.why);
        let err = EXPECT
            .answers(&[ok(10, 100, 100), ok(11, 200, 100), ok(12, 0, 150)])
            .unwrap_err();
        assert!(err.why.contains("overlaps"), "{}", err.why);
    }
}
