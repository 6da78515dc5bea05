//! What lives in a lane's mapping: the control words, the slots, and
//! where each part starts (see the layout table in `shm`).

use std::sync::atomic::{AtomicU32, AtomicU64};

/// `b"KNITSHM\0"` as a little-endian word: the mapping is ours.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"KNITSHM\0");
/// Bumped whenever the layout or the meaning of a word changes.
pub(crate) const VERSION: u32 = 7;

/// `Control::worker_state` (0 while the worker starts): the worker mapped the memory, built its task table, and takes calls.
pub(crate) const READY: u32 = 1;
/// `Control::worker_state`: the worker's bootstrap failed; the response
/// arena holds its message (a little-endian `u64` length, then UTF-8), and
/// the worker exits.
pub(crate) const FAILED: u32 = 2;

/// `Control::host_ctl` (0 while running): finish the requests published so far, then exit.
pub(crate) const STOP: u32 = 1;

/// An abort word (one per slot, written by the host): the caller asked the
/// call to stop ([`Signal::aborted`](crate::Signal::aborted)); the task
/// decides.
pub(crate) const ABORT_RAISED: u32 = 1;
/// An abort word: the call ended on the host (deadline, cancel, dropped
/// handle, hard limit, shutdown); the worker drops an async call's future
/// (its signal reads aborted too). The host rings the worker after writing
/// it.
pub(crate) const ABORT_ENDED: u32 = 2;

/// A response slot's status: the payload is the encoded value.
pub(crate) const STATUS_OK: u32 = 1;
/// A response slot's status: the payload is an encoded [`WireError`](crate::error::wire::WireError).
pub(crate) const STATUS_ERR: u32 = 2;

pub(super) const LINE: usize = 64;
pub(super) const PAGE: usize = 4096;

/// A type that may be viewed in the shared mapping (see
/// [`Mapping::atomics`]).
///
/// # Safety
///
/// An implementor must be `#[repr(C)]` (or transparent over such a type),
/// valid for every bit pattern (the other process may write anything),
/// made only of atomics or plain integers (no pointers, references or file
/// descriptors: they mean nothing in another process), and sound to
/// access through `&Self` while another process reads and writes it.
pub(crate) unsafe trait ShmSafe {}

// SAFETY: atomic integers: every bit pattern valid, shared access is what
// they are for.
unsafe impl ShmSafe for AtomicU32 {}
// SAFETY: as for `AtomicU32`.
unsafe impl ShmSafe for AtomicU64 {}

/// Keeps its contents on a cache line of their own.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct Line<T>(pub(crate) T);

// SAFETY: `repr(C)` around one `ShmSafe` field; the padding is never read.
unsafe impl<T: ShmSafe> ShmSafe for Line<T> {}

impl<T> std::ops::Deref for Line<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Written once by the host before the worker starts.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Ident {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) slots: AtomicU32,
    pub(crate) arena: AtomicU64,
    pub(crate) max_payload: AtomicU64,
}

// SAFETY: `repr(C)`, atomics only.
unsafe impl ShmSafe for Ident {}

/// A doorbell: a futex word bumped by the ringing side and a flag the
/// sleeping side raises before it sleeps.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Bell {
    /// Futex word: bumped by the ringer, waited on by the sleeper.
    pub(crate) word: AtomicU32,
    /// 1 while the sleeper is (about to be) asleep.
    pub(crate) sleeping: AtomicU32,
    /// Host bell only: host threads spinning on responses right now; while
    /// it is non-zero the worker need not ring.
    pub(crate) spinners: AtomicU32,
}

// SAFETY: `repr(C)`, atomics only.
unsafe impl ShmSafe for Bell {}

/// The control block at offset 0.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Control {
    pub(crate) ident: Line<Ident>,
    /// Worker-written: 0 while it starts, then [`READY`] (or [`FAILED`]).
    pub(crate) worker_state: Line<AtomicU32>,
    /// Host-written: 0 while running, then [`STOP`].
    pub(crate) host_ctl: Line<AtomicU32>,
    /// Rung by the host when it publishes requests or frees response space.
    pub(crate) worker_bell: Line<Bell>,
    /// Rung by the worker when it publishes responses.
    pub(crate) host_bell: Line<Bell>,
    /// Host-written: requests published so far.
    pub(crate) req_head: Line<AtomicU64>,
    /// Worker-written: requests the worker has taken so far.
    pub(crate) req_tail: Line<AtomicU64>,
    /// Worker-written: responses published so far.
    pub(crate) resp_head: Line<AtomicU64>,
    /// Host-written: responses consumed so far (the worker frees their
    /// payloads from its own record of where it put them).
    pub(crate) resp_tail: Line<AtomicU64>,
    /// Worker-written: bumped by a thread of the worker's own every
    /// heartbeat, whatever its tasks do (the host's liveness rule).
    pub(crate) heartbeat: Line<AtomicU64>,
    /// Worker-written before [`READY`]: what it locked itself down to
    /// (an `Enforcement` word; 0 when it was not restricted).
    pub(crate) sandbox: Line<AtomicU32>,
    /// Worker-written: nanoseconds of its finished busy periods. Only
    /// read for `LaneStats::busy`, clamped to the worker's lifetime.
    pub(crate) busy_total: Line<AtomicU64>,
    /// Worker-written: when its open busy period began (0: idle), on the
    /// shared clock. Read like `busy_total`.
    pub(crate) busy_since: Line<AtomicU64>,
    /// Worker-written: bytes of stream items written to the stream area so
    /// far (see `stream.rs`).
    pub(crate) stream_head: Line<AtomicU64>,
    /// Host-written: bytes of the stream area the host has read so far.
    pub(crate) stream_tail: Line<AtomicU64>,
    /// Host-written: how many stream items the worker may have sent in
    /// all, so far (its readers' credit).
    pub(crate) stream_credit: Line<AtomicU64>,
}

// SAFETY: `repr(C)`, `ShmSafe` fields only.
unsafe impl ShmSafe for Control {}

/// One request: which task, of which types, where its arguments are. `seq` is written
/// last (Release) and read first (Acquire): a slot whose `seq` is the
/// request's number plus one holds that request (0: it never held one).
///
/// The word type is a parameter only so that the in-process storage of the
/// channel's tests and loom models (`channel.rs`) lays out the same slot
/// with loom's atomics; the mapping holds `ReqSlot<AtomicU64>`.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct ReqSlot<W = AtomicU64> {
    pub(crate) seq: W,
    pub(crate) task: W,
    /// Offset of the arguments in the request arena.
    pub(crate) offset: W,
    pub(crate) len: W,
    /// The type fingerprint the host declares for the task (see
    /// `task::shape`); the worker runs the task only if it is its own.
    pub(crate) shape: W,
}

// SAFETY: `repr(C)`, atomics only.
unsafe impl ShmSafe for ReqSlot<AtomicU64> {}

/// What a request names: the task's id and its type fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskKey {
    pub(crate) id: u64,
    pub(crate) shape: u64,
}

/// One response: for which request, the outcome, where its payload is.
/// `seq` is written last, and the word type is a parameter, as in
/// [`ReqSlot`].
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct RespSlot<W = AtomicU64> {
    pub(crate) seq: W,
    pub(crate) status: W,
    /// Offset of the payload in the response arena.
    pub(crate) offset: W,
    pub(crate) len: W,
}

// SAFETY: `repr(C)`, atomics only.
unsafe impl ShmSafe for RespSlot<AtomicU64> {}

// One slot per cache line: `Layout::new` strides by `size_of`, and a slot
// never shares a line with its neighbour (the two sides write different
// slots at once).
const _: () = assert!(size_of::<ReqSlot>() == LINE && align_of::<ReqSlot>() == LINE);
const _: () = assert!(size_of::<RespSlot>() == LINE && align_of::<RespSlot>() == LINE);
const _: () = assert!(align_of::<Control>() == LINE && CONTROL_BYTES.is_multiple_of(LINE));

pub(super) const CONTROL_BYTES: usize = round_up(size_of::<Control>(), LINE);

pub(super) const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// The size of the stream area for arenas of `arena` bytes: a quarter,
/// in whole pages.
pub(crate) const fn stream_bytes(arena: usize) -> usize {
    let quarter = arena / 4;
    round_up(if quarter < PAGE { PAGE } else { quarter }, PAGE)
}

/// Where each region starts, from the two sizes in the ident words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) slots: usize,
    pub(crate) arena: usize,
    pub(super) req_slots: usize,
    pub(super) resp_slots: usize,
    pub(super) aborts: usize,
    pub(super) req_arena: usize,
    pub(super) resp_arena: usize,
    pub(super) stream_area: usize,
    /// The size of the stream area.
    pub(crate) stream: usize,
    pub(crate) total: usize,
}

impl Layout {
    /// The layout for `slots` ring slots and `arena` bytes per direction.
    pub(crate) fn new(slots: usize, arena: usize) -> Option<Self> {
        if slots == 0 || arena == 0 || slots > 1 << 16 || arena > 1 << 40 {
            return None;
        }
        let req_slots = CONTROL_BYTES;
        let resp_slots = req_slots + slots * size_of::<ReqSlot>();
        let aborts = resp_slots + slots * size_of::<RespSlot>();
        let req_arena = round_up(aborts + slots * size_of::<AtomicU32>(), PAGE);
        let resp_arena = req_arena + round_up(arena, PAGE);
        let stream_area = resp_arena + round_up(arena, PAGE);
        let stream = stream_bytes(arena);
        let total = stream_area + stream;
        Some(Self {
            slots,
            arena,
            req_slots,
            resp_slots,
            aborts,
            req_arena,
            resp_arena,
            stream_area,
            stream,
            total,
        })
    }
}
