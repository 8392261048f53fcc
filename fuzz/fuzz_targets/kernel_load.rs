//! Kernel image loading: arbitrary bytes presented as the `--kernel` file go through
//! the whole of `vmm::boot::load_guest` (format detection, the ELF and bzImage
//! loaders, the initrd placement under the bzImage's limit, the command line, the
//! zero page, boot tables and MP table). Any input must give `Ok` or an error, never
//! a panic.
//!
//! Input: 5 option bytes, then the kernel file.
//!   [0] bit 0: 64 MiB of guest RAM instead of 16 MiB
//!   [1] vCPUs, 1 + (byte % 254)
//!   [2..4] initrd size in bytes, little endian; 0xffff: no initrd (0 is the
//!          zero-length initrd, an error)
//!   [4] virtio-mmio devices announced on the command line, byte % 20

#![no_main]

use std::cell::RefCell;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use vm_memory::GuestMemoryMmap;
use vmm::config::{JailConfig, SandboxConfig, SerialTarget, VmConfig};
use vmm::host::Host;
use vmm::memory::create_guest_memory;
use vmm::virtio_slot::MmioSlot;

const SMALL: u64 = 16 << 20;
const LARGE: u64 = 64 << 20;

/// An in-memory file, named through /proc/self/fd as sandvmm would open a path.
struct MemFile {
    file: File,
    path: PathBuf,
}

impl MemFile {
    fn new(name: &std::ffi::CStr) -> MemFile {
        // SAFETY: memfd_create with a NUL-terminated name; the fd is owned below.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create failed");
        // SAFETY: fd is a fresh, open fd that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        MemFile { file, path }
    }

    fn set(&mut self, contents: &[u8]) {
        self.file.set_len(0).unwrap();
        self.file.seek(SeekFrom::Start(0)).unwrap();
        self.file.write_all(contents).unwrap();
    }
}

struct State {
    kernel: MemFile,
    initrd: MemFile,
    small: GuestMemoryMmap,
    large: GuestMemoryMmap,
}

thread_local! {
    // Guest memory is mapped once: loading only writes it, and what an earlier run
    // left there does not change what the loader decides.
    static STATE: RefCell<State> = RefCell::new(State {
        kernel: MemFile::new(c"kernel"),
        initrd: MemFile::new(c"initrd"),
        small: create_guest_memory(SMALL).unwrap(),
        large: create_guest_memory(LARGE).unwrap(),
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((opts, kernel)) = data.split_first_chunk::<5>() else {
        return;
    };
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let s = &mut *s;
        s.kernel.set(kernel);
        let initrd_len = u16::from_le_bytes([opts[2], opts[3]]);
        let initrd = (initrd_len != 0xffff).then(|| {
            s.initrd.set(&vec![0x5a; usize::from(initrd_len)]);
            s.initrd.path.clone()
        });
        let (mem, memory_bytes) = if opts[0] & 1 != 0 {
            (&s.large, LARGE)
        } else {
            (&s.small, SMALL)
        };
        let config = VmConfig {
            kernel: s.kernel.path.clone(),
            initrd,
            extra_cmdline: Some("scenario=hello".into()),
            vcpus: 1 + opts[1] % 254,
            memory_bytes,
            serial: SerialTarget::None,
            nets: Vec::new(),
            disks: Vec::new(),
            host_adapt: true,
            sandbox: SandboxConfig {
                mode: sandbox::Mode::Off,
                profile: sandbox::Profile::Default,
                optimize: sandbox::Optimize::Priority,
                policy_file: None,
                report_file: None,
            },
            jail: JailConfig {
                enabled: false,
                user: Default::default(),
            },
            demo_escape: false,
            snapshot: None,
            restore: None,
        };
        let slots: Vec<MmioSlot> = (0..usize::from(opts[4] % 20))
            .map(vmm::virtio_slot::mmio_slot)
            .collect();
        let host = Host {
            emulating: opts[0] & 2 != 0,
            adapt: true,
        };
        let _ = vmm::boot::load_guest(mem, &config, &host, &slots);
    });
});
