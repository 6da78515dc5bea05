//! `knitting-bench`: knitting and its peers, side by side, in one run.
//!
//! ```sh
//! cargo run --release -p knitting-bench            # full run, under 4 minutes
//! cargo run --release -p knitting-bench -- --quick # about 75 s
//! cargo run --release -p knitting-bench -- --smoke # every workload, a few samples
//! ```
//!
//! The workloads, peers and targets are described in `bench/README.md`;
//! each workload keeps its W-id in the output and has a module named after
//! what it measures:
//!
//! - W1 ([`workloads::echo`]), echo one `f64`, whole-batch latency at
//!   batch 1, 10, 100: `knitting-threads`, `knitting-processes` (under
//!   `Permissions::strict()`), `knitting-processes-unrestricted`, `tokio`
//!   (current-thread), `tokio-mt`, `crossbeam`, and the spin ping-pong
//!   `limit` at batch 1;
//! - W2 ([`workloads::round_copy`]), 1 MiB round copy at batch 1, 10, 100:
//!   `knitting-threads`, `knitting-processes`, `tokio`, `tokio-mt`, and the
//!   `memcpy` `limit`;
//! - W3 ([`workloads::size_sweep`]), W2's round copy over payload sizes
//!   8 B … 1 MiB at batch 100 (four sizes in `--quick` and `--smoke`):
//!   `knitting-threads`, `knitting-processes`, `tokio`;
//! - W4 ([`workloads::throughput`]), all the calls of a trivial `add` in
//!   windows of 1,024, one worker per core: `knitting-threads`,
//!   `knitting-threads-no-stealing`, `knitting-processes`, `rayon`,
//!   `tokio-blocking`;
//! - W5 ([`workloads::throughput`]), the makespan of CPU-bound calls of
//!   which 1 % take 100 times longer: `knitting-threads`,
//!   `knitting-threads-no-stealing`, `rayon`;
//! - W6 ([`workloads::startup`]), start-up of a 2-worker pool up to its
//!   first answer: `knitting-threads`, `knitting-processes` (under
//!   `Permissions::strict()`), `knitting-processes-unrestricted`,
//!   `procspawn`;
//! - W7 ([`workloads::idle`]), the CPU an idle 2-worker pool uses in a
//!   second after its spin budget: `knitting-threads`,
//!   `knitting-processes`;
//! - W8 ([`workloads::process_echo`]), process call latency, `f64` echo at
//!   batch 1 and 100: `knitting-processes`, `procspawn`;
//! - W9 ([`workloads::abort_aware`]), W1's echo with an abort-aware task
//!   (it takes `&knitting::Signal` and checks it once), at batch 1 and 100:
//!   `knitting-threads`, `knitting-processes`, compared with their W1
//!   records of the same run;
//! - W10a, W10b, W10c ([`workloads::abort_latency`]), how long a call takes
//!   to end after `Call::abort`, after `Call::cancel`, and past a 20 ms
//!   hard limit (the overshoot): `knitting-threads`, `knitting-processes`;
//! - W11 ([`workloads::shared_buffer`]), a worker sums a `SharedBuffer`
//!   the host wrote (8 B and 1 MiB, batch 1 and 100): `knitting-threads`,
//!   `knitting-processes`, against `knitting-processes-bytes` (the same
//!   bytes sent as a `ByteBuf`), and `knitting-processes-pass` (a task
//!   that loads one word: the call's own cost);
//! - W12 ([`workloads::async_timers`]), 1,000 async calls that each await
//!   a 1 ms timer, on 2 workers: the makespan, `knitting-threads` (with
//!   `async_concurrency(1_000)`) and `knitting-processes`;
//! - W13 ([`workloads::stream_items`]), 1,000,000 `u64` items streamed
//!   from a streaming task to the host, through a bound of 1,024 items, on
//!   1 worker: `knitting-threads`, `knitting-processes`, and `crossbeam`
//!   (a bounded channel between a producer thread and the host's);
//! - W14 ([`workloads::saturated`]), a saturated service: 4 callers keep 32
//!   calls of a 1–5 ms CPU task in flight on 2 workers; per-call latency
//!   and calls/s: `knitting-threads`, `knitting-processes` (the default
//!   balancer), the same with `Balancer::FirstIdle` (`-first-idle`), and
//!   `rayon`;
//! - W15 ([`workloads::remote_echo`]), remote echo of 64 bytes over NATS
//!   on loopback, n = 1 and 100 in flight: `knitting-nats` (one node in
//!   this process), `nats` (a bare async-nats request/reply of the same
//!   bytes, the transport's floor) and `knitting-nats-2-nodes` (n = 100,
//!   two nodes in a queue group); where no `nats-server` is installed, W15
//!   is not measured, and the report says so.
//!
//! It prints a markdown table (median, p99, ratio to knitting), the
//! runtimes that cannot run on this machine with why (a strict process
//! pool where the kernel cannot enforce `Permissions::strict()`), and the
//! targets of those workloads (those whose runtimes were not measured read
//! "not measured"), with the cost of an abort-aware call (W9 ÷ W1) and of
//! strict permissions (strict ÷ unrestricted, W1 and W6) as information,
//! and writes `results.json`,
//! `results.csv` and `chart.svg` (W1–W3) under `target/bench/` (or
//! `$CARGO_TARGET_DIR/bench/`).
//!
//! Layout: [`workloads`] says what is measured and drives the rounds,
//! [`baselines`] holds the peers and limits, [`measure`] the sampling,
//! [`report`], [`targets`] and [`chart`] the output.

mod baselines;
mod chart;
mod measure;
mod mode;
mod report;
mod targets;
mod workloads;

use std::{process::ExitCode, time::Instant};

use mode::Mode;

/// Errors of the harness: anything, with its message.
type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

fn main() -> ExitCode {
    // First, before anything else: procspawn's worker processes are this
    // binary run again, and in them this call serves calls and exits, so
    // none of the harness runs there.
    knitting::init();
    procspawn::init();
    match Mode::from_args(std::env::args().skip(1)) {
        Ok(Some(mode)) => match run(&mode) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("knitting-bench: {err}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{}", mode::USAGE);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("knitting-bench: {err}");
            ExitCode::from(2)
        }
    }
}

fn run(mode: &Mode) -> Result<()> {
    let start = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "knitting-bench: {} mode, {} rounds per point, {cores} cores",
        mode.name, mode.rounds
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        // Other work on the machine shows up in every number: say so.
        let load = load.split_whitespace().take(3).collect::<Vec<_>>();
        eprintln!("load average at start: {}", load.join(" "));
    }

    let mut records = Vec::new();
    let mut unavailable = Vec::new();
    // One group of workloads at a time: its runtimes are dropped (threads
    // gone) before the next group starts. The workloads of a group take
    // their rounds in turn: W9 is compared with W1, so both see the same
    // drift of the machine.
    let groups: &[&[(&str, workloads::Builder)]] = &[
        &[
            ("W1", workloads::echo::workload),
            ("W9", workloads::abort_aware::workload),
        ],
        &[("W2", workloads::round_copy::workload)],
        &[("W3", workloads::size_sweep::workload)],
        &[("W4", workloads::throughput::throughput)],
        &[("W5", workloads::throughput::skew)],
        &[("W6", workloads::startup::workload)],
        &[("W7", workloads::idle::workload)],
        &[("W8", workloads::process_echo::workload)],
        &[("W10a", workloads::abort_latency::abort)],
        &[("W10b", workloads::abort_latency::cancel)],
        &[("W10c", workloads::abort_latency::hard_limit)],
        &[("W11", workloads::shared_buffer::workload)],
        &[("W12", workloads::async_timers::workload)],
        &[("W13", workloads::stream_items::workload)],
        &[("W14", workloads::saturated::workload)],
        &[("W15", workloads::remote_echo::workload)],
    ];
    // KNITTING_BENCH_ONLY=W1,W8 measures only those workloads; a workload
    // that is not measured is not built either (no pool started).
    let only = std::env::var("KNITTING_BENCH_ONLY").ok();
    for group in groups {
        let mut built = Vec::new();
        for &(id, build) in *group {
            if selected(only.as_deref(), id) {
                let workload = build(mode)?;
                debug_assert_eq!(workload.id, id);
                for runner in &workload.runners {
                    if let Some(why) = runner.why_unavailable() {
                        eprintln!("  {id} {}: not measured: {why}", runner.runtime);
                        unavailable.push(format!("{id} {}: {why}", runner.runtime));
                    }
                }
                built.push(workload);
            }
        }
        records.extend(workloads::measure(&mut built, mode)?);
    }

    println!(
        "## knitting-bench ({} mode, {cores} cores, {} workers)\n",
        mode.name,
        workloads::workers()
    );
    println!("{}", report::table(&records));
    if !unavailable.is_empty() {
        println!("### Not measured on this machine\n");
        for line in &unavailable {
            println!("- {line}");
        }
        println!();
    }
    println!("### Targets (not asserted)\n");
    println!("{}", targets::table(&records));

    let dir = report::output_dir();
    let mut written = report::write_files(&records, &dir)?;
    let chart = dir.join("chart.svg");
    chart::write(&records, &chart)?;
    written.push(chart);
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    eprintln!(
        "knitting-bench: done in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// True when workload `id` is to be measured: always without a
/// `KNITTING_BENCH_ONLY` list, else when the list names it, or names it
/// without its letter suffix (`W10` selects `W10a`, `W10b` and `W10c`).
fn selected(only: Option<&str>, id: &str) -> bool {
    let Some(only) = only else {
        return true;
    };
    only.split(',').map(str::trim).any(|wanted| {
        id.strip_prefix(wanted).is_some_and(|suffix| {
            !wanted.is_empty() && suffix.chars().all(|c| c.is_ascii_lowercase())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::selected;

    #[test]
    fn only_selects_workloads_and_their_lettered_parts() {
        assert!(selected(None, "W10a"));
        assert!(selected(Some("W1,W9"), "W1"));
        assert!(selected(Some("W1, W9"), "W9"));
        assert!(!selected(Some("W1,W9"), "W10a"));
        assert!(selected(Some("W10"), "W10b"));
        assert!(selected(Some("W10c"), "W10c"));
        assert!(!selected(Some("W10c"), "W10a"));
        assert!(!selected(Some(""), "W1"));
        assert!(!selected(Some("W"), "W1"));
    }
}
