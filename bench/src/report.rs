//! Results: the markdown table on stdout, and `results.json` /
//! `results.csv` under `target/bench/`.
//!
//! The JSON shape is documented in `bench/README.md` ("`results.json`")
//! and read by tools outside the crate: one object per measured
//! point, fields `workload`, `runtime`, `batch`, `bytes`, `median_ns`,
//! `p99_ns`, `samples`. Keep it stable.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::{
    measure::Summary,
    workloads::{Point, Workload},
    Result,
};

/// knitting's thread pool.
pub const KNITTING: &str = "knitting-threads";
/// knitting's process pool (in W1, W6 and W9 under an explicit
/// `Permissions::strict()`).
pub const KNITTING_PROCESSES: &str = "knitting-processes";
/// knitting's process pool under an explicit `Permissions::unrestricted()`
/// (W1, W6): what a strict worker costs is its `knitting-processes` row
/// against this one.
pub const KNITTING_PROCESSES_UNRESTRICTED: &str = "knitting-processes-unrestricted";
/// knitting's thread pool with every diagnostic namespace on and no
/// `tracing` subscriber (W1): what diagnostics cost when nobody listens is
/// its row against `knitting-threads` (compiled in, off).
pub const KNITTING_DEBUG: &str = "knitting-threads-debug";
/// The runtimes the table's ratios are taken against, one column each
/// (a column only when the run has records of that runtime).
const REFERENCES: &[&str] = &[KNITTING, KNITTING_PROCESSES];

/// One measured point.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub workload: &'static str,
    #[serde(skip)]
    pub title: &'static str,
    pub runtime: &'static str,
    pub batch: usize,
    pub bytes: usize,
    pub median_ns: u64,
    pub p99_ns: u64,
    pub samples: usize,
    /// Calls completed per second of wall time, for a workload that
    /// measures a rate as well (W14); absent from the other rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_per_s: Option<f64>,
}

impl Record {
    pub fn new(workload: &Workload, runtime: &'static str, point: Point, summary: Summary) -> Self {
        Self {
            workload: workload.id,
            title: workload.title,
            runtime,
            batch: point.batch,
            bytes: point.bytes,
            median_ns: summary.median_ns,
            p99_ns: summary.p99_ns,
            samples: summary.samples,
            calls_per_s: None,
        }
    }

    /// True when `other` was measured at the same point (workload, payload
    /// size, batch).
    pub fn same_point(&self, other: &Record) -> bool {
        (self.workload, self.bytes, self.batch) == (other.workload, other.bytes, other.batch)
    }
}

/// The record of `runtime` at the same point as `at`.
pub fn record_at<'a>(records: &'a [Record], at: &Record, runtime: &str) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.runtime == runtime && r.same_point(at))
}

/// The markdown table: one row per point and runtime, with the runtime's
/// median divided by that of each knitting runtime at the same point.
pub fn table(records: &[Record]) -> String {
    let references: Vec<&str> = REFERENCES
        .iter()
        .copied()
        .filter(|reference| records.iter().any(|r| r.runtime == *reference))
        .collect();
    // A calls/s column only when a workload measured a rate (W14).
    let rates = records.iter().any(|r| r.calls_per_s.is_some());
    let mut out = String::from("| workload | batch | runtime | median | p99 | samples |");
    if rates {
        out.push_str(" calls/s |");
    }
    for reference in &references {
        let _ = write!(out, " {reference} speed-up |");
    }
    out.push_str("\n|---|---:|---|---:|---:|---:|");
    if rates {
        out.push_str("---:|");
    }
    out.push_str(&"---:|".repeat(references.len()));
    out.push('\n');
    let mut previous: Option<&Record> = None;
    for r in records {
        let first = previous.is_none_or(|p| !p.same_point(r));
        previous = Some(r);
        let (workload, batch) = if first {
            (
                format!("{} {} ({})", r.workload, r.title, bytes(r.bytes)),
                r.batch.to_string(),
            )
        } else {
            (String::new(), String::new())
        };
        let _ = write!(
            out,
            "| {workload} | {batch} | {} | {} | {} | {} |",
            r.runtime,
            duration(r.median_ns),
            duration(r.p99_ns),
            r.samples,
        );
        if rates {
            let rate = r
                .calls_per_s
                .map_or(String::new(), |rate| format!("{rate:.0}"));
            let _ = write!(out, " {rate} |");
        }
        for reference in &references {
            let speedup = match record_at(records, r, reference) {
                _ if r.runtime == *reference => "—".to_owned(),
                Some(k) if k.median_ns > 0 => {
                    format!("{}×", ratio(r.median_ns as f64 / k.median_ns as f64))
                }
                _ => "n/a".to_owned(),
            };
            let _ = write!(out, " {speedup} |");
        }
        out.push('\n');
    }
    out.push_str(
        "\nspeed-up = the runtime's median ÷ that knitting runtime's median at \
         the same point (above 1: knitting is that many times faster).\n",
    );
    out
}

/// Where the machine-readable files go: `$CARGO_TARGET_DIR/bench` if set,
/// else the workspace's `target/bench`.
pub fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("target")
        });
    target.join("bench")
}

/// Writes `results.json` and `results.csv` into `dir`; returns their paths.
pub fn write_files(records: &[Record], dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let json_path = dir.join("results.json");
    fs::write(&json_path, json(records)?)?;
    let csv_path = dir.join("results.csv");
    fs::write(&csv_path, csv(records))?;
    Ok(vec![json_path, csv_path])
}

/// A JSON array, one object per line.
fn json(records: &[Record]) -> Result<String> {
    let lines = records
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!("[\n{}\n]\n", lines.join(",\n")))
}

fn csv(records: &[Record]) -> String {
    let mut out = String::from("workload,runtime,batch,bytes,median_ns,p99_ns,samples\n");
    for r in records {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}",
            r.workload, r.runtime, r.batch, r.bytes, r.median_ns, r.p99_ns, r.samples
        );
    }
    out
}

/// A ratio with at least two decimals and two significant digits.
pub fn ratio(value: f64) -> String {
    let decimals = if value > 0.0 && value.is_finite() {
        (1 - value.log10().floor() as i32).clamp(2, 6) as usize
    } else {
        2
    };
    format!("{value:.decimals$}")
}

/// A duration in nanoseconds, with three significant digits and a unit.
pub fn duration(ns: u64) -> String {
    if ns < 1_000 {
        return format!("{ns} ns");
    }
    let ns = ns as f64;
    let (value, unit) = if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.decimals$} {unit}")
}

/// A payload size: "8 B", "64 KiB", "1 MiB".
pub fn bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(runtime: &'static str, median_ns: u64) -> Record {
        Record {
            workload: "W1",
            title: "echo one f64",
            runtime,
            batch: 100,
            bytes: 8,
            median_ns,
            p99_ns: median_ns * 2,
            samples: 500,
            calls_per_s: None,
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let text = json(&[record(KNITTING, 21_000)]).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            serde_json::json!([{"workload": "W1", "runtime": "knitting-threads", "batch": 100,
                "bytes": 8, "median_ns": 21000, "p99_ns": 42000, "samples": 500}])
        );
    }

    #[test]
    fn table_shows_ratios_to_knitting() {
        let text = table(&[record(KNITTING, 1_000), record("tokio", 5_500)]);
        assert!(text.contains("| samples | knitting-threads speed-up |\n"));
        assert!(text.contains("| W1 echo one f64 (8 B) | 100 | knitting-threads | 1.00 µs"));
        assert!(text.contains("| tokio | 5.50 µs | 11.0 µs | 500 | 5.50× |"));
    }

    #[test]
    fn table_has_a_column_per_knitting_runtime_and_a_row_group_per_size() {
        let mut records = vec![
            record(KNITTING, 1_000),
            record(KNITTING_PROCESSES, 2_000),
            record("tokio", 5_500),
        ];
        let mut large = record("tokio", 9_000);
        large.bytes = 1 << 20;
        records.push(large);
        let text = table(&records);
        assert!(text.contains("| knitting-threads speed-up | knitting-processes speed-up |"));
        assert!(text.contains("| knitting-processes | 2.00 µs | 4.00 µs | 500 | 2.00× | — |"));
        assert!(text.contains("| tokio | 5.50 µs | 11.0 µs | 500 | 5.50× | 2.75× |"));
        // Another size is another point, with no knitting record to compare.
        assert!(text.contains("| W1 echo one f64 (1 MiB) | 100 | tokio | 9.00 µs"));
        assert!(text.contains("| 500 | n/a | n/a |"));
    }

    #[test]
    fn csv_has_a_header_and_a_row_per_point() {
        let text = csv(&[record(KNITTING, 1_000), record("tokio", 5_500)]);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], "W1,tokio,100,8,5500,11000,500");
    }

    #[test]
    fn units() {
        assert_eq!(duration(950), "950 ns");
        assert_eq!(duration(1_234), "1.23 µs");
        assert_eq!(duration(56_780_000), "56.8 ms");
        assert_eq!(ratio(5.5), "5.50");
        assert_eq!(ratio(0.0024), "0.0024");
        assert_eq!(ratio(0.09), "0.090");
        assert_eq!(ratio(130.4), "130.40");
        assert_eq!(bytes(1 << 20), "1 MiB");
        assert_eq!(bytes(8), "8 B");
    }
}
