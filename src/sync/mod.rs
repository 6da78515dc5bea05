//! The one door to atomics, cells and threads: std in production, loom under
//! `--cfg knitting_loom`, so the lock-free code can be model-checked unchanged.

pub(crate) mod countdown;

#[cfg(knitting_loom)]
pub(crate) use loom::{
    sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    sync::Mutex,
    thread,
};
#[cfg(not(knitting_loom))]
pub(crate) use std::{
    sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    sync::Mutex,
    thread,
};

/// A cell reached only through closures, so that loom can track every access.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(
    #[cfg(knitting_loom)] loom::cell::UnsafeCell<T>,
    #[cfg(not(knitting_loom))] std::cell::UnsafeCell<T>,
);

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(knitting_loom)]
        return Self(loom::cell::UnsafeCell::new(value));
        #[cfg(not(knitting_loom))]
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared raw pointer to the contents.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(knitting_loom)]
        return self.0.with(f);
        #[cfg(not(knitting_loom))]
        f(self.0.get())
    }

    /// Runs `f` with an exclusive raw pointer to the contents.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(knitting_loom)]
        return self.0.with_mut(f);
        #[cfg(not(knitting_loom))]
        f(self.0.get())
    }
}

/// One turn of a busy-wait loop: a CPU hint in production; under loom a
/// yield, so the model checker lets the other threads make progress.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(knitting_loom)]
    loom::thread::yield_now();
    #[cfg(not(knitting_loom))]
    std::hint::spin_loop();
}

/// The waker of a thread that parks until it is woken (a blocking wait on
/// a call, a stream's reader or writer).
pub(crate) struct ThreadWaker(pub(crate) std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}
