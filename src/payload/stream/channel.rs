//! The bounded channel between a streaming task and the handle reading
//! its items, on the host: the task's thread pushes into it (thread
//! lanes), or a process lane does, with the items its worker wrote.
//!
//! Items sit in a [`Ring`]; what the channel adds is waiting. Each side
//! waits by registering a waker and raising its `*_waits` flag, then
//! looking at the ring once more; the other side, after changing the ring,
//! looks at the flag. Both sides put a `SeqCst` fence between their write
//! and their look (a Dekker pair): either the waiter's second look sees the
//! change, or the changer sees the flag and wakes it. So a wake-up is never
//! lost, and while nobody waits each side pays one fence and one load of a
//! line the other side does not write.

use std::{
    sync::{Arc, OnceLock},
    task::Waker,
};

use crate::{
    sync::{AtomicBool, AtomicU64, Mutex, Ordering},
    transport::ring::Ring,
};

/// Gives a process worker room for more items (its lane's credit word).
pub(crate) trait Credit: Send + Sync {
    /// The reader took `n` more items.
    fn give(&self, n: u64);
}

/// One side's waker, and whether it waits.
struct Waiter {
    waits: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Waiter {
    fn new() -> Self {
        Self {
            waits: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    /// Registers `waker` and raises the flag; the caller looks at the ring
    /// again afterwards.
    fn arm(&self, waker: &Waker) {
        {
            let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
        // Relaxed: ordered before the second look by the fence below.
        self.waits.store(true, Ordering::Relaxed);
        // SYNC POINT: the waiter's half of the Dekker pair (module docs).
        crate::sync::fence(Ordering::SeqCst);
    }

    /// After a change to the ring: the waker to wake, if this side waits.
    fn take(&self) -> Option<Waker> {
        // SYNC POINT: the changer's half of the Dekker pair (module docs).
        crate::sync::fence(Ordering::SeqCst);
        // Relaxed: ordered after the change by the fence above; the swap
        // makes one changer wake the waiter, not every one after it.
        if !self.waits.load(Ordering::Relaxed) || !self.waits.swap(false, Ordering::Relaxed) {
            return None;
        }
        self.waker.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The items of one stream on their way to its reader.
pub(crate) struct Channel<T> {
    ring: Ring<T>,
    /// Set when the reader is gone or the stream is over: sends fail.
    closed: AtomicBool,
    reader: Waiter,
    writer: Waiter,
    /// A process lane's credit: set with the first item it delivers.
    credit: OnceLock<Arc<dyn Credit>>,
    /// Items a process lane delivered that the reader has not taken yet
    /// and the worker was not credited for, plus [`ENDED`] once the call is
    /// over (then nothing more is credited: see [`Channel::end`]).
    owed: AtomicU64,
    /// Items the reader took and has not given back yet: given in batches
    /// of `batch`, or whenever the channel runs empty. Written by the
    /// reader only.
    taken: AtomicU64,
    batch: u64,
}

/// `Channel::owed`: the call ended; its items no longer hold its worker
/// back.
const ENDED: u64 = 1 << 63;

impl<T> Channel<T> {
    /// A channel holding at most `bound` items (rounded up to a power of
    /// two, at least 2).
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            ring: Ring::with_capacity(bound),
            closed: AtomicBool::new(false),
            reader: Waiter::new(),
            writer: Waiter::new(),
            credit: OnceLock::new(),
            owed: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            // A sixteenth of the bound: one credit RMW on the worker's
            // line per many items, and the worker at most that much short
            // of the bound.
            batch: (bound.max(2).next_power_of_two() as u64 / 16).max(1),
        }
    }

    /// How many items it holds at most.
    pub(crate) fn bound(&self) -> usize {
        self.ring.capacity()
    }

    /// True when it holds no item.
    pub(crate) fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// True once the reader is gone (or the stream is over).
    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with `close`; a sender that sees it stops.
        self.closed.load(Ordering::Acquire)
    }

    /// Sends no more: wakes a writer waiting for room, and the reader.
    pub(crate) fn close(&self) {
        // Release: pairs with `is_closed`.
        self.closed.store(true, Ordering::Release);
        for waker in [self.writer.take(), self.reader.take()]
            .into_iter()
            .flatten()
        {
            waker.wake();
        }
    }

    /// Queues `item` unless the channel is full (then hands it back); on
    /// success, returns the reader's waker if it waits.
    pub(crate) fn try_push(&self, item: T) -> Result<Option<Waker>, T> {
        self.ring.push(item)?;
        Ok(self.reader.take())
    }

    /// Queues `item` unless the channel is full, without looking for a
    /// waiting reader: the caller calls [`woken`](Self::woken) after its
    /// last item (a process lane, for each drain).
    pub(crate) fn push_quietly(&self, item: T) -> Result<(), T> {
        self.ring.push(item)
    }

    /// After items pushed quietly: the reader's waker, if it waits.
    pub(crate) fn woken(&self) -> Option<Waker> {
        self.reader.take()
    }

    /// Registers the writer's waker (a writer that found the ring full);
    /// it must try again before it sleeps.
    pub(crate) fn writer_waits(&self, waker: &Waker) {
        self.writer.arm(waker);
    }

    /// Registers the reader's waker (a reader that found the ring empty);
    /// it must look again before it sleeps.
    pub(crate) fn reader_waits(&self, waker: &Waker) {
        self.reader.arm(waker);
    }

    /// Takes the oldest item, waking a writer that waits for room, or
    /// crediting a process worker.
    pub(crate) fn try_pop(&self) -> Option<T> {
        let item = self.ring.pop()?;
        let Some(credit) = self.credit.get() else {
            // A thread's channel: its writer may wait for room. (A process
            // lane's never does: the credit keeps room for its items.)
            if let Some(waker) = self.writer.take() {
                waker.wake();
            }
            return Some(item);
        };
        // Relaxed: the reader's own count (the reader is one thread at a
        // time: the stream handle, behind `&mut`).
        let taken = self.taken.load(Ordering::Relaxed) + 1;
        if taken >= self.batch || self.ring.is_empty() {
            self.taken.store(0, Ordering::Relaxed);
            self.give_back(&**credit, taken);
        } else {
            self.taken.store(taken, Ordering::Relaxed);
        }
        Some(item)
    }

    /// A process lane delivers an item: it counts as owed to the worker
    /// until the reader takes it.
    pub(crate) fn owe(&self, credit: &Arc<dyn Credit>) {
        let _ = self.credit.get_or_init(|| Arc::clone(credit));
        // Relaxed: a count; the reader's CAS in `give_back` decides.
        self.owed.fetch_add(1, Ordering::Relaxed);
    }

    /// Gives the worker back the room of `n` items taken, unless the call
    /// ended (then [`end`](Self::end) gave it back already).
    fn give_back(&self, credit: &dyn Credit, n: u64) {
        // Relaxed: the count is all that is shared; each decrement is won
        // by one CAS, so no item is credited twice.
        let mut owed = self.owed.load(Ordering::Relaxed);
        while owed != 0 && owed & ENDED == 0 {
            let k = owed.min(n);
            match self.owed.compare_exchange_weak(
                owed,
                owed - k,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return credit.give(k),
                Err(now) => owed = now,
            }
        }
    }

    /// The call is over: the items the reader has not taken yet are
    /// credited at once, so that they do not hold back the worker's next
    /// stream.
    pub(crate) fn end(&self) {
        // Relaxed: as in `give_back`; the swap takes the count whole.
        let owed = self.owed.swap(ENDED, Ordering::Relaxed) & !ENDED;
        if let (Some(credit), true) = (self.credit.get(), owed > 0) {
            credit.give(owed);
        }
    }
}

impl<T> Drop for Channel<T> {
    fn drop(&mut self) {
        // Whatever is left is dropped by the ring; a process worker still
        // owed for it gets it back.
        self.end();
    }
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use std::{
        sync::atomic::AtomicU64 as StdU64,
        task::{Wake, Waker},
    };

    use super::*;

    struct Count(StdU64);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    impl Credit for Count {
        fn give(&self, n: u64) {
            self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn a_full_channel_hands_the_item_back() {
        let ch = Channel::new(2);
        assert_eq!(ch.bound(), 2);
        assert!(ch.try_push(1).is_ok());
        assert!(ch.try_push(2).is_ok());
        assert_eq!(ch.try_push(3).err(), Some(3));
        assert_eq!(ch.try_pop(), Some(1));
        assert!(ch.try_push(3).is_ok());
        assert_eq!(
            (ch.try_pop(), ch.try_pop(), ch.try_pop()),
            (Some(2), Some(3), None)
        );
    }

    #[test]
    fn a_waiting_reader_is_woken_once_by_the_next_item() {
        let ch = Channel::new(4);
        let count = Arc::new(Count(StdU64::new(0)));
        ch.reader_waits(&Waker::from(Arc::clone(&count)));
        assert!(ch.try_push(1).unwrap().is_some());
        assert!(ch.try_push(2).unwrap().is_none(), "woken already");
    }

    #[test]
    fn items_are_credited_once_whether_taken_or_left_at_the_end() {
        let ch = Channel::new(8);
        let count = Arc::new(Count(StdU64::new(0)));
        let credit: Arc<dyn Credit> = count.clone();
        for i in 0..5 {
            ch.owe(&credit);
            ch.try_push(i).unwrap();
        }
        assert_eq!(ch.try_pop(), Some(0));
        assert_eq!(ch.try_pop(), Some(1));
        assert_eq!(count.0.load(std::sync::atomic::Ordering::Relaxed), 2);
        ch.end();
        assert_eq!(count.0.load(std::sync::atomic::Ordering::Relaxed), 5);
        assert_eq!(ch.try_pop(), Some(2));
        drop(ch);
        assert_eq!(count.0.load(std::sync::atomic::Ordering::Relaxed), 5);
    }
}

#[cfg(all(test, knitting_loom))]
mod loom_tests {
    use std::{
        sync::Arc,
        task::{Wake, Waker},
    };

    // The channel's own references: loom's, so that it sees the last one
    // go after the other thread's last access.
    use ::loom::sync::Arc as Shared;

    use super::Channel;
    use crate::sync::{thread, AtomicBool, Ordering};

    /// A waker that only records that it was woken.
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            // Release: the waiter's next look sees what came before.
            self.0.store(true, Ordering::Release);
        }
    }

    /// A reader finds the channel empty and registers while a writer
    /// pushes: either its second look finds the item, or it is woken.
    #[test]
    fn loom_channel_a_reader_is_never_left_asleep() {
        ::loom::model(|| {
            let channel = Shared::new(Channel::new(2));
            let writer = {
                let channel = Shared::clone(&channel);
                thread::spawn(move || {
                    if let Some(waker) = channel.try_push(7u32).expect("room") {
                        waker.wake();
                    }
                })
            };
            let flag = Arc::new(Flag(AtomicBool::new(false)));
            let got = channel.try_pop().or_else(|| {
                channel.reader_waits(&Waker::from(Arc::clone(&flag)));
                channel.try_pop()
            });
            writer.join().unwrap();
            // Acquire: pairs with the wake's Release.
            let woken = flag.0.load(Ordering::Acquire);
            assert!(
                got == Some(7) || woken,
                "the reader missed the item and was not woken"
            );
        });
    }

    /// A writer finds the channel full and registers while the reader
    /// takes an item: either its second try succeeds, or it is woken.
    #[test]
    fn loom_channel_a_writer_is_never_left_asleep() {
        ::loom::model(|| {
            let channel = Shared::new(Channel::new(2));
            channel.try_push(1u32).expect("room");
            channel.try_push(2u32).expect("room");
            let reader = {
                let channel = Shared::clone(&channel);
                thread::spawn(move || channel.try_pop())
            };
            let flag = Arc::new(Flag(AtomicBool::new(false)));
            let sent = channel.try_push(3).is_ok() || {
                channel.writer_waits(&Waker::from(Arc::clone(&flag)));
                channel.try_push(3).is_ok()
            };
            assert_eq!(reader.join().unwrap(), Some(1));
            // Acquire: pairs with the wake's Release.
            let woken = flag.0.load(Ordering::Acquire);
            assert!(
                sent || woken,
                "the writer missed the room and was not woken"
            );
        });
    }
}
