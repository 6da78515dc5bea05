//! The worker program of the `sandbox` example: tasks that try what a
//! locked-down worker must not do (write outside a scratch directory,
//! connect to the host over TCP, read a key in `~/.ssh`, run another
//! program), each reporting whether the system let it.
//!
//! This program is not meant to be run by hand: the `sandbox` example
//! starts it as a process worker behind bwrap, and `knitting::init()` turns
//! it into a worker that serves calls until the host shuts down. Build it,
//! then run the host:
//!
//! ```text
//! cargo build --example sandbox_worker && cargo run --example sandbox
//! ```

use std::{
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::PathBuf,
    process::Command,
    time::Duration,
};

/// How one attempt went. The host declares its own copy of this type: the
/// type check compares names without module paths, and postcard encodes
/// the variants in this order.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Attempt {
    /// The system let it happen; for a read, the number of bytes read
    /// (never the bytes themselves).
    Done(u64),
    /// The system refused it.
    Refused {
        /// The error as the system gave it.
        error: String,
        /// Its `errno`, which tells who refused.
        errno: Option<i32>,
    },
}

impl From<std::io::Error> for Attempt {
    fn from(e: std::io::Error) -> Self {
        Attempt::Refused {
            errno: e.raw_os_error(),
            error: e.to_string(),
        }
    }
}

impl<T: Into<u64>> From<std::io::Result<T>> for Attempt {
    fn from(outcome: std::io::Result<T>) -> Self {
        match outcome {
            Ok(n) => Attempt::Done(n.into()),
            Err(e) => e.into(),
        }
    }
}

/// Creates (or replaces) the file `path` holding `text`.
#[knitting::task(name = "sandbox::write")]
fn write(path: PathBuf, text: String) -> Attempt {
    std::fs::write(&path, text.as_bytes())
        .map(|()| text.len() as u64)
        .into()
}

/// Connects to `port` on 127.0.0.1, and hangs up.
#[knitting::task(name = "sandbox::connect")]
fn connect(port: u16) -> Attempt {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_secs(3))
        .map(|_| 0u64)
        .into()
}

/// Reads the file `path`; tells only how long it is.
#[knitting::task(name = "sandbox::read")]
fn read(path: PathBuf) -> Attempt {
    std::fs::read(&path).map(|bytes| bytes.len() as u64).into()
}

/// Runs `program` without arguments; `Done(0)` if it succeeded, `Done(1)`
/// if it ran and failed.
#[knitting::task(name = "sandbox::exec")]
fn exec(program: PathBuf) -> Attempt {
    Command::new(&program)
        .status()
        .map(|status| u64::from(!status.success()))
        .into()
}

fn main() {
    // In a worker started by a host, this never returns.
    knitting::init();
    eprintln!("this program is a knitting worker; run the sandbox example instead");
    std::process::exit(2)
}
