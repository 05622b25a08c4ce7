//! The stacks a walk may touch and the one-way rule between them.

/// Kinds of stack, as mainline's `enum stack_type`. A walk may move from one kind to another but
/// never back to a kind it has left (task <- IRQ <- overflow; SDEI; EFI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    Task,
    Irq,
    Overflow,
    SdeiNormal,
    SdeiCritical,
    Efi,
}

impl StackKind {
    /// The number used by the C ABI and the dump note: 0 task, 1 irq, 2 overflow, 3 SDEI normal,
    /// 4 SDEI critical, 5 EFI.
    pub const fn code(self) -> u32 {
        match self {
            StackKind::Task => 0,
            StackKind::Irq => 1,
            StackKind::Overflow => 2,
            StackKind::SdeiNormal => 3,
            StackKind::SdeiCritical => 4,
            StackKind::Efi => 5,
        }
    }

    pub const fn from_code(code: u32) -> Option<StackKind> {
        Some(match code {
            0 => StackKind::Task,
            1 => StackKind::Irq,
            2 => StackKind::Overflow,
            3 => StackKind::SdeiNormal,
            4 => StackKind::SdeiCritical,
            5 => StackKind::Efi,
            _ => return None,
        })
    }

    pub(crate) const fn bit(self) -> u8 {
        match self {
            StackKind::Task => 1,
            StackKind::Irq => 2,
            StackKind::Overflow => 4,
            StackKind::SdeiNormal => 8,
            StackKind::SdeiCritical => 16,
            StackKind::Efi => 32,
        }
    }
}

/// One stack: `[low, high)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackInfo {
    pub low: u64,
    pub high: u64,
    pub kind: StackKind,
}

impl StackInfo {
    /// True when `[addr, addr + size)` lies wholly on this stack (no overflow possible).
    pub fn contains(&self, addr: u64, size: u64) -> bool {
        match addr.checked_add(size) {
            Some(end) => self.low <= addr && end <= self.high,
            None => false,
        }
    }
}

/// The stacks the walked context may use (the task's own, and for the current CPU its IRQ,
/// overflow and SDEI stacks). A blocked task's walk must offer only its task stack.
pub trait Stacks {
    /// The stack holding all of `[addr, addr + size)`, if any.
    fn find(&self, addr: u64, size: u64) -> Option<StackInfo>;
    /// The task stack: its top bounds `task_pt_regs`, where the final frame record lives.
    fn task_stack(&self) -> Option<StackInfo>;
}

/// A fixed list of stacks (simulator, tests, and kernels that gather the bounds up front).
#[derive(Clone, Copy, Debug)]
pub struct StackList<'a> {
    pub stacks: &'a [StackInfo],
}

impl Stacks for StackList<'_> {
    fn find(&self, addr: u64, size: u64) -> Option<StackInfo> {
        self.stacks.iter().copied().find(|s| s.contains(addr, size))
    }

    fn task_stack(&self) -> Option<StackInfo> {
        self.stacks.iter().copied().find(|s| s.kind == StackKind::Task)
    }
}
