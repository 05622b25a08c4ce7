//! The walk: a frame-pointer chain in which every step is proven by ORC.
//!
//! Each step, first failure wins (see DESIGN §4): memory safety of every object read (alignment,
//! wholly on an allowed stack, stacks left one way only, addresses strictly increasing within a
//! stack); meta/final records; the ORC rule of the current pc (pc − 4 for return addresses, the
//! exact pc after an exception); the frame record exactly where ORC says the function keeps it;
//! then the return address, with PAC stripped and trampolines recovered, must be text.
//!
//! The loop is flat (no recursion), keeps a fixed-size cursor, and ends after at most
//! `Config::max_frames` frames.

use orc_format::{Kind, OrcEntry, Reg};

use crate::call::{self, CallSite};
use crate::code::{CodeInfo, FtraceFrame};
use crate::frame::{Frame, FrameKind, Witness};
use crate::layout::{KernelLayout, META_FINAL, META_PT_REGS, sigframe};
use crate::memory::Memory;
use crate::pac::strip_pac;
use crate::recovery::{ReturnRecovery, Trampoline};
use crate::stacks::{StackInfo, StackKind, Stacks};
use crate::verdict::{Reason, Verdict};

/// Which rules to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Frame-pointer walk validated by ORC at every frame, crossing exception boundaries.
    Orcwalk,
    /// Mainline arm64's reliable walk: frame-pointer chain and meta records only, no ORC,
    /// unreliable at the first exception boundary. For comparison on the same stacks.
    Mainline,
}

/// What counts as the clean end of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndRule {
    /// Kernel: the final frame record at `task_pt_regs(task)->stackframe` (FINAL meta record on
    /// v6.13+, a {0, 0} record before).
    FinalRecord,
    /// Userspace: ORC END_OF_STACK at the pc (glibc's `_start`); under the mainline policy, a
    /// saved frame pointer of 0.
    OrcEndOfStack,
}

#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub policy: Policy,
    pub end: EndRule,
    pub layout: KernelLayout,
    /// Livepatch keeps 100 entries; reaching the limit is unreliable.
    pub max_frames: u32,
    /// A blocked task may only use its own task stack.
    pub task_stack_only: bool,
    /// Require two witnesses for every frame (DESIGN §7): refuse a CFA on x29 (`FpBasedCfa`)
    /// and a caller without a frame record (`NoFrameRecord`). Otherwise those single-witness
    /// frames are accepted from proven rows ([`CodeInfo::rows_proven`]): a CFA on x29 then rests
    /// on the frame-pointer chain exactly as mainline's walk does, and a record-less caller on a
    /// row that holds on every path of code the image id binds the table to. From unproven rows
    /// the walk is strict whatever this says.
    pub strict: bool,
}

impl Config {
    pub const fn kernel(layout: KernelLayout) -> Config {
        Config {
            policy: Policy::Orcwalk,
            end: EndRule::FinalRecord,
            layout,
            max_frames: 100,
            task_stack_only: false,
            strict: false,
        }
    }
}

/// Where the walk starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Registers at an exception (or a context captured at an exact pc): pc, sp, x29, x30 known.
    Regs { pc: u64, sp: u64, fp: u64, lr: u64 },
    /// A return address with the sp and x29 of the function it returns into: the caller of the
    /// walk, or a blocked task's `cpu_context` (then set `task_stack_only`).
    Call { pc: u64, sp: u64, fp: u64 },
}

/// The state of one frame: its pc, and the sp and x29 values in effect in that function at pc.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    pc: u64,
    sp: u64,
    fp: u64,
    /// x30, known only for the first frame after an exception.
    lr: Option<u64>,
    /// pc was interrupted (look up the exact pc), not a return address (look up pc − 4).
    exact: bool,
}

/// Where the walk has been: the stack it is on, the stacks it has left, and the highest address
/// used on the current stack (everything must lie strictly above it).
struct Bounds<'s, S: Stacks> {
    stacks: &'s S,
    current: Option<StackInfo>,
    left: u8,
    floor: u64,
    task_only: bool,
}

impl<S: Stacks> Bounds<'_, S> {
    /// Admits an object `[addr, addr + size)`: aligned, on one allowed stack, not on a stack
    /// already left. `strict` objects (frame records, CFAs) must also lie above the floor.
    ///
    /// Inlined: nearly every object lies on the stack the walk is on, admitted already, and that
    /// answer needs no search and no call; moving onto another stack is [`Bounds::enter`].
    #[inline(always)]
    fn admit(&mut self, addr: u64, size: u64, strict: bool) -> Result<(), Reason> {
        if !addr.is_multiple_of(8) {
            return Err(Reason::Alignment);
        }
        match self.current {
            Some(cur) if cur.contains(addr, size) => {
                if strict && addr <= self.floor {
                    return Err(Reason::NotIncreasing);
                }
            }
            _ => self.enter(addr, size)?,
        }
        if strict {
            self.floor = addr;
        }
        Ok(())
    }

    /// The walk's first object, or one off the current stack: the stack that holds it becomes
    /// the current one, if the one-way rule allows.
    #[inline(never)]
    fn enter(&mut self, addr: u64, size: u64) -> Result<(), Reason> {
        let stack = self.stacks.find(addr, size).ok_or(Reason::OffStack)?;
        if self.task_only && stack.kind != StackKind::Task {
            return Err(Reason::OffStack);
        }
        if let Some(cur) = self.current {
            if self.left & stack.kind.bit() != 0 || cur.kind == stack.kind {
                return Err(Reason::StackReentered);
            }
            self.left |= cur.kind.bit();
            self.floor = 0;
        }
        self.current = Some(stack);
        Ok(())
    }

    /// Checks that `[addr, addr + size)` is aligned and wholly on an allowed stack without
    /// moving the walk onto it: x29 may point at a record on the stack the walk will only reach
    /// later (a function without a record, called on the IRQ stack, still holds the task-stack
    /// record of its caller).
    fn check(&self, addr: u64, size: u64) -> Result<(), Reason> {
        if !addr.is_multiple_of(8) {
            return Err(Reason::Alignment);
        }
        // The stack the walk is on was found and allowed when it was admitted: no search (as in
        // `admit`). A kernel walk checks x29 here at every call site.
        if self.current.is_some_and(|cur| cur.contains(addr, size)) {
            return Ok(());
        }
        match self.stacks.find(addr, size) {
            Some(s) if !self.task_only || s.kind == StackKind::Task => Ok(()),
            _ => Err(Reason::OffStack),
        }
    }

    /// Reads an 8-byte slot that must lie on the current stack (not moving the floor).
    fn read<M: Memory>(&mut self, mem: &M, addr: u64) -> Result<u64, Reason> {
        self.admit(addr, 8, false)?;
        mem.read_u64(addr).ok_or(Reason::ReadFault)
    }
}

fn offset(base: u64, off: i16) -> Result<u64, Reason> {
    base.checked_add_signed(i64::from(off)).ok_or(Reason::OffStack)
}

/// What the step from one frame produced.
/// A step moves the walk's cursor to the next frame in place, once it has succeeded (so that a
/// failure reports the frame it failed at), and says how that frame was found.
enum Step {
    Moved(FrameKind, Witness),
    End,
}

/// The common row's type and registers (`CALL sp:sp fp:prevsp ra:prevsp`), offsets and the
/// signal bit aside.
const COMMON_ROW: u16 = OrcEntry::new(Kind::Call, Reg::Sp, 0, Reg::PrevSp, 0, Reg::PrevSp, 0, false).raw_bits();
const SIGNAL_BIT: u16 =
    OrcEntry::new(Kind::Undefined, Reg::Undefined, 0, Reg::Undefined, 0, Reg::Undefined, 0, true).raw_bits();

#[cfg(test)]
extern crate std;
#[cfg(test)]
std::thread_local! {
    /// Set by tests that hold [`Walker::common_row`] to the general step's answers.
    pub(crate) static NO_COMMON_ROW: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    /// Steps [`Walker::common_row`] took, so that those tests know it was exercised.
    pub(crate) static COMMON_ROW_STEPS: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// What [`Walker::meta`] found at fp: the final record, or an exception boundary to cross.
enum MetaRecord {
    Final,
    Exception,
}

struct Walker<'a, M, S: Stacks, C, R> {
    mem: &'a M,
    code: &'a C,
    recovery: &'a R,
    cfg: &'a Config,
    bounds: Bounds<'a, S>,
}

impl<M: Memory, S: Stacks, C: CodeInfo, R: ReturnRecovery> Walker<'_, M, S, C, R> {
    /// The clean-up every return address gets: PAC off, trampolines undone, then it must be text.
    /// Under the orcwalk policy it must also follow a call that can lead to `cur`'s function
    /// ([`call`]), where the text can be read.
    fn return_address(
        &self,
        raw: u64,
        record_fp: u64,
        kind: FrameKind,
        cur: &Cursor,
    ) -> Result<(u64, FrameKind), Reason> {
        let mut pc = strip_pac(raw, self.cfg.layout.va_bits);
        let mut kind = kind;
        // Both trampolines can stand for one return address (the function-graph tracer and a
        // kretprobe on the same function), stacked in either order: each is undone once.
        let (mut fgraph, mut kretprobe) = (false, false);
        while let Some(t) = self.recovery.trampoline(pc) {
            let seen = match t {
                Trampoline::FgraphReturn => &mut fgraph,
                Trampoline::Kretprobe => &mut kretprobe,
            };
            if core::mem::replace(seen, true) {
                return Err(Reason::Trampoline);
            }
            let orig = self.recovery.recover(t, record_fp, pc).ok_or(Reason::Trampoline)?;
            pc = strip_pac(orig, self.cfg.layout.va_bits);
            kind = FrameKind::Recovered;
        }
        // The signal-return trampoline is no function of the program: the next step crosses
        // the signal frame under it (`sigframe`), which proves or refuses it.
        if self.code.sigreturn(pc).is_some() {
            return Ok((pc, kind));
        }
        if !self.code.is_text(pc) {
            return Err(Reason::UnknownText);
        }
        if self.cfg.policy == Policy::Orcwalk {
            // A return address points after its call: the function it returns from holds pc − 4.
            let callee = if cur.exact { cur.pc } else { cur.pc.saturating_sub(4) };
            match call::check(self.code, pc, callee) {
                CallSite::Consistent => {}
                CallSite::NotACall => return Err(Reason::NotACallSite),
                CallSite::WrongCallee => return Err(Reason::WrongCallee),
            }
        }
        Ok((pc, kind))
    }

    /// Reads the 16-byte record at `fp`. A {0, 0} record is a meta record (or the final record
    /// before v6.13) and is resolved here, as is the synthetic {x29, ELR} record that entry code
    /// writes before v6.13; `None` means an ordinary record follows. An exception boundary is
    /// only recognised here: the caller crosses it with [`Walker::exception`], so that the two
    /// frames are never on the stack together (the walk's stack budget).
    fn meta(&mut self, cur: &Cursor) -> Result<Option<MetaRecord>, Reason> {
        // Only a record some function's x29 points at can be a meta record: after an exception
        // the interrupted function's own record may not exist yet, and ORC decides instead.
        if self.cfg.end != EndRule::FinalRecord || cur.exact {
            return Ok(None);
        }
        let layout = self.cfg.layout;
        let lr_slot = cur.fp.checked_add(8).ok_or(Reason::OffStack)?;
        let zero = self.bounds.read(self.mem, cur.fp)? == 0 && self.bounds.read(self.mem, lr_slot)? == 0;
        // Before v6.13 the entry code writes a synthetic {x29, ELR} record into pt_regs; a
        // return address into entry text says this record is one.
        let synthetic = !zero && !layout.meta_records && self.code.is_entry_text(cur.pc);
        if !zero && !synthetic {
            return Ok(None);
        }
        // Entry code calls the first C function with sp at the base of the pt_regs it just
        // pushed (`mov x0, sp; bl handler`, ret_from_fork, init_cpu_task), so that function's
        // CFA is exactly the pt_regs holding this record. Without it, a corrupted saved fp aimed
        // at the final record would end the walk cleanly with a whole context missing.
        // (Mainline's rule has no CFA to check; the mainline policy keeps its behaviour.)
        if self.cfg.policy == Policy::Orcwalk && cur.fp.checked_sub(layout.stackframe) != Some(cur.sp) {
            return Err(Reason::BadMetaRecord);
        }
        if synthetic {
            return Ok(Some(MetaRecord::Exception));
        }
        let kind = if layout.meta_records {
            self.bounds.admit(cur.fp, 24, true)?;
            let at = cur.fp.checked_add(16).ok_or(Reason::OffStack)?;
            self.bounds.read(self.mem, at)?
        } else {
            self.bounds.admit(cur.fp, 16, true)?;
            META_FINAL
        };
        let final_at = self.bounds.stacks.task_stack().and_then(|t| layout.final_record(t.high));
        match kind {
            META_FINAL if final_at == Some(cur.fp) => Ok(Some(MetaRecord::Final)),
            META_PT_REGS if layout.meta_records => Ok(Some(MetaRecord::Exception)),
            _ => Err(Reason::BadMetaRecord),
        }
    }

    /// Crosses the exception boundary whose `pt_regs.stackframe` is at `cur.fp`.
    fn exception(&mut self, cur: &mut Cursor) -> Result<Step, Reason> {
        let l = self.cfg.layout;
        let regs = cur.fp.checked_sub(l.stackframe).ok_or(Reason::OffStack)?;
        self.bounds.admit(regs, l.pt_regs_size, false)?;
        let field = |off: u64| regs.checked_add(off).ok_or(Reason::OffStack);
        let pc = self.bounds.read(self.mem, field(l.pc)?)?;
        let sp = self.bounds.read(self.mem, field(l.sp)?)?;
        let fp = self.bounds.read(self.mem, field(l.x29)?)?;
        let lr = self.bounds.read(self.mem, field(l.x30)?)?;
        let pstate = self.bounds.read(self.mem, field(l.pstate)?)?;
        // Only an exception taken from the kernel continues on this stack: EL1t = 4, EL1h = 5,
        // or EL2t = 8, EL2h = 9 for a kernel running at EL2 (VHE, every arm64 KVM host); the
        // entry pushed pt_regs right below the interrupted sp (`sub sp, sp, #PT_REGS_SIZE`). An
        // entry that switched stacks first (overflow) fails here: unreliable, as it should be.
        if !matches!(pstate & 0xf, 4 | 5 | 8 | 9) || regs.checked_add(l.pt_regs_size) != Some(sp) {
            return Err(Reason::BadMetaRecord);
        }
        if !l.meta_records {
            // The synthetic record must be exactly {x29, ELR} of these regs.
            let lr_slot = cur.fp.checked_add(8).ok_or(Reason::OffStack)?;
            let (rec_fp, rec_lr) = (self.bounds.read(self.mem, cur.fp)?, self.bounds.read(self.mem, lr_slot)?);
            if rec_fp != fp || strip_pac(rec_lr, l.va_bits) != strip_pac(pc, l.va_bits) {
                return Err(Reason::BadMetaRecord);
            }
        }
        if self.cfg.policy == Policy::Mainline {
            return Err(Reason::ExceptionBoundary);
        }
        let pc = strip_pac(pc, l.va_bits);
        if !self.code.is_text(pc) {
            return Err(Reason::UnknownText);
        }
        *cur = Cursor { pc, sp, fp, lr: Some(lr), exact: true };
        Ok(Step::Moved(FrameKind::Exception, Witness::Two))
    }

    /// Crosses a user signal frame: `cur` is a return address into the signal-return trampoline,
    /// with sp the CFA of the handler that returns there (the kernel entered it with sp at the
    /// `rt_sigframe`) and x29 the value the handler found in x29 (the frame record the kernel
    /// pushed right above the sigframe). Two witnesses must agree: the saved context at a fixed
    /// offset from the sp chain, and the record from the x29 chain, which must be exactly the
    /// sigframe's: {x29, x30} of that context, with the interrupted sp right above it.
    fn sigframe(&mut self, cur: &mut Cursor, insns: [u32; 2]) -> Result<Step, Reason> {
        let (frame, record) = (cur.sp, cur.fp);
        let size = record.checked_sub(frame).ok_or(Reason::BadSigframe)?;
        if insns != sigframe::TRAMPOLINE
            || !frame.is_multiple_of(16)
            || !record.is_multiple_of(16)
            || size < sigframe::MIN_SIZE
        {
            return Err(Reason::BadSigframe);
        }
        let end = record.checked_add(16).ok_or(Reason::OffStack)?;
        // The whole sigframe and its record lie on one allowed stack; the record moves the floor.
        self.bounds.admit(frame, size.saturating_add(16), false)?;
        self.bounds.admit(record, 16, true)?;
        let field = |off: u64| frame.checked_add(off).ok_or(Reason::OffStack);
        let pc = self.bounds.read(self.mem, field(sigframe::PC)?)?;
        let sp = self.bounds.read(self.mem, field(sigframe::SP)?)?;
        let fp = self.bounds.read(self.mem, field(sigframe::X29)?)?;
        let lr = self.bounds.read(self.mem, field(sigframe::X30)?)?;
        let pstate = self.bounds.read(self.mem, field(sigframe::PSTATE)?)?;
        let rec_fp = self.bounds.read(self.mem, record)?;
        let rec_lr = self.bounds.read(self.mem, record.checked_add(8).ok_or(Reason::OffStack)?)?;
        // The kernel (and qemu) put the record at round_down(sp - 16, 16) of the interrupted sp
        // and the sigframe right below: sp is in [record + 16, record + 32). A handler on an
        // alternate signal stack fails here (its interrupted sp is elsewhere): unreliable.
        let sp_above = sp.checked_sub(end).is_some_and(|d| d < 16);
        if rec_fp != fp || rec_lr != lr || pstate & sigframe::MODE_MASK != 0 || !sp_above {
            return Err(Reason::BadSigframe);
        }
        if self.cfg.policy == Policy::Mainline {
            return Err(Reason::ExceptionBoundary);
        }
        if !self.code.is_text(pc) {
            return Err(Reason::UnknownText);
        }
        *cur = Cursor { pc, sp, fp, lr: Some(lr), exact: true };
        Ok(Step::Moved(FrameKind::Exception, Witness::Two))
    }

    /// Crosses `ftrace_caller` at its call to a tracer callback: `cur` is the return address of
    /// that call, sp the callback's CFA (the trampoline's sp) and x29 the value the callback
    /// found in x29. The trampoline is entered by the traced function's patched entry before
    /// its prologue runs, and saved that function's entry state: the walk resumes in the traced
    /// function at that entry, exactly, as after an exception. Witnesses: the record chain from
    /// x29 (x29 at the trampoline's first record, which links the second) and the
    /// `ftrace_regs` at sp (its saved sp right above the frame, its x29 and return address those
    /// of the second record; a return address the function-graph tracer or a kretprobe swapped
    /// in is a trampoline the second record still holds the original of).
    // Out of line: inlined, its locals would grow the walk's own frame for every step (the
    // kernel build's stack budget, scripts/check-kernel-crate).
    #[inline(never)]
    fn ftrace(&mut self, cur: &mut Cursor, f: FtraceFrame) -> Result<Step, Reason> {
        let base = cur.sp;
        let first = base.checked_add(f.record).ok_or(Reason::OffStack)?;
        let second = first.checked_add(16).ok_or(Reason::OffStack)?;
        if cur.fp != first || f.size < f.record.saturating_add(32) {
            return Err(Reason::FpMismatch);
        }
        self.bounds.admit(base, f.size, false)?;
        self.bounds.admit(first, 16, true)?;
        self.bounds.admit(second, 16, true)?;
        let at = |off: u64| base.checked_add(off).ok_or(Reason::OffStack);
        let (sp, fp, lr) = (
            self.bounds.read(self.mem, at(f.sp)?)?,
            self.bounds.read(self.mem, at(f.fp)?)?,
            self.bounds.read(self.mem, at(f.lr)?)?,
        );
        let (first_fp, traced) = (
            self.bounds.read(self.mem, first)?,
            self.bounds.read(self.mem, first.checked_add(8).ok_or(Reason::OffStack)?)?,
        );
        let (second_fp, ra) = (
            self.bounds.read(self.mem, second)?,
            self.bounds.read(self.mem, second.checked_add(8).ok_or(Reason::OffStack)?)?,
        );
        let va = self.cfg.layout.va_bits;
        let (lr, ra) = (strip_pac(lr, va), strip_pac(ra, va));
        let swapped = lr != ra && self.recovery.trampoline(lr).is_some();
        if base.checked_add(f.size) != Some(sp) || first_fp != second || second_fp != fp || (lr != ra && !swapped) {
            return Err(Reason::FpMismatch);
        }
        if self.cfg.policy == Policy::Mainline {
            return Err(Reason::ExceptionBoundary);
        }
        let pc = strip_pac(traced, va);
        if !self.code.is_text(pc) {
            return Err(Reason::UnknownText);
        }
        // The traced function called the trampoline from its entry: a direct call into the
        // function holding the callback's return address (no tail call can intervene).
        match call::direct(self.code, pc, cur.pc).0 {
            CallSite::Consistent => {}
            CallSite::NotACall => return Err(Reason::NotACallSite),
            CallSite::WrongCallee => return Err(Reason::WrongCallee),
        }
        *cur = Cursor { pc, sp, fp, lr: Some(ra), exact: true };
        Ok(Step::Moved(FrameKind::Exception, Witness::Two))
    }

    /// The ORC entry for the current frame (`row`, the table's at `at`), or why it cannot be
    /// used.
    fn entry(&self, cur: &Cursor, at: Option<u64>, row: Option<OrcEntry>) -> Result<Option<OrcEntry>, Reason> {
        if cur.exact && !self.code.exact_pc_proven(cur.pc) {
            return Err(Reason::SyncOnlyCfi);
        }
        at.ok_or(Reason::UnknownText)?;
        let e = row.ok_or(Reason::MissingOrc)?;
        match e.kind() {
            Some(Kind::Call) => Ok(Some(e)),
            Some(Kind::EndOfStack) if self.cfg.end == EndRule::OrcEndOfStack => Ok(None),
            Some(Kind::Undefined) => Err(Reason::OrcUndefined),
            _ => Err(Reason::OrcUnexpected),
        }
    }

    /// One step under the orcwalk policy.
    fn step_orc(&mut self, cur: &mut Cursor) -> Result<Step, Reason> {
        // One lookup for both paths: a return address is looked up at pc − 4 (the call), an
        // interrupted pc exactly.
        let at = if cur.exact { Some(cur.pc) } else { cur.pc.checked_sub(4) };
        let row = at.and_then(|at| self.code.orc(at));
        if let Some((cfa, fp, raw_ra, exact)) = self.common_row(cur, row) {
            return self.to_caller(cur, cfa, fp, raw_ra, FrameKind::Return, Witness::Two, exact);
        }
        if let Some(insns) = self.code.sigreturn(cur.pc).filter(|_| !cur.exact) {
            return self.sigframe(cur, insns);
        }
        if let Some(f) = self.code.ftrace(cur.pc).filter(|_| !cur.exact) {
            return self.ftrace(cur, f);
        }
        // Meta records (and the synthetic records of kernels <= 6.12) belong to entry assembly,
        // which has no CFI. A pc with a usable ORC entry is proven by ORC: were the meta check
        // first, a corrupted saved fp aimed at the final record would end the walk "cleanly"
        // with frames missing.
        // Memory safety first: at a call site in a kernel, x29 is always some function's record
        // (this one's, or its caller's when it built none).
        if self.cfg.end == EndRule::FinalRecord && !cur.exact {
            self.bounds.check(cur.fp, 16)?;
        }
        let e = match self.entry(cur, at, row) {
            Ok(e) => e,
            Err(why @ (Reason::MissingOrc | Reason::OrcUndefined)) => {
                return match self.meta(cur)? {
                    Some(MetaRecord::Final) => Ok(Step::End),
                    Some(MetaRecord::Exception) => self.exception(cur),
                    None => Err(why),
                };
            }
            Err(why) => return Err(why),
        };
        let Some(e) = e else { return Ok(Step::End) };
        let (sp_reg, fp_reg, ra_reg) = (e.sp_reg(), e.fp_reg(), e.ra_reg());
        let single = !self.cfg.strict && self.code.rows_proven();
        let mut witness = Witness::Two;
        let cfa = match sp_reg {
            Some(Reg::Sp) => offset(cur.sp, e.sp_offset)?,
            Some(Reg::Fp) if single => {
                witness = Witness::FramePointer;
                offset(cur.fp, e.sp_offset)?
            }
            Some(Reg::Fp) => return Err(Reason::FpBasedCfa),
            _ => return Err(Reason::OrcUnexpected),
        };
        // The caller's CFA is the sp it had at the call: above this frame's sp, since a caller at
        // a call site has saved its LR below it. Only an interrupted leaf may have CFA == sp.
        // Across a stack switch (CFA on another stack) the one-way stack rule applies instead.
        let same_stack = self.bounds.current.is_some_and(|s| s.contains(cfa, 0) && s.contains(cur.sp, 0));
        if same_stack && (cfa < cur.sp || (cfa == cur.sp && !cur.exact)) {
            return Err(Reason::CfaBelowCallee);
        }
        let prev_fp = match fp_reg {
            Some(Reg::PrevSp) => {
                let at = offset(cfa, e.fp_offset)?;
                // At a call site x29 must point at the record ORC describes. After an exception
                // the function may be between `stp` and `mov x29, sp`: the slot is still right.
                if !cur.exact && cur.fp != at {
                    return Err(Reason::FpMismatch);
                }
                self.bounds.admit(at, 8, true)?;
                let saved = self.mem.read_u64(at).ok_or(Reason::ReadFault)?;
                // The second witness after an exception: x29 from pt_regs is this function's
                // record (body) or still the caller's, which the slot then holds too (after
                // the prologue's `stp`, after the epilogue's restoring `ldp`). Anything else
                // says the row does not describe this moment of this code.
                if cur.exact && cur.fp != at && cur.fp != saved {
                    return Err(Reason::FpMismatch);
                }
                saved
            }
            // x29 not saved: still the caller's. After an exception that is a prologue or
            // epilogue. At a call site this function built no record (no frame pointer) and its
            // return address can only come from ORC (below): allowed only when asked for.
            Some(Reg::Undefined) if cur.exact => cur.fp,
            Some(Reg::Undefined) if single => {
                witness = Witness::Orc;
                cur.fp
            }
            Some(Reg::Undefined) => return Err(Reason::NoFrameRecord),
            _ => return Err(Reason::OrcUnexpected),
        };
        let (raw_ra, kind) = match ra_reg {
            Some(Reg::PrevSp) => {
                if fp_reg == Some(Reg::Undefined) && sp_reg != Some(Reg::Sp) {
                    // No record and a CFA that hangs off a frame pointer this function never set.
                    return Err(Reason::NoFrameRecord);
                }
                let at = offset(cfa, e.ra_offset)?;
                let ra = self.bounds.read(self.mem, at)?;
                // The second witness after an exception: while x30 still holds this function's
                // own return address (a `bl` into it precedes the address), the slot the row
                // names must hold the same one. A row gone stale (an epilogue that already
                // restored x30 and moved sp) names a slot of the caller's instead.
                if let (true, Some(lr)) = (cur.exact, cur.lr) {
                    let va = self.cfg.layout.va_bits;
                    let lr = strip_pac(lr, va);
                    if lr != strip_pac(ra, va) && call::returns_from(self.code, lr, cur.pc) {
                        return Err(Reason::LrContradictsRow);
                    }
                }
                (ra, FrameKind::Return)
            }
            Some(Reg::Undefined) => match cur.lr {
                Some(lr) if cur.exact => (lr, FrameKind::LinkRegister),
                _ => return Err(Reason::LrLiveAtCall),
            },
            _ => return Err(Reason::OrcUnexpected),
        };
        // The caller's sp must still be on an allowed stack (it may equal the stack's top).
        self.bounds.admit(cfa, 0, false)?;
        self.to_caller(cur, cfa, prev_fp, raw_ra, kind, witness, e.signal())
    }

    /// The step for the row nearly every call site has, `CALL sp:sp+N fp:prevsp-M ra:prevsp-K`,
    /// with everything it reads on the stack the walk is on: the checks the general step makes
    /// for that row, in registers, without its searches and decoding. `None` when any of them
    /// does not hold as the common case has it, and the general step then decides (the same
    /// answer, or its reason): this path only says yes where that one does, which `walk_tests`
    /// holds it to on corrupted stacks. The caller's sp, x29 and raw return address, and
    /// whether the row says it was interrupted.
    #[inline(always)]
    fn common_row(&mut self, cur: &Cursor, row: Option<OrcEntry>) -> Option<(u64, u64, u64, bool)> {
        #[cfg(test)]
        if NO_COMMON_ROW.with(core::cell::Cell::get) {
            return None;
        }
        let stack = self.bounds.current?;
        let e = row?;
        if cur.exact
            || e.raw_bits() & !SIGNAL_BIT != COMMON_ROW
            || self.code.sigreturn(cur.pc).is_some()
            || self.code.ftrace(cur.pc).is_some()
        {
            return None;
        }
        let cfa = cur.sp.checked_add_signed(i64::from(e.sp_offset))?;
        let record = cfa.checked_add_signed(i64::from(e.fp_offset))?;
        let ra_at = cfa.checked_add_signed(i64::from(e.ra_offset))?;
        // x29 is the record ORC names, which lies with the return address slot and the CFA
        // (8-aligned, above the callee's sp and the floor) on this stack.
        let aligned = (cur.fp | ra_at | cfa) & 7 == 0;
        let on_stack = stack.contains(cur.fp, 16) && stack.contains(ra_at, 8) && stack.contains(cfa, 0);
        if cur.fp != record || !aligned || !on_stack || cfa <= cur.sp || record <= self.bounds.floor {
            return None;
        }
        let fp = self.mem.read_u64(record)?;
        let raw_ra = self.mem.read_u64(ra_at)?;
        self.bounds.floor = record;
        #[cfg(test)]
        COMMON_ROW_STEPS.with(|n| n.set(n.get() + 1));
        Some((cfa, fp, raw_ra, e.signal()))
    }

    /// Moves `cur` to its caller (sp `cfa`, x29 `fp`), once the raw return address is one.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn to_caller(
        &self,
        cur: &mut Cursor,
        cfa: u64,
        fp: u64,
        raw_ra: u64,
        kind: FrameKind,
        witness: Witness,
        exact: bool,
    ) -> Result<Step, Reason> {
        if self.cfg.end == EndRule::FinalRecord && fp == 0 && raw_ra == 0 {
            // A meta/final record where ORC proves a C function keeps its frame record.
            return Err(Reason::BadMetaRecord);
        }
        let (pc, kind) = self.return_address(raw_ra, fp, kind, cur)?;
        *cur = Cursor { pc, sp: cfa, fp, lr: None, exact };
        Ok(Step::Moved(kind, witness))
    }

    /// One step under the mainline policy: the frame record at fp, no ORC.
    fn step_mainline(&mut self, cur: &mut Cursor) -> Result<Step, Reason> {
        if self.code.sigreturn(cur.pc).is_some() {
            // A signal frame is an exception boundary: mainline does not cross it.
            return Err(Reason::ExceptionBoundary);
        }
        match self.meta(cur)? {
            Some(MetaRecord::Final) => return Ok(Step::End),
            Some(MetaRecord::Exception) => return self.exception(cur),
            None => {}
        }
        if cur.exact {
            // Mainline cannot say whether an interrupted function's record exists yet.
            return Err(Reason::ExceptionBoundary);
        }
        // A plain frame-pointer walk of a user program ends at the record glibc's _start zeroed.
        if self.cfg.end == EndRule::OrcEndOfStack && cur.fp == 0 {
            return Ok(Step::End);
        }
        self.bounds.admit(cur.fp, 16, true)?;
        let prev_fp = self.mem.read_u64(cur.fp).ok_or(Reason::ReadFault)?;
        let raw = self.mem.read_u64(cur.fp.checked_add(8).ok_or(Reason::OffStack)?).ok_or(Reason::ReadFault)?;
        let (pc, kind) = self.return_address(raw, prev_fp, FrameKind::Return, cur)?;
        *cur = Cursor { pc, sp: cur.fp, fp: prev_fp, lr: None, exact: false };
        Ok(Step::Moved(kind, Witness::FramePointer))
    }
}

/// Walks the stack from `start`, calling `consume` for every frame (return `false` to stop,
/// which makes the walk unreliable: the consumer's buffer is full). Returns the verdict.
pub fn walk<M, S, C, R, F>(
    start: Start,
    cfg: &Config,
    mem: &M,
    stacks: &S,
    code: &C,
    recovery: &R,
    mut consume: F,
) -> Verdict
where
    M: Memory,
    S: Stacks,
    C: CodeInfo,
    R: ReturnRecovery,
    F: FnMut(&Frame) -> bool,
{
    let mut cur = match start {
        Start::Regs { pc, sp, fp, lr } => Cursor { pc, sp, fp, lr: Some(lr), exact: true },
        Start::Call { pc, sp, fp } => Cursor { pc, sp, fp, lr: None, exact: false },
    };
    let fail = |reason, cur: &Cursor| Verdict::Unreliable { reason, pc: cur.pc, fp: cur.fp };
    let bounds = Bounds { stacks, current: None, left: 0, floor: 0, task_only: cfg.task_stack_only };
    let mut w = Walker { mem, code, recovery, cfg, bounds };
    if let Err(r) = w.bounds.admit(cur.sp, 0, false) {
        return fail(if r == Reason::OffStack { Reason::BadStart } else { r }, &cur);
    }
    let start_pc = strip_pac(cur.pc, cfg.layout.va_bits);
    if !code.is_text(start_pc) {
        return fail(Reason::UnknownText, &cur);
    }
    cur.pc = start_pc;
    let mut kind = FrameKind::Start;
    let mut witness = Witness::Given;
    let mut frames: u32 = 0;
    loop {
        if frames >= cfg.max_frames || !consume(&Frame { pc: cur.pc, fp: cur.fp, kind, witness }) {
            return fail(Reason::FrameLimit, &cur);
        }
        frames = frames.saturating_add(1);
        let step = match cfg.policy {
            Policy::Orcwalk => w.step_orc(&mut cur),
            Policy::Mainline => w.step_mainline(&mut cur),
        };
        match step {
            Ok(Step::End) => return Verdict::Reliable,
            Ok(Step::Moved(k, w)) => {
                kind = k;
                witness = w;
            }
            // A step moves the cursor only once it succeeded: it is the failing frame's.
            Err(reason) => return fail(reason, &cur),
        }
    }
}
