//! The memory under every [`SharedBuffer`](super::SharedBuffer) handle, and
//! how a handle crosses to a worker process and back: the serde form, and
//! the per-thread scope the process runtime sets around an encode or a
//! decode to say where the descriptors go and come from.
//!
//! # The serde form
//!
//! A handle is `(id, offset, len, total)`: the id its host gave the
//! memory, the handle's range in it, and the memory's size. Only that
//! crosses in the arena; the descriptor travels beside it (the process
//! runtime's courier), once per worker generation. Decoding checks the
//! range against the size of the memory found under the id, never against
//! what the other side wrote.

use std::{
    cell::{Cell, RefCell},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use crate::sys::shared::Memory;

/// One shared memory, with the id its host knows it by.
#[derive(Debug)]
pub(crate) struct Region {
    memory: Memory,
    /// Unique in the process that made it (the host): names it to workers.
    id: u64,
    /// In a worker: the host's id of the memory it was sent.
    remote: Option<u64>,
}

impl Region {
    /// A fresh region of this process, with a fresh id.
    pub(crate) fn new(memory: Memory) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        // Relaxed: a unique number, ordering nothing.
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            memory,
            id,
            remote: None,
        }
    }

    /// A region a host sent (in a worker), known to the host as `id`.
    pub(crate) fn received(memory: Memory, id: u64) -> Self {
        Self {
            remote: Some(id),
            ..Self::new(memory)
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn memory(&self) -> &Memory {
        &self.memory
    }
}

/// Where a worker finds the regions its host sent, by the host's id.
pub(crate) trait Source {
    /// The region the host sent as `id`, or why there is none.
    fn find(&mut self, id: u64) -> Result<Arc<Region>, String>;
}

/// What this thread is doing with shared buffers right now.
enum Scope {
    /// Nothing: serializing or deserializing a handle is an error (unless
    /// the host is encoding a call's arguments: see `COLLECTED`).
    Idle,
    /// A worker runs a call: regions come from the host through the
    /// source, and may go back by the host's id.
    Worker(Box<dyn Source>),
    /// The host decodes a call's result: only the regions of that call.
    Reply(Vec<Arc<Region>>),
}

thread_local! {
    static SCOPE: RefCell<Scope> = const { RefCell::new(Scope::Idle) };
    /// While the host encodes a call's arguments: the regions they name.
    /// Kept apart from `SCOPE` because every process call goes through
    /// it: entering and leaving it is two small writes.
    static COLLECTED: RefCell<Option<Vec<Arc<Region>>>> = const { RefCell::new(None) };
    /// While the host decodes a call's result: set when the result names a
    /// shared buffer the call did not send (only a forged response can).
    static FORGED: Cell<Option<bool>> = const { Cell::new(None) };
    /// Why the last handle on this thread failed to cross: serde formats
    /// such as postcard keep only that a custom error happened, not its
    /// message, so it waits here for [`explained`].
    static FAILURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records `why` a handle could not cross, and returns it.
fn failed(why: String) -> String {
    FAILURE.with(|f| *f.borrow_mut() = Some(why.clone()));
    why
}

/// `err` (a codec error) with the reason the last handle on this thread
/// failed to cross appended, if one did since the last call (a codec error
/// says only that "a custom error" happened).
pub(crate) fn explained(err: &crate::Error) -> Option<crate::Error> {
    let why = FAILURE.with(|f| f.borrow_mut().take())?;
    if err.kind() != crate::ErrorKind::Codec {
        return None;
    }
    Some(crate::Error::of(
        err.kind(),
        format!("{} ({why})", err.message()),
    ))
}

/// Runs `f` in `scope`, restoring the one before afterwards (even if `f`
/// panics); returns `f`'s value and the scope as `f` left it.
fn within<R>(scope: Scope, f: impl FnOnce() -> R) -> (R, Scope) {
    struct Restore(Option<Scope>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(before) = self.0.take() {
                SCOPE.with(|s| *s.borrow_mut() = before);
            }
        }
    }
    let before = SCOPE.with(|s| s.replace(scope));
    let mut restore = Restore(Some(before));
    let value = f();
    let before = restore.0.take().expect("restored once");
    let after = SCOPE.with(|s| s.replace(before));
    (value, after)
}

/// Runs `f` (the host encoding a call's arguments) and returns the regions
/// of every handle it serialized, each once.
pub(crate) fn collecting<R>(f: impl FnOnce() -> R) -> (R, Vec<Arc<Region>>) {
    struct Restore(Option<Option<Vec<Arc<Region>>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(before) = self.0.take() {
                COLLECTED.with(|c| *c.borrow_mut() = before);
            }
        }
    }
    let before = COLLECTED.with(|c| c.replace(Some(Vec::new())));
    let mut restore = Restore(Some(before));
    let value = f();
    let before = restore.0.take().expect("restored once");
    let regions = COLLECTED.with(|c| c.replace(before)).unwrap_or_default();
    (value, regions)
}

/// Runs `f` (a worker running one call) with `source` for the handles it
/// decodes; gives the source back.
pub(crate) fn serving<R>(
    source: Box<dyn Source>,
    f: impl FnOnce() -> R,
) -> (R, Option<Box<dyn Source>>) {
    FAILURE.with(|f| f.borrow_mut().take());
    match within(Scope::Worker(source), f) {
        (value, Scope::Worker(source)) => (value, Some(source)),
        (value, _) => (value, None),
    }
}

/// Runs `f` (the host decoding a call's result) with the regions that call
/// sent, the only ones a result may name. Returns `f`'s value and whether
/// the result named another (a worker forged it: an honest one can only
/// send back what it was sent).
pub(crate) fn replying<R>(regions: Vec<Arc<Region>>, f: impl FnOnce() -> R) -> (R, bool) {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORGED.with(|forged| forged.set(self.0));
        }
    }
    let restore = Restore(FORGED.with(|forged| forged.replace(Some(false))));
    FAILURE.with(|f| f.borrow_mut().take());
    // A call that sent no buffer needs no scope: outside one, every
    // handle is refused too (and counted as forged, above).
    let value = if regions.is_empty() {
        f()
    } else {
        within(Scope::Reply(regions), f).0
    };
    let forged = FORGED.with(Cell::get) == Some(true);
    drop(restore);
    (value, forged)
}

/// Marks the result being decoded as forged, if one is.
fn forged() {
    FORGED.with(|forged| {
        if forged.get().is_some() {
            forged.set(Some(true));
        }
    });
}

/// A handle as it crosses: see the module docs.
#[derive(Serialize, Deserialize)]
struct Wire {
    id: u64,
    offset: u64,
    len: u64,
    total: u64,
}

/// Serializes a handle on `region` over `offset..offset + len`.
pub(super) fn serialize<S: serde::Serializer>(
    region: &Arc<Region>,
    offset: usize,
    len: usize,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::Error as _;
    let collected = COLLECTED.with(|c| match &mut *c.borrow_mut() {
        Some(regions) => {
            if !regions.iter().any(|r| r.id == region.id) {
                regions.push(Arc::clone(region));
            }
            true
        }
        None => false,
    });
    let id = SCOPE.with(|scope| match &mut *scope.borrow_mut() {
        _ if collected => Ok(region.id),
        Scope::Worker(_) => region.remote.ok_or(
            "a SharedBuffer made in a worker process cannot be sent to the host; \
             return one the host sent in this call",
        ),
        Scope::Idle | Scope::Reply(_) => Err(
            "a SharedBuffer can only be serialized as (part of) the arguments or the result \
             of a call on a process pool",
        ),
    });
    let id = id.map_err(|why| S::Error::custom(failed(why.to_owned())))?;
    Wire {
        id,
        offset: offset as u64,
        len: len as u64,
        total: region.memory.len() as u64,
    }
    .serialize(serializer)
}

/// Deserializes a handle: its region, offset and length, checked against
/// the region's own size.
pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<(Arc<Region>, usize, usize), D::Error> {
    use serde::de::Error as _;
    let wire = Wire::deserialize(deserializer)?;
    let region = SCOPE.with(|scope| match &mut *scope.borrow_mut() {
        Scope::Worker(source) => source.find(wire.id),
        Scope::Reply(regions) => regions
            .iter()
            .find(|r| r.id == wire.id)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "the worker returned a SharedBuffer (id {}) that the host did not send in \
                     this call",
                    wire.id
                )
            }),
        // The host decoding the result of a call that sent no buffer.
        Scope::Idle if FORGED.with(Cell::get).is_some() => Err(format!(
            "the worker returned a SharedBuffer (id {}) that the host did not send in this call",
            wire.id
        )),
        Scope::Idle => Err(
            "a SharedBuffer can only be deserialized as (part of) the arguments or the result \
             of a call on a process pool"
                .to_owned(),
        ),
    });
    let region = region.map_err(|why| {
        forged();
        D::Error::custom(failed(why))
    })?;
    let size = region.memory.len();
    let range = check_wire(&wire, size).map_err(|why| {
        forged();
        D::Error::custom(failed(why))
    })?;
    Ok((region, range.0, range.1))
}

/// The `(offset, len)` of `wire`, if they lie in a region of `size` bytes
/// and `wire` agrees about that size.
fn check_wire(wire: &Wire, size: usize) -> Result<(usize, usize), String> {
    let fits = usize::try_from(wire.offset)
        .ok()
        .zip(usize::try_from(wire.len).ok())
        .filter(|&(offset, len)| offset.checked_add(len).is_some_and(|end| end <= size));
    match fits {
        Some(range) if wire.total == size as u64 => Ok(range),
        _ => Err(format!(
            "a SharedBuffer of {} bytes at offset {} in a memory of {} bytes does not fit the \
             memory received, of {size} bytes",
            wire.len, wire.offset, wire.total
        )),
    }
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_wire_range_must_lie_in_the_memory_and_agree_on_its_size() {
        let wire = |offset, len, total| Wire {
            id: 1,
            offset,
            len,
            total,
        };
        assert_eq!(check_wire(&wire(0, 16, 16), 16), Ok((0, 16)));
        assert_eq!(check_wire(&wire(16, 0, 16), 16), Ok((16, 0)));
        assert_eq!(check_wire(&wire(4, 8, 16), 16), Ok((4, 8)));
        assert!(check_wire(&wire(4, 13, 16), 16).is_err());
        assert!(check_wire(&wire(17, 0, 16), 16).is_err());
        assert!(check_wire(&wire(u64::MAX, 2, 16), 16).is_err());
        assert!(check_wire(&wire(1, u64::MAX, 16), 16).is_err());
        let err = check_wire(&wire(0, 16, 32), 16).unwrap_err();
        assert!(err.contains("of 32 bytes"), "{err}");
        assert!(err.contains("received, of 16 bytes"), "{err}");
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd and mmap")]
    fn scopes_nest_and_come_back_after_a_panic() {
        let memory = Memory::create(8).unwrap();
        let region = Arc::new(Region::new(memory));
        let ((), regions) = collecting(|| {
            let _ = std::panic::catch_unwind(|| {
                collecting(|| panic!("inner"));
            });
            let mut ser = postcard::Serializer {
                output: postcard::ser_flavors::AllocVec::new(),
            };
            serialize(&region, 0, 8, &mut ser).unwrap();
            serialize(&region, 2, 4, &mut ser).unwrap();
        });
        assert_eq!(regions.len(), 1, "one region, collected once");
        assert_eq!(regions[0].id(), region.id());
        let mut ser = postcard::Serializer {
            output: postcard::ser_flavors::AllocVec::new(),
        };
        assert!(serialize(&region, 0, 8, &mut ser).is_err(), "idle again");
        let err = crate::Error::of(crate::ErrorKind::Codec, "could not encode");
        let err = explained(&err).expect("the failure was recorded");
        assert!(err.message().contains("process pool"), "{}", err.message());
        assert!(explained(&err).is_none(), "taken once");
    }
}
