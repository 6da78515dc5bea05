//! What a process pool's workers do with calls of `async fn` tasks and
//! streaming tasks.

use super::ProcessPoolBuilder;

impl ProcessPoolBuilder {
    /// How many calls of `async fn` tasks each worker process runs at once
    /// (at least 1; the default is 256, or what
    /// [`PoolBuilder::async_concurrency`](crate::PoolBuilder::async_concurrency)
    /// set before [`processes`](crate::PoolBuilder::processes)).
    ///
    /// A worker that starts an async call goes on taking calls while its
    /// future waits, up to this many in flight; sync calls are not counted.
    /// The calls a worker holds at once are also bounded by
    /// [`ring_slots`](Self::ring_slots) (128 by default): raise both for
    /// more. A worker answers its calls in the order it took them, so a
    /// call that finishes behind a longer one waits for it before its
    /// result reaches the caller (its deadline and cancellation still end
    /// it at once for the caller).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[knitting::task]
    /// async fn pause(ms: u64) { knitting::sleep(Duration::from_millis(ms)).await }
    ///
    /// knitting::init();
    /// let pool = knitting::Pool::builder().processes(1).async_concurrency(8).build()?;
    /// let calls: Vec<_> = (0..8).map(|_| pool.call(pause, 20)).collect();
    /// for call in calls { call.wait()?; } // about 20 ms in all
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn async_concurrency(mut self, calls: usize) -> Self {
        self.opts.async_concurrency = calls.max(1);
        self
    }

    /// How many items a stream holds that its reader has not taken yet,
    /// before its task's [`send`](crate::Sender::send) waits (rounded up
    /// to a power of two; the default is 64). The items wait in the
    /// worker's shared mapping and in the host, never more than this many
    /// of one worker's streams at once. Carries over from
    /// [`PoolBuilder::stream_bound`](crate::PoolBuilder::stream_bound).
    ///
    /// ```no_run
    /// let pool = knitting::Pool::builder().processes(1).stream_bound(1024).build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn stream_bound(mut self, items: usize) -> Self {
        self.opts.stream_bound = items.clamp(2, 1 << 20).next_power_of_two();
        self
    }
}
