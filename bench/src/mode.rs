//! Run modes (`--quick`, `--smoke`, the full default) and argument parsing.

use std::time::Duration;

use crate::{measure::Plan, Result};

pub const USAGE: &str = "\
usage: cargo run --release -p knitting-bench [-- OPTIONS]

options:
  --quick    shorter blocks, fewer W3 sizes, start-ups, W10 and W13
             samples, a shorter W14; about a minute and a quarter in all
  --smoke    a handful of samples per point, every workload (wins over --quick)
  -h, --help this text

workloads: W1 W2 W3 W4 W5 W6 W7 W8 W9 W10a W10b W10c W11 W12 W13 W14 W15 (what each measures: bench/README.md)

environment:
  KNITTING_BENCH_ONLY=W1,W9,W10  measure only these workloads (W10 selects
                                 W10a, W10b and W10c)";

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// The W3 sizes of `--quick` and `--smoke`: the ends and two points between.
const QUICK_SWEEP: &[usize] = &[8, KIB, 64 * KIB, MIB];

/// How long and how often every point is measured.
#[derive(Clone, Copy, Debug)]
pub struct Mode {
    pub name: &'static str,
    /// Every runtime is measured in `rounds` interleaved blocks per point,
    /// so that slow drift of a shared machine hits all of them alike.
    pub rounds: usize,
    /// The plan of one block.
    pub plan: Plan,
    /// Payload sizes of the W3 sweep, in bytes.
    pub sweep: &'static [usize],
    /// Start-ups timed per runtime in W6, over all rounds: each one starts
    /// a whole pool (processes too), so there are few.
    pub startups: usize,
    /// Samples per runtime of each W10 latency (abort, cancel, hard
    /// limit), over all rounds: each one lets a call spin for a few
    /// milliseconds (tens, for the hard limit), so there are few.
    pub aborts: usize,
    /// How long W14's callers keep the service saturated per runtime and
    /// round (timed calls only; a warm-up of an eighth of it comes first).
    pub service: Duration,
}

impl Mode {
    /// The default: under four minutes on 2 cores (W14 takes one).
    pub const FULL: Self = Self {
        name: "full",
        rounds: 5,
        plan: Plan {
            warmup_iters: 3,
            warmup_time: Duration::from_millis(100),
            min_samples: 10,
            max_samples: 200_000,
            budget: Duration::from_millis(600),
        },
        // 8 B, then every power of 4 from 64 B to 1 MiB.
        sweep: &[8, 64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB],
        startups: 30,
        aborts: 100,
        service: Duration::from_secs(2),
    };

    /// `--quick`: about a minute and a quarter (W14 takes 20 s).
    pub const QUICK: Self = Self {
        name: "quick",
        rounds: 3,
        plan: Plan {
            warmup_iters: 2,
            warmup_time: Duration::from_millis(30),
            min_samples: 5,
            max_samples: 100_000,
            budget: Duration::from_millis(150),
        },
        sweep: QUICK_SWEEP,
        startups: 10,
        aborts: 24,
        service: Duration::from_millis(1000),
    };

    /// `--smoke`: proves every workload runs; its numbers mean nothing.
    pub const SMOKE: Self = Self {
        name: "smoke",
        rounds: 1,
        plan: Plan {
            warmup_iters: 1,
            warmup_time: Duration::ZERO,
            min_samples: 5,
            max_samples: 5,
            budget: Duration::ZERO,
        },
        sweep: QUICK_SWEEP,
        startups: 2,
        aborts: 3,
        service: Duration::from_millis(40),
    };

    /// Parses the command line (without the program name); `None` when
    /// help was asked for.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Option<Self>> {
        let (mut quick, mut smoke) = (false, false);
        for arg in args {
            match arg.as_str() {
                "--quick" => quick = true,
                "--smoke" => smoke = true,
                "-h" | "--help" => return Ok(None),
                other => return Err(format!("unknown argument `{other}`\n\n{USAGE}").into()),
            }
        }
        Ok(Some(match (smoke, quick) {
            (true, _) => Self::SMOKE,
            (false, true) => Self::QUICK,
            (false, false) => Self::FULL,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Mode>> {
        Mode::from_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn smoke_wins_over_quick() {
        assert_eq!(parse(&[]).unwrap().unwrap().name, "full");
        assert_eq!(parse(&["--quick"]).unwrap().unwrap().name, "quick");
        assert_eq!(
            parse(&["--quick", "--smoke"]).unwrap().unwrap().name,
            "smoke"
        );
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--fast"]).is_err());
    }
}
