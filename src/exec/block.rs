//! Running one future to its end on the current thread: an async task
//! called where no worker's executor runs it (on the caller's thread, the
//! inline lane).

use std::{
    future::Future,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Wake, Waker},
};

use crate::sync::thread;

/// Wakes the thread that blocks on a future.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it is ready, parking in between.
/// With the `tokio` feature, inside a tokio runtime (the one the thread is
/// in already, or one of this thread's own).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    #[cfg(feature = "tokio")]
    if tokio::runtime::Handle::try_current().is_err() {
        return with_own_runtime(future);
    }
    park_on(future)
}

fn park_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        thread::park();
    }
}

#[cfg(feature = "tokio")]
fn with_own_runtime<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok();
    }
    RUNTIME.with(|rt| match rt {
        Some(rt) => rt.block_on(future),
        None => park_on(future),
    })
}
