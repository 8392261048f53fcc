//! x86_64 CPU and platform set-up: the state a vCPU starts in, CPUID, and the MP table.

pub mod cpuid;
pub mod gdt;
pub mod mptable;
pub mod regs;
