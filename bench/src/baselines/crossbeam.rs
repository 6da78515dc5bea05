//! Crossbeam: the floor of a thread hand-off. A worker thread serves
//! requests from one bounded channel and answers on another; no allocation
//! per call.

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
