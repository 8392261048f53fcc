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

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// An `EventFd` that vm-superio devices can use as an interrupt or event line.
///
/// Writing to it either raises a guest interrupt (when registered as an irqfd) or
/// wakes the VMM's event loop (for example the i8042 reset line).
#[derive(Debug)]
pub struct EventFdTrigger(EventFd);

impl EventFdTrigger {
    /// Creates a new non-blocking trigger.
    pub fn new() -> io::Result<Self> {
        Ok(Self(EventFd::new(EFD_NONBLOCK)?))
    }

    /// Returns a second handle on the same eventfd, for the side that waits on it.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self(self.0.try_clone()?))
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
