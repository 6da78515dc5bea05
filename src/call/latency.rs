//! A pool's call latency histogram: from the call to the moment its
//! handle takes the outcome, as the caller sees it (queueing included).

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use hdrhistogram::Histogram;

/// Nanoseconds, 1 ns to one hour, two significant digits (1 %): a few
/// tens of kilobytes per pool.
const HIGHEST_NS: u64 = 3_600_000_000_000;
const DIGITS: u8 = 2;

/// The histogram of one pool.
#[derive(Debug)]
pub(crate) struct Latency(Mutex<Histogram<u64>>);

impl Latency {
    pub(crate) fn new() -> Arc<Self> {
        let histogram =
            Histogram::new_with_bounds(1, HIGHEST_NS, DIGITS).expect("the bounds are valid");
        Arc::new(Self(Mutex::new(histogram)))
    }

    /// A copy of the histogram so far.
    pub(crate) fn snapshot(&self) -> Histogram<u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, nanos: u64) {
        // Saturates at the highest value: a call longer than an hour counts
        // as an hour.
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(nanos.max(1));
    }
}

/// What a call's handle needs to record its latency: when the call was
/// made, and where to.
#[derive(Debug)]
pub(crate) struct Recording {
    since: Instant,
    into: Arc<Latency>,
}

impl Recording {
    pub(crate) fn start(into: &Arc<Latency>, since: Instant) -> Box<Self> {
        Box::new(Self {
            since,
            into: Arc::clone(into),
        })
    }

    /// The call ended now.
    pub(crate) fn finish(self) {
        let nanos = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.into.record(nanos);
    }
}
