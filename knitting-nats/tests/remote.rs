//! Remote calls through a real `nats-server` on 127.0.0.1, with nodes in
//! this process and in node processes (this executable started again):
//! several types, load sharing, a node killed mid-call, deadlines, cancel,
//! abort, refusals, credentials, payload limits and a server restart.
//! Each test starts its own server, and skips with a message where
//! `nats-server` is not installed.

knitting::init_before_main!();

mod common;

use std::{
    collections::BTreeSet,
    error::Error as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use common::{eventually, files, scratch, NodeProcess};
use knitting::{ErrorKind, ImportedTask, Pool, Signal};
use knitting_nats::{Nats, Node, RemotePool};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[knitting::task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[knitting::task]
fn shout(text: String) -> String {
    text.to_uppercase()
}

#[knitting::task]
fn mirror(p: Point) -> Point {
    Point { x: -p.x, y: -p.y }
}

#[knitting::task]
fn reverse(bytes: Vec<u8>) -> Vec<u8> {
    bytes.into_iter().rev().collect()
}

#[knitting::task]
fn filled(len: usize) -> Vec<u8> {
    vec![7; len]
}

#[knitting::task]
async fn later(ms: u64) -> u64 {
    knitting::sleep(Duration::from_millis(ms)).await;
    ms
}

#[derive(Debug)]
struct Refused(std::num::ParseIntError);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a number")
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[knitting::task]
fn parse(text: String) -> Result<i64, Refused> {
    text.parse().map_err(Refused)
}

/// The pid of the process that ran it, after `ms`.
#[knitting::task]
fn whoami(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Leaves a file `<dir>/<key>-<pid>` when it starts, then sleeps `ms`:
/// the files count the runs, and name the process of each.
#[knitting::task]
fn marked(dir: String, key: String, ms: u64) -> u32 {
    let pid = std::process::id();
    let _ = std::fs::write(PathBuf::from(dir).join(format!("{key}-{pid}")), b"");
    std::thread::sleep(Duration::from_millis(ms));
    pid
}

/// Writes `<path>` when dropped.
struct Guard(PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, b"dropped");
    }
}

/// Holds a guard for `ms`, then returns.
#[knitting::task]
async fn guarded(path: String, ms: u64) -> u64 {
    let _guard = Guard(path.into());
    knitting::sleep(Duration::from_millis(ms)).await;
    ms
}

/// Runs until its signal is raised.
#[knitting::task]
fn until_aborted(signal: &Signal) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    while !signal.aborted() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    "aborted".into()
}

/// A node in this process, on a thread pool.
fn local_node(nats: &Nats) -> Node {
    let pool = Pool::builder().threads(2).build().unwrap();
    Node::serve(nats, pool).expect("the node serves")
}

/// A client that gives a silent node up after 1 s.
fn client(nats: &Nats) -> RemotePool {
    RemotePool::builder(nats)
        .silence_limit(Duration::from_secs(1))
        .connect()
        .expect("the client connects")
}

/// The role of a child of this executable started by `NodeProcess`.
#[test]
#[ignore = "a node process that the other tests start"]
fn node_process() {
    let Ok(url) = std::env::var(common::NODE_URL) else {
        panic!("run by the tests that start node processes");
    };
    let prefix = std::env::var(common::NODE_PREFIX).unwrap();
    let nats = Nats::new(url).prefix(prefix);
    let pool: Pool<knitting::AnyRuntime> = match std::env::var(common::NODE_RUNTIME).as_deref() {
        Ok("processes") => Pool::builder().processes(2).build().unwrap().into(),
        _ => Pool::builder().threads(4).build().unwrap().into(),
    };
    let node = Node::builder(&nats)
        .heartbeat(Duration::from_millis(100))
        .serve(pool)
        .unwrap();
    println!("serving {}", node.id());
    node.wait();
}

#[test]
fn calls_of_several_types_reach_a_node_and_come_back() {
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("types");
    let _node = local_node(&nats);
    let pool = client(&nats);
    assert_eq!(pool.call(add, (2, 40)).wait().unwrap(), 42);
    assert_eq!(pool.call(shout, "knit".into()).wait().unwrap(), "KNIT");
    assert_eq!(
        pool.call(mirror, Point { x: 1, y: -2 }).wait().unwrap(),
        Point { x: -1, y: 2 }
    );
    let bytes: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let back = pool.call(reverse, bytes.clone()).wait().unwrap();
    assert!(back.iter().eq(bytes.iter().rev()));
    // Awaited, in an executor that is not tokio.
    assert_eq!(pollster::block_on(pool.call(later, 30)).unwrap(), 30);
    // A task's own error, with its source chain.
    let err = pool.call(parse, "ten".into()).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Task);
    assert!(err.task().unwrap().ends_with("::parse"), "{err:?}");
    let outer = err.source().expect("the task's error");
    assert_eq!(outer.to_string(), "not a number");
    assert_eq!(
        outer.source().unwrap().to_string(),
        "invalid digit found in string"
    );
    // Many at once.
    let calls: Vec<_> = (0..500).map(|i| pool.call(add, (i, 1))).collect();
    for (i, call) in (0..).zip(calls) {
        assert_eq!(call.wait().unwrap(), i + 1);
    }
}

#[test]
fn a_process_pool_node_serves_in_its_worker_processes() {
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("procs");
    let node = NodeProcess::start(&server.url(), "procs", "processes");
    let pool = client(&nats);
    let pid = pool.call(whoami, 0).wait().unwrap();
    assert_ne!(
        pid,
        node.pid(),
        "the call ran in a worker process of the node"
    );
    assert_ne!(pid, std::process::id());
    assert_eq!(
        pool.call(shout, "sandboxed".into()).wait().unwrap(),
        "SANDBOXED"
    );
}

#[test]
fn with_no_node_a_call_fails_at_once_as_unavailable() {
    let server = server_or_skip!();
    let pool = client(&Nats::new(server.url()).prefix("empty"));
    let start = Instant::now();
    let err = pool.call(add, (1, 2)).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("::add"), "{err}");
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn prefixes_keep_applications_apart() {
    let server = server_or_skip!();
    let _node = local_node(&Nats::new(server.url()).prefix("billing"));
    let other = client(&Nats::new(server.url()).prefix("search"));
    let err = other.call(add, (1, 2)).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let same = client(&Nats::new(server.url()).prefix("billing"));
    assert_eq!(same.call(add, (1, 2)).wait().unwrap(), 3);
    let bad = RemotePool::connect(&Nats::new(server.url()).prefix("a.*")).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::Build);
}

#[test]
fn a_node_refuses_a_call_whose_types_differ() {
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("shapes");
    let _node = local_node(&nats);
    let pool = client(&nats);
    // The name of this program's `add`, with other types.
    const ADD: ImportedTask<(String, String), String> =
        ImportedTask::new(concat!(module_path!(), "::add"));
    let err = pool.call(ADD, ("1".into(), "2".into())).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch, "{err}");
    assert!(err.message().contains("`i64`"), "{err}");
    // A task the node's program does not have: no node serves it.
    const ELSEWHERE: ImportedTask<u32, u32> = ImportedTask::new("elsewhere::task");
    let err = pool.call(ELSEWHERE, 1).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[test]
fn a_deadline_ends_the_call_on_both_sides() {
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("deadline");
    let _node = local_node(&nats);
    let pool = client(&nats);
    let dir = scratch("deadline");
    let guard = dir.join("guard");
    let start = Instant::now();
    let call = pool.call(guarded, (guard.display().to_string(), 10_000));
    let err = call.timeout(Duration::from_millis(300)).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    // The node dropped the task's future: its guard ran.
    assert!(
        eventually(Duration::from_secs(5), || guard.exists()),
        "the node's call went on"
    );
}

#[test]
fn cancel_and_drop_end_the_remote_task() {
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("cancel");
    let _node = local_node(&nats);
    let pool = client(&nats);
    let dir = scratch("cancel");
    for how in ["cancel", "drop"] {
        let guard = dir.join(how);
        let call = pool.call(guarded, (guard.display().to_string(), 10_000));
        // Until the node runs it.
        std::thread::sleep(Duration::from_millis(300));
        assert!(!guard.exists());
        if how == "cancel" {
            assert_eq!(call.cancel().unwrap_err().kind(), ErrorKind::Cancelled);
        } else {
            drop(call);
        }
        assert!(
            eventually(Duration::from_secs(5), || guard.exists()),
            "{how}: the task went on"
        );
    }
}

#[test]
fn abort_raises_the_remote_tasks_signal() {
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("abort");
    let _node = local_node(&nats);
    let pool = client(&nats);
    let call = pool.call(until_aborted, ());
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    call.abort();
    assert_eq!(call.wait().unwrap(), "aborted");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn two_node_processes_share_the_load() {
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("share");
    let a = NodeProcess::start(&server.url(), "share", "threads");
    let b = NodeProcess::start(&server.url(), "share", "threads");
    let pool = client(&nats);
    let calls: Vec<_> = (0..64).map(|_| pool.call(whoami, 20)).collect();
    let pids: BTreeSet<u32> = calls.into_iter().map(|c| c.wait().unwrap()).collect();
    assert_eq!(pids, BTreeSet::from([a.pid(), b.pid()]));
}

#[test]
fn a_node_killed_mid_call_fails_it_once_and_a_retried_call_goes_elsewhere() {
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("kill");
    let mut nodes = vec![
        NodeProcess::start(&server.url(), "kill", "threads"),
        NodeProcess::start(&server.url(), "kill", "threads"),
    ];
    let pool = client(&nats);
    let dir = scratch("kill");
    let dir_arg = dir.display().to_string();
    // SIGKILLs the node that runs the call marked `key`; its pid.
    let kill_the_runner = |nodes: &mut Vec<NodeProcess>, key: &str| {
        let prefix = format!("{key}-");
        assert!(eventually(Duration::from_secs(5), || files(&dir)
            .iter()
            .any(|f| f.starts_with(&prefix))));
        let runner: u32 = files(&dir)
            .iter()
            .find_map(|f| f.strip_prefix(&prefix)?.parse().ok())
            .unwrap();
        let node = nodes.iter_mut().find(|n| n.pid() == runner).unwrap();
        node.kill();
        runner
    };

    // Sent once: the caller hears of the death within its deadline, and
    // the call does not run again anywhere.
    let start = Instant::now();
    let call = pool
        .call(marked, (dir_arg.clone(), "once".into(), 5_000))
        .timeout(Duration::from_secs(10));
    let killed = kill_the_runner(&mut nodes, "once");
    let err = call.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err}");
    assert!(err.message().contains("not sent again"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500));
    let runs: Vec<_> = files(&dir)
        .into_iter()
        .filter(|f| f.starts_with("once-"))
        .collect();
    assert_eq!(runs, [format!("once-{killed}")]);

    // A node to lose again, then a call marked safe to retry.
    nodes.push(NodeProcess::start(&server.url(), "kill", "threads"));
    let call = pool
        .call(marked, (dir_arg.clone(), "retry".into(), 1_500))
        .retries(2);
    let killed = kill_the_runner(&mut nodes, "retry");
    let mut call = call;
    let ran_on = call
        .wait_timeout(Duration::from_secs(15))
        .expect("the retry ends")
        .unwrap();
    assert_ne!(ran_on, killed);
    let runs: Vec<_> = files(&dir)
        .into_iter()
        .filter(|f| f.starts_with("retry-"))
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(call.attempts(), 2);
}

#[test]
fn a_restarted_node_serves_again() {
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("restart");
    let mut node = NodeProcess::start(&server.url(), "restart", "threads");
    let pool = client(&nats);
    assert_eq!(pool.call(whoami, 0).wait().unwrap(), node.pid());
    node.kill();
    assert_eq!(
        pool.call(whoami, 0).wait().unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    let node = NodeProcess::start(&server.url(), "restart", "threads");
    assert_eq!(pool.call(whoami, 0).wait().unwrap(), node.pid());
}

#[test]
fn a_node_and_a_pool_drop_at_once_when_the_server_is_gone() {
    let mut server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("gone");
    let node = local_node(&nats);
    let pool = client(&nats);
    assert_eq!(pool.call(add, (1, 1)).wait().unwrap(), 2);
    server.kill();
    let start = Instant::now();
    drop(node);
    drop(pool);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn wrong_credentials_are_refused() {
    let server = server_or_skip!("--user", "knit", "--pass", "s3cret");
    let wrong = RemotePool::connect(&Nats::new(server.url()).user_and_password("knit", "guess"))
        .unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Build);
    assert!(wrong.message().to_lowercase().contains("author"), "{wrong}");
    let none = RemotePool::connect(&Nats::new(server.url())).unwrap_err();
    assert_eq!(none.kind(), ErrorKind::Build, "{none}");
    let nats = Nats::new(server.url()).user_and_password("knit", "s3cret");
    let _node = local_node(&nats);
    assert_eq!(client(&nats).call(add, (1, 1)).wait().unwrap(), 2);
}

#[test]
fn payloads_over_the_servers_limit_fail_before_sending() {
    let dir = scratch("payload");
    let config = dir.join("server.conf");
    std::fs::write(&config, "max_payload: 65536\n").unwrap();
    let server = server_or_skip!("-c", config.to_str().unwrap());
    let nats = Nats::new(server.url()).prefix("payload");
    let _node = local_node(&nats);
    let pool = client(&nats);
    assert_eq!(pool.max_payload(), 65536);
    let err = pool.call(reverse, vec![1; 100_000]).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(
        err.message().contains("65536") && err.message().contains("100003"),
        "{err}"
    );
    // A result over the limit fails on the node, which says so.
    let err = pool.call(filled, 100_000).wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(err.message().contains("65536"), "{err}");
    assert_eq!(pool.call(filled, 1_000).wait().unwrap().len(), 1_000);
}

#[test]
fn every_call_ends_when_the_server_restarts_under_load() {
    let mut server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("storm");
    let _node = local_node(&nats);
    let pool = client(&nats);
    let calls: Vec<_> = (0..300).map(|i| pool.call(later, 200 + i % 50)).collect();
    std::thread::sleep(Duration::from_millis(100));
    server.restart();
    let (mut ok, mut failed) = (0, 0);
    for (i, mut call) in (0u64..).zip(calls) {
        match call
            .wait_timeout(Duration::from_secs(20))
            .expect("every call ends")
        {
            Ok(ms) => {
                assert_eq!(ms, 200 + i % 50);
                ok += 1;
            }
            Err(err) => {
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::WorkerDied | ErrorKind::Disconnected | ErrorKind::Unavailable
                    ),
                    "{err}"
                );
                failed += 1;
            }
        }
    }
    eprintln!("server restart: {ok} calls ok, {failed} failed");
    assert_eq!(ok + failed, 300);
    // Both sides reconnect, and calls go through again.
    assert!(
        eventually(Duration::from_secs(10), || pool
            .call(add, (1, 2))
            .wait()
            .is_ok()),
        "no call went through after the restart"
    );
}

/// Two network namespaces: one for the server, one for a node, joined by
/// veth pairs (this process reaches the server over a third). Deleted when
/// dropped.
struct Namespaces {
    server: String,
    node: String,
    /// The node's end of its link to the server.
    node_link: String,
    /// The server's address for this process, and for the node.
    server_here: String,
    server_for_node: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Namespaces {
    fn make() -> Result<Self, String> {
        let tag = std::process::id() % 100_000;
        let net = 10 + tag % 240;
        let made = Namespaces {
            server: format!("knats{tag}s"),
            node: format!("knats{tag}n"),
            node_link: format!("kn{tag}n"),
            server_here: format!("10.201.{net}.2"),
            server_for_node: format!("10.202.{net}.1"),
        };
        let (s, n) = (made.server.as_str(), made.node.as_str());
        let (host_end, server_end) = (format!("kh{tag}h"), format!("kh{tag}s"));
        let (server_to_node, node_end) = (format!("kn{tag}s"), made.node_link.clone());
        ip(&["netns", "add", s])?;
        ip(&["netns", "add", n])?;
        let here = format!("10.201.{net}.1/24");
        let there = format!("{}/24", made.server_here);
        let server_side = format!("{}/24", made.server_for_node);
        let node_side = format!("10.202.{net}.2/24");
        let steps: Vec<Vec<&str>> = vec![
            vec![
                "link",
                "add",
                &host_end,
                "type",
                "veth",
                "peer",
                "name",
                &server_end,
                "netns",
                s,
            ],
            vec!["addr", "add", &here, "dev", &host_end],
            vec!["link", "set", &host_end, "up"],
            vec!["-n", s, "addr", "add", &there, "dev", &server_end],
            vec!["-n", s, "link", "set", &server_end, "up"],
            vec!["-n", s, "link", "set", "lo", "up"],
            vec![
                "-n",
                s,
                "link",
                "add",
                &server_to_node,
                "type",
                "veth",
                "peer",
                "name",
                &node_end,
                "netns",
                n,
            ],
            vec!["-n", s, "addr", "add", &server_side, "dev", &server_to_node],
            vec!["-n", s, "link", "set", &server_to_node, "up"],
            vec!["-n", n, "addr", "add", &node_side, "dev", &node_end],
            vec!["-n", n, "link", "set", &node_end, "up"],
            vec!["-n", n, "link", "set", "lo", "up"],
        ];
        for step in steps {
            // On failure, `made` is dropped and the namespaces go.
            ip(&step)?;
        }
        Ok(made)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes its ends of the veth pairs, and so
        // the pairs.
        let _ = ip(&["netns", "del", &self.node]);
        let _ = ip(&["netns", "del", &self.server]);
    }
}

#[test]
fn calls_cross_network_namespaces_and_a_cut_link_fails_the_call() {
    if let Err(why) = common::nats_server() {
        eprintln!("skipped: {why}");
        return;
    }
    let ns = match Namespaces::make() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipped: network namespaces cannot be made here ({why})");
            return;
        }
    };
    let server =
        common::Server::start_behind(&["ip", "netns", "exec", &ns.server], &ns.server_here, &[])
            .expect("nats-server starts in its namespace");
    let node_url = format!("nats://{}:{}", ns.server_for_node, server.port);
    let _node = NodeProcess::start_behind(
        &["ip", "netns", "exec", &ns.node],
        &node_url,
        "netns",
        "threads",
    );
    let pool = client(&Nats::new(server.url()).prefix("netns"));
    assert_eq!(pool.call(add, (20, 22)).wait().unwrap(), 42);

    // Cut the node's link while it runs a call.
    let dir = scratch("netns");
    let start = Instant::now();
    let call = pool
        .call(marked, (dir.display().to_string(), "cut".into(), 3_000))
        .timeout(Duration::from_secs(10));
    assert!(eventually(Duration::from_secs(5), || !files(&dir).is_empty()));
    ip(&["-n", &ns.node, "link", "set", &ns.node_link, "down"]).unwrap();
    let err = call.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(files(&dir).len(), 1, "the call ran once");

    // The link back: the node reconnects and serves again.
    ip(&["-n", &ns.node, "link", "set", &ns.node_link, "up"]).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || pool
            .call(add, (1, 1))
            .wait()
            .is_ok()),
        "the node did not serve again after its link came back"
    );
}

#[test]
fn a_token_logs_in_and_a_wrong_one_is_refused() {
    let server = server_or_skip!("--auth", "t0ken");
    let wrong = RemotePool::connect(&Nats::new(server.url()).token("nope")).unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Build, "{wrong}");
    let nats = Nats::new(server.url()).token("t0ken");
    let _node = local_node(&nats);
    assert_eq!(client(&nats).call(add, (2, 2)).wait().unwrap(), 4);
}

/// A CA and a server certificate for 127.0.0.1, made with `openssl`.
fn certificates(dir: &std::path::Path) -> Result<(), String> {
    let run = |args: &[&str]| -> Result<(), String> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ])
}

#[test]
fn tls_connects_with_the_servers_ca_and_is_refused_without_it() {
    let dir = scratch("tls");
    if let Err(why) = certificates(&dir) {
        eprintln!("skipped: no certificates could be made ({why})");
        return;
    }
    let path = |name: &str| dir.join(name).display().to_string();
    let (cert, key) = (path("server.pem"), path("server.key"));
    let server = server_or_skip!(
        "--tls",
        "--tlscert",
        cert.as_str(),
        "--tlskey",
        key.as_str()
    );
    let nats = Nats::new(server.url())
        .require_tls(true)
        .root_certificates(dir.join("ca.pem"));
    let _node = local_node(&nats);
    assert_eq!(
        client(&nats).call(shout, "tls".into()).wait().unwrap(),
        "TLS"
    );
    // Without the CA the server's certificate is not trusted.
    let untrusted = RemotePool::connect(&Nats::new(server.url()).require_tls(true)).unwrap_err();
    assert_eq!(untrusted.kind(), ErrorKind::Build, "{untrusted}");
}

/// Calls of `busy` running now, and the most seen at once.
static RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static MOST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[knitting::task]
async fn busy(ms: u64) -> u64 {
    use std::sync::atomic::Ordering::SeqCst;
    let now = RUNNING.fetch_add(1, SeqCst) + 1;
    MOST.fetch_max(now, SeqCst);
    knitting::sleep(Duration::from_millis(ms)).await;
    RUNNING.fetch_sub(1, SeqCst);
    ms
}

#[test]
fn calls_in_flight_are_bounded_on_both_sides() {
    use std::sync::atomic::Ordering::SeqCst;
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("bounded");
    // The node runs at most 3 at once, the client sends at most 5.
    let pool = Pool::builder().threads(2).build().unwrap();
    let _node = Node::builder(&nats).max_in_flight(3).serve(pool).unwrap();
    let remote = RemotePool::builder(&nats)
        .max_in_flight(5)
        .silence_limit(Duration::from_secs(2))
        .connect()
        .unwrap();
    MOST.store(0, SeqCst);
    let start = Instant::now();
    let calls: Vec<_> = (0..30).map(|_| remote.call(busy, 50)).collect();
    for call in calls {
        assert_eq!(call.wait().unwrap(), 50);
    }
    assert_eq!(
        MOST.load(SeqCst),
        3,
        "the node ran more than its bound at once"
    );
    // 30 calls, 3 at a time, 50 ms each: at least 10 rounds.
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn a_call_queued_on_a_busy_node_outlasts_the_silence_limit() {
    let server = server_or_skip!();
    let nats = Nats::new(server.url()).prefix("queued");
    let pool = Pool::builder().threads(2).build().unwrap();
    let _node = Node::builder(&nats)
        .max_in_flight(1)
        .heartbeat(Duration::from_millis(50))
        .serve(pool)
        .unwrap();
    let remote = RemotePool::builder(&nats)
        .silence_limit(Duration::from_millis(300))
        .connect()
        .unwrap();
    let first = remote.call(later, 1_000);
    std::thread::sleep(Duration::from_millis(50));
    // Waits on the node for the first one, three silence limits long.
    let second = remote.call(later, 10);
    assert_eq!(second.wait().unwrap(), 10);
    assert_eq!(first.wait().unwrap(), 1_000);
}
