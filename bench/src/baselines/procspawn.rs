//! procspawn: the existing Rust process pool, the peer of knitting's
//! process runtime.
//!
//! A `procspawn::Pool` of worker processes (this very binary, re-run; see
//! `procspawn::init` in `main`) serves a plain `fn`; arguments and results
//! cross the process boundary serialized with serde. Each call is a
//! `Pool::spawn` returning a `JoinHandle`: a batch spawns all its calls,
//! then joins them in order.

use std::hint::black_box;

use procspawn::{JoinHandle, Pool};
use serde::{de::DeserializeOwned, Serialize};

use crate::{measure::Sampler, Result};

/// A pool of worker processes serving `handler`.
pub struct Service<Req, Resp> {
    pool: Pool,
    handler: fn(Req) -> Resp,
}

impl<Req, Resp> Service<Req, Resp>
where
    Req: Serialize + DeserializeOwned,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    /// Launches `processes` worker processes without waiting for them to
    /// be up: the first call may wait for that.
    pub fn start(processes: usize, handler: fn(Req) -> Resp) -> Result<Self> {
        Ok(Self {
            pool: Pool::new(processes)?,
            handler,
        })
    }

    /// One call.
    pub fn call(&self, request: Req) -> Result<Resp> {
        Ok(self.pool.spawn(request, self.handler).join()?)
    }

    /// Times batches of `batch` calls, the `i`-th made with `request(i)`.
    pub fn measure(
        &mut self,
        batch: usize,
        sampler: &mut Sampler,
        mut request: impl FnMut(usize) -> Req,
    ) -> Result<()> {
        let mut pending: Vec<JoinHandle<Resp>> = Vec::with_capacity(batch);
        sampler.run(|| {
            pending.extend((0..batch).map(|i| self.pool.spawn(request(i), self.handler)));
            for handle in pending.drain(..) {
                black_box(handle.join()?);
            }
            Ok(())
        })
    }

    /// Waits for calls in flight, then kills and reaps the processes.
    /// Dropping the service kills them without waiting for calls.
    pub fn shutdown(self) {
        self.pool.shutdown();
    }
}
