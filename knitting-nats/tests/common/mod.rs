//! A real `nats-server` on 127.0.0.1 at a free port, and node processes:
//! this test executable started again in the node role.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The variables that make a child of the test executable a node.
pub const NODE_URL: &str = "KNITTING_NATS_TEST_NODE_URL";
pub const NODE_PREFIX: &str = "KNITTING_NATS_TEST_NODE_PREFIX";
pub const NODE_RUNTIME: &str = "KNITTING_NATS_TEST_NODE_RUNTIME";

/// Where `nats-server` is, or why there is none.
pub fn nats_server() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/bin".into()])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| "nats-server is not installed (Debian: apt-get install nats-server)".into())
}

/// A running `nats-server`, stopped when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    /// The address it listens on.
    pub host: String,
    /// What the command runs behind (`ip netns exec <ns>`), if anything.
    wrap: Vec<String>,
    args: Vec<String>,
}

/// Starts a server with `args`, or says why the test skips.
#[macro_export]
macro_rules! server_or_skip {
    ($($arg:expr),* $(,)?) => {
        match common::Server::start(&[$($arg),*]) {
            Ok(server) => server,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

impl Server {
    pub fn start(args: &[&str]) -> Result<Server, String> {
        Self::start_behind(&[], "127.0.0.1", args)
    }

    /// Starts a server behind the command `wrap`, listening on every
    /// address of its network namespace, reached at `host`.
    pub fn start_behind(wrap: &[&str], host: &str, args: &[&str]) -> Result<Server, String> {
        let port = free_port();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let wrap: Vec<String> = wrap.iter().map(|a| a.to_string()).collect();
        let host = host.to_owned();
        let child = spawn(&wrap, &host, port, &args)?;
        let server = Server {
            child,
            port,
            host,
            wrap,
            args,
        };
        server.wait_ready()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.host, self.port)
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.child =
            spawn(&self.wrap, &self.host, self.port, &self.args).expect("nats-server starts again");
        self.wait_ready().expect("nats-server is back");
    }

    fn wait_ready(&self) -> Result<(), String> {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if TcpStream::connect((self.host.as_str(), self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("nats-server did not listen on port {}", self.port))
    }
}

fn spawn(wrap: &[String], host: &str, port: u16, args: &[String]) -> Result<Child, String> {
    behind(wrap, nats_server()?)
        .args(["-a", if wrap.is_empty() { host } else { "0.0.0.0" }])
        .args(["-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nats-server did not start: {e}"))
}

/// A command that runs `program` behind `wrap` (`ip netns exec <ns>`),
/// or on its own.
fn behind(wrap: &[String], program: PathBuf) -> Command {
    match wrap.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A node process, killed when dropped.
pub struct NodeProcess {
    pub child: Child,
    pub id: String,
}

impl NodeProcess {
    /// Starts this test executable as a node on `url` with `prefix`, on a
    /// pool of `runtime` (`threads` or `processes`); returns once it
    /// serves.
    pub fn start(url: &str, prefix: &str, runtime: &str) -> NodeProcess {
        Self::start_behind(&[], url, prefix, runtime)
    }

    /// As [`start`](Self::start), behind the command `wrap`.
    pub fn start_behind(wrap: &[&str], url: &str, prefix: &str, runtime: &str) -> NodeProcess {
        let wrap: Vec<String> = wrap.iter().map(|a| a.to_string()).collect();
        let mut child = behind(&wrap, std::env::current_exe().unwrap())
            .args([
                "--exact",
                "node_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(NODE_URL, url)
            .env(NODE_PREFIX, prefix)
            .env(NODE_RUNTIME, runtime)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the node starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let id = loop {
            let line = lines
                .next()
                .expect("the node said it serves")
                .expect("the node's output");
            // libtest's "test node_process ... " may come first.
            if let Some((_, id)) = line.split_once("serving ") {
                break id.trim().to_owned();
            }
        };
        // Keep reading, so that the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        NodeProcess { child, id }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh directory for one test's marker files.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("knitting-nats-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The files in `dir`.
pub fn files(dir: &PathBuf) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits up to `limit` for `check`.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
