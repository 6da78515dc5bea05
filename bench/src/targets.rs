//! The ratio targets of BENCHMARKS.md that the measured workloads cover,
//! checked against one run's medians. Reported, never asserted: a shared
//! 2-core machine is too noisy to fail a build on.

use std::fmt::Write as _;

use crate::report::{median_of, ratio, Record, KNITTING};

/// How knitting's median must compare with a peer's at one point.
#[derive(Clone, Copy, Debug)]
enum Goal {
    /// peer ÷ knitting ≥ factor.
    FasterThan(f64),
    /// knitting ÷ peer ≤ factor.
    Within(f64),
}

#[derive(Clone, Copy, Debug)]
struct Target {
    workload: &'static str,
    batch: usize,
    peer: &'static str,
    goal: Goal,
}

const TARGETS: &[Target] = &[
    Target {
        workload: "W1",
        batch: 100,
        peer: "tokio",
        goal: Goal::FasterThan(5.0),
    },
    Target {
        workload: "W1",
        batch: 1,
        peer: "tokio",
        goal: Goal::FasterThan(5.0),
    },
    Target {
        workload: "W1",
        batch: 1,
        peer: "limit",
        goal: Goal::Within(3.0),
    },
    Target {
        workload: "W2",
        batch: 100,
        peer: "tokio",
        goal: Goal::FasterThan(1.5),
    },
];

/// A markdown table of the targets: wanted, measured, met or missed.
pub fn table(records: &[Record]) -> String {
    let mut out = String::from("| target | measured | status |\n|---|---:|---|\n");
    for t in TARGETS {
        let (wanted, measured, met) = match (
            median_of(records, t.workload, t.batch, KNITTING),
            median_of(records, t.workload, t.batch, t.peer),
        ) {
            (Some(knitting), Some(peer)) if knitting > 0 && peer > 0 => {
                let (knitting, peer) = (knitting as f64, peer as f64);
                match t.goal {
                    Goal::FasterThan(factor) => (
                        format!("≥ {factor}× faster than {}", t.peer),
                        speed(peer / knitting),
                        peer / knitting >= factor,
                    ),
                    Goal::Within(factor) => (
                        format!("within {factor}× of {}", t.peer),
                        format!("{}× its time", ratio(knitting / peer)),
                        knitting / peer <= factor,
                    ),
                }
            }
            _ => continue,
        };
        let _ = writeln!(
            out,
            "| {} n={}: {wanted} | {measured} | {} |",
            t.workload,
            t.batch,
            if met { "met" } else { "**missed**" }
        );
    }
    out
}

/// `peer ÷ knitting` in words.
fn speed(peer_over_knitting: f64) -> String {
    if peer_over_knitting >= 1.0 {
        format!("{}× faster", ratio(peer_over_knitting))
    } else {
        format!("{}× slower", ratio(1.0 / peer_over_knitting))
    }
}
