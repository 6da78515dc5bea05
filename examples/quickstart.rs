//! The first knitting program: two tasks on a 2-thread pool, awaited
//! together; then the same kind of call on a worker *process*, where a crash
//! would cost one worker and never this program.
//!
//! Run it with `cargo run --release --example quickstart`.

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll},
};

#[knitting::task]
fn square(value: i64) -> i64 {
    value * value
}

#[knitting::task]
fn greet(name: String) -> String {
    format!("hello {name}")
}

#[knitting::task]
fn whoami(greeting: String) -> (String, u32) {
    (greeting, std::process::id())
}

fn main() -> Result<(), knitting::Error> {
    // First thing in main: a worker process is this program started again,
    // and it enters here and never returns.
    knitting::init();

    let pool = knitting::Pool::builder().threads(2).build()?;

    // Both calls are in flight at once; wait for the pair together.
    let (four, message) = pollster::block_on(join(
        pool.call(square, 2),
        pool.call(greet, "knitting".to_string()),
    ));
    let (four, message) = (four?, message?);

    println!("{{ four: {four}, message: {message:?} }}");
    pool.shutdown();

    let processes = knitting::Pool::builder().processes(1).build()?;
    let (echo, worker_pid) = processes.call(whoami, "hi".to_string()).wait()?;
    println!(
        "{echo} from worker process {worker_pid} (this process is {})",
        std::process::id()
    );
    processes.shutdown();
    Ok(())
}

/// Polls two futures until both are ready (what `futures::join!` does).
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut out_a, mut out_b) = (None, None);
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        if out_a.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                out_b = Some(v);
            }
        }
        if out_a.is_some() && out_b.is_some() {
            Poll::Ready((out_a.take().unwrap(), out_b.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}
