//! Run [knitting] tasks on other hosts, carried by
//! [NATS](https://nats.io).
//!
//! When the hot function outgrows one machine, nothing about it changes:
//! the same `#[knitting::task]` runs on **nodes**, programs that serve
//! every task of their binary on a local knitting pool, and a
//! [`RemotePool`] calls it with the same `call(task, args)`, the same
//! handle (a blocking waiter and a future of any executor), the same
//! deadlines, cancellation and error kinds as a local pool. NATS does the
//! carrying: request/reply in a queue group spreads calls over the nodes
//! that serve a task, and says at once when none does.
//!
//! ```no_run
//! // Both programs link this task (a shared crate, say).
//! #[knitting::task]
//! fn thumbnail(width: u32, height: u32) -> String {
//!     format!("{width}x{height}")
//! }
//!
//! # fn node() -> Result<(), knitting::Error> {
//! // A node: its calls run on a sandboxed process pool.
//! knitting::init();
//! let pool = knitting::Pool::builder().processes(4).build()?;
//! let nats = knitting_nats::Nats::new("nats://127.0.0.1:4222");
//! knitting_nats::Node::serve(&nats, pool)?.wait();
//! # Ok(()) }
//!
//! # fn client() -> Result<(), knitting::Error> {
//! // A client, on another host.
//! let nats = knitting_nats::Nats::new("nats://127.0.0.1:4222");
//! let pool = knitting_nats::RemotePool::connect(&nats)?;
//! let call = pool.call(thumbnail, (64, 48)).timeout(std::time::Duration::from_secs(2));
//! assert_eq!(call.wait()?, "64x48");
//! # Ok(()) }
//! ```
//!
//! # When to use it
//!
//! A call through NATS costs a network round trip and two hops through the
//! server (tens to hundreds of microseconds on one machine, more across a
//! network), against a few microseconds through a local pool's shared
//! memory. Use it for calls that take milliseconds or more and for load
//! one machine cannot carry; keep a local pool for the rest.
//!
//! # What a call can count on
//!
//! - **Sent once.** A call goes to one node. If that node dies or its link
//!   is cut mid-call, the caller gets a
//!   [`WorkerDied`](knitting::ErrorKind::WorkerDied) error once the node
//!   has been silent for the pool's
//!   [`silence_limit`](RemotePoolBuilder::silence_limit); the call is not
//!   run again behind the caller's back. A call that is safe to run twice
//!   says so with [`RemoteCall::retries`], and then goes to another node,
//!   a bounded number of times ([`RemoteCall::attempts`] counts them).
//! - **Checked types.** The task's type fingerprint travels with the call;
//!   a node whose task of that name has other types refuses it with a
//!   [`TypeMismatch`](knitting::ErrorKind::TypeMismatch) error.
//! - **Deadlines on both sides.** The time left travels in a header; the
//!   node's pool ends the call when it passes, and so does the caller.
//!   [`RemoteCall::abort`] raises the task's signal on the node;
//!   [`RemoteCall::cancel`] and dropping the handle end the call there.
//! - **Clear failures.** No node for the task:
//!   [`Unavailable`](knitting::ErrorKind::Unavailable), at once. A payload
//!   over the server's `max_payload`:
//!   [`TooLarge`](knitting::ErrorKind::TooLarge), naming both, before
//!   anything is sent. The task's own error arrives with its kind, message
//!   and source chain.
//! - **Bounded.** A pool has at most
//!   [`max_in_flight`](RemotePoolBuilder::max_in_flight) calls in flight,
//!   a node runs at most [`max_in_flight`](NodeBuilder::max_in_flight) at
//!   once.
//!
//! # With the process sandbox
//!
//! A node serves on whatever pool it is given. Given a process pool, every
//! call from the network runs in a worker process with the pool's
//! [`Permissions`](knitting::Permissions), resource limits and hard time
//! limits, and a task that crashes its worker fails that call with
//! `WorkerDied` while the node goes on. A node that takes calls from
//! clients it does not fully trust should use one.
//!
//! # Subjects
//!
//! Everything lives under a prefix ([`Nats::prefix`], default `knitting`):
//! calls of a task on `<prefix>.call.<task id>`, control messages for a
//! node on `<prefix>.control.<node id>`. Two applications with different
//! prefixes share nothing on one server.

mod call;
mod client;
mod connect;
mod node;
mod protocol;

pub use call::RemoteCall;
pub use client::{RemotePool, RemotePoolBuilder};
pub use connect::Nats;
pub use node::{Node, NodeBuilder};
