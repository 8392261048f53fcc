//! What the Linux guest's busybox userspace prints and reads (images/linux/README.md,
//! "The initramfs"): its shell prompt, the command line of its test workload, and the
//! `SANDVMM-LINUX: PASS NAME key=value ...` lines the workload prints. Shared by
//! tests/linux.rs and the bench's Linux part.

use super::netns::{GUEST_IP, HOST_IP};

/// The prompt of the shell on the console (`sandvmm.mode=shell`).
pub const PROMPT: &str = "sandvmm-guest:/# ";

/// The arguments that boot `kernel` (vmlinux or bzImage from images/out) with the
/// initramfs on `cpus` vCPUs.
pub fn linux_args(kernel: &str, cpus: &str) -> Vec<String> {
    let kernel = crate::image(kernel);
    let initrd = crate::image("initramfs.cpio");
    vec![
        "--kernel".into(),
        kernel.to_str().unwrap().into(),
        "--initrd".into(),
        initrd.to_str().unwrap().into(),
        "--cpus".into(),
        cpus.into(),
    ]
}

/// The steps a workload run from the initramfs passes (smp, serial, and the four
/// network ones; the disk steps need the root on a disk).
pub const STEPS: usize = 6;

/// The kernel command line that runs the workload against the namespace's host side,
/// with the HTTP server of tests/harness/src/http.rs on `http_port`.
pub fn workload_cmdline(http_port: u16) -> String {
    format!(
        "sandvmm.mode=test sandvmm.net={GUEST_IP}/24 sandvmm.host={HOST_IP} \
         sandvmm.http={http_port}"
    )
}

/// The `SANDVMM-LINUX: PASS STEP ...` line in `out`.
pub fn pass_line<'a>(out: &'a str, step: &str) -> Option<&'a str> {
    let prefix = format!("SANDVMM-LINUX: PASS {step} ");
    out.lines().find(|l| l.starts_with(&prefix))
}

/// The value of `key=` in such a line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}
