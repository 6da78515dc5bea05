//! A running process runtime: one lane (a worker process, its mapping and
//! a reactor thread) per worker, started together and shut down together.

use std::{
    sync::{atomic::Ordering, mpsc, Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{
    handover,
    host::{Config, Lane, Shared},
    names,
    shm::{self, TaskKey},
    Options,
};
use crate::{
    call::{cell::JobRef, route::Route},
    runtime::{Lanes, Remote},
    Error, ErrorKind, LaneStats,
};

/// How often a worker shows it is alive, for a liveness timeout: five
/// beats per timeout, between 1 ms and 1 s apart.
fn heartbeat_for(liveness: Duration) -> Duration {
    (liveness / 5).clamp(Duration::from_millis(1), Duration::from_secs(1))
}

pub(crate) struct Runtime {
    shared: Arc<Shared>,
    lanes: Box<[Arc<Lane>]>,
    reactors: Mutex<Vec<JoinHandle<()>>>,
}

impl Lanes for Runtime {
    fn count(&self) -> usize {
        self.lanes.len()
    }

    fn is_idle(&self, index: usize) -> bool {
        self.lanes[index].is_idle()
    }

    /// False for a lane that gave up (its workers kept dying at start-up).
    fn is_usable(&self, index: usize) -> bool {
        !self.lanes[index].is_done()
    }

    fn in_flight(&self, index: usize) -> usize {
        self.lanes[index].in_flight()
    }
}

impl Runtime {
    /// Starts the worker processes and waits until each is ready.
    pub(crate) fn start(opts: Options) -> Result<Self, Error> {
        if crate::role::is_process_worker() || handover::started_as_worker() {
            return Err(Error::of(
                ErrorKind::Startup,
                "this process is a knitting process worker: it cannot start process pools of its \
                 own (if it should be a worker, call knitting::init() first thing in main)",
            ));
        }
        let exe = match opts.exe {
            Some(exe) => exe,
            None => std::env::current_exe().map_err(|e| {
                Error::of(
                    ErrorKind::Startup,
                    format!("cannot find this program's path: {e}"),
                )
            })?,
        };
        let max_payload = opts.max_payload.unwrap_or(opts.arena / 8);
        if max_payload > opts.arena {
            return Err(Error::build(format!(
                "max_payload_bytes ({max_payload}) is larger than arena_bytes ({})",
                opts.arena
            )));
        }
        let layout = shm::Layout::new(opts.slots, opts.arena)
            .ok_or_else(|| Error::build("ring_slots or arena_bytes out of range"))?;
        if let Some(boot) = &opts.boot {
            if boot.data.len() > opts.arena {
                return Err(Error::build(format!(
                    "the data of bootstrap `{}` ({} bytes) is larger than arena_bytes ({})",
                    boot.name,
                    boot.data.len(),
                    opts.arena
                )));
            }
        }
        if opts.named {
            names::sweep_stale();
        }
        let n = opts.processes;
        let shared = Arc::new(Shared::new(
            Config {
                exe,
                prefix: opts.prefix,
                named: opts.named,
                layout,
                max_payload,
                spin: opts.spin,
                start_timeout: opts.start_timeout,
                start_attempts: 3,
                hard_timeout: opts.hard_timeout,
                heartbeat: heartbeat_for(opts.liveness),
                liveness: opts.liveness,
                limits: super::handover::Limits {
                    memory: opts.limits.memory,
                    // Whole seconds, the kernel's unit, rounded up.
                    cpu_seconds: opts
                        .limits
                        .cpu_time
                        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
                    open_files: opts.limits.open_files,
                },
                workers: opts.processes,
                boot: opts.boot,
                permissions: opts.permissions,
                diagnostics: opts.diagnostics,
                async_concurrency: opts.async_concurrency,
                stream_bound: opts.stream_bound,
            },
            n,
        ));
        let lanes: Box<[Arc<Lane>]> = (0..n)
            .map(|i| Arc::new(Lane::new(i, Arc::clone(&shared))))
            .collect();
        let mut reactors = Vec::with_capacity(n);
        let mut waits = Vec::with_capacity(n);
        for lane in lanes.iter() {
            let (tx, rx) = mpsc::channel();
            let lane = Arc::clone(lane);
            let spawned = std::thread::Builder::new()
                .name(format!("knitting-lane-{}", lane.index))
                .spawn(move || {
                    // A panic here is a bug in the crate: close the lane
                    // with an error rather than leave its calls waiting.
                    let reactor = Arc::clone(&lane);
                    let run = std::panic::AssertUnwindSafe(move || reactor.run(tx));
                    if std::panic::catch_unwind(run).is_err() {
                        lane.reactor_panicked();
                    }
                });
            match spawned {
                Ok(handle) => {
                    reactors.push(handle);
                    waits.push(rx);
                }
                Err(e) => {
                    let rt = Self::assemble(shared, lanes, reactors);
                    rt.abandon();
                    return Err(Error::build(format!("could not start a lane thread: {e}")));
                }
            }
        }
        let mut first_error = None;
        for rx in waits {
            let outcome = rx.recv().unwrap_or_else(|_| {
                Err(Error::of(
                    ErrorKind::Startup,
                    "a lane thread ended while starting its worker",
                ))
            });
            if let Err(err) = outcome {
                first_error.get_or_insert(err);
            }
        }
        let rt = Self::assemble(shared, lanes, reactors);
        match first_error {
            None => Ok(rt),
            Some(err) => {
                rt.abandon();
                Err(err)
            }
        }
    }

    fn assemble(
        shared: Arc<Shared>,
        lanes: Box<[Arc<Lane>]>,
        reactors: Vec<JoinHandle<()>>,
    ) -> Self {
        Self {
            shared,
            lanes,
            reactors: Mutex::new(reactors),
        }
    }

    /// Sends `job` to a lane (or queues it there, when the worker's ring or
    /// arena is full); returns the lane, the call's route.
    pub(crate) fn submit(&self, index: usize, job: JobRef, remote: Remote) -> Arc<dyn Route> {
        let key = TaskKey {
            id: remote.id,
            shape: remote.shape,
        };
        let lane = &self.lanes[index];
        lane.submit(job, remote.ops, key);
        Arc::clone(lane) as Arc<dyn Route>
    }

    pub(crate) fn lane_stats(&self) -> Vec<LaneStats> {
        self.lanes
            .iter()
            .map(|l| LaneStats {
                in_flight: l.in_flight(),
                completed: l.completed.load(Ordering::Relaxed),
                pid: l.current_pid(),
                sandbox: l.sandbox(),
                queued: l.queued(),
                last_crash: l.last_crash(),
                restarts: l.restarts.load(Ordering::Relaxed),
                stolen: 0,
                busy: l.busy(),
            })
            .collect()
    }

    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with `close`; the lane re-checks under its lock.
        self.shared.closed.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        // Release: pairs with the reactors' Acquire loads.
        self.shared.closed.store(true, Ordering::Release);
        for lane in self.lanes.iter() {
            lane.nudge();
        }
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        self.shared.live.wait(deadline)
    }

    pub(crate) fn join(&self) {
        let handles = std::mem::take(&mut *self.reactors.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in handles {
            let _ = handle.join();
        }
    }

    /// Kills every worker and fails every call left; waits for the lanes.
    /// Returns how many calls it failed.
    pub(crate) fn abandon(&self) -> usize {
        self.shared.closed.store(true, Ordering::Release);
        // Release: pairs with the reactors' Acquire loads.
        self.shared.abandoned.store(true, Ordering::Release);
        for lane in self.lanes.iter() {
            lane.nudge();
        }
        self.shared.live.wait(None);
        self.join();
        self.shared.abandoned_calls.load(Ordering::Relaxed)
    }
}
