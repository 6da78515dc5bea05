//! One slot ring of a process lane, written once for both directions and
//! both sides: the host sends requests and takes responses, the worker
//! takes requests and sends responses, all through [`Producer`] and
//! [`Consumer`] over a [`Storage`].
//!
//! A ring is `n` slots and two counters. The producer owns the slots'
//! fields and the *head* counter (messages published); the consumer owns
//! the *tail* counter (messages consumed). Message `seq` lives in slot
//! `seq % n`, and a slot whose `seq` word reads `seq + 1` holds message
//! `seq` (0: it never held one). The slot, not the head counter, says
//! whether a message is there: the counter only rings the bell
//! (`bell.rs`), so a peer that overwrites it can neither hide a message
//! nor show a stale one.
//!
//! The storage is a trait so that the same code runs on the shared mapping
//! ([`Requests`], [`Responses`]) in production and on plain heap memory
//! (`Heap`, tests only) under Miri and loom. It is generic, never dynamic:
//! each use is monomorphised to the loads and stores written here.
//!
//! # Memory ordering
//!
//! - The producer stores a slot's fields Relaxed, then its `seq` word with
//!   Release; the consumer loads `seq` with Acquire, then each field once,
//!   Relaxed. Seeing `seq + 1` therefore shows the fields and every payload
//!   byte written before them.
//! - The producer then publishes its head with [`bell::publish`] (an AcqRel
//!   RMW, the ringer's half of the bell protocol).
//! - A consumer that the producer relies on to free payloads publishes its
//!   tail with [`bell::publish`] after it copied them out ([`Consumer::publish`]);
//!   the producer loads it with Acquire before it reuses them. A tail that
//!   only informs ([`Consumer::announce`]) is stored Relaxed.
//!
//! # Trust
//!
//! Every word the peer wrote is read once, into this side's own copy, so a
//! peer that rewrites it afterwards changes nothing. A consumed count that
//! makes no sense is ignored ([`Producer::sync_consumed`]); the host's take
//! of responses refuses a broken set outright ([`Consumer::take_checked`],
//! with the checks of `check.rs`). What a request's fields point at is the
//! worker's to check (it trusts the host, but bounds-checks the range).

use std::sync::atomic::Ordering;

use super::{
    bell::{self, Word},
    check::{Answer, Expect, Violation},
    shm::{Mapping, ReqSlot, RespSlot},
};

#[cfg(all(test, knitting_loom))]
mod loom;
#[cfg(all(test, not(knitting_loom)))]
mod tests;

/// One slot of a ring: a `seq` word, written last and read first, and the
/// fields of the message it holds.
pub(crate) trait Slot {
    type Word: Word<u64>;
    /// This side's copy of the fields.
    type Fields: Copy;

    /// The word that names the message the slot holds (`seq + 1`).
    fn seq(&self) -> &Self::Word;
    /// Stores every field, Relaxed: the `seq` store that follows publishes
    /// them.
    fn store(&self, fields: &Self::Fields);
    /// Loads every field once, Relaxed: call only after the Acquire load
    /// of `seq` showed the message.
    fn load(&self) -> Self::Fields;
}

/// A request as its slot holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) task: u64,
    pub(crate) shape: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// A response as its slot holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

impl<W: Word<u64>> Slot for ReqSlot<W> {
    type Word = W;
    type Fields = Request;

    #[inline]
    fn seq(&self) -> &W {
        &self.seq
    }

    #[inline]
    fn store(&self, f: &Request) {
        // Relaxed: published by the Release store of `seq` after these.
        self.task.store(f.task, Ordering::Relaxed);
        self.shape.store(f.shape, Ordering::Relaxed);
        self.offset.store(f.offset, Ordering::Relaxed);
        self.len.store(f.len, Ordering::Relaxed);
    }

    #[inline]
    fn load(&self) -> Request {
        // Relaxed: ordered by the Acquire load of `seq` before these.
        Request {
            task: self.task.load(Ordering::Relaxed),
            shape: self.shape.load(Ordering::Relaxed),
            offset: self.offset.load(Ordering::Relaxed),
            len: self.len.load(Ordering::Relaxed),
        }
    }
}

impl<W: Word<u64>> Slot for RespSlot<W> {
    type Word = W;
    type Fields = Response;

    #[inline]
    fn seq(&self) -> &W {
        &self.seq
    }

    #[inline]
    fn store(&self, f: &Response) {
        // Relaxed: published by the Release store of `seq` after these.
        self.status.store(f.status, Ordering::Relaxed);
        self.offset.store(f.offset, Ordering::Relaxed);
        self.len.store(f.len, Ordering::Relaxed);
    }

    #[inline]
    fn load(&self) -> Response {
        // Relaxed: ordered by the Acquire load of `seq` before these.
        Response {
            status: self.status.load(Ordering::Relaxed),
            offset: self.offset.load(Ordering::Relaxed),
            len: self.len.load(Ordering::Relaxed),
        }
    }
}

/// Where one ring's slots and counters are.
pub(crate) trait Storage {
    type Slot: Slot;
    type Counter: Word<u64>;

    /// The slots; never empty.
    fn slots(&self) -> &[Self::Slot];
    /// Messages published so far, written by the producer.
    fn head(&self) -> &Self::Counter;
    /// Messages consumed so far, written by the consumer.
    fn tail(&self) -> &Self::Counter;
}

/// The slot of message `seq`.
#[inline]
fn slot_of<S: Storage>(ring: &S, seq: u64) -> &S::Slot {
    let slots = ring.slots();
    &slots[(seq % slots.len() as u64) as usize]
}

/// The fields of `S`'s slots.
type FieldsOf<S> = <<S as Storage>::Slot as Slot>::Fields;

/// The request ring of a mapping: the host produces, the worker consumes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Requests<'a>(pub(crate) &'a Mapping);

/// The response ring of a mapping: the worker produces, the host consumes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Responses<'a>(pub(crate) &'a Mapping);

impl Storage for Requests<'_> {
    type Slot = ReqSlot;
    type Counter = std::sync::atomic::AtomicU64;

    #[inline]
    fn slots(&self) -> &[ReqSlot] {
        self.0.req_slots()
    }
    #[inline]
    fn head(&self) -> &Self::Counter {
        &self.0.control().req_head
    }
    #[inline]
    fn tail(&self) -> &Self::Counter {
        &self.0.control().req_tail
    }
}

impl Storage for Responses<'_> {
    type Slot = RespSlot;
    type Counter = std::sync::atomic::AtomicU64;

    #[inline]
    fn slots(&self) -> &[RespSlot] {
        self.0.resp_slots()
    }
    #[inline]
    fn head(&self) -> &Self::Counter {
        &self.0.control().resp_head
    }
    #[inline]
    fn tail(&self) -> &Self::Counter {
        &self.0.control().resp_tail
    }
}

/// The producing side of a ring, with its own count of what it published
/// and of what the consumer consumed.
#[derive(Debug, Default)]
pub(crate) struct Producer {
    /// Messages published (this side's copy of the head counter).
    head: u64,
    /// Messages consumed, as far as this side knows: the last tail that
    /// made sense.
    consumed: u64,
}

impl Producer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Messages published so far.
    #[inline]
    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// Messages consumed, as last seen by [`sync_consumed`](Self::sync_consumed).
    #[inline]
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Publishes `fields` as the next message; returns its number.
    #[inline]
    pub(crate) fn send<S: Storage>(&mut self, ring: &S, fields: &FieldsOf<S>) -> u64 {
        let seq = self.head;
        self.publish(ring, seq, fields);
        seq
    }

    /// Publishes `fields` as message `seq` and counts it.
    ///
    /// A ring whose messages answer those of another ring (responses) names
    /// each by the message it answers, which is the next one for a peer
    /// that answers each message once, in order; [`send`](Self::send) is
    /// this with `seq = head`. Anything written before this call (payload
    /// bytes, words of the storage beside the ring) is visible to a
    /// consumer that sees the message.
    #[inline]
    pub(crate) fn publish<S: Storage>(&mut self, ring: &S, seq: u64, fields: &FieldsOf<S>) {
        let slot = slot_of(ring, seq);
        slot.store(fields);
        // SYNC POINT: the slot's fields and everything written before
        // them, for the consumer's Acquire load of `seq` (`Consumer::read`).
        slot.seq().store(seq + 1, Ordering::Release);
        self.head += 1;
        // SYNC POINT: the slot again, by the bell protocol's RMW (see
        // `bell::publish`); a sleeper that reads the counter sees the slot.
        bell::publish(ring.head(), self.head);
    }

    /// The consumer's tail if it makes sense: past the last one seen and
    /// not past what was published. A peer may write anything there.
    #[inline]
    fn sensible(&self, tail: u64) -> Option<u64> {
        (tail > self.consumed && tail <= self.head).then_some(tail)
    }

    /// Loads the consumer's tail and adopts it if it makes sense; returns
    /// how many messages it newly consumed (0 for a tail that makes no
    /// sense: the host writes it again on its next round).
    #[inline]
    pub(crate) fn sync_consumed<S: Storage>(&mut self, ring: &S) -> u64 {
        // SYNC POINT: Acquire pairs with the consumer's `bell::publish` of
        // the tail, made after it copied the payloads out: they are free
        // for reuse after this.
        let Some(tail) = self.sensible(ring.tail().load(Ordering::Acquire)) else {
            return 0;
        };
        let newly = tail - self.consumed;
        self.consumed = tail;
        newly
    }

    /// Reads the consumer's tail the way a producer about to sleep for room
    /// must (the sleeper's RMW of the bell protocol), without adopting it;
    /// `None` when it shows nothing new that makes sense.
    #[inline]
    pub(crate) fn poll_consumed<S: Storage>(&self, ring: &S) -> Option<u64> {
        self.sensible(bell::read_counter(ring.tail()))
    }
}

/// The consuming side of a ring, with its own count of what it consumed.
#[derive(Debug, Default)]
pub(crate) struct Consumer {
    /// Messages consumed (this side's copy of the tail counter).
    tail: u64,
}

impl Consumer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Messages consumed so far.
    #[inline]
    pub(crate) fn tail(&self) -> u64 {
        self.tail
    }

    /// True when message `seq` is published: its slot holds `seq + 1`.
    #[inline]
    pub(crate) fn is_published<S: Storage>(ring: &S, seq: u64) -> bool {
        // Acquire: as in `read`.
        slot_of(ring, seq).seq().load(Ordering::Acquire) == seq + 1
    }

    /// Reads message `seq` once into this side's copy: its fields, or the
    /// `seq` word its slot holds instead (the number of the message it
    /// names, plus one; 0 for a slot never written).
    #[inline]
    pub(crate) fn read<S: Storage>(ring: &S, seq: u64) -> Result<FieldsOf<S>, u64> {
        let slot = slot_of(ring, seq);
        // SYNC POINT: Acquire pairs with the producer's Release store of
        // `seq + 1` (`Producer::publish`): the fields and the payload bytes
        // written before it are visible after this.
        let holds = slot.seq().load(Ordering::Acquire);
        if holds == seq + 1 {
            Ok(slot.load())
        } else {
            Err(holds)
        }
    }

    /// Takes the next message if it is published: its number and fields.
    /// The caller publishes the new count ([`announce`](Self::announce) or
    /// [`publish`](Self::publish)) when it is done with the payload.
    #[inline]
    pub(crate) fn next<S: Storage>(&mut self, ring: &S) -> Option<(u64, FieldsOf<S>)> {
        let seq = self.tail;
        let fields = Self::read(ring, seq).ok()?;
        self.tail += 1;
        Some((seq, fields))
    }

    /// Counts one more message consumed (read and done with), in this
    /// side's copy only.
    #[inline]
    pub(crate) fn advance(&mut self) {
        self.tail += 1;
    }

    /// Stores the count for the producer to see when nothing is freed on
    /// it (the request ring: the host frees request payloads on responses).
    #[inline]
    pub(crate) fn announce<S: Storage>(&self, ring: &S) {
        // Relaxed: informative only; the producer frees nothing on it.
        ring.tail().store(self.tail, Ordering::Relaxed);
    }

    /// Publishes the count: the producer may reuse the payloads of the
    /// messages consumed, so the caller must be done with them.
    #[inline]
    pub(crate) fn publish<S: Storage>(&self, ring: &S) {
        // SYNC POINT: Release (in the RMW): our reads of the consumed
        // payloads happen before the producer's reuse (its Acquire load in
        // `Producer::sync_consumed`); also the ringer's half of the bell
        // protocol, for a producer that sleeps waiting for room.
        bell::publish(ring.tail(), self.tail);
    }

    /// Writes the count again if the storage holds another value (the
    /// producer's side overwrote it). True when it did: the caller rings
    /// the producer, which may wait for room on the count it could not
    /// make sense of.
    #[inline]
    pub(crate) fn repair<S: Storage>(&self, ring: &S) -> bool {
        // Relaxed: compared with this side's own copy only.
        if ring.tail().load(Ordering::Relaxed) == self.tail {
            return false;
        }
        self.publish(ring);
        true
    }

    /// The host's take of responses from an untrusted producer: reads the
    /// head counter and every published slot once, into `answers`, then
    /// checks the whole unread set (`check.rs`) before any of it is used.
    /// Returns how many responses are ready (0 when none is); does not
    /// count them consumed ([`advance`](Self::advance) does, per response
    /// used).
    ///
    /// `sent` is how many requests the host published: no more responses
    /// can exist. The slots say what is ready: every slot up to the
    /// counter must hold its response (the worker fills a slot before it
    /// counts it), and the ones after it that do are ready too (a counter
    /// that a task set back hides nothing).
    pub(crate) fn take_checked<S: Storage>(
        &self,
        ring: &S,
        sent: u64,
        max_payload: usize,
        arena: usize,
        answers: &mut Vec<Answer>,
    ) -> Result<usize, Violation>
    where
        S::Slot: Slot<Fields = Response>,
    {
        let expect = Expect {
            consumed: self.tail,
            sent,
            max_payload,
            arena,
        };
        // SYNC POINT: Acquire pairs with the producer's `bell::publish` of
        // the head (slots and payload bytes before it). A counter outside
        // what was sent is a broken producer.
        let counted = expect.ready(ring.head().load(Ordering::Acquire))?;
        answers.clear();
        for (i, seq) in (self.tail..sent).enumerate() {
            match Self::read(ring, seq) {
                Ok(Response {
                    status,
                    offset,
                    len,
                }) => answers.push(Answer {
                    seq,
                    status,
                    offset,
                    len,
                }),
                Err(holds) if i < counted => {
                    return Err(Violation {
                        why: format!(
                            "response slot for call {seq} names call {}",
                            holds.wrapping_sub(1)
                        ),
                        answered: counted,
                    })
                }
                Err(_) => break,
            }
        }
        if answers.is_empty() {
            return Ok(0);
        }
        expect.answers(answers)?;
        Ok(answers.len())
    }
}

/// A ring in plain heap memory, for tests, loom models (with loom's
/// atomics under `--cfg knitting_loom`) and fuzz targets.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Debug)]
pub(crate) struct Heap<T> {
    slots: Box<[T]>,
    head: crate::sync::AtomicU64,
    tail: crate::sync::AtomicU64,
}

#[cfg(any(test, feature = "fuzzing"))]
impl<T: Slot + Default> Heap<T> {
    pub(crate) fn new(n: usize) -> Self {
        assert!(n > 0, "a ring has slots");
        Self {
            slots: (0..n).map(|_| T::default()).collect(),
            head: Default::default(),
            tail: Default::default(),
        }
    }

    /// Slot `index`, for writing to it the way a peer would.
    #[cfg(not(knitting_loom))]
    pub(crate) fn slot(&self, index: usize) -> &T {
        &self.slots[index]
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl<T: Slot> Storage for Heap<T> {
    type Slot = T;
    type Counter = crate::sync::AtomicU64;

    fn slots(&self) -> &[T] {
        &self.slots
    }
    fn head(&self) -> &Self::Counter {
        &self.head
    }
    fn tail(&self) -> &Self::Counter {
        &self.tail
    }
}

/// The request ring on the heap.
#[cfg(test)]
pub(crate) type HeapRequests = Heap<ReqSlot<crate::sync::AtomicU64>>;
/// The response ring on the heap.
#[cfg(all(any(test, feature = "fuzzing"), not(knitting_loom)))]
pub(crate) type HeapResponses = Heap<RespSlot<crate::sync::AtomicU64>>;
