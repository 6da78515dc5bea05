//! The shared mapping of one process lane: its layout, how it is created
//! (an anonymous memfd, or a named POSIX object), and the only code that
//! touches its raw bytes.
//!
//! # Layout
//!
//! ```text
//! offset 0        Control      cache-line separated words (below)
//! CONTROL_BYTES   req slots    `slots` x 64 B, written by the host
//!                 resp slots   `slots` x 64 B, written by the worker
//!                 abort words  `slots` x 4 B, written by the host
//! (page aligned)  req arena    `arena` bytes, written by the host
//! (page aligned)  resp arena   `arena` bytes, written by the worker
//! ```
//!
//! Every control word and slot field is an atomic: the two processes touch
//! them concurrently, and relaxed atomics compile to plain loads and stores.
//! Arena bytes are copied with raw pointer copies and never borrowed as
//! Rust references on the host, where the worker is untrusted: the host
//! reads a region once, into its own memory, and decodes that copy.
//!
//! Who writes what decides who trusts what: the worker trusts everything
//! (the host made it); the host trusts only the words it writes itself and
//! checks every word the worker writes before use (see `channel` and
//! `check.rs`).

use std::{
    os::fd::{AsFd, OwnedFd},
    ptr::NonNull,
    sync::atomic::AtomicU32,
};

use rustix::{
    fs::{MemfdFlags, Mode},
    mm::{MapFlags, ProtFlags},
};

use crate::{payload::Window, Error};

mod layout;

pub(crate) use self::layout::*;

/// How the worker finds the mapping: passed to it as the `shm=` word of
/// its hand-over arguments (see `handover.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Locator {
    /// Sent on the worker's file descriptor 0, a Unix socket whose first
    /// message carries the mapping's memfd (and whose later ones carry
    /// shared buffers' descriptors: `courier.rs`).
    Stdin,
    /// A POSIX shared memory object (`/dev/shm/<name>` on Linux).
    Named(String),
}

impl Locator {
    pub(crate) fn to_env(&self) -> String {
        match self {
            Locator::Stdin => "fd:0".to_owned(),
            Locator::Named(name) => format!("name:{name}"),
        }
    }

    pub(crate) fn from_env(value: &str) -> Option<Self> {
        if value == "fd:0" {
            Some(Locator::Stdin)
        } else {
            value
                .strip_prefix("name:")
                .filter(|n| n.starts_with('/') && n.len() > 1)
                .map(|n| Locator::Named(n.to_owned()))
        }
    }
}

/// One mapping of a lane's shared memory, in this process.
#[derive(Debug)]
pub(crate) struct Mapping {
    base: NonNull<u8>,
    layout: Layout,
    /// The memory object; the host hands it to the worker.
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory; every concurrent access goes
// through atomics or through the raw copies below, whose callers follow the
// ring protocol.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out atomics and raw copies.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Creates a fresh mapping for the host: an anonymous memfd, or a named
    /// object when `name` is given. Writes the ident words.
    pub(crate) fn create(
        layout: Layout,
        max_payload: usize,
        name: Option<&str>,
    ) -> Result<Self, Error> {
        let fd = match name {
            None => rustix::fs::memfd_create("knitting-lane", MemfdFlags::CLOEXEC),
            Some(name) => rustix::shm::open(
                name,
                rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
                Mode::RUSR | Mode::WUSR,
            ),
        }
        .map_err(|e| Error::build(format!("could not create the worker's shared memory: {e}")))?;
        let created = rustix::fs::ftruncate(&fd, layout.total as u64)
            .map_err(|e| Error::build(format!("could not size the worker's shared memory: {e}")))
            .and_then(|()| Self::map(fd, layout));
        let mapping = match created {
            Ok(mapping) => mapping,
            Err(err) => {
                if let Some(name) = name {
                    let _ = rustix::shm::unlink(name);
                }
                return Err(err);
            }
        };
        let ident = &mapping.control().ident;
        // Relaxed: the worker reads these only after it is spawned, and
        // spawning orders them (the child starts after these stores).
        ident
            .magic
            .store(MAGIC, std::sync::atomic::Ordering::Relaxed);
        ident
            .version
            .store(VERSION, std::sync::atomic::Ordering::Relaxed);
        ident
            .slots
            .store(layout.slots as u32, std::sync::atomic::Ordering::Relaxed);
        ident
            .arena
            .store(layout.arena as u64, std::sync::atomic::Ordering::Relaxed);
        ident
            .max_payload
            .store(max_payload as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(mapping)
    }

    /// Maps an object the host made, in the worker: checks the magic word,
    /// the version and the sizes before anything else is read.
    pub(crate) fn open(fd: OwnedFd) -> Result<(Self, usize), String> {
        let stat =
            rustix::fs::fstat(&fd).map_err(|e| format!("fstat of the shared memory: {e}"))?;
        let size = usize::try_from(stat.st_size).map_err(|_| "shared memory size")?;
        if size < CONTROL_BYTES {
            return Err(format!("the shared memory is too small ({size} bytes)"));
        }
        // Map the control block alone first: the sizes of the rest are in it.
        let probe_layout = Layout {
            slots: 0,
            arena: 0,
            req_slots: CONTROL_BYTES,
            resp_slots: CONTROL_BYTES,
            aborts: CONTROL_BYTES,
            req_arena: CONTROL_BYTES,
            resp_arena: CONTROL_BYTES,
            stream_area: CONTROL_BYTES,
            stream: 0,
            total: CONTROL_BYTES,
        };
        let probe = Self::map(fd, probe_layout).map_err(|e| e.to_string())?;
        let ident = &probe.control().ident;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        if ident.magic.load(relaxed) != MAGIC {
            return Err("the shared memory is not a knitting lane (bad magic word)".to_owned());
        }
        let version = ident.version.load(relaxed);
        if version != VERSION {
            return Err(format!(
                "the host speaks shared-memory protocol version {version}, this worker speaks {VERSION}"
            ));
        }
        let slots = ident.slots.load(relaxed) as usize;
        let arena = usize::try_from(ident.arena.load(relaxed)).unwrap_or(usize::MAX);
        let max_payload = usize::try_from(ident.max_payload.load(relaxed)).unwrap_or(usize::MAX);
        let layout = Layout::new(slots, arena)
            .filter(|l| l.total <= size && max_payload <= arena)
            .ok_or_else(|| {
                format!("the shared memory's sizes make no sense ({slots} slots, {arena} bytes)")
            })?;
        let fd = probe.into_fd();
        let mapping = Self::map(fd, layout).map_err(|e| e.to_string())?;
        Ok((mapping, max_payload))
    }

    fn map(fd: OwnedFd, layout: Layout) -> Result<Self, Error> {
        // SAFETY: a fresh shared mapping of `layout.total` bytes of a memory
        // object at least that big (sized by the host, checked by the
        // worker); no existing memory is affected.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                layout.total,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| Error::build(format!("could not map the worker's shared memory: {e}")))?;
        let base = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| Error::build("mmap returned a null mapping"))?;
        Ok(Self { base, layout, fd })
    }

    fn into_fd(self) -> OwnedFd {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; we unmap what it
        // mapped and move its fd out exactly once.
        unsafe {
            let _ = rustix::mm::munmap(this.base.as_ptr().cast(), this.layout.total);
            std::ptr::read(&this.fd)
        }
    }

    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Views `count` values of `T` at `offset` of the mapping.
    ///
    /// # Safety
    ///
    /// `offset + size_of::<T>() * count <= layout.total` and `offset` is
    /// aligned for `T` (`T: ShmSafe` covers what the bytes may hold).
    unsafe fn atomics<T: ShmSafe>(&self, offset: usize, count: usize) -> &[T] {
        debug_assert!(offset + size_of::<T>() * count <= self.layout.total);
        // SAFETY: per the contract the range is inside the mapping and
        // aligned; `T: ShmSafe` makes any contents valid and shared access
        // sound, for as long as `self` maps it (the slice borrows `self`).
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(offset).cast::<T>(), count) }
    }

    pub(crate) fn control(&self) -> &Control {
        // SAFETY: offset 0 is page aligned and CONTROL_BYTES fit in every
        // layout (`open` checks the object's size before mapping).
        unsafe { &self.atomics::<Control>(0, 1)[0] }
    }

    pub(crate) fn req_slots(&self) -> &[ReqSlot] {
        // SAFETY: `Layout::new` placed `slots` request slots here, aligned
        // to 64 (CONTROL_BYTES is a multiple of 64).
        unsafe { self.atomics(self.layout.req_slots, self.layout.slots) }
    }

    pub(crate) fn resp_slots(&self) -> &[RespSlot] {
        // SAFETY: as for `req_slots`.
        unsafe { self.atomics(self.layout.resp_slots, self.layout.slots) }
    }

    pub(crate) fn aborts(&self) -> &[AtomicU32] {
        // SAFETY: as for `req_slots`; 4-byte words after 64-byte slots.
        unsafe { self.atomics(self.layout.aborts, self.layout.slots) }
    }

    /// The first byte of an arena and its size.
    fn arena(&self, dir: Dir) -> (*mut u8, usize) {
        let offset = match dir {
            Dir::Request => self.layout.req_arena,
            Dir::Response => self.layout.resp_arena,
            Dir::Stream => self.layout.stream_area,
        };
        let size = match dir {
            Dir::Stream => self.layout.stream,
            _ => self.layout.arena,
        };
        // SAFETY: the arena offsets are inside the mapping (`Layout::new`).
        (unsafe { self.base.as_ptr().add(offset) }, size)
    }

    /// A writable window of `len` bytes at `offset` in an arena, or `None`
    /// when it would leave the arena.
    /// The window borrows `self`, so it cannot be used after the unmap.
    pub(crate) fn window(&self, dir: Dir, offset: usize, len: usize) -> Option<Window<'_>> {
        let (base, size) = self.arena(dir);
        let end = offset.checked_add(len)?;
        if end > size {
            return None;
        }
        // SAFETY: `offset + len <= size`, so the range is in the arena, which
        // stays mapped while `self` lives (the window borrows it); only
        // raw copies touch it (a peer may write it too).
        Some(unsafe { Window::from_raw(base.add(offset), len) })
    }

    /// Borrows `len` bytes at `offset` of the *request* arena. For the
    /// worker only, which trusts the host not to touch a published request.
    pub(crate) fn request_bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let window = self.window(Dir::Request, offset, len)?;
        // The host wrote these bytes before publishing the request and leaves
        // them alone until the response is consumed, which is after this
        // borrow ends.
        // SAFETY: in bounds (checked by `window`), published (the Acquire
        // load of the slot's `seq`, see `channel`), and not written while
        // borrowed (see above).
        Some(unsafe { std::slice::from_raw_parts(window.as_ptr(), len) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range in `map` and nothing borrows
        // from it past `self`'s lifetime (every view borrows `self`).
        unsafe {
            let _ = rustix::mm::munmap(self.base.as_ptr().cast(), self.layout.total);
        }
    }
}

/// Which arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Request,
    Response,
    /// Stream items, worker to host (`stream.rs`).
    Stream,
}

/// Opens the worker's mapping as its locator says; with it, the socket
/// that shared buffers' descriptors come on, if there is one.
pub(crate) fn open_worker_fd(locator: &Locator) -> Result<(OwnedFd, Option<OwnedFd>), String> {
    match locator {
        Locator::Stdin => {
            let stdin = std::io::stdin();
            let fd = stdin
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| format!("fd 0: {e}"))?;
            let stat = rustix::fs::fstat(&fd).map_err(|e| format!("fstat of fd 0: {e}"))?;
            if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
                // The mapping itself (no shared buffers can come then).
                return Ok((fd, None));
            }
            let lane = super::courier::receive_lane(&fd)?;
            // Tasks see an empty stdin, not the socket (a read of it would
            // swallow shared buffers' descriptors); the runtime keeps its
            // duplicate.
            if let Ok(null) = std::fs::File::open("/dev/null") {
                use std::os::fd::AsRawFd;
                // SAFETY: dup2 onto fd 0 replaces stdin, which std reads
                // through the raw number only (no owner to invalidate);
                // `null` stays open for the call.
                unsafe { libc::dup2(null.as_raw_fd(), 0) };
            }
            Ok((lane, Some(fd)))
        }
        Locator::Named(name) => {
            let fd = rustix::shm::open(name.as_str(), rustix::shm::OFlags::RDWR, Mode::empty())
                .map_err(|e| format!("shm_open({name}): {e}"))?;
            // The host may die before it unlinks the name; the worker has
            // the object open now, so the name is no longer needed.
            let _ = rustix::shm::unlink(name.as_str());
            Ok((fd, None))
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn reopen(mapping: &Mapping) -> Result<(Mapping, usize), String> {
        Mapping::open(mapping.fd().try_clone().unwrap())
    }

    #[test]
    fn a_worker_maps_what_the_host_made() {
        let layout = Layout::new(4, 8192).unwrap();
        let host = Mapping::create(layout, 1024, None).unwrap();
        host.control().req_head.store(3, Ordering::Relaxed);
        let (worker, max_payload) = reopen(&host).unwrap();
        assert_eq!(max_payload, 1024);
        assert_eq!(*worker.layout(), layout);
        assert_eq!(worker.control().req_head.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_mapping_that_is_not_a_lane_is_refused() {
        let fd = rustix::fs::memfd_create("not-a-lane", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 1 << 16).unwrap();
        let err = Mapping::open(fd).unwrap_err();
        assert!(err.contains("bad magic word"), "{err}");
    }

    #[test]
    fn another_protocol_version_is_refused() {
        let host = Mapping::create(Layout::new(4, 8192).unwrap(), 1024, None).unwrap();
        host.control()
            .ident
            .version
            .store(VERSION + 1, Ordering::Relaxed);
        let err = reopen(&host).unwrap_err();
        assert!(err.contains(&format!("version {}", VERSION + 1)), "{err}");
    }

    #[test]
    fn sizes_that_do_not_fit_the_object_are_refused() {
        let host = Mapping::create(Layout::new(4, 8192).unwrap(), 1024, None).unwrap();
        host.control().ident.arena.store(1 << 30, Ordering::Relaxed);
        let err = reopen(&host).unwrap_err();
        assert!(err.contains("sizes make no sense"), "{err}");
    }

    #[test]
    fn windows_stay_inside_their_arena() {
        let host = Mapping::create(Layout::new(4, 8192).unwrap(), 1024, None).unwrap();
        assert!(host.window(Dir::Response, 8192 - 16, 16).is_some());
        assert!(host.window(Dir::Response, 8192 - 16, 17).is_none());
        assert!(host.window(Dir::Request, usize::MAX, 2).is_none());
        assert!(host.window(Dir::Response, 8000, 500).is_none());
        let mut w = host.window(Dir::Request, 100, 3).unwrap();
        w.write(0, b"abc");
        assert_eq!(host.request_bytes(100, 3), Some(&b"abc"[..]));
    }
}
