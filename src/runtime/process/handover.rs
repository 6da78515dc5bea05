//! What the host tells a worker process at start-up, on its command line.
//!
//! A worker is started as `<prefix...> <program> --knitting-worker <words>`.
//! The command line is the one thing every wrapper passes on (`env -i`,
//! `systemd-run`, `docker run`, bwrap): a wrapper that drops the
//! environment must not turn a worker into a second host that runs `main`
//! and starts workers of its own. So the marker and every setting travel
//! there, and a process whose first argument is the marker never returns
//! from [`init`](crate::init): it serves calls, or exits with a message
//! saying what of its hand-over is missing.

use std::{ffi::OsString, time::Duration};

use super::shm::{Locator, VERSION};

/// The first argument of every worker process.
pub(crate) const MARKER: &str = "--knitting-worker";

/// Everything a worker needs besides its mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Handover {
    /// The shared-memory protocol version the host speaks.
    pub(crate) version: u32,
    /// Where the mapping is.
    pub(crate) locator: Locator,
    /// The worker's lane, for diagnostics.
    pub(crate) lane: usize,
    /// How long an idle worker spins before it sleeps.
    pub(crate) spin: Duration,
    /// How often the worker shows it is alive (see the liveness rule in
    /// `host.rs`).
    pub(crate) heartbeat: Duration,
    /// The descriptor of the host's lifeline pipe, behind a prefix.
    pub(crate) lifeline: Option<i32>,
    /// The host's pid, when the worker is its direct child.
    pub(crate) host_pid: Option<i32>,
    /// The resource limits the worker sets on itself before its first task.
    pub(crate) limits: Limits,
    /// How many workers the pool has (for the bootstrap's context).
    pub(crate) workers: usize,
    /// The bootstrap to run: its id, and the length of its data, which
    /// the host put at the start of the request arena.
    pub(crate) boot: Option<(u64, usize)>,
    /// What the worker locks itself down to before its first task; `None`:
    /// unrestricted.
    pub(crate) sandbox: Option<Sandbox>,
    /// The diagnostics the host emits: a worker forwards its events
    /// while any is on.
    pub(crate) diagnostics: crate::Diagnostics,
    /// How many async calls the worker runs at once, at most.
    pub(crate) async_concurrency: usize,
}

/// The file system and system-call restrictions of a worker (the
/// environment is set by the host when it starts the worker).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sandbox {
    pub(crate) read: Vec<std::path::PathBuf>,
    pub(crate) write: Vec<std::path::PathBuf>,
    pub(crate) net: bool,
    pub(crate) exec: bool,
    pub(crate) best_effort: bool,
}

/// Paths as one hand-over value: each path's bytes in hex, comma-separated
/// (a path may hold any byte but NUL).
fn paths_to_word(paths: &[std::path::PathBuf]) -> String {
    use std::os::unix::ffi::OsStrExt;
    paths
        .iter()
        .map(|p| {
            p.as_os_str()
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The paths of [`paths_to_word`].
fn paths_from_word(word: &str) -> Result<Vec<std::path::PathBuf>, String> {
    use std::os::unix::ffi::OsStringExt;
    word.split(',')
        .filter(|p| !p.is_empty())
        .map(|hex| {
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                        .ok_or_else(|| format!("malformed path in the hand-over: {hex:?}"))
                })
                .collect::<Result<Vec<u8>, String>>()?;
            Ok(OsString::from_vec(bytes).into())
        })
        .collect()
}

/// Resource limits of a worker process (`setrlimit`), set by the worker on
/// itself once it is set up, before its first task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    /// `RLIMIT_AS`: bytes of address space.
    pub(crate) memory: Option<u64>,
    /// `RLIMIT_CPU`: seconds of CPU time over the worker's life.
    pub(crate) cpu_seconds: Option<u64>,
    /// `RLIMIT_NOFILE`: open descriptors.
    pub(crate) open_files: Option<u64>,
}

impl Handover {
    /// The arguments that follow the program: the marker and one word of
    /// `key=value` pairs.
    pub(crate) fn to_args(&self) -> [OsString; 2] {
        let mut words = format!(
            "v={};shm={};lane={};spin={};beat={}",
            self.version,
            self.locator.to_env(),
            self.lane,
            self.spin.as_nanos(),
            self.heartbeat.as_nanos()
        );
        if let Some(fd) = self.lifeline {
            words.push_str(&format!(";lifeline={fd}"));
        }
        if let Some(pid) = self.host_pid {
            words.push_str(&format!(";host={pid}"));
        }
        let Limits {
            memory,
            cpu_seconds,
            open_files,
        } = self.limits;
        for (key, value) in [("as", memory), ("cpu", cpu_seconds), ("nofile", open_files)] {
            if let Some(value) = value {
                words.push_str(&format!(";{key}={value}"));
            }
        }
        words.push_str(&format!(";workers={}", self.workers));
        words.push_str(&format!(";async={}", self.async_concurrency));
        if !self.diagnostics.is_empty() {
            words.push_str(&format!(";dbg={}", self.diagnostics.bits()));
        }
        if let Some((id, len)) = self.boot {
            words.push_str(&format!(";boot={id};bootlen={len}"));
        }
        if let Some(sandbox) = &self.sandbox {
            let flag = |on: bool, c: char| if on { c.to_string() } else { String::new() };
            words.push_str(&format!(
                ";sandbox={}{}{}-;ro={};rw={}",
                flag(sandbox.net, 'n'),
                flag(sandbox.exec, 'x'),
                flag(sandbox.best_effort, 'b'),
                paths_to_word(&sandbox.read),
                paths_to_word(&sandbox.write)
            ));
        }
        [MARKER.into(), words.into()]
    }

    /// Reads a worker's hand-over from its arguments (program name
    /// excluded). `None`: this process is not a worker. `Some(Err)`: it was
    /// started as one, and what is wrong.
    pub(crate) fn from_args(args: &[OsString]) -> Option<Result<Self, String>> {
        if args.first().and_then(|a| a.to_str()) != Some(MARKER) {
            return None;
        }
        Some(Self::parse(args.get(1)))
    }

    fn parse(words: Option<&OsString>) -> Result<Self, String> {
        let words = words
            .and_then(|w| w.to_str())
            .ok_or("the hand-over word after --knitting-worker is missing")?;
        let (mut version, mut locator, mut lane, mut spin, mut beat) = (None, None, 0, None, None);
        let (mut lifeline, mut host_pid) = (None, None);
        let mut limits = Limits::default();
        let (mut workers, mut boot, mut boot_len) = (1, None, 0);
        let mut async_concurrency = crate::exec::DEFAULT_CONCURRENCY;
        let mut sandbox: Option<Sandbox> = None;
        let mut diagnostics = crate::Diagnostics::NONE;
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for pair in words.split(';') {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("malformed hand-over entry {pair:?}"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("hand-over entry {key} is not a number: {value:?}"))
            };
            match key {
                "v" => version = Some(number()?),
                "shm" => {
                    locator = Some(
                        Locator::from_env(value)
                            .ok_or_else(|| format!("malformed shared-memory locator {value:?}"))?,
                    )
                }
                "lane" => lane = number()? as usize,
                "spin" => spin = Some(Duration::from_nanos(number()?)),
                "beat" => beat = Some(Duration::from_nanos(number()?)),
                "lifeline" => lifeline = i32::try_from(number()?).ok(),
                "host" => host_pid = i32::try_from(number()?).ok(),
                "as" => limits.memory = Some(number()?),
                "cpu" => limits.cpu_seconds = Some(number()?),
                "nofile" => limits.open_files = Some(number()?),
                "workers" => workers = number()? as usize,
                "async" => async_concurrency = (number()? as usize).max(1),
                "boot" => boot = Some(number()?),
                "bootlen" => boot_len = number()? as usize,
                "sandbox" => {
                    sandbox = Some(Sandbox {
                        net: value.contains('n'),
                        exec: value.contains('x'),
                        best_effort: value.contains('b'),
                        ..Sandbox::default()
                    })
                }
                "dbg" => diagnostics = crate::Diagnostics::from_bits(number()? as u8),
                "ro" => read = paths_from_word(value)?,
                "rw" => write = paths_from_word(value)?,
                // Newer hosts may say more; what this worker needs is checked
                // below.
                _ => {}
            }
        }
        let version = version.ok_or("the hand-over names no protocol version")?;
        if version != u64::from(VERSION) {
            return Err(format!(
                "the host speaks process protocol version {version}, this worker speaks {VERSION}"
            ));
        }
        Ok(Self {
            version: VERSION,
            locator: locator.ok_or("the hand-over names no shared memory")?,
            lane,
            spin: spin.unwrap_or(Duration::from_micros(50)),
            heartbeat: beat.unwrap_or(Duration::from_millis(100)),
            lifeline,
            host_pid,
            limits,
            workers,
            boot: boot.map(|id| (id, boot_len)),
            sandbox: sandbox.map(|s| Sandbox { read, write, ..s }),
            diagnostics,
            async_concurrency,
        })
    }
}

/// This process's arguments after the program name: from std, or from
/// `/proc/self/cmdline` when std has not read them yet (an initialiser that
/// runs before std's, as [`init_before_main!`](crate::init_before_main)
/// may).
pub(crate) fn own_args() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if !args.is_empty() {
        return args.into_iter().skip(1).collect();
    }
    use std::os::unix::ffi::OsStringExt;
    let Ok(raw) = std::fs::read("/proc/self/cmdline") else {
        return Vec::new();
    };
    raw.split(|&b| b == 0)
        .skip(1)
        .filter(|arg| !arg.is_empty())
        .map(|arg| OsString::from_vec(arg.to_vec()))
        .collect()
}

/// True when this process was started as a process worker (whatever else
/// its hand-over says).
pub(crate) fn started_as_worker() -> bool {
    own_args().first().and_then(|a| a.to_str()) == Some(MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handover {
        Handover {
            version: VERSION,
            locator: Locator::Named("/knitting-1-2-0-0-00000000".into()),
            lane: 3,
            spin: Duration::from_micros(7),
            heartbeat: Duration::from_millis(25),
            lifeline: Some(3),
            host_pid: Some(4242),
            limits: Limits {
                memory: Some(1 << 30),
                cpu_seconds: Some(5),
                open_files: Some(64),
            },
            workers: 4,
            boot: Some((u64::MAX, 17)),
            sandbox: Some(Sandbox {
                read: vec!["/srv/a;b=c".into(), "/tmp/é".into()],
                write: vec!["/var/tmp/x,y".into()],
                net: false,
                exec: true,
                best_effort: true,
            }),
            diagnostics: crate::Diagnostics::CALLS | crate::Diagnostics::CRASH,
            async_concurrency: 17,
        }
    }

    #[test]
    fn a_hand_over_reads_back_as_written() {
        let args = sample().to_args();
        assert_eq!(Handover::from_args(&args), Some(Ok(sample())));
        let plain = Handover {
            locator: Locator::Stdin,
            lifeline: None,
            host_pid: None,
            limits: Limits::default(),
            boot: None,
            sandbox: None,
            diagnostics: crate::Diagnostics::NONE,
            async_concurrency: crate::exec::DEFAULT_CONCURRENCY,
            ..sample()
        };
        assert_eq!(Handover::from_args(&plain.to_args()), Some(Ok(plain)));
    }

    #[test]
    fn a_process_without_the_marker_is_no_worker() {
        assert_eq!(Handover::from_args(&[]), None);
        assert_eq!(Handover::from_args(&["--help".into()]), None);
    }

    #[test]
    fn a_broken_hand_over_is_an_error_not_a_host() {
        let err = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(Into::into).collect();
            Handover::from_args(&args).expect("a worker").unwrap_err()
        };
        assert!(err(&[MARKER]).contains("missing"));
        assert!(err(&[MARKER, "lane=0"]).contains("no protocol version"));
        assert!(err(&[MARKER, "v=1;shm=fd:0"]).contains("version 1"));
        assert!(err(&[MARKER, &format!("v={VERSION}")]).contains("no shared memory"));
        assert!(err(&[MARKER, &format!("v={VERSION};shm=pipe")]).contains("locator"));
        assert!(err(&[MARKER, "v=x"]).contains("not a number"));
    }
}
