//! Trap mode's SIGSYS handler: names the blocked system call and the thread, then ends
//! the process with a status of its own (the 2012 review's third ask).
//!
//! It runs on the thread whose filter trapped, so it does nothing the filters might
//! refuse and nothing that is not async-signal-safe: the syscall names and the thread
//! names are prepared before any filter exists, the line is formatted into a stack
//! buffer, and the only system calls are `write(2, …)` and `exit_group`, and those of
//! the VMM's exit hook ([`set_exit_hook`]: it writes out buffered guest output).
//!
//! ```text
//! sandbox: blocked syscall execve (59) in thread vcpu0, args [0x7f1c2c0, 0x0, 0x0, 0x0, 0x0, 0x0]
//! sandbox: blocked i386 syscall getpid (20) in thread vcpu0, args [...]
//! sandbox: blocked x32 syscall getpid (0x40000027) in thread sandvmm, args [...]
//! ```
//!
//! A call through another ABI (`int 0x80`, or an x32 number) meets the mode's action
//! too (the filters' bad-arch action), and the report names the ABI.
//!
//! With `--sandbox-report FILE` the same report also goes to that file as one JSON
//! object on one line, for tooling ([`set_report_file`]; the format is in
//! docs/SANDBOX.md):
//!
//! ```text
//! {"syscall":"execve","nr":59,"abi":"x86_64","thread":"vcpu0","args":[8192,0,0,0,0,0],"mode":"trap","policy":{...}}
//! ```

use std::cell::Cell;
use std::os::fd::RawFd;
use std::sync::OnceLock;

use libseccomp::{ScmpArch, ScmpSyscall};

/// Exit status after a trapped call (a shell shows it as is; enforce mode's SIGSYS
/// kill shows as 159).
pub const TRAP_EXIT_STATUS: i32 = 100;
/// Syscall numbers covered by the name table (x86_64 numbers are below 512).
const NAMED_SYSCALLS: usize = 512;
const NAME_LEN: usize = 24;
/// Room for a report: the JSON form with its context is the longest.
const LINE_LEN: usize = 1024;
/// The longest context [`set_report_file`] takes, so that every report fits a line.
pub const MAX_CONTEXT_LEN: usize = 640;

/// `AUDIT_ARCH_*` values of the ABIs an x86_64 process can call the kernel through.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// The bit that marks an x32 system call number.
const X32_SYSCALL_BIT: i32 = 0x4000_0000;

/// Syscall names by number: x86_64's, then i386's.
static SYSCALL_NAMES: OnceLock<[Vec<[u8; NAME_LEN]>; 2]> = OnceLock::new();

/// The `--sandbox-report` file and the JSON members every report in it carries.
static REPORT_FILE: OnceLock<(RawFd, Vec<u8>)> = OnceLock::new();

/// What the handler runs after its report and before `_exit` ([`set_exit_hook`]).
static EXIT_HOOK: OnceLock<fn()> = OnceLock::new();

thread_local! {
    static THREAD_NAME: Cell<[u8; 16]> = const { Cell::new(*b"unknown\0\0\0\0\0\0\0\0\0") };
}

/// Records the calling thread's name for reports; call before installing its filter.
pub fn set_thread_name(name: &str) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    THREAD_NAME.with(|c| c.set(buf));
}

fn syscall_names() -> &'static [Vec<[u8; NAME_LEN]>; 2] {
    let table = |arch: ScmpArch| {
        (0..NAMED_SYSCALLS as i32)
            .map(|nr| {
                let mut buf = [0u8; NAME_LEN];
                if let Ok(name) = ScmpSyscall::from(nr).get_name_by_arch(arch) {
                    let n = name.len().min(NAME_LEN);
                    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
                }
                buf
            })
            .collect()
    };
    SYSCALL_NAMES.get_or_init(|| [table(ScmpArch::X8664), table(ScmpArch::X86)])
}

/// Errors setting up the report file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the report's context is {0} bytes, more than {MAX_CONTEXT_LEN}")]
    TooLong(usize),
    #[error("a report file is already set")]
    AlreadySet,
    #[error("an exit hook is already set")]
    HookAlreadySet,
}

/// Also writes every trap report to `fd`, as a JSON object ending in `context`: JSON
/// members (`"mode":"trap","policy":{...}`) that describe the run. Call before any
/// filter; `fd` must be one of the `$stderr` facts so that every thread may write it.
pub fn set_report_file(fd: RawFd, context: &str) -> Result<(), ReportError> {
    if context.len() > MAX_CONTEXT_LEN {
        return Err(ReportError::TooLong(context.len()));
    }
    REPORT_FILE
        .set((fd, context.as_bytes().to_vec()))
        .map_err(|_| ReportError::AlreadySet)
}

/// Has the handler call `hook` after its report, just before the process exits: the
/// VMM writes out guest output it still buffers. The hook runs in the signal handler,
/// on the thread whose call was blocked, under that thread's filter: it must be
/// async-signal-safe, never wait for a lock, and make no call outside both threads'
/// policies (a blocked call there is a kill: SIGSYS is blocked in its own handler).
/// Call before any filter; a second hook is refused.
pub fn set_exit_hook(hook: fn()) -> Result<(), ReportError> {
    EXIT_HOOK.set(hook).map_err(|_| ReportError::HookAlreadySet)
}

/// Installs the SIGSYS handler for trap mode. Call once, before any filter.
pub fn install_trap_handler() -> std::io::Result<()> {
    syscall_names();
    // SAFETY: a zeroed sigaction is valid; we fill in the handler and flags.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigsys as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: installs a handler for SIGSYS; `action` is fully initialised.
    if unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A fixed-size line buffer, formatted without allocating.
struct Line {
    buf: [u8; LINE_LEN],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line {
            buf: [0; LINE_LEN],
            len: 0,
        }
    }

    fn text(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == 0 {
                break;
            }
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn push_dec(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn push_hex(&mut self, v: u64) {
        self.push(b"0x");
        let mut started = false;
        for shift in (0..16).rev() {
            let nibble = ((v >> (shift * 4)) & 0xf) as u8;
            if nibble != 0 || started || shift == 0 {
                started = true;
                self.push(&[b"0123456789abcdef"[nibble as usize]]);
            }
        }
    }
}

/// What a trapped call was: its ABI, its name and number as the report shows them.
struct Call<'a> {
    /// `""` for x86_64, else the ABI and a space.
    abi: &'static [u8],
    name: &'a [u8],
    nr: i32,
    x32: bool,
}

fn decode(nr: i32, arch: u32) -> Call<'static> {
    let x32 = arch == AUDIT_ARCH_X86_64 && nr & X32_SYSCALL_BIT != 0;
    let (table, abi): (usize, &'static [u8]) = match arch {
        AUDIT_ARCH_I386 => (1, b"i386 "),
        AUDIT_ARCH_X86_64 if x32 => (0, b"x32 "),
        AUDIT_ARCH_X86_64 => (0, b""),
        _ => (usize::MAX, b"foreign-ABI "),
    };
    let index = (nr & !X32_SYSCALL_BIT) as usize;
    let name: &'static [u8] = match syscall_names_if_ready().and_then(|t| t.get(table)?.get(index))
    {
        Some(name) if name[0] != 0 => name,
        _ => b"unknown",
    };
    Call { abi, name, nr, x32 }
}

impl Line {
    fn push_nr(&mut self, call: &Call<'_>) {
        if call.x32 {
            self.push_hex(call.nr as u64);
        } else {
            self.push_dec(call.nr as u32 as u64);
        }
    }
}

/// Builds the report line.
fn format_report(nr: i32, arch: u32, thread: &[u8], args: [u64; 6]) -> Line {
    let mut line = Line::new();
    let call = decode(nr, arch);
    line.push(b"sandbox: blocked ");
    line.push(call.abi);
    line.push(b"syscall ");
    line.push(call.name);
    line.push(b" (");
    line.push_nr(&call);
    line.push(b") in thread ");
    line.push(thread);
    line.push(b", args [");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            line.push(b", ");
        }
        line.push_hex(*a);
    }
    line.push(b"]\n");
    line
}

/// Builds the JSON report. Names and thread names are plain ASCII identifiers (the
/// syscall tables', and the thread names sandvmm gives), so nothing needs escaping.
fn format_json(nr: i32, arch: u32, thread: &[u8], args: [u64; 6], context: &[u8]) -> Line {
    let mut line = Line::new();
    let call = decode(nr, arch);
    line.push(b"{\"syscall\":\"");
    line.push(call.name);
    line.push(b"\",\"nr\":");
    line.push_dec(call.nr as u32 as u64);
    line.push(b",\"abi\":\"");
    match call.abi {
        b"" => line.push(b"x86_64"),
        abi => line.push(&abi[..abi.len() - 1]),
    }
    line.push(b"\",\"thread\":\"");
    line.push(thread);
    line.push(b"\",\"args\":[");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            line.push(b",");
        }
        line.push_dec(*a);
    }
    line.push(b"]");
    if !context.is_empty() {
        line.push(b",");
        line.push(context);
    }
    line.push(b"}\n");
    line
}

fn syscall_names_if_ready() -> Option<&'static [Vec<[u8; NAME_LEN]>; 2]> {
    SYSCALL_NAMES.get()
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSYS with SA_SIGINFO; the
    // `_sigsys` member (call address, syscall number, arch) starts at byte 16.
    let (nr, arch) = unsafe {
        let sigsys = info.cast::<u8>().add(16);
        (*sigsys.add(8).cast::<i32>(), *sigsys.add(12).cast::<u32>())
    };
    // SAFETY: with SA_SIGINFO the third argument is the interrupted ucontext.
    let gregs = unsafe { &(*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    // The argument registers of the ABI the call came through.
    let regs = if arch == AUDIT_ARCH_I386 {
        [
            libc::REG_RBX,
            libc::REG_RCX,
            libc::REG_RDX,
            libc::REG_RSI,
            libc::REG_RDI,
            libc::REG_RBP,
        ]
    } else {
        [
            libc::REG_RDI,
            libc::REG_RSI,
            libc::REG_RDX,
            libc::REG_R10,
            libc::REG_R8,
            libc::REG_R9,
        ]
    };
    let args = regs.map(|r| gregs[r as usize] as u64);
    let thread = THREAD_NAME.with(|c| c.get());
    let line = format_report(nr, arch, &thread, args);
    // SAFETY: write is async-signal-safe; the buffer is valid for `len`.
    unsafe { libc::write(2, line.text().as_ptr().cast(), line.len) };
    if let Some((fd, context)) = REPORT_FILE.get() {
        let json = format_json(nr, arch, &thread, args, context);
        // SAFETY: as above; the fd is the report file, open for the whole run.
        unsafe { libc::write(*fd, json.text().as_ptr().cast(), json.len) };
    }
    // After the report, so that a hook that fails cannot take the report with it.
    if let Some(hook) = EXIT_HOOK.get() {
        hook();
    }
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(TRAP_EXIT_STATUS) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_format() {
        syscall_names();
        let line = format_report(
            59,
            AUDIT_ARCH_X86_64,
            b"vcpu0\0",
            [0x1000, 0, 7, 0xffff_ffff_ffff_ffff, 0, 0],
        );
        assert_eq!(
            std::str::from_utf8(line.text()).unwrap(),
            "sandbox: blocked syscall execve (59) in thread vcpu0, args [0x1000, 0x0, 0x7, 0xffffffffffffffff, 0x0, 0x0]\n"
        );
    }

    #[test]
    fn other_abis_are_named() {
        syscall_names();
        let text = |nr, arch| {
            let line = format_report(nr, arch, b"vcpu0", [0; 6]);
            String::from_utf8(line.text().to_vec()).unwrap()
        };
        assert!(text(20, AUDIT_ARCH_I386)
            .starts_with("sandbox: blocked i386 syscall getpid (20) in thread vcpu0"));
        assert!(text(39 | X32_SYSCALL_BIT, AUDIT_ARCH_X86_64)
            .starts_with("sandbox: blocked x32 syscall getpid (0x40000027) in thread vcpu0"));
        assert!(text(1, 0xdead).starts_with("sandbox: blocked foreign-ABI syscall unknown (1)"));
    }

    #[test]
    fn json_reports_carry_the_call_and_the_context() {
        syscall_names();
        let json = |nr, arch| {
            let line = format_json(
                nr,
                arch,
                b"vcpu0\0",
                [1, 2, 3, 4, 5, u64::MAX],
                b"\"mode\":\"trap\"",
            );
            String::from_utf8(line.text().to_vec()).unwrap()
        };
        assert_eq!(
            json(59, AUDIT_ARCH_X86_64),
            "{\"syscall\":\"execve\",\"nr\":59,\"abi\":\"x86_64\",\"thread\":\"vcpu0\",\"args\":[1,2,3,4,5,18446744073709551615],\"mode\":\"trap\"}\n"
        );
        assert!(json(20, AUDIT_ARCH_I386)
            .starts_with("{\"syscall\":\"getpid\",\"nr\":20,\"abi\":\"i386\""));
        assert!(json(999, AUDIT_ARCH_X86_64).starts_with("{\"syscall\":\"unknown\",\"nr\":999,"));
        let longest = format_json(
            X32_SYSCALL_BIT | 511,
            0xdead,
            b"sandvmm-longest",
            [u64::MAX; 6],
            &[b'x'; MAX_CONTEXT_LEN],
        );
        assert!(longest.text().ends_with(b"}\n"), "a full report fits");
    }

    #[test]
    fn unknown_numbers_are_named_so() {
        syscall_names();
        let line = format_report(999, AUDIT_ARCH_X86_64, b"sandvmm", [0; 6]);
        assert!(std::str::from_utf8(line.text())
            .unwrap()
            .contains("unknown (999)"));
    }
}
