//! Network namespaces for the network tests: each test makes its own namespace with a
//! tap in it (host side 10.0.0.1/24), runs sandvmm and its traffic inside, and deletes
//! the namespace when done. No traffic ever leaves the namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Host side of the tap.
pub const HOST_IP: &str = "10.0.0.1";
/// What the guest is told to use.
pub const GUEST_IP: &str = "10.0.0.2";
/// Tap name inside every namespace.
pub const TAP: &str = "tap0";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// A network namespace holding tap0, deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    /// Creates the namespace with lo and an unused tap0 up (10.0.0.1/24). With
    /// `create_tap` false the tap is left for sandvmm or the test to create.
    pub fn new(create_tap: bool) -> NetNs {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "sbx{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );
        assert!(
            ip(&["netns", "add", &name]),
            "cannot create network namespace {name} (root needed)"
        );
        let ns = NetNs { name };
        assert!(ip(&["-n", &ns.name, "link", "set", "lo", "up"]));
        if create_tap {
            ns.add_tap();
        }
        ns
    }

    /// Creates tap0 (persistent, so sandvmm attaches to it) with the host address.
    pub fn add_tap(&self) {
        assert!(ip(&[
            "-n", &self.name, "tuntap", "add", "dev", TAP, "mode", "tap"
        ]));
        self.configure_tap();
    }

    /// Creates tap0 owned by `user`, who may then attach to it without privileges.
    pub fn add_tap_for(&self, user: &str) {
        assert!(ip(&[
            "-n", &self.name, "tuntap", "add", "dev", TAP, "mode", "tap", "user", user
        ]));
        self.configure_tap();
    }

    /// Gives tap0 its address and brings it up.
    pub fn configure_tap(&self) {
        assert!(ip(&[
            "-n",
            &self.name,
            "addr",
            "add",
            &format!("{HOST_IP}/24"),
            "dev",
            TAP
        ]));
        assert!(ip(&["-n", &self.name, "link", "set", TAP, "up"]));
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `f` on a thread that has joined the namespace, so sockets it opens (and
    /// processes it spawns) live there.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).expect("namespace file");
                // SAFETY: setns on an open namespace fd changes only this thread.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Opens tap `name` in the calling thread's namespace with IFF_TAP|IFF_NO_PI|
/// IFF_VNET_HDR, as a management layer would before handing the fd to sandvmm. The fd
/// is inheritable (no O_CLOEXEC).
pub fn open_tap_fd(name: &str) -> std::io::Result<i32> {
    use devices::virtio::net::tap::{ifreq, TAP_FLAGS};
    // SAFETY: opening a device node by a NUL-terminated path.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut req = ifreq(name, TAP_FLAGS);
    // SAFETY: TUNSETIFF on a tun fd with a valid ifreq.
    if unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut req) } < 0 {
        let err = std::io::Error::last_os_error();
        // SAFETY: closing the fd opened above.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    Ok(fd)
}
