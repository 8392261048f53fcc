//! An independent interpreter for seccomp's classic BPF, to check that the programs
//! libseccomp compiles do what the policy says without taking libseccomp's word for it
//! (the policy test over every syscall number, and `sandvmm sandbox verify`).
//!
//! [`check`] refuses exactly the programs the kernel refuses when a filter is loaded;
//! [`run`] computes the 32-bit value the loaded filter returns for a [`SeccompData`].
//! They follow these kernel files:
//!
//! - `include/uapi/linux/filter.h`, `include/uapi/linux/bpf_common.h`: the
//!   instruction layout and opcode fields;
//! - `include/uapi/linux/seccomp.h`: `struct seccomp_data`, `SECCOMP_RET_*`;
//! - `net/core/filter.c`: `bpf_check_classic` (jump ranges, constant divisors and
//!   shifts, scratch indices, final RET), `check_load_and_stores` (no scratch word
//!   read before it is written) and `bpf_convert_filter`, which turns the program
//!   into 32-bit eBPF and so defines what it does when it runs;
//! - `kernel/seccomp.c`, `seccomp_check_filter`: the opcodes seccomp allows (no MOD,
//!   no packet loads) and `LD W ABS` only at aligned offsets inside seccomp_data;
//! - `kernel/bpf/core.c`: 32-bit eBPF shifts by a register use its low 5 bits (as
//!   x86's `shl`/`shr` do in the JIT).
//!
//! A and X are `u32` and start at 0 (`bpf_convert_filter` clears them). Scratch
//! memory starts at 0 here; the kernel does not clear it, but it refuses any program
//! that could read a word before writing it, so the difference never shows.

/// `seccomp_data.arch` of x86-64 calls (`include/uapi/linux/audit.h`).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `seccomp_data.arch` of i386 calls (`int 0x80`, also from a 64-bit process).
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// Set in `seccomp_data.nr` for x32 calls, whose arch is x86-64.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

pub const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const SECCOMP_RET_KILL_THREAD: u32 = 0;
pub const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
pub const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
pub const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
pub const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;
pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
/// The action part of a return value.
pub const SECCOMP_RET_ACTION_FULL: u32 = 0xffff_0000;
/// The data part (errno, trap or trace value).
pub const SECCOMP_RET_DATA: u32 = 0x0000_ffff;

// Opcode fields: class (low 3 bits), then size|mode (LD, LDX) or operation (ALU,
// JMP), and the source bit. Sizes other than BPF_W (0) are never allowed.
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const XOR: u16 = 0xa0;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const K: u16 = 0x00;
const X: u16 = 0x08;
/// `BPF_A`, the RET source that returns A.
const A: u16 = 0x10;
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

/// Every opcode `seccomp_check_filter` accepts, in its order. (`BPF_MOD` passes
/// `bpf_check_classic` but is not in this list.)
#[rustfmt::skip]
const ALLOWED: [u16; 41] = [
    LD | ABS, LD | LEN, LDX | LEN, RET | K, RET | A,
    ALU | ADD | K, ALU | ADD | X, ALU | SUB | K, ALU | SUB | X,
    ALU | MUL | K, ALU | MUL | X, ALU | DIV | K, ALU | DIV | X,
    ALU | AND | K, ALU | AND | X, ALU | OR | K, ALU | OR | X,
    ALU | XOR | K, ALU | XOR | X, ALU | LSH | K, ALU | LSH | X,
    ALU | RSH | K, ALU | RSH | X, ALU | NEG,
    LD | IMM, LDX | IMM, MISC | TAX, MISC | TXA, LD | MEM, LDX | MEM, ST, STX,
    JMP | JA, JMP | JEQ | K, JMP | JEQ | X, JMP | JGE | K, JMP | JGE | X,
    JMP | JGT | K, JMP | JGT | X, JMP | JSET | K, JMP | JSET | X,
];

/// `BPF_MAXINSNS`, `BPF_MEMWORDS`, `sizeof(struct seccomp_data)`.
const MAX_INSNS: usize = 4096;
const MEM_WORDS: u32 = 16;
const DATA_LEN: u32 = 64;

/// The input a seccomp filter sees (include/uapi/linux/seccomp.h, struct seccomp_data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// The 64 bytes `LD W ABS` reads: the kernel's layout, native endian.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        b[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        b[8..16].copy_from_slice(&self.instruction_pointer.to_ne_bytes());
        for (chunk, arg) in b[16..].chunks_exact_mut(8).zip(self.args) {
            chunk.copy_from_slice(&arg.to_ne_bytes());
        }
        b
    }
}

/// A program the kernel would refuse to load, or (never after [`check`] passed) one
/// that ran off its end.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BpfError {
    #[error("a seccomp program has 1 to 4096 instructions, not {0}")]
    Length(usize),
    #[error("instruction {pc}: opcode {code:#06x} is not allowed in a seccomp filter")]
    Opcode { pc: usize, code: u16 },
    #[error("instruction {pc}: offset {k} is not a 4-byte-aligned offset inside seccomp_data")]
    LoadOffset { pc: usize, k: u32 },
    #[error("instruction {pc}: scratch memory index {k} is not below 16")]
    ScratchIndex { pc: usize, k: u32 },
    #[error("instruction {pc}: scratch memory word {k} may be read before it is written")]
    ScratchUnset { pc: usize, k: u32 },
    #[error("instruction {pc}: division by the constant 0")]
    DivisionByZero { pc: usize },
    #[error("instruction {pc}: shift by the constant {k}, which is not below 32")]
    Shift { pc: usize, k: u32 },
    #[error("instruction {pc}: jump past the last instruction")]
    Jump { pc: usize },
    #[error("instruction {pc}: the last instruction is not a return")]
    NoReturn { pc: usize },
    #[error("instruction {pc}: ran off the end of the program")]
    RanOffEnd { pc: usize },
}

/// Checks a program the way the kernel does when it is loaded (length 1..=4096, only
/// the opcodes seccomp allows, LD ABS offsets 4-byte aligned and inside seccomp_data,
/// jumps inside the program, last instruction a RET, scratch memory indices < 16 and
/// no word read before written, division by constant zero refused, constant shifts
/// below 32).
pub fn check(program: &[libc::sock_filter]) -> Result<(), BpfError> {
    let len = program.len();
    if len == 0 || len > MAX_INSNS {
        return Err(BpfError::Length(len));
    }
    for (pc, insn) in program.iter().enumerate() {
        let (code, k) = (insn.code, insn.k);
        if !ALLOWED.contains(&code) {
            return Err(BpfError::Opcode { pc, code });
        }
        let after = len - pc - 1; // how far a jump from here may go
        let (class, mode, op) = (code & 0x07, code & 0xe0, code & 0xf0);
        match class {
            LD if mode == ABS && (k >= DATA_LEN || k % 4 != 0) => {
                Err(BpfError::LoadOffset { pc, k })
            }
            LD | LDX if mode == MEM && k >= MEM_WORDS => Err(BpfError::ScratchIndex { pc, k }),
            ST | STX if k >= MEM_WORDS => Err(BpfError::ScratchIndex { pc, k }),
            ALU if code == ALU | DIV | K && k == 0 => Err(BpfError::DivisionByZero { pc }),
            ALU if (code == ALU | LSH | K || code == ALU | RSH | K) && k >= 32 => {
                Err(BpfError::Shift { pc, k })
            }
            JMP if op == JA && k as usize >= after => Err(BpfError::Jump { pc }),
            JMP if op != JA && usize::from(insn.jt.max(insn.jf)) >= after => {
                Err(BpfError::Jump { pc })
            }
            _ => Ok(()),
        }?;
    }
    if program.last().map(|insn| insn.code & 0x07) != Some(RET) {
        return Err(BpfError::NoReturn { pc: len - 1 });
    }
    check_scratch(program)
}

/// `check_load_and_stores`: one forward pass with a bit per scratch word. An
/// instruction starts with what falls through into it, intersected with what every
/// jump to it carries; a jump hands its set to its targets and falls through with
/// every bit set. As in the kernel, a RET also hands its set to the next
/// instruction, so a word stored only on the paths that jump over a RET counts as
/// unset after it.
fn check_scratch(program: &[libc::sock_filter]) -> Result<(), BpfError> {
    let mut incoming = vec![u16::MAX; program.len()];
    let mut valid: u16 = 0;
    for (pc, insn) in program.iter().enumerate() {
        valid &= incoming[pc];
        let (code, k) = (insn.code, insn.k);
        let bit = 1u16.checked_shl(k).unwrap_or(0);
        let mut hand_to = |skip: usize| {
            if let Some(m) = incoming.get_mut(skip.saturating_add(pc + 1)) {
                *m &= valid;
            }
        };
        match code & 0x07 {
            ST | STX => valid |= bit,
            LD | LDX if code & 0xe0 == MEM && valid & bit == 0 => {
                return Err(BpfError::ScratchUnset { pc, k });
            }
            JMP => {
                if code & 0xf0 == JA {
                    hand_to(k as usize);
                } else {
                    hand_to(insn.jt.into());
                    hand_to(insn.jf.into());
                }
                valid = u16::MAX;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs a checked program over `data`; returns the 32-bit seccomp return value
/// (SECCOMP_RET_* action | data). The program is [`check`]ed first.
pub fn run(program: &[libc::sock_filter], data: &SeccompData) -> Result<u32, BpfError> {
    check(program)?;
    let bytes = data.to_bytes();
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; MEM_WORDS as usize]);
    let mut pc = 0;
    while let Some(insn) = program.get(pc) {
        let (code, k) = (insn.code, insn.k);
        let (class, mode, op) = (code & 0x07, code & 0xe0, code & 0xf0);
        let src = if code & X == X { x } else { k };
        // Out-of-range indices and unknown opcodes cannot pass check; they are
        // errors here only so that nothing can panic.
        let here = pc;
        let refused = move || BpfError::Opcode { pc: here, code };
        let word = k as usize;
        pc += 1;
        let loaded = match (class, mode) {
            (LD | LDX, IMM) => k,
            (LD | LDX, LEN) => DATA_LEN,
            (LD | LDX, MEM) => *mem.get(word).ok_or_else(refused)?,
            (LD, ABS) => match bytes.get(word..).and_then(|rest| rest.get(..4)) {
                Some(&[b0, b1, b2, b3]) => u32::from_ne_bytes([b0, b1, b2, b3]),
                _ => return Err(refused()),
            },
            _ => 0,
        };
        match class {
            LD => a = loaded,
            LDX => x = loaded,
            ST => *mem.get_mut(word).ok_or_else(refused)? = a,
            STX => *mem.get_mut(word).ok_or_else(refused)? = x,
            // bpf_convert_filter: "Error with exception code on div/mod by 0.
            // For cBPF programs, this was always return 0."
            ALU if op == DIV && src == 0 => return Ok(0),
            ALU => {
                a = match op {
                    ADD => a.wrapping_add(src),
                    SUB => a.wrapping_sub(src),
                    MUL => a.wrapping_mul(src),
                    DIV => a / src,
                    OR => a | src,
                    AND => a & src,
                    XOR => a ^ src,
                    // Shift by the low 5 bits of X (constants are below 32).
                    LSH => a.wrapping_shl(src),
                    RSH => a.wrapping_shr(src),
                    NEG => a.wrapping_neg(),
                    _ => return Err(refused()),
                }
            }
            JMP if op == JA => pc = pc.saturating_add(word),
            JMP => {
                let taken = match op {
                    JEQ => a == src,
                    JGT => a > src,
                    JGE => a >= src,
                    JSET => a & src != 0,
                    _ => return Err(refused()),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            RET => return Ok(if code & A == A { a } else { k }),
            MISC if op == TXA => a = x,
            MISC => x = a,
            _ => return Err(refused()),
        }
    }
    Err(BpfError::RanOffEnd { pc })
}

/// What a seccomp return value asks the kernel to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    KillProcess,
    KillThread,
    /// SIGSYS, with the data in `si_errno`.
    Trap(u16),
    /// Fail the call with this errno (the kernel caps it at 4095).
    Errno(u16),
    /// Notify a ptrace tracer; without one the call fails with ENOSYS.
    Trace(u16),
    Log,
    Allow,
    /// Any other value (the whole of it). The kernel kills the process for an action
    /// it does not know; `SECCOMP_RET_USER_NOTIF`, which sandvmm never uses, also
    /// lands here.
    Unknown(u32),
}

impl Action {
    /// Decodes a filter's return value.
    pub fn from_ret(ret: u32) -> Action {
        let data = (ret & SECCOMP_RET_DATA) as u16;
        match ret & SECCOMP_RET_ACTION_FULL {
            SECCOMP_RET_KILL_PROCESS => Action::KillProcess,
            SECCOMP_RET_KILL_THREAD => Action::KillThread,
            SECCOMP_RET_TRAP => Action::Trap(data),
            SECCOMP_RET_ERRNO => Action::Errno(data),
            SECCOMP_RET_TRACE => Action::Trace(data),
            SECCOMP_RET_LOG => Action::Log,
            SECCOMP_RET_ALLOW => Action::Allow,
            _ => Action::Unknown(ret),
        }
    }
}

/// libseccomp's names, as in its pseudo filter code: `KILL_PROCESS`, `ERRNO(1)`, ...
impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::KillProcess => f.write_str("KILL_PROCESS"),
            Action::KillThread => f.write_str("KILL_THREAD"),
            Action::Trap(data) => write!(f, "TRAP({data})"),
            Action::Errno(errno) => write!(f, "ERRNO({errno})"),
            Action::Trace(data) => write!(f, "TRACE({data})"),
            Action::Log => f.write_str("LOG"),
            Action::Allow => f.write_str("ALLOW"),
            Action::Unknown(ret) => write!(f, "unknown action {ret:#010x}"),
        }
    }
}

#[cfg(test)]
#[path = "bpf_tests.rs"]
mod tests;
