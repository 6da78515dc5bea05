//! Tokio: one worker task receiving `(request, oneshot::Sender<reply>)`
//! over a bounded `mpsc`, the methodology of the public knitting-vs-Tokio
//! benchmark.
//!
//! The caller runs inside `block_on` of the same runtime, as the code of an
//! async application would: one `block_on` per block of samples, so entering
//! the runtime is not part of any sample. Each sample sends the whole batch,
//! then awaits the batch's replies in order.
//!
//! - [`Flavor::CurrentThread`] (`tokio`): caller and worker task share one
//!   thread and take turns; no hand-off between threads at all.
//! - [`Flavor::MultiThread`] (`tokio-mt`): the worker task runs on the
//!   runtime's worker threads, the caller on the `block_on` thread.

use std::{hint::black_box, time::Instant};

use tokio::{
    runtime::{Builder, Runtime},
    sync::{mpsc, oneshot},
};

use crate::{measure::Sampler, workloads::CHANNEL_CAPACITY, Result};

/// Which Tokio scheduler runs the service.
#[derive(Clone, Copy, Debug)]
pub enum Flavor {
    CurrentThread,
    MultiThread { workers: usize },
}

impl Flavor {
    /// The `runtime` name of the results.
    pub fn runtime(self) -> &'static str {
        match self {
            Self::CurrentThread => "tokio",
            Self::MultiThread { .. } => "tokio-mt",
        }
    }

    fn build(self) -> std::io::Result<Runtime> {
        match self {
            Self::CurrentThread => Builder::new_current_thread().build(),
            Self::MultiThread { workers } => Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name("tokio-bench-worker")
                .build(),
        }
    }
}

type Request<Req, Resp> = (Req, oneshot::Sender<Resp>);

/// A runtime with one worker task serving `handler`.
pub struct Service<Req, Resp> {
    runtime: Runtime,
    requests: mpsc::Sender<Request<Req, Resp>>,
    pending: Vec<oneshot::Receiver<Resp>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Service<Req, Resp> {
    pub fn start(flavor: Flavor, handler: impl Fn(Req) -> Resp + Send + 'static) -> Result<Self> {
        let runtime = flavor.build()?;
        let (requests, mut incoming) = mpsc::channel::<Request<Req, Resp>>(CHANNEL_CAPACITY);
        runtime.spawn(async move {
            while let Some((request, reply)) = incoming.recv().await {
                // A caller that gave up dropped its receiver: nothing to do.
                let _ = reply.send(handler(request));
            }
        });
        Ok(Self {
            runtime,
            requests,
            pending: Vec::with_capacity(CHANNEL_CAPACITY),
        })
    }

    /// One call, for sanity checks.
    pub fn call(&mut self, request: Req) -> Result<Resp> {
        let requests = &self.requests;
        self.runtime.block_on(async {
            let (reply, response) = oneshot::channel();
            send(requests, (request, reply)).await?;
            Ok(response.await?)
        })
    }

    /// Times batches of `batch` calls, the `i`-th made with `request(i)`.
    pub fn measure(
        &mut self,
        batch: usize,
        sampler: &mut Sampler,
        mut request: impl FnMut(usize) -> Req,
    ) -> Result<()> {
        let Self {
            runtime,
            requests,
            pending,
        } = self;
        runtime.block_on(async {
            while sampler.more() {
                let start = Instant::now();
                for i in 0..batch {
                    let (reply, response) = oneshot::channel();
                    send(requests, (request(i), reply)).await?;
                    pending.push(response);
                }
                for response in pending.drain(..) {
                    black_box(response.await?);
                }
                sampler.record(start.elapsed());
            }
            Ok(())
        })
    }
}

async fn send<T>(requests: &mpsc::Sender<T>, request: T) -> Result<()> {
    requests
        .send(request)
        .await
        .map_err(|_| "the tokio worker task ended".into())
}
