//! Time: the shared clock every deadline is measured on, and the one timer
//! thread that fires deadlines and hard time limits.

pub(crate) mod clock;
pub(crate) mod timer;
