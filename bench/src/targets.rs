//! The ratio targets of `bench/README.md` that the measured workloads cover,
//! checked against one run's medians. Reported, never asserted: a shared
//! 2-core machine is too noisy to fail a build on.
//!
//! A target whose runtimes were not measured in this run (a workload left
//! out by `KNITTING_BENCH_ONLY`, say) reads "not measured". A target on a
//! workload with several payload sizes (W3) must hold at every size: the
//! worst size is reported.
//!
//! After the targets come rows marked "info", never met nor missed: the
//! cost of an abort-aware call, W9's median ÷ W1's at the same runtime and
//! batch, and the cost of strict permissions, `knitting-processes` (under
//! `Permissions::strict()`) ÷ `knitting-processes-unrestricted` at the same
//! point of W1 and W6.

use std::{fmt::Write as _, time::Duration};

use crate::report::{
    bytes, duration, ratio, record_at, Record, KNITTING, KNITTING_DEBUG, KNITTING_PROCESSES,
    KNITTING_PROCESSES_UNRESTRICTED,
};

/// How the subject's median must compare, at one point.
#[derive(Clone, Copy, Debug)]
enum Goal {
    /// peer ÷ subject ≥ factor.
    FasterThan { peer: &'static str, factor: f64 },
    /// subject ÷ peer ≤ factor.
    Within { peer: &'static str, factor: f64 },
    /// subject ≤ the bound, in absolute time.
    AtMost(Duration),
    /// subject ÷ the subject's own median at the workload's smallest
    /// payload size (same runtime and batch) ≤ factor: the cost does not
    /// grow with the payload.
    Flat { factor: f64 },
    /// subject's p99 ÷ peer's p99 ≤ factor (W14's tail latency).
    P99Within { peer: &'static str, factor: f64 },
    /// subject's calls/s ≥ peer's (W14's throughput).
    RateAtLeast { peer: &'static str },
    /// subject's items/s ≥ factor × peer's, over the same items (W13):
    /// peer's median ÷ subject's ≥ factor.
    ItemsPerSecond { peer: &'static str, factor: f64 },
}

impl Goal {
    /// How far the goal is met at one point: 1 or more when met, the
    /// lower the worse; `None` when the peer was not measured there.
    fn margin(self, subject: &Record, records: &[Record]) -> Option<f64> {
        let subject_ns = subject.median_ns.max(1) as f64;
        let peer_ns = |peer| record_at(records, subject, peer).map(|p| p.median_ns.max(1) as f64);
        Some(match self {
            Self::FasterThan { peer, factor } | Self::ItemsPerSecond { peer, factor } => {
                peer_ns(peer)? / subject_ns / factor
            }
            Self::Within { peer, factor } => factor * peer_ns(peer)? / subject_ns,
            Self::AtMost(bound) => bound.as_nanos() as f64 / subject_ns,
            Self::Flat { factor } => factor * smallest(records, subject)? / subject_ns,
            Self::P99Within { peer, factor } => {
                let peer = record_at(records, subject, peer)?;
                factor * peer.p99_ns.max(1) as f64 / subject.p99_ns.max(1) as f64
            }
            Self::RateAtLeast { peer } => {
                subject.calls_per_s? / record_at(records, subject, peer)?.calls_per_s?
            }
        })
    }

    /// What the goal asks, in words.
    fn wanted(self) -> String {
        match self {
            Self::FasterThan { peer, factor: 1.0 } => format!("faster than {peer}"),
            Self::FasterThan { peer, factor } => format!("≥ {factor}× faster than {peer}"),
            Self::Within { peer, factor } => format!("within {factor}× of {peer}"),
            Self::AtMost(bound) => format!("≤ {}", duration(bound.as_nanos() as u64)),
            Self::Flat { factor } => format!("within {factor}× of its time at the smallest size"),
            Self::P99Within { peer, factor } => format!("p99 within {factor}× of {peer}'s"),
            Self::RateAtLeast { peer } => format!("calls/s at least {peer}'s"),
            Self::ItemsPerSecond { peer, factor } => format!("items/s ≥ {factor}× {peer}'s"),
        }
    }

    /// What was measured at one point, in words.
    fn measured(self, subject: &Record, records: &[Record]) -> String {
        let peer_ns = |peer| record_at(records, subject, peer).map_or(0, |p| p.median_ns);
        let subject_ns = subject.median_ns.max(1) as f64;
        match self {
            Self::FasterThan { peer, .. } => speed(peer_ns(peer) as f64 / subject_ns),
            Self::Within { peer, .. } => {
                format!(
                    "{}× its time",
                    ratio(subject_ns / peer_ns(peer).max(1) as f64)
                )
            }
            Self::AtMost(_) => duration(subject.median_ns),
            Self::Flat { .. } => match smallest(records, subject) {
                Some(small) => format!("{}× its time", ratio(subject_ns / small)),
                None => "—".to_owned(),
            },
            Self::P99Within { peer, .. } => {
                let peer = record_at(records, subject, peer).map_or(0, |p| p.p99_ns);
                let p99 = subject.p99_ns.max(1) as f64;
                format!("{}× its p99", ratio(p99 / peer.max(1) as f64))
            }
            Self::RateAtLeast { peer } => {
                let rate = |r: Option<&Record>| r.and_then(|r| r.calls_per_s).unwrap_or(0.0);
                let peer = rate(record_at(records, subject, peer));
                format!(
                    "{}× its calls/s",
                    ratio(rate(Some(subject)) / peer.max(1e-9))
                )
            }
            Self::ItemsPerSecond { peer, .. } => {
                format!("{}× its items/s", ratio(peer_ns(peer) as f64 / subject_ns))
            }
        }
    }
}

/// The median of `at`'s runtime at the same workload and batch, at the
/// workload's smallest payload size.
fn smallest(records: &[Record], at: &Record) -> Option<f64> {
    records
        .iter()
        .filter(|r| r.workload == at.workload && r.runtime == at.runtime && r.batch == at.batch)
        .min_by_key(|r| r.bytes)
        .map(|r| r.median_ns.max(1) as f64)
}

#[derive(Clone, Copy, Debug)]
struct Target {
    workload: &'static str,
    batch: usize,
    /// The knitting runtime the target is about.
    subject: &'static str,
    goal: Goal,
}

impl Target {
    /// True at a record of batch `batch` (every batch for a target of
    /// batch 0).
    fn at(&self, batch: usize) -> bool {
        self.batch == 0 || self.batch == batch
    }
}

const fn faster(
    workload: &'static str,
    batch: usize,
    subject: &'static str,
    peer: &'static str,
    factor: f64,
) -> Target {
    Target {
        workload,
        batch,
        subject,
        goal: Goal::FasterThan { peer, factor },
    }
}

const TARGETS: &[Target] = &[
    // A pool that crosses cores races crossbeam and the spin ping-pong;
    // `current_thread` Tokio never leaves the caller's thread, and the
    // inline lane races it.
    faster("W1", 100, KNITTING, "crossbeam", 1.0),
    Target {
        workload: "W1",
        batch: 1,
        subject: KNITTING,
        goal: Goal::Within {
            peer: "limit",
            factor: 2.0,
        },
    },
    faster("W1", 1, KNITTING, "tokio-mt", 20.0),
    faster("W1", 1, "knitting-inline", "tokio", 1.0),
    faster("W1", 100, "knitting-inline", "tokio", 1.0),
    Target {
        workload: "W1",
        batch: 100,
        subject: KNITTING_PROCESSES,
        goal: Goal::Within {
            peer: KNITTING,
            factor: 2.0,
        },
    },
    faster("W2", 100, KNITTING, "tokio", 1.5),
    faster("W2", 100, KNITTING_PROCESSES, "tokio", 2.0),
    faster("W2", 100, "knitting-threads-bytes", "tokio", 3.0),
    faster("W2", 100, "knitting-processes-bytes", "tokio", 3.0),
    Target {
        workload: "W2",
        batch: 100,
        subject: "knitting-threads-bytes",
        goal: Goal::Within {
            peer: "limit",
            factor: 2.0,
        },
    },
    Target {
        workload: "W2",
        batch: 100,
        subject: "knitting-processes-bytes",
        goal: Goal::Within {
            peer: "limit",
            factor: 2.0,
        },
    },
    faster("W3", 100, KNITTING, "tokio", 1.0),
    faster("W3", 100, KNITTING_PROCESSES, "tokio", 1.0),
    faster("W3", 100, "knitting-threads-bytes", "tokio", 1.0),
    faster("W3", 100, "knitting-processes-bytes", "tokio", 1.0),
    Target {
        workload: "W6",
        batch: 1,
        subject: KNITTING_PROCESSES,
        goal: Goal::AtMost(Duration::from_millis(50)),
    },
    faster("W6", 1, KNITTING_PROCESSES, "procspawn", 5.0),
    // W4 and W5: `batch` 0 is the mode's call count, whatever it is.
    faster("W4", 0, KNITTING, "rayon", 1.0),
    Target {
        workload: "W5",
        batch: 0,
        subject: KNITTING,
        goal: Goal::Within {
            peer: "rayon",
            factor: 1.1,
        },
    },
    Target {
        workload: "W7",
        batch: 2,
        subject: KNITTING,
        goal: Goal::AtMost(Duration::from_millis(5)),
    },
    Target {
        workload: "W7",
        batch: 2,
        subject: KNITTING_PROCESSES,
        goal: Goal::AtMost(Duration::from_millis(5)),
    },
    faster("W8", 1, KNITTING_PROCESSES, "procspawn", 20.0),
    faster("W8", 100, KNITTING_PROCESSES, "procspawn", 20.0),
    // "A shared buffer call costs the same at 1 MiB as at 8 B (no bytes
    // move)": the call of a task that loads one word of the buffer, so
    // that only the call is timed (summing 1 MiB costs what it costs on
    // any runtime; the W11 rows show it). 1.25×: the noise of a shared
    // machine between two points of one run.
    Target {
        workload: "W11",
        batch: 1,
        subject: crate::workloads::shared_buffer::PASS,
        goal: Goal::Flat { factor: 1.25 },
    },
    Target {
        workload: "W11",
        batch: 100,
        subject: crate::workloads::shared_buffer::PASS,
        goal: Goal::Flat { factor: 1.25 },
    },
    // Async calls wait on their timers together, not one per worker.
    w12(KNITTING),
    w12(KNITTING_PROCESSES),
    // A stream between a worker and the host, against a bounded channel
    // between two threads.
    w13(KNITTING, 0.5),
    w13(KNITTING_PROCESSES, 0.25),
    // A saturated service: the tail of knitting's per-lane queues against
    // rayon's one shared queue, and the calls it gets through.
    w14_p99(KNITTING),
    w14_rate(KNITTING),
    w14_p99(KNITTING_PROCESSES),
    w14_rate(KNITTING_PROCESSES),
    // Over NATS: the crate's overhead on the transport's own floor.
    w15(1),
    w15(100),
];

/// W12: the makespan of 1,000 async calls awaiting a 1 ms timer on 2
/// workers under 20 ms (against about 500 ms if each call held a worker).
const fn w12(subject: &'static str) -> Target {
    Target {
        workload: "W12",
        batch: crate::workloads::async_timers::CALLS,
        subject,
        goal: Goal::AtMost(Duration::from_millis(20)),
    }
}

/// W13: items/s of a million-item stream against crossbeam's.
const fn w13(subject: &'static str, factor: f64) -> Target {
    Target {
        workload: "W13",
        batch: crate::workloads::stream_items::ITEMS,
        subject,
        goal: Goal::ItemsPerSecond {
            peer: "crossbeam",
            factor,
        },
    }
}

/// W15: knitting-nats's latency against bare NATS request/reply.
const fn w15(batch: usize) -> Target {
    Target {
        workload: "W15",
        batch,
        subject: "knitting-nats",
        goal: Goal::Within {
            peer: "nats",
            factor: 1.2,
        },
    }
}

const fn w14_p99(subject: &'static str) -> Target {
    Target {
        workload: "W14",
        batch: crate::workloads::saturated::IN_FLIGHT,
        subject,
        goal: Goal::P99Within {
            peer: "rayon",
            factor: 1.1,
        },
    }
}

const fn w14_rate(subject: &'static str) -> Target {
    Target {
        workload: "W14",
        batch: crate::workloads::saturated::IN_FLIGHT,
        subject,
        goal: Goal::RateAtLeast { peer: "rayon" },
    }
}

/// A markdown table of the targets: wanted, measured, met or missed.
pub fn table(records: &[Record]) -> String {
    let mut out = String::from("| target | measured | status |\n|---|---:|---|\n");
    for t in TARGETS {
        let mut sizes: Vec<usize> = records
            .iter()
            .filter(|r| r.workload == t.workload && t.at(r.batch))
            .map(|r| r.bytes)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        // The worst point of the subject at which the goal can be judged.
        let worst = records
            .iter()
            .filter(|r| r.workload == t.workload && t.at(r.batch) && r.runtime == t.subject)
            .filter_map(|r| Some((r, t.goal.margin(r, records)?)))
            .min_by(|(_, a), (_, b)| a.total_cmp(b));
        let (measured, status) = match worst {
            Some((point, margin)) => {
                let mut measured = t.goal.measured(point, records);
                if sizes.len() > 1 {
                    let _ = write!(measured, " at {} (worst)", bytes(point.bytes));
                }
                let status = if margin >= 1.0 { "met" } else { "**missed**" };
                (measured, status)
            }
            None => ("—".to_owned(), "not measured"),
        };
        let _ = writeln!(
            out,
            "| {} {}, {}: {}{} | {measured} | {status} |",
            t.workload,
            if t.batch == 0 {
                "all calls".to_owned()
            } else {
                format!("n={}", t.batch)
            },
            t.subject.trim_start_matches("knitting-"),
            t.goal.wanted(),
            if sizes.len() > 1 {
                " at every size"
            } else {
                ""
            },
        );
    }
    info(records, &mut out);
    costs(records, &mut out);
    out
}

/// One informational ratio: `subject`'s median ÷ `baseline`'s at a point.
struct Cost {
    workload: &'static str,
    batch: usize,
    subject: &'static str,
    baseline: &'static str,
    /// What the ratio is the cost of, and of what over what.
    what: &'static str,
    /// How the ratio reads (`1.03× {unit}`).
    unit: &'static str,
}

const fn strict(workload: &'static str, batch: usize) -> Cost {
    Cost {
        workload,
        batch,
        subject: KNITTING_PROCESSES,
        baseline: KNITTING_PROCESSES_UNRESTRICTED,
        what: "processes: cost of Permissions::strict() (strict ÷ unrestricted)",
        unit: "unrestricted",
    }
}

const fn diagnostics(batch: usize) -> Cost {
    Cost {
        workload: "W1",
        batch,
        subject: KNITTING_DEBUG,
        baseline: KNITTING,
        what: "threads: cost of debug(Diagnostics::ALL) with no subscriber (on ÷ off)",
        unit: "off",
    }
}

/// The points where one configuration is measured next to another: a
/// strict process pool next to an unrestricted one (W1's echo per call,
/// W6's start-up), and a thread pool with every diagnostic namespace on
/// next to one with none (W1).
const COSTS: &[Cost] = &[
    strict("W1", 1),
    strict("W1", 100),
    strict("W6", 1),
    diagnostics(1),
    diagnostics(100),
];

/// The informational rows of [`COSTS`].
fn costs(records: &[Record], out: &mut String) {
    for cost in COSTS {
        let median = |runtime: &str| {
            records
                .iter()
                .find(|r| {
                    r.workload == cost.workload && r.runtime == runtime && r.batch == cost.batch
                })
                .map(|r| r.median_ns.max(1) as f64)
        };
        let (measured, status) = match (median(cost.subject), median(cost.baseline)) {
            (Some(subject), Some(baseline)) => (
                format!("{}× {}", ratio(subject / baseline), cost.unit),
                "info",
            ),
            _ => ("—".to_owned(), "not measured"),
        };
        let _ = writeln!(
            out,
            "| {} n={}, {} | {measured} | {status} |",
            cost.workload, cost.batch, cost.what,
        );
    }
}

/// The informational rows: for each knitting runtime and W9 batch, W9's
/// median (abort-aware echo) ÷ W1's (plain echo) in the same run.
fn info(records: &[Record], out: &mut String) {
    for subject in [KNITTING, KNITTING_PROCESSES] {
        for &batch in crate::workloads::abort_aware::BATCHES {
            let median = |workload: &str| {
                records
                    .iter()
                    .find(|r| r.workload == workload && r.runtime == subject && r.batch == batch)
                    .map(|r| r.median_ns.max(1) as f64)
            };
            let (measured, status) = match (median("W9"), median("W1")) {
                (Some(aware), Some(plain)) => {
                    (format!("{}× a plain call", ratio(aware / plain)), "info")
                }
                (Some(_), None) => ("— (no W1 record)".to_owned(), "not measured"),
                _ => ("—".to_owned(), "not measured"),
            };
            let _ = writeln!(
                out,
                "| W9 n={batch}, {}: cost of an abort-aware call (W9 ÷ W1) | {measured} | {status} |",
                subject.trim_start_matches("knitting-"),
            );
        }
    }
}

/// `peer ÷ knitting` in words.
fn speed(peer_over_knitting: f64) -> String {
    if peer_over_knitting >= 1.0 {
        format!("{}× faster", ratio(peer_over_knitting))
    } else {
        format!("{}× slower", ratio(1.0 / peer_over_knitting))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(workload: &'static str, runtime: &'static str, bytes: usize, ns: u64) -> Record {
        Record {
            workload,
            title: "",
            runtime,
            batch: 100,
            bytes,
            median_ns: ns,
            p99_ns: ns,
            samples: 10,
            calls_per_s: None,
        }
    }

    #[test]
    fn a_target_of_batch_0_is_judged_at_whatever_call_count_was_run() {
        let at = |runtime, ns| Record {
            batch: 10_000,
            ..record("W5", runtime, 8, ns)
        };
        let text = table(&[at(KNITTING, 105), at("rayon", 100)]);
        assert!(
            text.contains("| W5 all calls, threads: within 1.1× of rayon | 1.05× its time | met |")
        );
        let text = table(&[at(KNITTING, 120), at("rayon", 100)]);
        assert!(text.contains(
            "| W5 all calls, threads: within 1.1× of rayon | 1.20× its time | **missed** |"
        ));
    }

    #[test]
    fn process_targets_read_not_measured_without_their_records() {
        let text = table(&[
            record("W1", KNITTING, 8, 1_000),
            record("W1", "crossbeam", 8, 6_000),
        ]);
        assert!(text.contains("| W1 n=100, threads: faster than crossbeam | 6.00× faster | met |"));
        assert!(text
            .contains("| W1 n=100, processes: within 2× of knitting-threads | — | not measured |"));
        assert!(text.contains("| W6 n=1, processes: ≤ 50.0 ms | — | not measured |"));
    }

    #[test]
    fn a_flat_target_compares_a_runtime_with_itself_at_the_smallest_size() {
        let pass = crate::workloads::shared_buffer::PASS;
        let met = table(&[
            record("W11", pass, 8, 10_000),
            record("W11", pass, 1 << 20, 11_000),
        ]);
        assert!(
            met.contains("| W11 n=100, processes-pass: within 1.25× of its time at the smallest size at every size | 1.10× its time at 1 MiB (worst) | met |"),
            "{met}"
        );
        let missed = table(&[
            record("W11", pass, 8, 10_000),
            record("W11", pass, 1 << 20, 20_000),
        ]);
        assert!(
            missed.contains("2.00× its time at 1 MiB (worst) | **missed** |"),
            "{missed}"
        );
    }

    #[test]
    fn process_targets_are_judged_with_their_records() {
        let text = table(&[
            record("W1", KNITTING, 8, 1_000),
            record("W1", KNITTING_PROCESSES, 8, 3_000),
            record("W8", KNITTING_PROCESSES, 8, 1_000),
            record("W8", "procspawn", 8, 25_000),
        ]);
        assert!(text.contains(
            "| W1 n=100, processes: within 2× of knitting-threads | 3.00× its time | **missed** |"
        ));
        assert!(text.contains(
            "| W8 n=100, processes: ≥ 20× faster than procspawn | 25.00× faster | met |"
        ));
    }

    #[test]
    fn the_cost_of_an_abort_aware_call_is_information() {
        let text = table(&[
            record("W1", KNITTING, 8, 1_000),
            record("W9", KNITTING, 8, 1_030),
            record("W9", KNITTING_PROCESSES, 8, 3_000),
        ]);
        assert!(text.contains(
            "| W9 n=100, threads: cost of an abort-aware call (W9 ÷ W1) | 1.03× a plain call | info |"
        ));
        assert!(text.contains(
            "| W9 n=100, processes: cost of an abort-aware call (W9 ÷ W1) \
             | — (no W1 record) | not measured |"
        ));
        assert!(text.contains(
            "| W9 n=1, threads: cost of an abort-aware call (W9 ÷ W1) | — | not measured |"
        ));
    }

    #[test]
    fn the_cost_of_strict_permissions_is_information() {
        let mut startup = record("W6", KNITTING_PROCESSES, 8, 12_000_000);
        startup.batch = 1;
        let text = table(&[
            record("W1", KNITTING_PROCESSES, 8, 3_300),
            record("W1", KNITTING_PROCESSES_UNRESTRICTED, 8, 3_000),
            startup,
        ]);
        assert!(text.contains(
            "| W1 n=100, processes: cost of Permissions::strict() (strict ÷ unrestricted) \
             | 1.10× unrestricted | info |"
        ));
        assert!(text.contains(
            "| W6 n=1, processes: cost of Permissions::strict() (strict ÷ unrestricted) \
             | — | not measured |"
        ));
    }

    #[test]
    fn the_cost_of_diagnostics_is_information() {
        let text = table(&[
            record("W1", KNITTING, 8, 2_000),
            record("W1", KNITTING_DEBUG, 8, 2_100),
        ]);
        assert!(text.contains(
            "| W1 n=100, threads: cost of debug(Diagnostics::ALL) with no subscriber (on ÷ off) \
             | 1.05× off | info |"
        ));
    }

    #[test]
    fn a_sweep_is_judged_at_its_worst_size() {
        let text = table(&[
            record("W3", KNITTING, 8, 1_000),
            record("W3", "tokio", 8, 3_000),
            record("W3", KNITTING, 1 << 20, 1_000),
            record("W3", "tokio", 1 << 20, 900),
        ]);
        assert!(text.contains(
            "| W3 n=100, threads: faster than tokio at every size \
             | 1.11× slower at 1 MiB (worst) | **missed** |"
        ));
    }

    #[test]
    fn w14_judges_p99_and_calls_per_second_against_rayon() {
        let w14 = |runtime, p99_ns, rate| Record {
            batch: crate::workloads::saturated::IN_FLIGHT,
            p99_ns,
            calls_per_s: Some(rate),
            ..record("W14", runtime, 8, 3_000_000)
        };
        let text = table(&[
            w14(KNITTING, 10_000_000, 650.0),
            w14(KNITTING_PROCESSES, 12_000_000, 600.0),
            w14("rayon", 10_000_000, 640.0),
        ]);
        for line in [
            "| W14 n=32, threads: p99 within 1.1× of rayon's | 1.00× its p99 | met |",
            "| W14 n=32, threads: calls/s at least rayon's | 1.02× its calls/s | met |",
            "| W14 n=32, processes: p99 within 1.1× of rayon's | 1.20× its p99 | **missed** |",
            "| W14 n=32, processes: calls/s at least rayon's | 0.94× its calls/s | **missed** |",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[test]
    fn w12_wants_a_makespan_under_20_ms_on_both_runtimes() {
        let w12 = |runtime, ns| Record {
            batch: crate::workloads::async_timers::CALLS,
            ..record("W12", runtime, 8, ns)
        };
        let text = table(&[
            w12(KNITTING, 4_000_000),
            w12(KNITTING_PROCESSES, 530_000_000),
        ]);
        for line in [
            "| W12 n=1000, threads: ≤ 20.0 ms | 4.00 ms | met |",
            "| W12 n=1000, processes: ≤ 20.0 ms | 530 ms | **missed** |",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[test]
    fn w13_wants_a_share_of_crossbeams_items_per_second() {
        let w13 = |runtime, ns| Record {
            batch: crate::workloads::stream_items::ITEMS,
            ..record("W13", runtime, 8, ns)
        };
        let text = table(&[
            w13(KNITTING, 40_000_000),
            w13(KNITTING_PROCESSES, 200_000_000),
            w13("crossbeam", 30_000_000),
        ]);
        for line in [
            "| W13 n=1000000, threads: items/s ≥ 0.5× crossbeam's | 0.75× its items/s | met |",
            "| W13 n=1000000, processes: items/s ≥ 0.25× crossbeam's \
             | 0.15× its items/s | **missed** |",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        let alone = table(&[w13(KNITTING, 40_000_000)]);
        assert!(
            alone.contains(
                "| W13 n=1000000, threads: items/s ≥ 0.5× crossbeam's | — | not measured |"
            ),
            "{alone}"
        );
    }
}
