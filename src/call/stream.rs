//! [`Stream`]: the caller's handle on a streaming task's call: its items,
//! then its final value.

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use super::Call;
use crate::{payload::stream::Channel, sync::ThreadWaker, Error};

/// The items of a streaming task's call, then its final value: what
/// [`Pool::stream`](crate::Pool::stream) returns.
///
/// It is a blocking [`Iterator`] and a runtime-agnostic
/// [`futures_core::Stream`] of `Result<T, Error>`, in the order the task
/// sent them. After the last item, [`finish`](Self::finish) gives the
/// task's return value. When the call fails (the task panicked or
/// returned an error, its worker process died, its deadline passed), the
/// stream ends with that error, after every item the task sent before it:
///
/// ```
/// #[knitting::task]
/// fn lines(text: String, out: knitting::Sender<String>) -> usize {
///     let mut n = 0;
///     for line in text.lines() {
///         if out.send(line.to_owned()).is_err() {
///             break;
///         }
///         n += 1;
///     }
///     n
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// let mut stream = pool.stream(lines, "a\nb\nc".to_owned());
/// for line in stream.by_ref() {
///     println!("{}", line?);
/// }
/// assert_eq!(stream.finish()?, 3);
/// # Ok(()) }
/// ```
///
/// Dropping the stream cancels the call: the task's next
/// [`send`](crate::Sender::send) fails, and its signal reads aborted.
///
/// A stream's task must not wait for its own stream's reader on the same
/// pool's only free worker: the reader would wait for items that task
/// cannot send. Read streams from outside the pool's workers, or from a
/// pool with workers to spare.
#[must_use = "dropping the stream cancels its call"]
pub struct Stream<T, R> {
    channel: Arc<Channel<T>>,
    call: Option<Call<R>>,
    /// The call's outcome, once it ended.
    outcome: Option<Result<R, Error>>,
    /// The stream ended (a failed call's error was handed out).
    over: bool,
    /// The waker of the thread blocking in `next`.
    parker: Option<(std::thread::ThreadId, Waker)>,
}

// `Stream` never pins what it holds: it moves the outcome out, never
// projects a pin into it.
impl<T, R> Unpin for Stream<T, R> {}

/// How long a blocking read spins before it parks: a producer that is
/// running fills the channel again within microseconds.
const SPIN: Duration = Duration::from_micros(50);

/// CPU pause hints between two looks of a spinning reader.
const PAUSE: u32 = 32;

impl<T: Send + 'static, R: Send + 'static> Stream<T, R> {
    pub(crate) fn new(channel: Arc<Channel<T>>, call: Call<R>) -> Self {
        // A call kept for its waiter would run on the reader's thread,
        // which would then wait for room it cannot make.
        call.dispatch();
        // However the call ends (its deadline, a cancel, a shutdown), the
        // channel closes then: a task waiting in `send` for room wakes and
        // stops, even while nobody reads, and so does a waiting reader.
        call.on_end(&Waker::from(Arc::new(CloseOnEnd(Arc::downgrade(&channel)))));
        Self {
            channel,
            call: Some(call),
            outcome: None,
            over: false,
            parker: None,
        }
    }

    /// How many items the stream holds at most before the task waits.
    pub fn bound(&self) -> usize {
        self.channel.bound()
    }

    /// Reads the rest of the stream, dropping its items, and returns the
    /// task's final value (or why the call failed).
    ///
    /// ```
    /// #[knitting::task]
    /// fn squares(n: u64, out: knitting::Sender<u64>) -> u64 {
    ///     (0..n).map(|i| { let _ = out.send(i * i); i * i }).sum()
    /// }
    ///
    /// # fn main() -> Result<(), knitting::Error> {
    /// let pool = knitting::Pool::builder().threads(1).build()?;
    /// let mut stream = pool.stream(squares, 4);
    /// assert_eq!(stream.next().transpose()?, Some(0));
    /// assert_eq!(stream.finish()?, 0 + 1 + 4 + 9);
    /// # Ok(()) }
    /// ```
    pub fn finish(mut self) -> Result<R, Error> {
        while self.outcome.is_none() {
            if Iterator::next(&mut self).is_none() && self.outcome.is_none() {
                return Err(crate::payload::stream::reader_gone());
            }
        }
        self.outcome.take().expect("checked above")
    }

    /// Asks the task to stop ([`Signal::aborted`](crate::Signal::aborted)
    /// turns true), leaving the stream open: the task decides what to send
    /// before it returns. To stop it at once, drop the stream.
    pub fn abort(&self) {
        if let Some(call) = &self.call {
            call.abort();
        }
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        if let Some(item) = self.channel.try_pop() {
            return Poll::Ready(Some(Ok(item)));
        }
        if self.outcome.is_none() {
            let Some(call) = self.call.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(outcome) = call.end_if_over() {
                self.call = None;
                self.outcome = Some(outcome);
                // Whatever the task still sends is not read.
                self.channel.close();
            }
        }
        // Items come before the outcome that follows them: look again.
        if let Some(item) = self.channel.try_pop() {
            return Poll::Ready(Some(Ok(item)));
        }
        if let Some(outcome) = &self.outcome {
            if self.over {
                return Poll::Ready(None);
            }
            self.over = true;
            return Poll::Ready(match outcome {
                Ok(_) => None,
                // A copy: the error stays for `finish`.
                Err(err) => Some(Err(Error::from_wire(err.to_wire()))),
            });
        }
        // The channel wakes the reader for a new item, and when it closes
        // as the call ends (`CloseOnEnd`).
        self.channel.reader_waits(cx.waker());
        match self.channel.try_pop() {
            Some(item) => Poll::Ready(Some(Ok(item))),
            // Closed meanwhile: the call ended, and its outcome shows now
            // (it was published before the channel closed).
            None if self.channel.is_closed() => self.poll_item(cx),
            None => Poll::Pending,
        }
    }

    /// Spins for a little while an item may come soon, taking the lane's
    /// responses (and so its items) meanwhile.
    fn spin(&mut self) {
        let until = Instant::now() + SPIN;
        let channel = &self.channel;
        let mut turns = 0u32;
        let mut step = || {
            turns += 1;
            if !channel.is_empty() || channel.is_closed() {
                return false;
            }
            // A pause between looks: the writer's lines stay with the
            // writer, and each look finds more items.
            for _ in 0..PAUSE {
                std::hint::spin_loop();
            }
            !turns.is_multiple_of(64) || Instant::now() < until
        };
        match self.call.as_ref().and_then(Call::route) {
            Some(route) => route.spin(&mut step),
            None => {
                while step() {
                    std::hint::spin_loop();
                }
            }
        }
    }

    fn parker(&mut self) -> Waker {
        let me = std::thread::current();
        match &self.parker {
            Some((id, waker)) if *id == me.id() => waker.clone(),
            _ => {
                let waker = Waker::from(Arc::new(ThreadWaker(me.clone())));
                self.parker = Some((me.id(), waker.clone()));
                waker
            }
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Iterator for Stream<T, R> {
    type Item = Result<T, Error>;

    /// The next item, waiting for it; `None` after the last one (and after
    /// a failed call's error).
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.channel.try_pop() {
            return Some(Ok(item));
        }
        if self.outcome.is_none() {
            self.spin();
        }
        let waker = self.parker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(item) = self.poll_item(&mut cx) {
                return item;
            }
            std::thread::park();
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> futures_core::Stream for Stream<T, R> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(cx)
    }
}

/// The waker a stream's call wakes as it ends: closes the channel.
struct CloseOnEnd<T>(std::sync::Weak<Channel<T>>);

impl<T: Send> std::task::Wake for CloseOnEnd<T> {
    fn wake(self: Arc<Self>) {
        if let Some(channel) = self.0.upgrade() {
            channel.close();
        }
    }
}

impl<T, R> Drop for Stream<T, R> {
    fn drop(&mut self) {
        // The task's sends fail from now on; dropping the call (after
        // this) cancels it.
        self.channel.close();
    }
}

impl<T, R> fmt::Debug for Stream<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("bound", &self.channel.bound())
            .field("ended", &self.outcome.is_some())
            .finish_non_exhaustive()
    }
}
