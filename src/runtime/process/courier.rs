//! Shared buffers' descriptors on their way to a worker: a Unix socket per
//! worker (`SOCK_SEQPACKET`, the worker's fd 0), on which the host sends
//! the memfds of a call's `SharedBuffer`s (`SCM_RIGHTS`) just before it
//! publishes the request, and which the worker reads when a request names
//! a buffer it has not mapped yet.
//!
//! # Messages
//!
//! One message: little-endian `u64`s `[n, id_1 .. id_n, g, gone_1 .. gone_g]`
//! with `n` descriptors attached: the memories the host calls `id_i`, and
//! the ids of memories the host no longer holds (the worker unmaps them).
//! The host sends each memory once per worker process and remembers which
//! ones the worker holds; a worker keeps a mapping until the host says it
//! is gone, so sending the same buffer again costs no system call at all.
//! The worker checks every message (lengths, counts, each descriptor's
//! seals and size) and turns anything wrong into an error for the call
//! that names the buffer, never a crash.
//!
//! The sender is sure the message is in the socket before the request is
//! published (the `sendmsg` returns first), so a worker that sees the
//! request and misses a buffer finds it with a non-blocking read.

use std::{
    collections::HashMap,
    io::{IoSlice, IoSliceMut},
    mem::MaybeUninit,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::{Arc, Weak},
};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::{
    payload::shared::region::{Region, Source},
    sys::shared::Memory,
    Error, ErrorKind,
};

/// At most this many descriptors per message (the kernel's limit is 253).
const FDS_PER_MESSAGE: usize = 250;
/// At most this many "gone" ids per message; the rest wait for the next.
const GONE_PER_MESSAGE: usize = 1024;
/// The largest message, in bytes.
const MESSAGE_BYTES: usize = 8 * (2 + FDS_PER_MESSAGE + GONE_PER_MESSAGE);

/// A connected pair: the host's end and the worker's (its fd 0).
pub(crate) fn pair() -> Result<(OwnedFd, OwnedFd), Error> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| {
        Error::of(
            ErrorKind::Startup,
            format!("could not make a worker's descriptor socket: {e}"),
        )
    })
}

/// The first message on a worker's socket: its lane's mapping.
const LANE: &[u8] = b"knitting-lane";

/// Sends the lane's mapping `fd` as the first message on `socket` (before
/// the worker starts: it waits in the socket).
pub(crate) fn send_lane(socket: &OwnedFd, fd: &OwnedFd) -> Result<(), Error> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd.as_fd()];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(LANE)],
        &mut control,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    )
    .map(drop)
    .map_err(|e| {
        Error::of(
            ErrorKind::Startup,
            format!("could not hand the mapping to a worker: {e}"),
        )
    })
}

/// In the worker: the lane's mapping, the first message on `socket`.
pub(crate) fn receive_lane(socket: &OwnedFd) -> Result<OwnedFd, String> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut bytes = [0u8; 32];
    let got = loop {
        match rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut bytes)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other.map_err(|e| format!("reading the mapping from fd 0: {e}"))?,
        }
    };
    let mut fds = control.drain().filter_map(|m| match m {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    match fds.next() {
        Some(fd) if bytes.get(..got.bytes) == Some(LANE) => Ok(fd),
        _ => Err("fd 0 is a socket, but its first message is not the lane's mapping".to_owned()),
    }
}

/// Sends one message of `ids` and `gone` with `fds`; non-blocking.
fn send(
    socket: BorrowedFd<'_>,
    ids: &[u64],
    gone: &[u64],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    let mut words = Vec::with_capacity(2 + ids.len() + gone.len());
    words.push(ids.len() as u64);
    words.extend_from_slice(ids);
    words.push(gone.len() as u64);
    words.extend_from_slice(gone);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other(
            "too many descriptors for one message",
        ));
    }
    let sent = rustix::net::sendmsg(
        socket,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    )?;
    if sent != bytes.len() {
        return Err(std::io::Error::other("a descriptor message was cut short"));
    }
    Ok(())
}

/// The host's end of one worker's descriptor socket, and which memories
/// that worker holds.
#[derive(Debug)]
pub(crate) struct Courier {
    socket: OwnedFd,
    /// The memories sent to this worker, by id; dead once the host drops
    /// its last handle (then the worker is told, on the next message).
    held: HashMap<u64, Weak<Region>>,
}

impl Courier {
    /// The host's end of the socket (the worker's diagnostics arrive on
    /// it too; see `forward.rs`).
    pub(crate) fn socket(&self) -> &OwnedFd {
        &self.socket
    }

    pub(crate) fn new(socket: OwnedFd) -> Self {
        Self {
            socket,
            held: HashMap::new(),
        }
    }

    /// Sends the worker the memories of `regions` it does not hold yet.
    /// Nothing when it holds them all.
    pub(crate) fn send(&mut self, regions: &[Arc<Region>]) -> Result<(), Error> {
        let fresh: Vec<&Arc<Region>> = regions
            .iter()
            .filter(|r| !self.held.contains_key(&r.id()))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let mut gone: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, region)| region.strong_count() == 0)
            .map(|(&id, _)| id)
            .take(GONE_PER_MESSAGE)
            .collect();
        for chunk in fresh.chunks(FDS_PER_MESSAGE) {
            let ids: Vec<u64> = chunk.iter().map(|r| r.id()).collect();
            let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|r| r.memory().fd()).collect();
            send(self.socket.as_fd(), &ids, &gone, &fds).map_err(|e| {
                // A full socket: the worker has not read what was sent
                // before (it takes descriptors as it decodes the calls
                // that name them). Anything else: the worker is gone.
                let (kind, why) = match e.kind() {
                    std::io::ErrorKind::WouldBlock => (
                        ErrorKind::Protocol,
                        "the worker has not taken the descriptors sent before",
                    ),
                    _ => (ErrorKind::WorkerDied, "the worker's socket is closed"),
                };
                Error::of(
                    kind,
                    format!(
                        "could not send the worker the descriptors of this call's shared \
                         buffers ({why}): {e}"
                    ),
                )
            })?;
            for id in gone.drain(..) {
                self.held.remove(&id);
            }
            for region in chunk {
                self.held.insert(region.id(), Arc::downgrade(region));
            }
        }
        Ok(())
    }
}

/// The worker's end: the memories its host sent, by the host's ids.
#[derive(Debug)]
pub(crate) struct Inbox {
    /// `None` in named mode, where the worker has no socket.
    socket: Option<OwnedFd>,
    mapped: HashMap<u64, Arc<Region>>,
    /// Ids the host sent whose memory could not be mapped, and why.
    broken: HashMap<u64, String>,
}

impl Inbox {
    pub(crate) fn new(socket: Option<OwnedFd>) -> Self {
        Self {
            socket,
            mapped: HashMap::new(),
            broken: HashMap::new(),
        }
    }

    /// Reads every message waiting on the socket, without blocking.
    fn drain(&mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        self.drain_from(&socket);
        self.socket = Some(socket);
    }

    fn drain_from(&mut self, socket: &OwnedFd) {
        let mut bytes = vec![0u8; MESSAGE_BYTES];
        loop {
            let mut space =
                [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE + 3))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = rustix::net::recvmsg(
                socket,
                &mut [IoSliceMut::new(&mut bytes)],
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            );
            let Ok(got) = got else { return };
            if got.bytes == 0 {
                return; // the host closed its end
            }
            let mut fds: Vec<OwnedFd> = Vec::new();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            let truncated = got.flags.contains(rustix::net::ReturnFlags::CTRUNC);
            self.apply(&bytes[..got.bytes.min(bytes.len())], fds, truncated);
        }
    }

    /// Takes in one message (see the module docs), checked.
    /// `truncated`: the kernel dropped descriptors (this process has no
    /// room for more: its `RLIMIT_NOFILE`).
    fn apply(&mut self, bytes: &[u8], fds: Vec<OwnedFd>, truncated: bool) {
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
            .collect();
        let Some((&n, rest)) = words.split_first() else {
            return;
        };
        let Some(ids) = usize::try_from(n).ok().and_then(|n| rest.get(..n)) else {
            return;
        };
        let rest = &rest[ids.len()..];
        let gone = rest
            .split_first()
            .and_then(|(&g, rest)| rest.get(..usize::try_from(g).ok()?))
            .unwrap_or(&[]);
        for id in gone {
            self.mapped.remove(id);
            self.broken.remove(id);
        }
        let mut fds = fds.into_iter();
        for &id in ids {
            let Some(fd) = fds.next() else {
                let why = if truncated {
                    format!(
                        "the descriptor of shared buffer {id} did not reach this worker: it has \
                         no room for more descriptors (it keeps one per buffer the host holds; \
                         see its RLIMIT_NOFILE)"
                    )
                } else {
                    format!("the host named shared buffer {id} but sent no descriptor for it")
                };
                self.broken.insert(id, why);
                continue;
            };
            match Memory::open(fd) {
                Ok(memory) => {
                    self.broken.remove(&id);
                    self.mapped
                        .insert(id, Arc::new(Region::received(memory, id)));
                }
                Err(e) => {
                    self.broken.insert(
                        id,
                        format!("the shared buffer the host sent as {id} could not be mapped: {e}"),
                    );
                }
            }
        }
    }
}

impl Source for Inbox {
    fn find(&mut self, id: u64) -> Result<Arc<Region>, String> {
        if let Some(region) = self.mapped.get(&id) {
            return Ok(Arc::clone(region));
        }
        if self.socket.is_none() {
            return Err(
                "this worker has no descriptor socket (named shared memory mode), so no \
                 SharedBuffer can reach it"
                    .to_owned(),
            );
        }
        self.drain();
        if let Some(region) = self.mapped.get(&id) {
            return Ok(Arc::clone(region));
        }
        Err(self
            .broken
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("no shared buffer with id {id} reached this worker")))
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    fn socketpair() -> (OwnedFd, OwnedFd) {
        pair().unwrap()
    }

    #[test]
    fn memories_arrive_once_and_go_when_the_host_drops_them() {
        let (host, worker) = socketpair();
        let mut courier = Courier::new(host);
        let mut inbox = Inbox::new(Some(worker));
        let region = Arc::new(Region::new(Memory::create(64).unwrap()));
        let id = region.id();
        courier.send(&[Arc::clone(&region)]).unwrap();
        courier.send(&[Arc::clone(&region)]).unwrap(); // held: nothing sent
        let got = inbox.find(id).unwrap();
        assert_eq!(got.memory().len(), 64);
        // SAFETY: both mappings are live, 64 bytes each; byte 0 of each,
        // from this one thread.
        unsafe { region.memory().ptr().write(7) };
        // SAFETY: as above.
        let seen = unsafe { got.memory().ptr().read() };
        assert_eq!(seen, 7, "the same pages");
        drop(got);
        assert!(
            rustix::net::recv(
                inbox.socket.as_ref().unwrap(),
                &mut [0u8; 8],
                RecvFlags::DONTWAIT
            )
            .is_err(),
            "the second send sent nothing"
        );
        drop(region);
        let other = Arc::new(Region::new(Memory::create(8).unwrap()));
        courier.send(&[Arc::clone(&other)]).unwrap();
        assert!(inbox.find(other.id()).is_ok());
        let err = inbox.find(id).unwrap_err();
        assert!(
            err.contains(&format!("no shared buffer with id {id}")),
            "{err}"
        );
    }

    #[test]
    fn a_bad_message_is_an_error_for_the_ids_it_names_not_a_crash() {
        let (host, worker) = socketpair();
        let mut inbox = Inbox::new(Some(worker));
        // Names id 5 and sends no descriptor; then junk; then counts past
        // the end.
        let words: Vec<u8> = [1u64, 5, 0].iter().flat_map(|w| w.to_le_bytes()).collect();
        send(host.as_fd(), &[5], &[], &[]).unwrap();
        rustix::net::send(&host, &words[..5], SendFlags::empty()).unwrap();
        rustix::net::send(&host, &u64::MAX.to_le_bytes(), SendFlags::empty()).unwrap();
        let err = inbox.find(5).unwrap_err();
        assert!(err.contains("no descriptor"), "{err}");
        // A descriptor that is not a sealed memfd.
        let unsealed = rustix::fs::memfd_create("x", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        send(host.as_fd(), &[6], &[], &[unsealed.as_fd()]).unwrap();
        let err = inbox.find(6).unwrap_err();
        assert!(err.contains("not sealed"), "{err}");
        assert!(inbox.find(7).is_err());
        assert!(Inbox::new(None).find(1).unwrap_err().contains("named"));
    }
}
