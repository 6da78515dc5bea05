//! [`Sender`]: a streaming task's end of its stream, and how it crosses to
//! a worker process: its serde form is nothing at all, resolved through a
//! per-thread scope as a [`SharedBuffer`](crate::SharedBuffer)'s is. The
//! host's encoder collects the channel it stands for ([`collecting`]), so
//! that the process lane can deliver the worker's items into it; the
//! worker's decoder gets a port to its lane's stream area ([`serving`]).

pub(crate) mod channel;

use std::{
    cell::{Cell, RefCell},
    fmt,
    sync::Arc,
    task::Waker,
};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub(crate) use self::channel::{Channel, Credit};
use super::{codec, Encode, Window};
use crate::{sync::ThreadWaker, Error, ErrorKind};

/// A streaming task's end of its stream: each [`send`](Self::send) hands
/// one item to the caller, who reads them from the
/// [`Stream`](crate::Stream) that [`Pool::stream`](crate::Pool::stream)
/// returned.
///
/// A task streams by taking a `Sender<T>` parameter; like the
/// [`Signal`](crate::Signal), the parameter is not part of the call's
/// arguments (the pool makes it). The task's return value is the stream's
/// final value.
///
/// ```
/// #[knitting::task]
/// fn countdown(from: u32, out: knitting::Sender<u32>) -> &'static str {
///     for n in (1..=from).rev() {
///         if out.send(n).is_err() {
///             return "stopped"; // the caller is gone
///         }
///     }
///     "liftoff"
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// let mut stream = pool.stream(countdown, 3);
/// let items: Vec<u32> = stream.by_ref().collect::<Result<_, _>>()?;
/// assert_eq!(items, [3, 2, 1]);
/// assert_eq!(stream.finish()?, "liftoff");
/// # Ok(()) }
/// ```
///
/// # Back-pressure
///
/// A stream holds at most its bound of items that the caller has not read
/// (see [`PoolBuilder::stream_bound`](crate::PoolBuilder::stream_bound)):
/// `send` waits while it is full, so a slow reader slows the task down and
/// memory stays bounded. On a process pool the items travel through the
/// worker's shared mapping, like results; the same bound holds across the
/// process boundary.
pub struct Sender<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    /// On the host (a thread lane's task, or before the arguments are
    /// encoded): the channel itself.
    Local(Arc<Channel<T>>),
    /// In a worker process: the port to its lane's stream area, and how
    /// to encode an item.
    Remote(
        Arc<dyn Port>,
        fn(&T, &mut Window<'_>) -> Result<usize, postcard::Error>,
    ),
    /// Decoded where no call streams: every send fails.
    Detached,
}

impl<T> Sender<T> {
    /// The sending end of `channel`.
    pub(crate) fn local(channel: Arc<Channel<T>>) -> Self {
        Self {
            inner: Inner::Local(channel),
        }
    }

    /// Sends one item to the caller, waiting while the stream is full.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Cancelled`] when nobody reads any more: the caller
    /// dropped the stream, or the call ended (its deadline passed, it was
    /// cancelled, the pool shut down). The task should stop then; what it
    /// sends is dropped. On a process pool also
    /// [`ErrorKind::TooLarge`] for an item larger than the pool's
    /// [`max_payload_bytes`](crate::ProcessPoolBuilder::max_payload_bytes)
    /// (or than its stream area), and [`ErrorKind::Codec`] for one that
    /// does not encode; the stream goes on.
    pub fn send(&self, item: T) -> Result<(), Error> {
        match &self.inner {
            Inner::Local(channel) => send_local(channel, item),
            Inner::Remote(port, encode) => port.send(&|w: &mut Window<'_>| encode(&item, w)),
            Inner::Detached => Err(reader_gone()),
        }
    }

    /// True once nobody reads the stream any more (a
    /// [`send`](Self::send) would fail).
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::Local(channel) => channel.is_closed(),
            Inner::Remote(port, _) => port.is_closed(),
            Inner::Detached => true,
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

pub(crate) fn reader_gone() -> Error {
    Error::of(
        ErrorKind::Cancelled,
        "nobody reads this stream any more (the caller dropped it, or the call ended): \
         the task should stop sending",
    )
}

/// How long a writer facing a full channel tries again before it sleeps.
const SPINS: u32 = 64;

fn send_local<T>(channel: &Channel<T>, mut item: T) -> Result<(), Error> {
    let mut spins = 0;
    loop {
        if channel.is_closed() {
            return Err(reader_gone());
        }
        match push(channel, item) {
            Ok(()) => return Ok(()),
            Err(back) => item = back,
        }
        if spins < SPINS {
            spins += 1;
            std::hint::spin_loop();
            continue;
        }
        // Full: wait for the reader. Registered first, then one more try,
        // so a pop in between is not missed (see `channel`).
        PARKER.with(|waker| channel.writer_waits(waker));
        match push(channel, item) {
            Ok(()) => return Ok(()),
            Err(back) => item = back,
        }
        if channel.is_closed() {
            return Err(reader_gone());
        }
        std::thread::park();
    }
}

/// Queues `item` and wakes the reader if it waits; hands the item back
/// when the channel is full.
fn push<T>(channel: &Channel<T>, item: T) -> Result<(), T> {
    if let Some(waker) = channel.try_push(item)? {
        waker.wake();
    }
    Ok(())
}

thread_local! {
    static PARKER: Waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    /// While the host encodes a call's arguments: the channel of the
    /// stream they carry, if one.
    static COLLECTED: RefCell<Option<Option<Arc<dyn Sink>>>> = const { RefCell::new(None) };
    /// While a worker process decodes a request: its lane's ports and the
    /// request's number.
    static SERVING: Cell<Option<(&'static dyn Ports, u64)>> = const { Cell::new(None) };
}

/// A stream's channel as a process lane sees it: items arrive encoded.
pub(crate) trait Sink: Send + Sync {
    /// Decodes one item and queues it, owed to the worker through `credit`
    /// until the reader takes it. `Err` says why the item cannot be taken
    /// (it does not decode, or the channel is full: the worker sent more
    /// than its credit). The caller calls [`woken`](Self::woken) after
    /// its last delivery.
    fn deliver(&self, bytes: &[u8], credit: &Arc<dyn Credit>) -> Result<(), String>;

    /// After deliveries: the reader's waker, if it waits.
    fn woken(&self) -> Option<Waker>;

    /// The call ended: its items no longer hold its worker back.
    fn end(&self);
}

impl<T: DeserializeOwned + Send> Sink for Channel<T> {
    fn deliver(&self, bytes: &[u8], credit: &Arc<dyn Credit>) -> Result<(), String> {
        let item: T =
            codec::decode(bytes).map_err(|e| format!("a stream item does not decode: {e}"))?;
        self.owe(credit);
        if self.is_closed() {
            // Nobody reads it: dropped. Its room comes back when the call
            // ends, so the worker stays within the bound until it learns
            // that the call was cancelled.
            return Ok(());
        }
        self.push_quietly(item).map_err(|_| {
            format!(
                "the worker sent more stream items than the bound of {}",
                self.bound()
            )
        })
    }

    fn woken(&self) -> Option<Waker> {
        Channel::woken(self)
    }

    fn end(&self) {
        Channel::end(self);
    }
}

/// A worker process's way to its lane's stream area, for one call.
pub(crate) trait Port: Send + Sync {
    /// Encodes one item into the stream area and publishes it, waiting
    /// for credit and room.
    fn send(&self, encode: Encode<'_>) -> Result<(), Error>;

    /// True once the call ended on the host.
    fn is_closed(&self) -> bool;
}

/// A worker process's lane: the port of each call.
pub(crate) trait Ports: Sync {
    /// The port of request `seq`.
    fn port(&'static self, seq: u64) -> Arc<dyn Port>;
}

/// Runs `f` (the host encoding a call's arguments) and returns the channel
/// of the stream they carry, if any.
pub(crate) fn collecting<R>(f: impl FnOnce() -> R) -> (R, Option<Arc<dyn Sink>>) {
    struct Restore(Option<Option<Option<Arc<dyn Sink>>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(before) = self.0.take() {
                COLLECTED.with(|c| *c.borrow_mut() = before);
            }
        }
    }
    let before = COLLECTED.with(|c| c.replace(Some(None)));
    let mut restore = Restore(Some(before));
    let value = f();
    let before = restore.0.take().expect("restored once");
    let sink = COLLECTED.with(|c| c.replace(before)).flatten();
    (value, sink)
}

/// Runs `f` (a worker process decoding and running request `seq`) with
/// `ports` for the sender it decodes.
pub(crate) fn serving<R>(ports: &'static dyn Ports, seq: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<(&'static dyn Ports, u64)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERVING.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERVING.with(|s| s.replace(Some((ports, seq)))));
    f()
}

impl<T: DeserializeOwned + Send + 'static> Serialize for Sender<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Inner::Local(channel) = &self.inner {
            let sink: Arc<dyn Sink> = Arc::clone(channel) as Arc<dyn Sink>;
            COLLECTED.with(|c| {
                if let Some(slot) = c.borrow_mut().as_mut() {
                    *slot = Some(sink);
                }
            });
        }
        serializer.serialize_unit()
    }
}

impl<'de, T: Serialize> Deserialize<'de> for Sender<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)?;
        // One sender per request: a second one in the same arguments is
        // detached.
        let inner = match SERVING.with(|s| s.take()) {
            Some((ports, seq)) => Inner::Remote(ports.port(seq), |item, window| {
                codec::encode_into(item, window)
            }),
            None => Inner::Detached,
        };
        Ok(Self { inner })
    }
}
