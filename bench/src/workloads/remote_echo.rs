//! W15: remote calls over NATS on loopback. The harness starts its own
//! `nats-server` on 127.0.0.1 at a free port (W15 is not measured where
//! there is none), a knitting-nats node in this process (a 2-thread pool)
//! and a `RemotePool`; a sample is a batch of `n` echo calls of 64 bytes,
//! all made, then all awaited.
//!
//! The floor is the transport itself: a bare `async-nats` request/reply of
//! the same bytes (the postcard encoding of the 64-byte argument) to a
//! responder that publishes them back, `n` requests in flight at once.
//! The target is knitting-nats within 1.2× of it. A third row,
//! `knitting-nats-2-nodes`, is the same batch of 100 served by two nodes
//! in a queue group: calls per second with two nodes against one.
//!
//! Records: workload `"W15"`, runtimes `knitting-nats`, `nats` and
//! `knitting-nats-2-nodes` (batch 100 only), `bytes` 64, `batch` 1 and 100.

use std::{
    hint::black_box,
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::{future::join_all, StreamExt};
use knitting::Pool;
use knitting_nats::{Nats, Node, RemotePool};

use super::{check, Runner, Workload};
use crate::{mode::Mode, Result};

/// The payload of one call.
const BYTES: usize = 64;

#[knitting::task]
fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

pub fn workload(_: &Mode) -> Result<Workload> {
    let runners = match Server::start() {
        Ok(server) => runners(server)?,
        Err(why) => ["knitting-nats", "nats", "knitting-nats-2-nodes"]
            .into_iter()
            .map(|runtime| Runner::unavailable(runtime, why.clone()))
            .collect(),
    };
    Ok(Workload {
        id: "W15",
        title: "remote echo of 64 bytes over NATS on loopback",
        sizes: &[BYTES],
        batches: &[1, 100],
        plan: None,
        runners,
    })
}

fn runners(server: Server) -> Result<Vec<Runner>> {
    let server = std::sync::Arc::new(server);
    let url = server.url();
    let one = Nats::new(&url).prefix("bench.one");
    let two = Nats::new(&url).prefix("bench.two");
    let nodes = vec![node(&one)?, node(&two)?, node(&two)?];
    let single = RemotePool::connect(&one)?;
    let double = RemotePool::connect(&two)?;
    let payload = vec![7u8; BYTES];
    check(
        single.call(echo, payload.clone()).wait()? == payload,
        "knitting-nats echoes its bytes",
    )?;
    let bare = Bare::start(&url)?;
    let request = knitting::encoded::encode_args(echo, &payload)?;
    check(bare.batch(&request, 1)?, "bare NATS echoes its bytes")?;
    let keep = (std::sync::Arc::clone(&server), nodes);
    let remote = |pool: RemotePool, keep: Option<_>| {
        let payload = payload.clone();
        move |point: super::Point, sampler: &mut crate::measure::Sampler| {
            let _ = &keep;
            let mut calls = Vec::with_capacity(point.batch);
            sampler.run(|| {
                calls.extend((0..point.batch).map(|_| pool.call(echo, payload.clone())));
                for call in calls.drain(..) {
                    black_box(call.wait()?);
                }
                Ok(())
            })
        }
    };
    Ok(vec![
        Runner::new("knitting-nats", remote(single, Some(keep))),
        Runner::new("nats", move |point, sampler| {
            sampler.run(|| check(bare.batch(&request, point.batch)?, "bare NATS echoes"))
        }),
        Runner::new("knitting-nats-2-nodes", remote(double, None)).only_batches(&[100]),
    ])
}

fn node(nats: &Nats) -> Result<Node> {
    let pool = Pool::builder().threads(2).build()?;
    Ok(Node::serve(nats, pool)?)
}

/// A bare request/reply pair on `async-nats`: a responder that publishes
/// each request's payload back, and a requester with its own runtime.
struct Bare {
    runtime: tokio::runtime::Runtime,
    client: async_nats::Client,
    _responder: tokio::runtime::Runtime,
}

impl Bare {
    fn start(url: &str) -> Result<Self> {
        let runtime = |name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(name)
                .enable_all()
                .build()
        };
        let responder = runtime("nats-responder")?;
        let url = url.to_owned();
        let serving = url.clone();
        responder
            .block_on(async move {
                let client = async_nats::connect(serving).await?;
                let mut requests = client.subscribe("bench.bare.echo").await?;
                client.flush().await?;
                tokio::spawn(async move {
                    while let Some(request) = requests.next().await {
                        if let Some(reply) = request.reply {
                            let _ = client.publish(reply, request.payload).await;
                        }
                    }
                });
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
            .map_err(|e| e.to_string())?;
        let requester = runtime("nats-requester")?;
        let client = requester
            .block_on(async_nats::connect(url))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            runtime: requester,
            client,
            _responder: responder,
        })
    }

    /// `n` requests of `payload` in flight at once; true when every reply
    /// is the payload.
    fn batch(&self, payload: &[u8], n: usize) -> Result<bool> {
        let payload = bytes::Bytes::copy_from_slice(payload);
        let client = self.client.clone();
        let replies = self.runtime.block_on(async move {
            join_all((0..n).map(|_| client.request("bench.bare.echo", payload.clone()))).await
        });
        let mut all = true;
        for reply in replies {
            let reply = reply.map_err(|e| e.to_string())?;
            all &= reply.payload.len() == BYTES + 1;
        }
        Ok(all)
    }
}

/// The harness's own `nats-server`, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> std::result::Result<Self, String> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let binary = std::env::split_paths(&path)
            .chain(["/usr/sbin".into()])
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
            .ok_or("no nats-server here (Debian: apt-get install nats-server)")?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("nats-server did not start: {e}"))?;
        let server = Server { child, port };
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > until {
                return Err("nats-server did not listen".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(server)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
