//! [`sleep`]: a timer future for async tasks that needs no reactor, on the
//! crate's timer thread.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use atomic_waker::AtomicWaker;

use super::timer;

/// Waits for `duration` in an async task, on any pool and in any mode.
///
/// It needs no reactor: the crate's timer thread wakes the task when the
/// time has come (tokio's `tokio::time::sleep` needs the `tokio` feature,
/// see [`task`](macro@crate::task#async-tasks)). Dropping the future
/// before then cancels its timer entry. Outside a task it works too, in
/// any executor.
///
/// ```
/// use std::time::Duration;
///
/// #[knitting::task]
/// async fn nap(ms: u64) -> u64 {
///     knitting::sleep(Duration::from_millis(ms)).await;
///     ms
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// // A hundred naps at once on one worker thread: about 10 ms in all.
/// let calls: Vec<_> = (0..100).map(|_| pool.call(nap, 10)).collect();
/// for call in calls {
///     assert_eq!(call.wait()?, 10);
/// }
/// # Ok(()) }
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        at: crate::time::nanos_after(duration),
        entry: None,
    }
}

/// The future of [`sleep`].
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct Sleep {
    /// When it is over, on the shared clock.
    at: u64,
    /// The timer entry and the waker it wakes, once polled.
    entry: Option<(timer::Key, Arc<AtomicWaker>)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if crate::time::now_nanos() >= self.at {
            if let Some((key, _)) = self.entry.take() {
                timer::cancel(key);
            }
            return Poll::Ready(());
        }
        match &self.entry {
            Some((_, waker)) => waker.register(cx.waker()),
            None => {
                let waker = Arc::new(AtomicWaker::new());
                waker.register(cx.waker());
                let key = timer::schedule(self.at, timer::Action::Wake(Arc::clone(&waker)));
                self.entry = Some((key, waker));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((key, _)) = self.entry.take() {
            timer::cancel(key);
        }
    }
}
