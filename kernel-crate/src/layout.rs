//! Kernel layout facts that vary per build, described rather than hard-coded.

/// Where things sit in `struct pt_regs` and how the frame-record chain ends, for one kernel build.
/// Offsets are from the start of `pt_regs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    pub pt_regs_size: u64,
    pub x29: u64,
    pub x30: u64,
    pub sp: u64,
    pub pc: u64,
    pub pstate: u64,
    /// `pt_regs.stackframe`: the frame record the entry code chains through.
    pub stackframe: u64,
    /// v6.13+: `stackframe` is a `frame_record_meta` {fp, lr, type}; a {0, 0} record carries a
    /// type at +16. Before: a plain {x29, ELR} record, {0, 0} only as the final record.
    pub meta_records: bool,
    /// Virtual address bits, for PAC stripping.
    pub va_bits: u32,
}

/// `frame_record_meta.type` values (v6.13+).
pub const META_NONE: u64 = 0;
pub const META_FINAL: u64 = 1;
pub const META_PT_REGS: u64 = 2;

impl KernelLayout {
    /// v6.12 and earlier: 336-byte pt_regs, `u64 stackframe[2]` at 304.
    pub const V6_12: KernelLayout = KernelLayout {
        pt_regs_size: 336,
        x29: 232,
        x30: 240,
        sp: 248,
        pc: 256,
        pstate: 264,
        stackframe: 304,
        meta_records: false,
        va_bits: 48,
    };
    /// v6.13 to v6.17: `struct frame_record_meta stackframe` at 296 (type at 312).
    pub const V6_13: KernelLayout = KernelLayout { stackframe: 296, meta_records: true, ..KernelLayout::V6_12 };
    /// After the generic-IRQ-entry conversion: 320-byte pt_regs. The two fields it drops
    /// (`lockdep_hardirqs`, `exit_rcu`) sit after `stackframe`, which stays at 296.
    pub const GENERIC_ENTRY: KernelLayout = KernelLayout { pt_regs_size: 320, ..KernelLayout::V6_13 };

    /// Address of `task_pt_regs(task)->stackframe`: pt_regs sits at the top of the task stack.
    pub fn final_record(&self, task_stack_high: u64) -> Option<u64> {
        task_stack_high.checked_sub(self.pt_regs_size)?.checked_add(self.stackframe)
    }
}

/// A user program's signal frame, as Linux (arch/arm64/kernel/signal.c) and qemu-user
/// (linux-user/aarch64/signal.c) lay it out: this is the user ABI (uapi `struct rt_sigframe`,
/// `struct ucontext`, `struct sigcontext`), the same for every kernel. The handler is entered
/// with sp at the `rt_sigframe` {siginfo (128), ucontext}, x29 at a frame record {x29, x30 of
/// the interrupted context} that follows the sigframe (and its variable-size extension records:
/// FPSIMD, SVE, ZA, extra), and x30 at the vDSO's `__kernel_rt_sigreturn`.
pub mod sigframe {
    /// `uc.uc_mcontext` in `rt_sigframe`: siginfo 128 + ucontext's flags 8, link 8, stack 24,
    /// sigmask 8 and its 1024-bit padding 120 = 168, rounded up to the 16-byte alignment of
    /// `sigcontext`: 128 + 176.
    pub const MCONTEXT: u64 = 304;
    /// `sigcontext`: u64 fault_address, u64 regs[31], sp, pc, pstate.
    pub const X29: u64 = MCONTEXT + 8 + 29 * 8;
    pub const X30: u64 = MCONTEXT + 8 + 30 * 8;
    pub const SP: u64 = MCONTEXT + 8 + 31 * 8;
    pub const PC: u64 = MCONTEXT + 8 + 32 * 8;
    pub const PSTATE: u64 = MCONTEXT + 8 + 33 * 8;
    /// `sizeof(struct rt_sigframe)`: the sigcontext's 4096-byte `__reserved` area starts 16-byte
    /// aligned after pstate (MCONTEXT + 288). Both the kernel and qemu always reserve at least
    /// this much before the frame record.
    pub const MIN_SIZE: u64 = MCONTEXT + 288 + 4096;
    /// `mov x8, #139` (`__NR_rt_sigreturn`), `svc #0`: the trampoline's instructions.
    pub const TRAMPOLINE: [u32; 2] = [0xd280_1168, 0xd400_0001];
    /// pstate.M[4:0] of an interrupted user context: EL0t, AArch64.
    pub const MODE_MASK: u64 = 0x1f;
}
