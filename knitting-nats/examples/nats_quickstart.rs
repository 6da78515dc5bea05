//! Two terminals, one program: a node that serves its tasks on a
//! sandboxed process pool, and a client that calls them over NATS.
//!
//! ```text
//! nats-server -a 127.0.0.1 -p 4222                                # terminal 1
//! cargo run -p knitting-nats --example nats_quickstart -- node    # terminal 2
//! cargo run -p knitting-nats --example nats_quickstart -- client  # terminal 3
//! ```
//!
//! `NATS_URL` names another server (default `nats://127.0.0.1:4222`).

use std::time::{Duration, Instant};

use knitting::{ErrorKind, Permissions, Pool};
use knitting_nats::{Nats, Node, RemotePool};

/// Counts the words of a text: the kind of pure function that moves to
/// another host unchanged.
#[knitting::task]
fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}

/// Takes `ms`, then says which process ran it.
#[knitting::task]
async fn slow_echo(text: String, ms: u64) -> String {
    knitting::sleep(Duration::from_millis(ms)).await;
    format!("{text} (from worker process {})", std::process::id())
}

fn main() -> Result<(), knitting::Error> {
    knitting::init();
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nats = Nats::new(url).prefix("quickstart");
    match std::env::args().nth(1).as_deref() {
        Some("node") => node(&nats),
        Some("client") => client(&nats),
        _ => {
            eprintln!(
                "usage: nats_quickstart node|client (see the top of examples/nats_quickstart.rs)"
            );
            std::process::exit(2);
        }
    }
}

fn node(nats: &Nats) -> Result<(), knitting::Error> {
    // Calls from the network run in worker processes that may not touch
    // the file system or the network (Landlock and seccomp where the
    // kernel has them).
    let pool = Pool::builder()
        .processes(2)
        .permissions(Permissions::strict().best_effort())
        .build()?;
    let node = Node::serve(nats, pool)?;
    println!(
        "node {} serves {} tasks; Ctrl-C stops it",
        node.id(),
        node.tasks().len()
    );
    node.wait();
    Ok(())
}

fn client(nats: &Nats) -> Result<(), knitting::Error> {
    let pool = RemotePool::connect(nats)?;
    let words = pool
        .call(word_count, "the same task on another host".into())
        .wait()?;
    println!("word_count: {words}");

    let start = Instant::now();
    let calls: Vec<_> = (0..100)
        .map(|i| pool.call(slow_echo, (format!("call {i}"), 100)))
        .collect();
    let mut last = String::new();
    for call in calls {
        last = call.wait()?;
    }
    println!(
        "100 calls of 100 ms each took {:?}; the last: {last}",
        start.elapsed()
    );

    let late = pool
        .call(slow_echo, ("too slow".into(), 5_000))
        .timeout(Duration::from_millis(200))
        .wait();
    match late {
        Err(err) if err.kind() == ErrorKind::Timeout => println!("a 200 ms deadline: {err}"),
        other => println!("a 200 ms deadline gave {other:?}"),
    }
    Ok(())
}
