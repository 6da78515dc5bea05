//! Crossbeam: the floor of a thread hand-off. A worker thread serves
//! requests from one bounded channel and answers on another; no allocation
//! per call. A producer thread streams items on one bounded channel (W13).

use std::{
    hint::black_box,
    thread::{self, JoinHandle},
};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::{measure::Sampler, workloads::CHANNEL_CAPACITY, Result};

/// A worker thread serving `handler` over a pair of bounded channels.
pub struct Service<Req, Resp> {
    /// `None` once dropped: closing it ends the worker.
    requests: Option<Sender<Req>>,
    replies: Receiver<Resp>,
    worker: Option<JoinHandle<()>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Service<Req, Resp> {
    pub fn start(handler: impl Fn(Req) -> Resp + Send + 'static) -> Result<Self> {
        let (requests, incoming) = bounded::<Req>(CHANNEL_CAPACITY);
        let (outgoing, replies) = bounded::<Resp>(CHANNEL_CAPACITY);
        let worker = thread::Builder::new()
            .name("crossbeam-bench-worker".into())
            .spawn(move || {
                for request in incoming {
                    if outgoing.send(handler(request)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            requests: Some(requests),
            replies,
            worker: Some(worker),
        })
    }

    /// One call, for sanity checks.
    pub fn call(&mut self, request: Req) -> Result<Resp> {
        self.send(request)?;
        Ok(self.replies.recv()?)
    }

    /// Times batches of `batch` calls, the `i`-th made with `request(i)`.
    /// Replies come back in request order (one worker, FIFO channels).
    pub fn measure(
        &mut self,
        batch: usize,
        sampler: &mut Sampler,
        mut request: impl FnMut(usize) -> Req,
    ) -> Result<()> {
        sampler.run(|| {
            for i in 0..batch {
                self.send(request(i))?;
            }
            for _ in 0..batch {
                black_box(self.replies.recv()?);
            }
            Ok(())
        })
    }

    fn send(&self, request: Req) -> Result<()> {
        self.requests
            .as_ref()
            .and_then(|requests| requests.send(request).ok())
            .ok_or_else(|| "the crossbeam worker thread ended".into())
    }
}

impl<Req, Resp> Drop for Service<Req, Resp> {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// A producer thread that streams `0..n` to the host on one bounded
/// channel, each time the host asks for `n` items (W13): the floor of a
/// stream between two threads.
pub struct Producer {
    /// `None` once dropped: closing it ends the producer.
    starts: Option<Sender<u64>>,
    items: Receiver<u64>,
    worker: Option<JoinHandle<()>>,
}

impl Producer {
    /// A producer thread whose item channel holds `bound` items.
    pub fn start(bound: usize) -> Result<Self> {
        let (starts, asked) = bounded::<u64>(1);
        let (items, received) = bounded::<u64>(bound);
        let worker = thread::Builder::new()
            .name("crossbeam-bench-producer".into())
            .spawn(move || {
                for n in asked {
                    for i in 0..n {
                        if items.send(i).is_err() {
                            return;
                        }
                    }
                }
            })?;
        Ok(Self {
            starts: Some(starts),
            items: received,
            worker: Some(worker),
        })
    }

    /// Asks for `n` items and receives them all; returns the last one
    /// (`None` for `n` = 0).
    pub fn stream(&mut self, n: u64) -> Result<Option<u64>> {
        self.starts
            .as_ref()
            .and_then(|starts| starts.send(n).ok())
            .ok_or("the crossbeam producer thread ended")?;
        let mut last = None;
        for _ in 0..n {
            last = Some(black_box(self.items.recv()?));
        }
        Ok(last)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        drop(self.starts.take());
        // A stream left half read (its sample failed) ends once drained;
        // then the producer sees no more requests and drops its sender.
        while self.items.recv().is_ok() {}
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
