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
