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
//! - **An exception taken at EL1.** A return address into entry text means the CFA is the
//!   pt_regs of an exception the kernel took from itself: the next frame is the interrupted pc
//!   (regs->pc), unwound from regs->sp, x29 and x30 as an exact pc. The regs must say EL1 and
//!   sit right below the interrupted sp.
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
        if !matches!(pstate & 0xf, 4 | 5) || cfa + l.pt_regs_size != sp {
            return Err("return into entry text without EL1 pt_regs at the CFA");
        }
        Ok(Boundary::Exception {
            pc: self.field(mem, cfa, l.pc)?,
            sp,
            fp: self.field(mem, cfa, l.x29)?,
            lr: self.field(mem, cfa, l.x30)?,
        })
    }
}
