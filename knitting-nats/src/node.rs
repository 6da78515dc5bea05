//! The serving side: a node takes the calls of every task of its program
//! from NATS and runs them on a local knitting pool.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::{HeaderMap, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use knitting::{
    encoded::{self, Request},
    Call, Error, ErrorKind, Pool, Runtime, TaskInfo,
};
use tokio::sync::{mpsc, Semaphore};

use crate::{connect::runtime, protocol::*, Nats};

/// What a client asks of a call a node runs.
#[derive(Debug)]
enum Control {
    Abort,
    Cancel,
    Deadline(Duration),
}

/// How a node serves: its heartbeat and how many calls it runs at once.
/// Made by [`Node::builder`].
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    nats: Nats,
    heartbeat: Duration,
    max_in_flight: usize,
}

impl NodeBuilder {
    /// How often the node tells a client that its call still runs (default
    /// 250 ms). A client gives a call up when it hears nothing for its
    /// [`silence_limit`](crate::RemotePoolBuilder::silence_limit), so keep
    /// this well below that.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// How many calls the node runs at once (default 1,024); further calls
    /// wait in the node until one ends (their clients hear that they wait,
    /// and their deadlines run meanwhile).
    pub fn max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = calls.max(1);
        self
    }

    /// Connects and serves every task of this program that runs on
    /// process workers, on `pool` (a thread or a process pool: a process
    /// pool's sandbox, limits and crash handling apply to the calls it
    /// takes from other hosts too). The node stops when it is dropped or
    /// [`shut down`](Node::shutdown); the pool stays the caller's.
    pub fn serve<R: Runtime>(self, pool: Pool<R>) -> Result<Node, Error> {
        let runtime = runtime("knitting-nats-node")?;
        let id = format!("n{:016x}", rand_id());
        let served: Vec<&'static TaskInfo> = knitting::tasks()
            .iter()
            .copied()
            .filter(|info| Request::new(info.id(), 0, Vec::new()).is_ok())
            .collect();
        let prefix = self.nats.subject_prefix().to_owned();
        let (client, subscriptions) = runtime.block_on(async {
            let client = self
                .nats
                .connect(&format!("knitting node {id}"), |_| {})
                .await?;
            let mut subscriptions = Vec::with_capacity(served.len() + 1);
            let failed = |e: async_nats::SubscribeError| {
                Error::new(ErrorKind::Build, format!("could not subscribe: {e}"))
            };
            for info in &served {
                let subject = call_subject(&prefix, info.id());
                // One queue group for every node of the prefix: each call
                // reaches one of them.
                let sub = client
                    .queue_subscribe(subject, format!("{prefix}.nodes"))
                    .await
                    .map_err(failed)?;
                subscriptions.push(sub);
            }
            let control = client
                .subscribe(control_subject(&prefix, &id))
                .await
                .map_err(failed)?;
            client
                .flush()
                .await
                .map_err(|e| Error::new(ErrorKind::Build, format!("could not subscribe: {e}")))?;
            Ok::<_, Error>((client, (subscriptions, control)))
        })?;
        let shared = Arc::new(Shared {
            client,
            id: id.clone(),
            heartbeat: self.heartbeat,
            calls: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(self.max_in_flight)),
        });
        let (mut calls, mut control) = subscriptions;
        let pool = Arc::new(pool);
        let serving = {
            let shared = Arc::clone(&shared);
            runtime.spawn(async move {
                let mut all = futures_util::stream::select_all(calls.drain(..));
                while let Some(message) = all.next().await {
                    // Taken at once, even when every slot is busy: the
                    // client hears that its call waits here, and is not
                    // left to guess whether anyone has it.
                    let (shared, pool) = (Arc::clone(&shared), Arc::clone(&pool));
                    tokio::spawn(async move { run_call(&shared, &pool, message).await });
                }
            })
        };
        let controlling = {
            let shared = Arc::clone(&shared);
            runtime.spawn(async move {
                while let Some(message) = control.next().await {
                    shared.control(&message);
                }
            })
        };
        Ok(Node {
            id,
            served,
            shared,
            tasks: vec![serving, controlling],
            runtime: Some(runtime),
        })
    }
}

/// A node: serves the tasks of this program to [`RemotePool`](crate::RemotePool)s
/// on other hosts, running each call on a local knitting pool.
///
/// ```no_run
/// #[knitting::task]
/// fn resize(width: u32) -> u32 { width / 2 }
///
/// knitting::init();
/// let pool = knitting::Pool::builder().processes(4).build()?;
/// let node = knitting_nats::Node::serve(&knitting_nats::Nats::new("nats://127.0.0.1:4222"), pool)?;
/// println!("node {} serves {} tasks", node.id(), node.tasks().len());
/// node.wait();
/// # Ok::<(), knitting::Error>(())
/// ```
pub struct Node {
    id: String,
    served: Vec<&'static TaskInfo>,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Node {
    /// A node with the default settings: see [`NodeBuilder::serve`].
    pub fn serve<R: Runtime>(nats: &Nats, pool: Pool<R>) -> Result<Node, Error> {
        Self::builder(nats).serve(pool)
    }

    /// The settings of a node that connects with `nats`.
    pub fn builder(nats: &Nats) -> NodeBuilder {
        NodeBuilder {
            nats: nats.clone(),
            heartbeat: Duration::from_millis(250),
            max_in_flight: 1024,
        }
    }

    /// The node's id, unique per node: it names the node in clients'
    /// errors.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tasks the node serves.
    pub fn tasks(&self) -> &[&'static TaskInfo] {
        &self.served
    }

    /// Blocks until the node's connection closes for good.
    pub fn wait(mut self) {
        if let Some(runtime) = self.runtime.take() {
            let tasks = std::mem::take(&mut self.tasks);
            runtime.block_on(async {
                for task in tasks {
                    let _ = task.await;
                }
            });
        }
    }

    /// Stops taking calls: the node leaves its subscriptions, cancels the
    /// calls it still runs (their clients get a
    /// [`Cancelled`](ErrorKind::Cancelled) error) and closes its connection.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        for task in &self.tasks {
            task.abort();
        }
        let running: Vec<_> = self.shared.calls.lock().unwrap().drain().collect();
        for (_, control) in running {
            let _ = control.send(Control::Cancel);
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            // Dropped in an async context, which must not block.
            runtime.shutdown_background();
            return;
        }
        let client = self.shared.client.clone();
        runtime.block_on(async {
            // Let the cancelled calls send their errors; a flush waits for
            // a connection, which may be gone for good.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tokio::time::timeout(Duration::from_millis(500), client.flush()).await;
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("tasks", &self.served.len())
            .finish_non_exhaustive()
    }
}

/// What a node's tasks share.
struct Shared {
    client: async_nats::Client,
    id: String,
    heartbeat: Duration,
    /// The calls running, by their call id (the client's id and a count).
    calls: Mutex<HashMap<String, mpsc::UnboundedSender<Control>>>,
    slots: Arc<Semaphore>,
}

impl Shared {
    /// A control message from a client: passed to its call, if it runs.
    fn control(&self, message: &Message) {
        let headers = message.headers.as_ref();
        let Some(call) = header(headers, H_CALL) else {
            return;
        };
        let control = match header(headers, H_CONTROL) {
            Some(C_ABORT) => Control::Abort,
            Some(C_CANCEL) => Control::Cancel,
            Some(C_DEADLINE) => match deadline_of(headers) {
                Some(left) => Control::Deadline(left),
                None => return,
            },
            _ => return,
        };
        if let Some(sender) = self.calls.lock().unwrap().get(call) {
            let _ = sender.send(control);
        }
    }

    async fn send(&self, reply: &str, status: &str, payload: Bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(H_STATUS, status);
        headers.insert(H_NODE, self.id.as_str());
        let reply = reply.to_owned();
        if let Err(e) = self
            .client
            .publish_with_headers(reply, headers, payload)
            .await
        {
            tracing::debug!(target: "knitting_nats::node", "a reply was not sent: {e}");
        }
    }

    async fn fail(&self, reply: &str, err: &Error) {
        self.send(reply, S_ERROR, encoded::encode_error(err).into())
            .await;
    }
}

/// Runs one call from `message` on `pool` and answers it.
async fn run_call<R: Runtime>(shared: &Shared, pool: &Pool<R>, message: Message) {
    let Some(reply) = message.reply.as_ref().map(|s| s.to_string()) else {
        return; // Nobody to answer: a call that cannot end is not run.
    };
    let headers = message.headers.as_ref();
    if header(headers, H_VERSION) != Some(VERSION) {
        let err = Error::new(
            ErrorKind::Protocol,
            format!(
                "the client speaks knitting-nats protocol version {:?}, this node speaks {VERSION}",
                header(headers, H_VERSION).unwrap_or("none")
            ),
        );
        return shared.fail(&reply, &err).await;
    }
    let (Some(task), Some(shape), Some(call_id)) = (
        task_of(&message.subject),
        hex_header(headers, H_SHAPE),
        header(headers, H_CALL),
    ) else {
        let err = Error::new(
            ErrorKind::Protocol,
            "a call without its task, fingerprint or id",
        );
        return shared.fail(&reply, &err).await;
    };
    let call_id = call_id.to_owned();
    let mut request = match Request::new(task, shape, message.payload.to_vec()) {
        Ok(request) => Some(request),
        Err(err) => return shared.fail(&reply, &err).await,
    };
    let (control, mut controls) = mpsc::unbounded_channel();
    shared
        .calls
        .lock()
        .unwrap()
        .insert(call_id.clone(), control);
    let mut deadline = deadline_of(headers).map(|left| Instant::now() + left);
    // The first beat one period from now: awaiting an interval's
    // immediate first tick waits for a turn of tokio's timer (up to a
    // millisecond).
    let first = tokio::time::Instant::now() + shared.heartbeat;
    let mut heartbeat = tokio::time::interval_at(first, shared.heartbeat);
    // A free slot: the call starts before the client hears it was taken
    // (a publish may take a while to return; the messages stay in order).
    let free = Arc::clone(&shared.slots).try_acquire_owned().ok();
    let early = free
        .is_some()
        .then(|| start(pool, request.take(), deadline));
    shared.send(&reply, S_ACCEPTED, Bytes::new()).await;
    // Else wait for a slot, telling the client the call is alive meanwhile.
    let mut aborted = false;
    let slot = if free.is_some() {
        free
    } else {
        loop {
            tokio::select! {
                slot = Arc::clone(&shared.slots).acquire_owned() => break slot.ok(),
                _ = heartbeat.tick() => shared.send(&reply, S_ALIVE, Bytes::new()).await,
                control = controls.recv() => match control {
                    Some(Control::Abort) => aborted = true,
                    Some(Control::Deadline(left)) => deadline = Some(Instant::now() + left),
                    Some(Control::Cancel) | None => break None,
                },
            }
        }
    };
    let Some(_slot) = slot else {
        shared.calls.lock().unwrap().remove(&call_id);
        let err = Error::new(ErrorKind::Cancelled, "the call was cancelled before it ran");
        return shared.fail(&reply, &err).await;
    };
    let mut call = match early {
        Some(call) => call,
        None => start(pool, request.take(), deadline),
    };
    if aborted {
        call.abort();
    }
    let outcome = loop {
        tokio::select! {
            outcome = &mut call => break outcome,
            _ = heartbeat.tick() => shared.send(&reply, S_ALIVE, Bytes::new()).await,
            control = controls.recv() => match control {
                Some(Control::Abort) => call.abort(),
                Some(Control::Deadline(left)) => call = call.timeout(left),
                Some(Control::Cancel) | None => break call.cancel(),
            },
        }
    };
    shared.calls.lock().unwrap().remove(&call_id);
    shared.answer(&reply, outcome).await;
}

impl Shared {
    /// Sends a call's outcome to the client.
    async fn answer(&self, reply: &str, outcome: Result<Vec<u8>, Error>) {
        match outcome {
            Ok(output) => {
                let max = self.client.server_info().max_payload;
                // The headers take a few hundred bytes of the server's limit.
                if output.len() + 512 > max {
                    let err = Error::new(
                        ErrorKind::TooLarge,
                        format!(
                            "the result is {} bytes, over what the NATS server carries \
                             (max_payload {max} bytes, less room for the headers)",
                            output.len()
                        ),
                    );
                    self.fail(reply, &err).await;
                } else {
                    self.send(reply, S_OK, output.into()).await;
                }
            }
            Err(err) => self.fail(reply, &err).await,
        }
    }
}

/// Starts the call of `request` (taken once) on `pool`, with `deadline`.
fn start<R: Runtime>(
    pool: &Pool<R>,
    request: Option<Request>,
    deadline: Option<Instant>,
) -> Call<Vec<u8>> {
    let request = request.expect("a call starts once");
    let call = pool.call_encoded(request);
    match deadline {
        Some(deadline) => call.deadline(deadline),
        None => call,
    }
}

/// A random 64-bit id (the standard library's hasher keys are random per
/// process).
pub(crate) fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}
