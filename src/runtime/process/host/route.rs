//! A process lane as its calls' handles see it ([`Route`]): a waiting
//! caller takes responses itself while it spins.

use super::*;

impl Route for Lane {
    fn poll(&self) {
        Lane::poll(self);
    }

    fn spin(&self, step: &mut dyn FnMut() -> bool) {
        let shm = self.spin_begin();
        while step() {
            Lane::poll(self);
        }
        self.spin_end(shm);
    }

    fn abort(&self, key: CallKey) {
        self.abort_key(key);
    }

    /// True on this lane's reactor thread (where wakers of its calls run).
    fn is_own_thread(&self) -> bool {
        REACTOR_OF.with(|r| r.get() == std::ptr::from_ref(self).addr())
    }
}
