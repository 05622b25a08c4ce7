//! Where a kernel's CFI ends and the truth must say what the stack is.
//!
//! Assembly has no CFI in arm64 kernels (entry.S, `call_on_irq_stack`, `ret_from_fork`,
//! `__primary_switched`). The truth defines those places from the kernel's own conventions, not
//! from anything orcwalk reads:
//! - **The task's pt_regs.** Entry code calls the first C function with sp at the pt_regs it
//!   pushed (`mov x0, sp; bl handler`; `ret_from_fork`; `init_cpu_task`). A frame whose CFA is
//!   the task's pt_regs (top of the task stack minus PT_REGS_SIZE) was called by that code: its
//!   return address is the last frame (those regs hold the user context, or a kernel thread's
//!   zeroed ones).
//! - **An exception taken at EL1** (or at EL2, for a kernel that runs at EL2 with VHE, as on
//!   every arm64 KVM host). A return address into entry text means the CFA is the pt_regs of an
//!   exception the kernel took from itself: the next frame is the interrupted pc (regs->pc),
//!   unwound from regs->sp, x29 and x30 as an exact pc. The regs must say the kernel's own
//!   exception level (EL1t/EL1h, or EL2t/EL2h when it runs at EL2) and sit right below the
//!   interrupted sp.
//! - **`call_on_irq_stack`** keeps a frame record at x29 (on the task stack) around its call of
//!   the handler on the IRQ stack: CFA = x29 + 16, record at x29.
//!
//! A sample whose pc is itself in such assembly has no truth (incomplete).

use orcwalk::{KernelLayout, Memory};

/// What the truth knows about one kernel image and sample.
#[derive(Clone, Debug)]
pub struct KernelRules {
    pub layout: KernelLayout,
    /// Entry text `[start, end)` (`__entry_text_start..__entry_text_end`).
    pub entry: (u64, u64),
    /// Functions without CFI that keep a frame record at x29 at their call sites.
    pub record_keepers: Vec<(u64, u64)>,
    /// The task's pt_regs: top of its stack minus PT_REGS_SIZE.
    pub task_regs: u64,
    /// The kernel runs at EL2 (VHE): it takes its own exceptions at EL2, never at EL1.
    pub el2: bool,
}

/// What follows a frame whose return address and CFA the CFI gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    None,
    EndOfTask,
    Exception { pc: u64, sp: u64, fp: u64, lr: u64 },
}

impl KernelRules {
    pub fn keeps_record(&self, pc: u64) -> bool {
        self.record_keepers.iter().any(|&(s, e)| s <= pc && pc < e)
    }

    fn field(&self, mem: &impl Memory, regs: u64, off: u64) -> Result<u64, &'static str> {
        mem.read_u64(regs + off).ok_or("pt_regs outside the dumped stacks")
    }

    /// The boundary (if any) after a frame returned to `ra` with its CFA at `cfa`.
    pub fn boundary(&self, cfa: u64, ra: u64, mem: &impl Memory) -> Result<Boundary, &'static str> {
        let l = self.layout;
        if cfa == self.task_regs {
            // A user task's regs (EL0), or a kernel thread's (zeroed, pstate EL1h with the
            // illegal-return bit): nothing of the kernel lies beyond either.
            return Ok(Boundary::EndOfTask);
        }
        if !(self.entry.0 <= ra && ra < self.entry.1) {
            return Ok(Boundary::None);
        }
        let pstate = self.field(mem, cfa, l.pstate)?;
        let sp = self.field(mem, cfa, l.sp)?;
        // M[3:0]: EL1t = 4, EL1h = 5; EL2t = 8, EL2h = 9.
        let own = if self.el2 { matches!(pstate & 0xf, 8 | 9) } else { matches!(pstate & 0xf, 4 | 5) };
        if !own || cfa + l.pt_regs_size != sp {
            return Err("return into entry text without pt_regs of the kernel's own EL at the CFA");
        }
        Ok(Boundary::Exception {
            pc: self.field(mem, cfa, l.pc)?,
            sp,
            fp: self.field(mem, cfa, l.x29)?,
            lr: self.field(mem, cfa, l.x30)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    struct Words(BTreeMap<u64, u64>);

    impl Memory for Words {
        fn read_u64(&self, addr: u64) -> Option<u64> {
            self.0.get(&addr).copied()
        }
    }

    const ENTRY: (u64, u64) = (0xffff_8000_8001_0000, 0xffff_8000_8001_4000);
    const TOP: u64 = 0xffff_8000_8200_4000;

    fn rules() -> KernelRules {
        let layout = KernelLayout::V6_12;
        KernelRules {
            layout,
            entry: ENTRY,
            record_keepers: vec![(0x100, 0x140)],
            task_regs: TOP - layout.pt_regs_size,
            el2: false,
        }
    }

    /// pt_regs at `regs` of an exception taken at EL1h from `pc` with sp right above them.
    fn el1_regs(regs: u64, pc: u64) -> Words {
        let l = KernelLayout::V6_12;
        let mut m = BTreeMap::new();
        m.insert(regs + l.pc, pc);
        m.insert(regs + l.sp, regs + l.pt_regs_size);
        m.insert(regs + l.x29, 0x1111);
        m.insert(regs + l.x30, 0x2222);
        m.insert(regs + l.pstate, 0x3c5);
        Words(m)
    }

    #[test]
    fn the_task_pt_regs_end_the_stack() {
        let r = rules();
        assert_eq!(r.boundary(r.task_regs, 0xffff_8000_8002_0000, &Words(BTreeMap::new())), Ok(Boundary::EndOfTask));
    }

    #[test]
    fn a_return_into_entry_text_crosses_an_el1_exception() {
        let r = rules();
        let regs = TOP - 0x1000;
        let mem = el1_regs(regs, 0xffff_8000_8050_0000);
        assert_eq!(
            r.boundary(regs, ENTRY.0 + 0x40, &mem),
            Ok(Boundary::Exception { pc: 0xffff_8000_8050_0000, sp: regs + 336, fp: 0x1111, lr: 0x2222 })
        );
        // Not an exception: a return into ordinary text.
        assert_eq!(r.boundary(regs, ENTRY.1 + 0x40, &mem), Ok(Boundary::None));
    }

    #[test]
    fn entry_text_without_el1_regs_at_the_cfa_is_doubted() {
        let r = rules();
        let regs = TOP - 0x1000;
        let mut mem = el1_regs(regs, 0x1234);
        mem.0.insert(regs + KernelLayout::V6_12.pstate, 0); // EL0
        assert!(r.boundary(regs, ENTRY.0, &mem).is_err());
        let mut mem = el1_regs(regs, 0x1234);
        mem.0.insert(regs + KernelLayout::V6_12.sp, regs + 0x200); // not right below the sp
        assert!(r.boundary(regs, ENTRY.0, &mem).is_err());
        assert!(r.boundary(regs, ENTRY.0, &Words(BTreeMap::new())).is_err(), "unreadable regs");
    }

    #[test]
    fn a_kernel_at_el2_crosses_el2h_exceptions_only() {
        let el1 = rules();
        let el2 = KernelRules { el2: true, ..rules() };
        let regs = TOP - 0x1000;
        let pc = 0xffff_8000_8050_0000;
        let mut mem = el1_regs(regs, pc);
        assert!(el2.boundary(regs, ENTRY.0, &mem).is_err(), "EL1h regs from a kernel at EL2");
        mem.0.insert(regs + KernelLayout::V6_12.pstate, 0x3c9); // EL2h
        assert_eq!(
            el2.boundary(regs, ENTRY.0, &mem),
            Ok(Boundary::Exception { pc, sp: regs + 336, fp: 0x1111, lr: 0x2222 })
        );
        assert!(el1.boundary(regs, ENTRY.0, &mem).is_err(), "EL2h regs from a kernel at EL1");
    }

    #[test]
    fn record_keepers_by_address() {
        let r = rules();
        assert!(r.keeps_record(0x100) && r.keeps_record(0x13c));
        assert!(!r.keeps_record(0x140) && !r.keeps_record(0xfc));
    }
}
