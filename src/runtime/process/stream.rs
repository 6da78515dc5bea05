//! Stream items from a worker to the host, through the stream area of the
//! mapping: the format both sides write and read, the host's reader, and
//! the credit that bounds what a worker may send ahead of its readers.
//!
//! The area is a byte ring. The worker writes a frame per item — a
//! 16-byte header (the number of the request the item belongs to, then
//! the item's length, both little-endian `u64`s) and the encoded item,
//! padded to whole words — and publishes `stream_head`, the bytes written
//! so far. A frame never wraps: at the end of a lap, and once it is past
//! [`WRAP_AT`] when the start is free, the worker writes a [`WRAP`]
//! header (or, with less than a header's room left, nothing) and goes on
//! at the start. The host reads from its own position, never from a
//! worker-written one, checks every header before it reads the item
//! (inside the area, inside what was published, under `max_payload`, a
//! request in flight that streams), and publishes `stream_tail`.
//!
//! The worker may have sent `stream_credit` items in all: the host starts
//! it at the pool's stream bound and raises it by one for every item a
//! reader takes (or drops unread), and by the items left unread when a
//! call ends. It keeps its own count and checks each item against it: a
//! worker past its credit broke the protocol.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::Waker,
};

use super::{
    bell,
    link::InFlight,
    shm::{Dir, Mapping},
};
use crate::payload::stream::Credit;

/// The size of a frame's header.
pub(crate) const FRAME: u64 = 16;
/// A header's request number that says: go on at the start of the area.
pub(crate) const WRAP: u64 = u64::MAX;
/// Past this offset a worker goes back to the start as soon as it is free.
pub(crate) const WRAP_AT: u64 = 256 << 10;

/// A worker's credit, as the host counts it.
pub(crate) struct LaneCredit {
    shm: Arc<Mapping>,
    /// Items the worker may have sent in all (the host's own count; the
    /// mapping's word is a copy).
    total: AtomicU64,
}

impl LaneCredit {
    /// The credit of a fresh worker: `bound` items.
    pub(crate) fn new(shm: Arc<Mapping>, bound: usize) -> Arc<Self> {
        let bound = bound as u64;
        // Relaxed: the worker starts after this (its start is the edge).
        shm.control().stream_credit.store(bound, Ordering::Relaxed);
        Arc::new(Self {
            shm,
            total: AtomicU64::new(bound),
        })
    }

    /// Writes the credit word again if a task moved it below the host's
    /// count (the worker would wait for credit it has); true if it did.
    pub(crate) fn repair(&self) -> bool {
        let total = self.total();
        let word = &self.shm.control().stream_credit;
        // Relaxed: a look only; the RMW below publishes, as in `give`.
        if word.load(Ordering::Relaxed) >= total {
            return false;
        }
        // SYNC POINT: as in `give`.
        word.fetch_max(total, Ordering::AcqRel);
        true
    }

    fn total(&self) -> u64 {
        // Acquire: an item the worker sent on a credit it read was sent
        // after this count grew (see `give`).
        self.total.load(Ordering::Acquire)
    }
}

impl Credit for LaneCredit {
    fn give(&self, n: u64) {
        // AcqRel: the count first, then the mapping's copy, so that the
        // host never sees an item sent on credit it has not counted.
        let total = self.total.fetch_add(n, Ordering::AcqRel) + n;
        let control = self.shm.control();
        // SYNC POINT: an RMW (the bell protocol's publisher side) that
        // never moves the word back, whichever reader's give lands last.
        control.stream_credit.fetch_max(total, Ordering::AcqRel);
        bell::ring_if_sleeping(&control.worker_bell);
    }
}

/// The host's reader of one worker's stream area.
pub(crate) struct StreamReader {
    /// Bytes read so far: the host's own position.
    tail: u64,
    /// Items received so far.
    received: u64,
    pub(crate) credit: Arc<LaneCredit>,
}

impl StreamReader {
    pub(crate) fn new(shm: &Arc<Mapping>, bound: usize) -> Self {
        Self {
            tail: 0,
            received: 0,
            credit: LaneCredit::new(Arc::clone(shm), bound),
        }
    }

    /// True when the worker published frames the host has not read.
    pub(crate) fn ready(&self, shm: &Mapping) -> bool {
        // The RMW read of the bell protocol (the reactor calls this before
        // it sleeps).
        bell::read_counter(&*shm.control().stream_head) != self.tail
    }

    /// Reads every frame the worker published and delivers its item to the
    /// call it names, the first in flight being request `first`. Returns
    /// why the worker broke the protocol, if it did.
    pub(crate) fn drain(
        &mut self,
        shm: &Mapping,
        inflight: &mut std::collections::VecDeque<InFlight>,
        first: u64,
        max_payload: usize,
        scratch: &mut Vec<u8>,
        wakers: &mut Vec<Waker>,
    ) -> Result<(), String> {
        let control = shm.control();
        // SYNC POINT: Acquire; the frames before it were written first.
        let head = control.stream_head.load(Ordering::Acquire);
        if head == self.tail {
            return Ok(());
        }
        let size = shm.layout().stream as u64;
        check_head(self.tail, head, size)?;
        let area = shm
            .window(Dir::Stream, 0, size as usize)
            .ok_or("the stream area is outside the mapping")?;
        let credit: Arc<dyn Credit> = Arc::clone(&self.credit) as Arc<dyn Credit>;
        let mut last: Option<Arc<dyn crate::payload::stream::Sink>> = None;
        while self.tail < head {
            let (seq, offset, len, need) = match parse(&area, self.tail, head, max_payload)? {
                Frame::Skip(n) => {
                    self.tail += n;
                    continue;
                }
                Frame::Item {
                    seq,
                    offset,
                    len,
                    need,
                } => (seq, offset, len, need),
            };
            let call = seq
                .checked_sub(first)
                .and_then(|i| inflight.get_mut(usize::try_from(i).ok()?))
                .ok_or_else(|| format!("a stream item names request {seq}, not in flight"))?;
            let sink = call.stream.as_ref().ok_or_else(|| {
                format!("a stream item names request {seq}, which streams nothing")
            })?;
            if self.received >= self.credit.total() {
                return Err(format!(
                    "it sent stream items past its credit of {}",
                    self.credit.total()
                ));
            }
            self.received += 1;
            call.delivered = true;
            let window = shm
                .window(Dir::Stream, offset as usize, len as usize)
                .ok_or("a stream item outside the stream area")?;
            let mut item = crate::payload::Response::new(window, scratch);
            sink.deliver(item.copied(), &credit)?;
            // One look for a waiting reader per stream and drain.
            if !last.as_ref().is_some_and(|l| Arc::ptr_eq(l, sink)) {
                if let Some(waker) = last.replace(Arc::clone(sink)).and_then(|l| l.woken()) {
                    wakers.push(waker);
                }
            }
            self.tail += need;
        }
        if let Some(waker) = last.and_then(|l| l.woken()) {
            wakers.push(waker);
        }
        // SYNC POINT (in `publish`): the worker reuses these bytes only
        // after this RMW, which is also the ringer's half of the bell
        // protocol for a worker waiting for room.
        bell::publish(&*control.stream_tail, self.tail);
        bell::ring_if_sleeping(&control.worker_bell);
        Ok(())
    }
}

/// What the next bytes of the stream area hold, as the host reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Nothing to read: skip this many bytes (the rest of a lap).
    Skip(u64),
    /// An item of request `seq`: `len` bytes at `offset` of the area; the
    /// frame takes `need` bytes in all.
    Item {
        seq: u64,
        offset: u64,
        len: u64,
        need: u64,
    },
}

/// Checks a worker's stream head against the host's tail: ahead of it,
/// by at most the area's size.
pub(crate) fn check_head(tail: u64, head: u64, size: u64) -> Result<(), String> {
    if head < tail || head - tail > size {
        return Err(format!(
            "its stream head {head} is not within the area's {size} bytes past {tail}"
        ));
    }
    Ok(())
}

/// Reads the frame at the host's position `tail` of the stream `area`,
/// whose worker published `head` (checked with [`check_head`], and
/// `tail < head`). Every number comes from worker-written bytes: each is
/// checked before it is used, so that what comes back lies inside the area
/// and inside what was published.
pub(crate) fn parse(
    area: &crate::payload::Window<'_>,
    tail: u64,
    head: u64,
    max_payload: usize,
) -> Result<Frame, String> {
    let size = area.len() as u64;
    let offset = tail % size;
    let to_end = size - offset;
    if to_end < FRAME {
        return Ok(Frame::Skip(to_end));
    }
    if head - tail < FRAME {
        return Err("its stream head ends inside a frame header".to_owned());
    }
    let mut raw = [std::mem::MaybeUninit::new(0u8); FRAME as usize];
    area.read(offset as usize, &mut raw);
    // SAFETY: every byte was initialised above (`new(0)`), and `read` only
    // overwrote them.
    let bytes: [u8; FRAME as usize] = unsafe { std::mem::transmute(raw) };
    let seq = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes"));
    if seq == WRAP {
        return Ok(Frame::Skip(to_end));
    }
    let need = len
        .checked_add(FRAME + 7)
        .map(|n| n / 8 * 8)
        .filter(|&n| n <= to_end && n <= head - tail)
        .ok_or_else(|| format!("a stream item of {len} bytes runs past what it wrote"))?;
    if len > max_payload as u64 {
        return Err(format!(
            "a stream item of {len} bytes is over max_payload_bytes ({max_payload})"
        ));
    }
    Ok(Frame::Item {
        seq,
        offset: offset + FRAME,
        len,
        need,
    })
}
