//! A pool's diagnostics in a `tracing` subscriber: a process pool with
//! every namespace on, a task that logs from its worker, and a worker that
//! crashes and is replaced. The crate installs no subscriber; this program
//! installs `tracing-subscriber`'s plain formatter.
//!
//! ```sh
//! cargo run --example diagnostics
//! KNITTING_DEBUG=crash cargo run --example diagnostics -- --quiet   # crashes only
//! ```

use knitting::{Diagnostics, Pool};

/// Logs from inside the worker process; the host prints it, with the
/// worker's lane and pid.
#[knitting::task]
fn resize(width: u32) -> u32 {
    tracing::info!(target: "thumbnails", width, "resizing");
    width / 2
}

/// Takes its worker down with it.
#[knitting::task]
fn crash() {
    std::process::abort()
}

fn main() -> Result<(), knitting::Error> {
    knitting::init();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::stdout)
        .init();
    // `--quiet`: only what KNITTING_DEBUG asks for.
    let debug = if std::env::args().any(|a| a == "--quiet") {
        Diagnostics::NONE
    } else {
        Diagnostics::LIFECYCLE | Diagnostics::CALLS | Diagnostics::CRASH
    };
    let pool = Pool::builder().processes(1).debug(debug).build()?;
    println!("resized to {}", pool.call(resize, 640).wait()?);
    let err = pool.call(crash, ()).wait().unwrap_err();
    println!("the crashing call failed: {err}");
    println!(
        "and the replacement answers: {}",
        pool.call(resize, 320).wait()?
    );
    // Forwarded events arrive within a reactor round; give the last ones
    // time to be printed before the pool goes.
    std::thread::sleep(std::time::Duration::from_millis(200));
    pool.shutdown();
    Ok(())
}
