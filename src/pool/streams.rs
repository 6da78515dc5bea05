//! [`Pool::stream`]: calls of streaming tasks.

use std::sync::Arc;

use super::Pool;
use crate::{
    payload::stream::{Channel, Sender},
    runtime::{Runs, Runtime},
    Stream, StreamTask,
};

impl<R: Runtime> Pool<R> {
    /// Calls a streaming `task` (one that takes a
    /// [`Sender`](crate::Sender)) with `input`, its other arguments, and
    /// returns the [`Stream`] of the items it sends, then its final value.
    ///
    /// The call is a call like any other: the pool's balancer picks its
    /// worker, and its deadline (`#[task(timeout = ..)]`), hard limit,
    /// cancellation and shutdown apply. The stream holds at most the
    /// pool's [`stream_bound`](crate::PoolBuilder::stream_bound) items
    /// that were not read yet; past that, the task waits in
    /// [`send`](crate::Sender::send).
    ///
    /// ```
    /// #[knitting::task]
    /// fn words(text: String, out: knitting::Sender<String>) -> usize {
    ///     let all: Vec<&str> = text.split_whitespace().collect();
    ///     for w in &all {
    ///         if out.send(w.to_string()).is_err() { break }
    ///     }
    ///     all.len()
    /// }
    ///
    /// # fn main() -> Result<(), knitting::Error> {
    /// let pool = knitting::Pool::builder().threads(2).build()?;
    /// let mut stream = pool.stream(words, "to be or not".to_owned());
    /// let first: Vec<String> = stream.by_ref().take(2).collect::<Result<_, _>>()?;
    /// assert_eq!(first, ["to", "be"]);
    /// assert_eq!(stream.finish()?, 4);
    /// # Ok(()) }
    /// ```
    ///
    /// On a process pool the items travel through the worker's shared
    /// mapping, encoded with serde (so `T::Item` must be a serde type);
    /// a worker that dies mid-stream ends the stream with
    /// [`WorkerDied`](crate::ErrorKind::WorkerDied), after the items it
    /// sent before it went. A call that delivered an item is never run
    /// again on another worker.
    pub fn stream<T: StreamTask>(&self, task: T, input: T::Input) -> Stream<T::Item, T::Output>
    where
        R: Runs<T>,
    {
        let channel = Arc::new(Channel::new(self.handle.engine.stream_bound()));
        let args = T::with_sender(input, Sender::local(Arc::clone(&channel)));
        Stream::new(channel, self.call(task, args))
    }
}
