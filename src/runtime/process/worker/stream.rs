//! The worker's side of the stream area: a streaming task's items,
//! encoded into a byte ring of the mapping and published with
//! `stream_head`, within the credit the host gives (see `../stream.rs`
//! for the format and the host's checks).

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use super::super::{
    bell,
    shm::{self, Dir, Mapping},
    stream::{FRAME, WRAP, WRAP_AT},
};
use super::outbox::{ring_due, sleep};
use crate::{
    payload::{
        stream::{reader_gone, Port, Ports},
        Encode,
    },
    sync::Ordering,
    Error, ErrorKind,
};

/// The worker's stream area: one writer at a time.
#[derive(Debug)]
pub(super) struct StreamArea {
    map: &'static Mapping,
    max_payload: usize,
    writer: Mutex<Writer>,
}

#[derive(Debug)]
struct Writer {
    /// Bytes written so far (the next frame starts at `head % size`).
    head: u64,
    /// Items sent so far, by every call.
    sent: u64,
    /// The credit and the host's tail as last read: read again only when
    /// they hold the next item back, so that a burst of items does not
    /// read the lines the host writes.
    credit: u64,
    tail: u64,
    /// When the last item was published, and since when published items
    /// wait for a ring (see `RING_DELAY`).
    last_publish: Instant,
    owed_since: Option<Instant>,
}

impl StreamArea {
    pub(super) fn new(map: &'static Mapping, max_payload: usize) -> Self {
        Self {
            map,
            max_payload,
            writer: Mutex::new(Writer {
                head: 0,
                sent: 0,
                credit: 0,
                tail: 0,
                last_publish: Instant::now(),
                owed_since: None,
            }),
        }
    }
}

impl Ports for StreamArea {
    fn port(&'static self, seq: u64) -> Arc<dyn Port> {
        Arc::new(CallPort { area: self, seq })
    }
}

/// One call's port.
struct CallPort {
    area: &'static StreamArea,
    seq: u64,
}

impl CallPort {
    fn ended(&self) -> bool {
        let map = self.area.map;
        let index = (self.seq % map.layout().slots as u64) as usize;
        // Relaxed: a flag without data (the host rings after writing it).
        map.aborts()[index].load(Ordering::Relaxed) == shm::ABORT_ENDED
    }
}

impl Port for CallPort {
    fn is_closed(&self) -> bool {
        self.ended()
    }

    fn send(&self, encode: Encode<'_>) -> Result<(), Error> {
        let area = self.area;
        let map = area.map;
        let control = map.control();
        let size = map.layout().stream as u64;
        let mut w = area.writer.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.ended() {
                return Err(reader_gone());
            }
            if w.sent >= w.credit {
                // SYNC POINT: Acquire; the host gave this credit after its
                // reader took items.
                w.credit = control.stream_credit.load(Ordering::Acquire);
                if w.sent >= w.credit {
                    // The reader gives credit for items it has: ring for
                    // those that wait for a ring first.
                    w.ring(map);
                    let sent = w.sent;
                    wait(map, || {
                        bell::read_counter(&*control.stream_credit) > sent || self.ended()
                    });
                }
                continue;
            }
            // A tail that makes no sense (a task wrote over it) frees
            // nothing.
            let used = w
                .head
                .checked_sub(w.tail)
                .filter(|&u| u <= size)
                .unwrap_or(size);
            let offset = w.head % size;
            let to_end = size - offset;
            let free = size - used;
            // Encoded into the free room here (perhaps none: then it only
            // counts its size).
            let limit = area.max_payload as u64;
            let room = to_end.min(free);
            let len = room.saturating_sub(FRAME).min(limit) as usize;
            let at = if room >= FRAME { offset + FRAME } else { 0 };
            let mut window = map
                .window(Dir::Stream, at as usize, len)
                .expect("stream room lies inside the area");
            let n = encode(&mut window).map_err(|e| {
                Error::of(
                    ErrorKind::Codec,
                    format!("the worker could not encode a stream item: {e}"),
                )
            })?;
            if n as u64 > limit {
                return Err(Error::too_large("stream item", n, limit as usize));
            }
            let need = FRAME + round8(n as u64);
            if need > size {
                return Err(Error::too_large(
                    "stream item (in the worker's stream area, with its frame)",
                    need as usize,
                    size as usize,
                ));
            }
            // Far enough along, go back to the start when it is free, so
            // that the part of the area in use stays small.
            let wrap_now = offset >= WRAP_AT && free >= to_end + need;
            if n <= len && room >= FRAME && !wrap_now {
                frame(map, offset, self.seq, n as u64);
                w.head += need;
                w.sent += 1;
                w.publish(map);
                return Ok(());
            }
            // SYNC POINT: Acquire; the host read the bytes before its tail
            // before it published it. Only read when the room is short.
            let tail = control.stream_tail.load(Ordering::Acquire);
            if tail != w.tail {
                w.tail = tail;
                continue;
            }
            if wrap_now || (need > to_end && free >= to_end + need) {
                // Skip the rest of this lap.
                if to_end >= FRAME {
                    frame(map, offset, WRAP, 0);
                }
                w.head += to_end;
                continue;
            }
            // Wait for the host to read enough: the room here, or the
            // rest of the lap and the room at the start.
            let wanted = if need <= to_end { need } else { to_end + need };
            w.ring(map);
            let head = w.head;
            wait(map, || {
                let tail = bell::read_counter(&*control.stream_tail);
                let used = head
                    .checked_sub(tail)
                    .filter(|&u| u <= size)
                    .unwrap_or(size);
                size - used >= wanted || self.ended()
            });
        }
    }
}

/// Writes a frame's header at `offset`: the request it belongs to (or
/// [`WRAP`]) and the item's length.
fn frame(map: &Mapping, offset: u64, seq: u64, len: u64) {
    let mut header = map
        .window(Dir::Stream, offset as usize, FRAME as usize)
        .expect("the frame lies inside the area");
    header.write(0, &seq.to_le_bytes());
    header.write(8, &len.to_le_bytes());
}

/// Rounds a frame up to whole words.
fn round8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

impl Writer {
    /// Publishes the stream's new head, and rings the host if it sleeps
    /// and none of its threads watches: for the first item after a pause
    /// at once, in a burst once per `RING_DELAY` (as the outbox does for
    /// responses; before the worker waits, and when the call ends, it rings
    /// anyway). The clock is read only when a ring may be due.
    fn publish(&mut self, map: &Mapping) {
        let control = map.control();
        // SYNC POINT (in `publish`): the frames before it, by the RMW's
        // Release; the RMW pairs with the host reactor's read before it
        // sleeps.
        bell::publish(&*control.stream_head, self.head);
        // Acquire: the bell protocol's look at the flag (`should_ring`):
        // an awake reactor reads the new head before it sleeps.
        if control.host_bell.sleeping.load(Ordering::Acquire) == 0
            || bell::someone_spins(&control.host_bell.spinners)
        {
            self.owed_since = None;
            return;
        }
        if ring_due(&mut self.last_publish, &mut self.owed_since) {
            self.ring(map);
        }
    }

    /// Rings the host for what was published, unless one of its threads
    /// watches.
    fn ring(&mut self, map: &Mapping) {
        self.owed_since = None;
        let control = map.control();
        if !bell::someone_spins(&control.host_bell.spinners) {
            bell::ring_if_sleeping(&control.host_bell);
        }
    }
}

/// Sleeps on the worker's bell until `ready`.
fn wait(map: &Mapping, ready: impl Fn() -> bool) {
    sleep(map, |_| ready());
}
