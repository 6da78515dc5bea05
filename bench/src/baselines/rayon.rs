//! `rayon`: a rayon thread pool of the workload's worker count, each call a
//! `spawn` whose closure sends its reply on a one-shot crossbeam channel.
//! rayon's `spawn` from a thread outside the pool goes to the pool's one
//! shared injector queue, and any idle worker takes the oldest job: the
//! even spread a saturated service wants, at the price of one queue that
//! every caller and worker shares.

use crossbeam_channel::Receiver;

use crate::Result;

/// A rayon pool that runs `job`s and hands their replies back.
pub struct Rayon {
    pool: rayon::ThreadPool,
}

impl Rayon {
    pub fn new(workers: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("rayon-{i}"))
            .build()?;
        Ok(Self { pool })
    }

    /// Runs `job` on the pool; its result arrives on the returned channel.
    pub fn call<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Receiver<T> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.pool.spawn(move || {
            // The caller may have gone (the run is over): nothing to do.
            let _ = tx.send(job());
        });
        rx
    }
}
