//! An HTTP service (axum on tokio) whose handlers run their work on a pool
//! of worker processes.
//!
//! ```sh
//! cargo run --example axum_service              # serves on 127.0.0.1:3000
//! curl 127.0.0.1:3000/square/12                 # 144
//! curl --data-binary @Cargo.toml 127.0.0.1:3000/checksum
//! cargo run --example axum_service -- --self-test   # asks itself, exits
//! ```
//!
//! `main` is a plain function: `knitting::init()` must run before the
//! runtime starts, or every worker process would start a runtime too
//! (`#[tokio::main] async fn main` starts it before `main`'s first line).
//! The runtime comes with `serve`, an `async fn` marked `#[tokio::main]`.
//!
//! The pool lives in the router's state: a `Pool` is a cheap handle, so
//! axum clones it for each request (no `Arc`), and each handler `.await`s
//! its calls like any other future.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Router,
};
use knitting::ProcessPool;
use serde_bytes::ByteBuf;

/// Squares a number (in a worker process).
#[knitting::task]
fn square(value: i64) -> i64 {
    value.wrapping_mul(value)
}

/// A checksum of the request body (in a worker process). The body
/// travels as a byte string (`ByteBuf`): a `Vec<u8>` would be encoded one
/// byte at a time.
#[knitting::task]
fn checksum(body: ByteBuf) -> u32 {
    body.iter()
        .fold(0u32, |sum, &b| sum.rotate_left(5) ^ u32::from(b))
}

type Shared = ProcessPool;

/// The calls end with a value or a `knitting::Error`; the error goes back
/// to the client as a 500 with its message.
fn failed(err: knitting::Error) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n"))
}

async fn square_handler(
    State(pool): State<Shared>,
    Path(value): Path<i64>,
) -> Result<String, (StatusCode, String)> {
    let squared = pool.call(square, value).await.map_err(failed)?;
    Ok(format!("{squared}\n"))
}

async fn checksum_handler(
    State(pool): State<Shared>,
    body: Bytes,
) -> Result<String, (StatusCode, String)> {
    let sum = pool
        .call(checksum, ByteBuf::from(body.to_vec()))
        .await
        .map_err(failed)?;
    Ok(format!("{sum:08x}\n"))
}

fn app(pool: Shared) -> Router {
    Router::new()
        .route("/square/{value}", get(square_handler))
        .route("/checksum", post(checksum_handler))
        .with_state(pool)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    knitting::init(); // first thing: worker processes start here
    let self_test = std::env::args().any(|a| a == "--self-test");
    serve(self_test)
}

#[tokio::main]
async fn serve(self_test: bool) -> Result<(), Box<dyn std::error::Error>> {
    let pool: Shared = knitting::Pool::builder().processes(2).build()?;
    // Loopback only: this demo is not meant to be reachable from outside.
    let port = if self_test { 0 } else { 3000 };
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let address = listener.local_addr()?;
    let server = axum::serve(listener, app(pool.clone()));
    if !self_test {
        println!("listening on http://{address} (try /square/12)");
        server.await?;
        return Ok(());
    }
    let server = tokio::spawn(async move { server.await });
    // The client blocks (std sockets), so it runs off the runtime's threads.
    let client = tokio::task::spawn_blocking(move || ask_self(address));
    let answers = tokio::time::timeout(Duration::from_secs(20), client)
        .await
        .map_err(|_| "the self-test did not finish within 20 s")???;
    server.abort();
    println!("{answers}");
    println!("self-test passed");
    pool.shutdown();
    Ok(())
}

/// Makes a few requests against the service at `address` and checks the
/// answers.
fn ask_self(address: SocketAddr) -> Result<String, String> {
    let mut seen = Vec::new();
    for value in [0i64, 12, -7] {
        let body = request(address, "GET", &format!("/square/{value}"), b"")?;
        let expected = format!("{}\n", value * value);
        if body != expected {
            return Err(format!(
                "/square/{value} gave {body:?}, expected {expected:?}"
            ));
        }
        seen.push(format!("/square/{value} -> {}", body.trim()));
    }
    let payload: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    let body = request(address, "POST", "/checksum", &payload)?;
    let expected = format!("{:08x}\n", checksum(ByteBuf::from(payload)));
    if body != expected {
        return Err(format!("/checksum gave {body:?}, expected {expected:?}"));
    }
    seen.push(format!("/checksum (256 KiB) -> {}", body.trim()));
    Ok(seen.join("\n"))
}

/// One HTTP/1.1 request on a fresh connection; the response body, if the
/// status is 200.
fn request(address: SocketAddr, method: &str, path: &str, body: &[u8]) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("{method} {path}: {e}");
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(fail)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(fail)?;
    stream.write_all(body).map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: no complete response: {response:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{method} {path}: {head}\n{body}"));
    }
    Ok(body.to_owned())
}
