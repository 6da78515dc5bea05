//! The worker's side of the response ring: encoding each outcome into the
//! response arena, publishing it, and ringing the host (or not yet, see
//! [`RING_DELAY`]); and the sleep on the worker's bell.

use std::time::{Duration, Instant};

use super::super::{
    arena::{Ring, Span},
    bell,
    channel::{Producer, Response, Responses},
    futex,
    shm::{self, Dir, Mapping},
};
use crate::{
    payload::{self, codec, Encode, Window},
    Error, ErrorKind,
};

/// The worker's side of the response ring.
#[derive(Debug)]
pub(super) struct Outbox {
    max_payload: usize,
    /// The response ring's producer: responses published, and consumed as
    /// far as this side knows (the last `resp_tail` that made sense).
    chan: Producer,
    /// Where the published, unconsumed responses are, and where the next
    /// one goes.
    ring: Ring,
    /// Since when published responses wait for a ring (see `RING_DELAY`).
    owed_since: Option<Instant>,
    /// When the last response was published.
    last_publish: Instant,
}

/// How long the response of a short call may wait for its ring while the
/// worker goes straight on to the next request: a burst of short calls then
/// costs the host one wake-up (whose thread would land on the worker's
/// core), not one per response. A worker about to sleep rings first; a
/// response published this long after the previous one (a call that ran
/// this long, or the first after a pause) rings at once, and so does one
/// published when a ring has been owed this long. The worst case, a short
/// call followed by a long one, waits for the reactor's poll (5 ms while
/// calls are in flight) if its caller is not spinning on it. One clock read
/// per response.
pub(super) const RING_DELAY: Duration = Duration::from_micros(50);

impl Outbox {
    /// The outbox of a response arena of `arena` bytes.
    pub(super) fn new(arena: usize, max_payload: usize) -> Self {
        Self {
            chan: Producer::new(),
            ring: Ring::new(arena),
            owed_since: None,
            last_publish: Instant::now(),
            max_payload,
        }
    }

    /// Published responses wait for their ring.
    pub(super) fn owes_ring(&self) -> bool {
        self.owed_since.is_some()
    }

    /// Frees the payloads of the responses the host consumed since the last
    /// look. A `resp_tail` that makes no sense (backwards, or past what was
    /// published: a task wrote over it) frees nothing; the host rewrites it
    /// on its next take.
    fn sync_consumed(&mut self, map: &Mapping) {
        // SYNC POINT (in `sync_consumed`): Acquire; the host read the
        // payloads before it published this.
        for _ in 0..self.chan.sync_consumed(&Responses(map)) {
            self.ring.pop();
        }
    }

    /// Encodes `value` into the response arena and publishes it.
    fn send(
        &mut self,
        map: &Mapping,
        seq: u64,
        status: u32,
        encode: Encode<'_>,
    ) -> Result<(), Error> {
        loop {
            self.sync_consumed(map);
            let room = self.ring.room();
            let len = room.len.min(self.max_payload);
            let mut window = map
                .window(Dir::Response, room.offset, len)
                .expect("response room lies inside the arena");
            let n = encode(&mut window).map_err(|e| {
                Error::of(
                    ErrorKind::Codec,
                    format!("the worker could not encode the result: {e}"),
                )
            })?;
            if n <= len {
                let span = self.ring.commit(room, n);
                self.publish(map, seq, status, span);
                return Ok(());
            }
            if n > self.max_payload {
                return Err(Error::too_large("result", n, self.max_payload));
            }
            if let Some(room) = self.ring.reserve(n) {
                // Room elsewhere (the other end of the ring): encode there.
                let mut window = map
                    .window(Dir::Response, room.offset, n)
                    .expect("response room lies inside the arena");
                if encode(&mut window).is_ok_and(|m| m == n) {
                    let span = self.ring.commit(room, n);
                    self.publish(map, seq, status, span);
                    return Ok(());
                }
                continue;
            }
            // It fits once the host consumes enough: wait for that, then
            // encode again.
            let (ring, chan) = (&self.ring, &self.chan);
            sleep(map, |map| {
                // The sleeper's RMW read of the bell protocol.
                let Some(tail) = chan.poll_consumed(&Responses(map)) else {
                    return false;
                };
                let mut ring = ring.clone();
                for _ in chan.consumed()..tail {
                    ring.pop();
                }
                ring.reserve(n).is_some()
            });
        }
    }

    fn publish(&mut self, map: &Mapping, seq: u64, status: u32, span: Span) {
        let response = Response {
            status: u64::from(status),
            offset: span.offset as u64,
            len: span.len as u64,
        };
        // SYNC POINT (in `publish`): the slot's fields and the payload
        // before them, by the Release store of `seq + 1` in the slot of
        // request `seq`; then the counter, by the bell protocol's RMW.
        self.chan.publish(&Responses(map), seq, &response);
        // A call that took a while may have a waiter that stopped
        // spinning: ring now. A short one is likely part of a burst.
        if ring_due(&mut self.last_publish, &mut self.owed_since) {
            self.ring_host(map);
        }
    }

    /// Rings the host for the responses published since the last ring,
    /// unless a host thread is spinning on them or the reactor is awake.
    pub(super) fn ring_host(&mut self, map: &Mapping) {
        self.owed_since = None;
        let host = &map.control().host_bell;
        // A host thread spinning on responses takes them itself.
        if !bell::someone_spins(&host.spinners) {
            bell::ring_if_sleeping(host);
        }
    }
}

/// After a publication: true when the host is to be rung now (the first
/// publication after a pause of [`RING_DELAY`], or one made while a ring
/// has been owed that long); otherwise the ring is owed from now on, if it
/// was not already. One clock read.
pub(super) fn ring_due(last_publish: &mut Instant, owed_since: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    let gap = now.saturating_duration_since(*last_publish);
    *last_publish = now;
    let owed_long =
        owed_since.is_some_and(|since| now.saturating_duration_since(since) >= RING_DELAY);
    if gap >= RING_DELAY || owed_long {
        return true;
    }
    owed_since.get_or_insert(now);
    false
}

/// Sleeps on the worker bell until `ready` holds (checked after the
/// sleeping flag is up, so a ring cannot be missed).
pub(super) fn sleep(map: &Mapping, ready: impl Fn(&Mapping) -> bool) {
    let worker_bell = &map.control().worker_bell;
    loop {
        let Some(seen) = bell::arm(&worker_bell.word, &worker_bell.sleeping, || ready(map)) else {
            return;
        };
        // The timeout only bounds the damage of a lost wake-up.
        futex::wait(&worker_bell.word, seen, Some(Duration::from_secs(1)));
        bell::disarm(&worker_bell.sleeping);
        if ready(map) {
            return;
        }
    }
}

/// The reply to request `seq`: where a task entry sends its outcome (the
/// response ring, through the outbox).
#[derive(Debug)]
pub(super) struct SlotReply<'a> {
    pub(super) map: &'a Mapping,
    pub(super) out: &'a mut Outbox,
    pub(super) seq: u64,
    pub(super) sent: bool,
}

impl payload::Reply for SlotReply<'_> {
    fn value(&mut self, encode: Encode<'_>) {
        self.sent = true;
        if let Err(err) = self.out.send(self.map, self.seq, shm::STATUS_OK, encode) {
            self.sent = false;
            self.error(&err);
        }
    }

    fn error(&mut self, err: &Error) {
        self.sent = true;
        // Why a shared buffer did not decode, if that was it.
        let explained = payload::shared::region::explained(err);
        let wire = explained.as_ref().unwrap_or(err).to_wire();
        let encode = |w: &mut Window<'_>| codec::encode_into(&wire, w);
        if self
            .out
            .send(self.map, self.seq, shm::STATUS_ERR, &encode)
            .is_ok()
        {
            return;
        }
        // Too big (a huge panic message?) or not encodable: send the kind
        // and a short message instead; that always fits.
        let short = Error::of(
            err.kind(),
            format!(
                "{} (the full error did not fit in max_payload_bytes)",
                err.message().chars().take(200).collect::<String>()
            ),
        );
        let short = short.to_wire();
        let encode = |w: &mut Window<'_>| codec::encode_into(&short, w);
        let _: Result<(), Error> = self.out.send(self.map, self.seq, shm::STATUS_ERR, &encode);
    }
}
