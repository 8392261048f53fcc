//! Device models for sandvmm.
//!
//! The devices here know nothing about KVM: they are register state machines that
//! sit on a [`bus::Bus`] and signal interrupts and events through [`EventFdTrigger`]s,
//! which the VMM wires to KVM irqfds. That keeps every device unit-testable without
//! `/dev/kvm` (the vm-superio approach).

pub mod bus;
pub mod i8042;
pub mod serial;
pub mod virtio;

use std::io;
use std::ops::Deref;
use std::sync::Arc;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Flags of every eventfd sandvmm creates: never blocking, and never inherited by a
/// program the script helper runs.
pub const EVENTFD_FLAGS: i32 = EFD_NONBLOCK | libc::EFD_CLOEXEC;

/// An `EventFd` that vm-superio devices can use as an interrupt or event line.
///
/// Writing to it either raises a guest interrupt (when registered as an irqfd) or
/// wakes the VMM's event loop (for example the i8042 reset line). Clones share one
/// fd, so that each line is one fd number the sandbox can pin.
#[derive(Debug, Clone)]
pub struct EventFdTrigger(Arc<EventFd>);

impl EventFdTrigger {
    /// Creates a new non-blocking, close-on-exec trigger.
    pub fn new() -> io::Result<Self> {
        Ok(Self(Arc::new(EventFd::new(EVENTFD_FLAGS)?)))
    }

    /// Returns a second handle on the same eventfd, for the side that waits on it.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(self.clone())
    }
}

impl vm_superio::Trigger for EventFdTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

impl Deref for EventFdTrigger {
    type Target = EventFd;

    fn deref(&self) -> &EventFd {
        &self.0
    }
}
