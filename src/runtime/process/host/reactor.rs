//! A process lane's reactor thread: it starts the lane's worker, takes
//! its responses when no caller does, watches its liveness and hard time
//! limits, replaces it when it goes, and stops it at shutdown.

use super::*;

impl Lane {
    /// The reactor thread: start the worker, serve, replace it when it
    /// dies, stop it at shutdown.
    pub(crate) fn run(self: Arc<Self>, started: mpsc::Sender<Result<(), Error>>) {
        REACTOR_OF.with(|r| r.set(Arc::as_ptr(&self).addr()));
        let mut started = Some(started);
        let mut failures = 0u32;
        loop {
            if self.shared.abandoned.load(Ordering::Acquire) {
                self.abandon();
                break;
            }
            let needs_worker = lock(&self.state).gen.is_none();
            if needs_worker {
                if self.shared.closed.load(Ordering::Acquire) && self.stop_if_idle() {
                    break;
                }
                let restarts = self.restarts.load(Ordering::Relaxed);
                if restarts > 0 {
                    crate::diag::worker_replacing(
                        self.shared.cfg.diagnostics,
                        self.index,
                        restarts,
                    );
                }
                let began = Instant::now();
                match start_worker(self.index, &self.shared.cfg, &self.shared.abandoned) {
                    Ok(gen) => {
                        failures = 0;
                        crate::diag::worker_ready(
                            self.shared.cfg.diagnostics,
                            self.index,
                            Some(gen.pid),
                            began.elapsed(),
                        );
                        self.pid.store(gen.pid, Ordering::Relaxed);
                        let word = gen.sandbox.map_or(0, |e| e.to_word());
                        self.sandbox.store(word, Ordering::Relaxed);
                        let mut st = lock(&self.state);
                        st.gen = Some(gen);
                        self.progress_and_wake(st);
                        if let Some(tx) = started.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    Err(err) => {
                        failures += 1;
                        if let Some(tx) = started.take() {
                            // At build time one failed start fails the build.
                            self.give_up(clone_error(&err));
                            let _ = tx.send(Err(err));
                            break;
                        }
                        if failures >= self.shared.cfg.start_attempts {
                            let err = Error::of(
                                ErrorKind::Startup,
                                format!(
                                    "{} (gave up after {failures} attempts in a row)",
                                    err.message()
                                ),
                            );
                            self.give_up(err);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20 << failures.min(5)));
                    }
                }
                continue;
            }
            if let Some(sleep) = self.serve_once() {
                crate::diag::reactor_sleeps(self.shared.cfg.diagnostics, self.index, sleep.timeout);
                futex::wait(
                    &sleep.shm.control().host_bell.word,
                    sleep.seen,
                    Some(sleep.timeout),
                );
                bell::disarm(&sleep.shm.control().host_bell.sleeping);
            } else if lock(&self.state).done.is_some() {
                break;
            }
        }
        self.pid.store(0, Ordering::Relaxed);
        self.shared.live.count_down();
    }

    /// One round of the reactor with a live worker. Returns how to sleep,
    /// or `None` to loop again at once.
    fn serve_once(&self) -> Option<Sleep> {
        self.progress_and_wake(lock(&self.state));
        let mut st = lock(&self.state);
        // Workers taken away earlier that have exited since are reaped
        // here, under the lock this round takes anyway.
        st.zombies
            .retain_mut(|child| matches!(child.try_wait(), Ok(None)));
        // Only this thread takes the worker away; a guard, not a path.
        st.gen.as_ref()?;
        let gen = st.gen.as_mut().expect("serve_once runs with a worker");
        if let Ok(Some(status)) = gen.child.try_wait() {
            self.worker_gone(&mut st, Gone::Exited(status));
            return None;
        }
        let now = Instant::now();
        let liveness = self.shared.cfg.liveness;
        if gen.unresponsive(liveness, now) {
            self.worker_gone(&mut st, Gone::Unresponsive(liveness));
            return None;
        }
        if gen.stalled(liveness, now) {
            self.worker_gone(&mut st, Gone::Stalled(liveness));
            return None;
        }
        // The calls the worker runs: past their hard time limits? The
        // front one, a sync one the worker took behind async calls (it
        // runs on the worker's thread while their futures wait), and every
        // async one it took (each counts from when it was taken).
        gen.note_taken(now);
        let mut wake_for_limit = None;
        let mut runaway = None;
        let mut cut = None;
        for (i, call) in gen.inflight.iter_mut().enumerate() {
            let (Some(limit), Some(taken)) = (call.hard, call.taken) else {
                continue;
            };
            let behind_async = i > 0 && call.job.is_async();
            if behind_async && call.cut {
                continue;
            }
            let since = if i == 0 { gen.front_since } else { taken };
            let due = since + limit;
            if now >= due && call.job.is_async() && !call.cut {
                // An async call gives its worker back at every await: end
                // it here and have the worker drop its future. A worker
                // that does not answer the front call within the limit
                // again (a task that blocks its thread) is killed below,
                // next time round.
                call.cut = true;
                call.job.fail(Error::hard_timeout(
                    limit,
                    "the call's future was dropped at its await point",
                ));
                if i == 0 {
                    gen.front_since = now;
                }
                wake_for_limit = Some(limit);
                cut = Some(i);
                break;
            } else if now >= due && !behind_async {
                runaway = Some((limit, call.job.key()));
                break;
            }
            let left = due.saturating_duration_since(now);
            wake_for_limit = Some(wake_for_limit.map_or(left, |w: Duration| w.min(left)));
        }
        if let Some(position) = cut {
            gen.raise(position, true);
        }
        if let Some((limit, key)) = runaway {
            self.worker_gone(
                &mut st,
                Gone::HardLimit {
                    limit,
                    runaway: key,
                },
            );
            return None;
        }
        let gen = st.gen.as_mut().expect("checked above");
        if self.shared.closed.load(Ordering::Acquire)
            && gen.inflight.is_empty()
            && st.backlog.is_empty()
        {
            let gen = self.take_gen(&mut st).expect("checked above");
            st.done = Some(Error::closed());
            self.done.store(true, Ordering::Relaxed);
            drop(st);
            let pid = gen.pid;
            stop_worker(gen, |gen| self.forward_events(gen));
            crate::diag::worker_stopped(self.shared.cfg.diagnostics, self.index, Some(pid));
            return None;
        }
        let gen = st.gen.as_ref().expect("checked above");
        self.forward_events(gen);
        let control = gen.shm.control();
        // A consumed count that a task overwrote is written again (the
        // worker ignores one that makes no sense, and would wait for room),
        // and so is a stream credit moved back (it would wait for credit).
        let consumed = gen.repair_consumed();
        if gen.stream.credit.repair() | consumed {
            bell::ring(&control.worker_bell);
        }
        let seen = bell::arm(&control.host_bell.word, &control.host_bell.sleeping, || {
            // The RMW read orders this check after a publication that rang;
            // the slot says whether a response is there.
            bell::read_counter(&*control.resp_head);
            gen.response_ready()
        })?;
        Some(Sleep {
            shm: Arc::clone(&gen.shm),
            seen,
            // Death wakes the reactor at once (the exit watcher rings); the
            // timeouts bound hard limits, the liveness rule, and a ring the
            // worker owes (see `RING_DELAY` in worker.rs).
            timeout: if gen.inflight.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::from_millis(5)
            }
            .min(wake_for_limit.unwrap_or(Duration::MAX)),
        })
    }
}

impl Lane {
    /// Emits the diagnostics events the worker of `gen` forwarded since the
    /// last look (see `forward.rs`), if diagnostics are on.
    pub(super) fn forward_events(&self, gen: &Gen) {
        if self.shared.cfg.diagnostics.is_empty() {
            return;
        }
        if let Some(courier) = &gen.courier {
            crate::runtime::process::forward::drain(courier.socket(), self.index, gen.pid);
        }
    }
}

/// How the reactor sleeps: on its bell's word, as last seen, for at most
/// `timeout`.
struct Sleep {
    shm: Arc<Mapping>,
    seen: u32,
    timeout: Duration,
}
