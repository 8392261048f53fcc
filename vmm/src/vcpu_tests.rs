//! Unit tests of `vcpu.rs`.
use super::*;
use std::sync::Mutex;

use devices::bus::BusDevice;

struct Reg(u8);

impl BusDevice for Reg {
    fn read(&mut self, _: u64, _: u64, data: &mut [u8]) {
        data.fill(self.0);
    }
    fn write(&mut self, _: u64, _: u64, data: &[u8]) {
        self.0 = data[data.len() - 1];
    }
}

fn buses() -> (Bus, Bus, Arc<Mutex<Reg>>) {
    let reg = Arc::new(Mutex::new(Reg(7)));
    let mut pio = Bus::new();
    pio.insert(reg.clone(), 0x3f8, 8).unwrap();
    let mut mmio = Bus::new();
    mmio.insert(reg.clone(), 0xd000_0000, 0x1000).unwrap();
    (pio, mmio, reg)
}

#[test]
fn port_io_goes_through_the_bus() {
    let (pio, mmio, reg) = buses();
    let out = [0x42u8];
    assert_eq!(
        handle_exit(VcpuExit::IoOut(0x3f8, &out), &pio, &mmio).unwrap(),
        VcpuAction::Continue
    );
    assert_eq!(reg.lock().unwrap().0, 0x42);
    let mut inb = [0u8];
    handle_exit(VcpuExit::IoIn(0x3fd, &mut inb), &pio, &mmio).unwrap();
    assert_eq!(inb, [0x42]);
}

#[test]
fn unclaimed_reads_float_high() {
    let (pio, mmio, _) = buses();
    let mut data = [0u8; 4];
    handle_exit(VcpuExit::IoIn(0x80, &mut data), &pio, &mmio).unwrap();
    assert_eq!(data, [0xff; 4]);
    let mut data = [0u8; 2];
    handle_exit(VcpuExit::MmioRead(0xfeb0_0000, &mut data), &pio, &mmio).unwrap();
    assert_eq!(data, [0xff; 2]);
    // Unclaimed writes are dropped, not fatal.
    assert_eq!(
        handle_exit(VcpuExit::IoOut(0x80, &[1]), &pio, &mmio).unwrap(),
        VcpuAction::Continue
    );
}

/// issue 15: a 16-bit `out` of 0xfe87 to port 0x64 used to send both bytes to the
/// i8042's command port, and 0xfe there resets the machine.
#[test]
fn a_wide_port_write_is_split_across_ports() {
    use devices::i8042::{I8042, I8042_BASE, I8042_LEN};
    use devices::EventFdTrigger;
    let reset = EventFdTrigger::new().unwrap();
    let reset_wait = reset.try_clone().unwrap();
    let (mut pio, mmio, reg) = buses();
    pio.insert(
        Arc::new(Mutex::new(I8042::new(reset))),
        I8042_BASE,
        I8042_LEN,
    )
    .unwrap();
    let word = 0xfe87u16.to_le_bytes();
    handle_exit(VcpuExit::IoOut(0x64, &word), &pio, &mmio).unwrap();
    assert!(reset_wait.read().is_err(), "the VM would have reset");
    // A 32-bit read at 0x3fe: two bytes of the register at 0x3f8..0x400, then two
    // unclaimed ports.
    let mut data = [0u8; 4];
    handle_exit(VcpuExit::IoIn(0x3fe, &mut data), &pio, &mmio).unwrap();
    let r = reg.lock().unwrap().0;
    assert_eq!(data, [r, r, UNCLAIMED_READ, UNCLAIMED_READ]);
}

#[test]
fn mmio_goes_through_the_bus() {
    let (pio, mmio, reg) = buses();
    handle_exit(VcpuExit::MmioWrite(0xd000_0010, &[1, 2, 3, 9]), &pio, &mmio).unwrap();
    assert_eq!(reg.lock().unwrap().0, 9);
}

#[test]
fn guest_endings() {
    let (pio, mmio, _) = buses();
    let stop = |e| handle_exit(e, &pio, &mmio).unwrap();
    assert_eq!(
        stop(VcpuExit::Shutdown),
        VcpuAction::Stop(StopReason::TripleFault)
    );
    assert_eq!(
        stop(VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_RESET, &[])),
        VcpuAction::Stop(StopReason::Reset)
    );
    assert_eq!(
        stop(VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_SHUTDOWN, &[])),
        VcpuAction::Stop(StopReason::PowerOff)
    );
    assert_eq!(stop(VcpuExit::Hlt), VcpuAction::Continue);
}

#[test]
fn failures_are_errors() {
    let (pio, mmio, _) = buses();
    let err = |e| handle_exit(e, &pio, &mmio).unwrap_err();
    assert!(matches!(
        err(VcpuExit::InternalError),
        VcpuError::Internal(_)
    ));
    assert!(matches!(
        err(VcpuExit::FailEntry(0x21, 0)),
        VcpuError::FailEntry(0x21)
    ));
    assert!(matches!(
        err(VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_CRASH, &[])),
        VcpuError::GuestCrash
    ));
    assert!(matches!(
        err(VcpuExit::Debug(Default::default())),
        VcpuError::UnexpectedExit(_)
    ));
}

#[test]
fn instruction_bytes_are_read_as_hex() {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x2000)]).unwrap();
    mem.write_slice(&[0x0f, 0x01, 0xca], GuestAddress(0x100))
        .unwrap();
    let text = read_insn(&mem, 0x100).unwrap();
    assert!(text.starts_with("0f 01 ca 00"));
    assert_eq!(text.split(' ').count(), MAX_INSN_LEN);
    // Near the end of memory, fewer bytes.
    assert_eq!(read_insn(&mem, 0x1ffe).unwrap().split(' ').count(), 2);
    assert_eq!(read_insn(&mem, 0x3000), None);
}
