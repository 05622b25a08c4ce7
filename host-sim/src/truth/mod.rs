//! Ground truth for captured user stacks: a DWARF CFI unwinder written for the harness.
//!
//! It shares no code with orc-format's generator: it asks gimli for the row at each pc (the way
//! debuggers do) instead of compiling tables, tracks sp, x29 and x30 through the full register
//! rules, and doubts itself wherever CFI can be wrong. A truth is *complete* only when it
//! reaches a frame whose return address rule is "undefined" (glibc's `_start`) with every step
//! checked; otherwise it says where and why it stopped, and replay leaves the sample out of
//! coverage. The checks:
//! - the innermost row must not be stale: no instruction between the row's start and the pc
//!   may have changed the CFA register or a register the row says is still live (clang before
//!   16 emits no CFI for epilogues, and hand-written CFI can lag; see [`insn`]);
//! - every return address is text and follows a `bl`/`blr`;
//! - every CFA lies above the sp of the frame below it, inside the dumped stack.

pub mod insn;
mod kernel;

pub use kernel::{Boundary, KernelRules};

use gimli::{
    AArch64, BaseAddresses, CfaRule, DebugFrame, EhFrame, EndianSlice, LittleEndian, Register, RegisterRule,
    UnwindContext, UnwindSection, UnwindTableRow,
};
use object::{Object, ObjectSection, SectionKind};
use orcwalk::Memory;

type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// What one unwinding step found: the caller's CFA (its sp), return address and x29.
struct Caller {
    cfa: u64,
    ra: u64,
    fp: Option<u64>,
}

/// A return address without its pointer authentication code, for a row whose RA_SIGN_STATE
/// (DW_CFA_AARCH64_negate_ra_state) says it is signed: bits 63..48 take the value of bit 55.
/// Kernel text lies in the top 48-bit half even with 52-bit VAs (KIMAGE_VADDR is above
/// `_PAGE_END(VA_BITS_MIN)`), and user text below 2^48, so no text address loses a bit.
fn strip_pac(ra: u64) -> u64 {
    const HIGH: u64 = !((1 << 48) - 1);
    if ra & (1 << 55) != 0 { ra | HIGH } else { ra & !HIGH }
}

/// The doubt of a row that no longer describes the pc.
pub const STALE: &str = "CFI row is stale at the pc (an instruction since its start changed sp, x29 or x30)";

/// The result of unwinding one sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truth {
    /// The interrupted pc, then every return address, outermost last.
    pub pcs: Vec<u64>,
    pub complete: bool,
    /// Why the truth stopped early (`None` when complete).
    pub doubt: Option<&'static str>,
}

/// Where in its function an interrupted pc is, by the function's CFI: the places a plain
/// frame-pointer walk gets wrong are the prologue, the epilogue and leaf functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Position {
    /// Before the row that saves x30.
    Prologue,
    /// x30 restored again (after the last saving row, or a mid-function early return), or a row
    /// that is stale because the compiler described no epilogue.
    Epilogue,
    /// A function that never saves x30.
    Leaf,
    /// x30 saved: the frame is complete.
    Body,
    NoCfi,
}

/// The parts of an aarch64 ELF the truth needs, borrowed from its bytes.
pub struct Image<'a> {
    eh_frame: Option<(EhFrame<Slice<'a>>, BaseAddresses)>,
    debug_frame: Option<DebugFrame<Slice<'a>>>,
    code: Vec<(u64, &'a [u8])>,
    /// The id a table made from this ELF carries (`orc_format::generate::elf::image_id`): dumps
    /// captured from it name it, so replay pairs them only with that table.
    pub image_id: orc_format::ImageId,
    /// Lowest and highest executable address.
    pub text: (u64, u64),
}

impl std::fmt::Debug for Image<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image").field("text", &self.text).field("image_id", &self.image_id).finish()
    }
}

impl<'a> Image<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Image<'a>, String> {
        let file = object::File::parse(data).map_err(|e| e.to_string())?;
        if file.architecture() != object::Architecture::Aarch64 || !file.is_little_endian() {
            return Err("not a little-endian aarch64 ELF".into());
        }
        let mut bases = BaseAddresses::default();
        let (mut eh, mut df, mut code) = (None, None, Vec::new());
        for s in file.sections() {
            let name = s.name().unwrap_or("");
            let bytes = || s.data().map_err(|e| format!("{name}: {e}"));
            match name {
                ".eh_frame" => eh = Some((bytes()?, s.address())),
                ".debug_frame" => {
                    let mut f = DebugFrame::new(bytes()?, LittleEndian);
                    f.set_address_size(8);
                    // Kernels built with pointer authentication use DW_CFA_AARCH64_negate_ra_state.
                    f.set_vendor(gimli::Vendor::AArch64);
                    df = Some(f);
                }
                ".eh_frame_hdr" => bases = bases.set_eh_frame_hdr(s.address()),
                ".got" => bases = bases.set_got(s.address()),
                ".text" => bases = bases.set_text(s.address()),
                _ => {}
            }
            if s.kind() == SectionKind::Text && s.size() > 0 {
                code.push((s.address(), bytes()?));
            }
        }
        if code.is_empty() {
            return Err("no executable sections".into());
        }
        let text = (
            code.iter().map(|c| c.0).min().unwrap_or(0),
            code.iter().map(|c| c.0 + c.1.len() as u64).max().unwrap_or(0),
        );
        let eh_frame = eh.map(|(d, addr)| {
            let mut f = EhFrame::new(d, LittleEndian);
            f.set_address_size(8);
            f.set_vendor(gimli::Vendor::AArch64);
            (f, bases.clone().set_eh_frame(addr))
        });
        let image_id = orc_format::generate::elf::image_id(&file);
        Ok(Image { eh_frame, debug_frame: df, code, image_id, text })
    }

    fn is_text(&self, pc: u64) -> bool {
        self.code.iter().any(|(a, d)| *a <= pc && pc < a + d.len() as u64)
    }

    /// The instruction word at `pc`.
    pub fn insn(&self, pc: u64) -> Option<u32> {
        let (a, d) = self.code.iter().find(|(a, d)| *a <= pc && pc < a + d.len() as u64)?;
        let at = usize::try_from(pc - a).ok()?;
        Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
    }

    /// The CFI row covering `pc`: .eh_frame first, then .debug_frame.
    fn row(&self, ctx: &mut UnwindContext<usize>, pc: u64) -> Option<UnwindTableRow<usize>> {
        if let Some((eh, bases)) = &self.eh_frame
            && let Ok(r) = eh.unwind_info_for_address(bases, ctx, pc, EhFrame::cie_from_offset)
        {
            return Some(r.clone());
        }
        let df = self.debug_frame.as_ref()?;
        df.unwind_info_for_address(&BaseAddresses::default(), ctx, pc, DebugFrame::cie_from_offset).ok().cloned()
    }

    /// The function (FDE range start and end) that `pc` belongs to.
    pub fn function(&self, pc: u64) -> Option<(u64, u64)> {
        let (eh, bases) = self.eh_frame.as_ref()?;
        let fde = eh.fde_for_address(bases, pc, EhFrame::cie_from_offset).ok()?;
        Some((fde.initial_address(), fde.end_address()))
    }

    /// Classifies `pc` by its function's rows (see [`Position`]).
    pub fn position(&self, pc: u64) -> Position {
        let mut ctx = UnwindContext::new();
        let Some(row) = self.row(&mut ctx, pc) else { return Position::NoCfi };
        let saved = |r: &UnwindTableRow<usize>| matches!(r.register(AArch64::X30), Some(RegisterRule::Offset(_)));
        let Some((eh, bases)) = &self.eh_frame else { return Position::NoCfi };
        let Ok(fde) = eh.fde_for_address(bases, pc, EhFrame::cie_from_offset) else { return Position::NoCfi };
        let Ok(mut rows) = fde.rows(eh, bases, &mut ctx) else { return Position::NoCfi };
        let mut first_saved = None;
        while let Ok(Some(r)) = rows.next_row() {
            if saved(r) {
                first_saved = Some(r.start_address());
                break;
            }
        }
        match first_saved {
            None => Position::Leaf,
            Some(start) if pc < start => Position::Prologue,
            Some(_) if !saved(&row) => Position::Epilogue,
            // Saved by the row, but the row may be stale (no epilogue CFI).
            Some(_) if self.stale(&row, pc).unwrap_or(true) => Position::Epilogue,
            Some(_) => Position::Body,
        }
    }

    /// Unwinds a kernel sample: as [`Image::unwind`], plus the kernel's rules where CFI ends
    /// (see [`KernelRules`]).
    pub fn unwind_kernel(&self, regs: &[u64; 34], mem: &impl Memory, rules: &KernelRules) -> Truth {
        self.truth(regs, true, mem, Some(rules))
    }

    /// Unwinds a blocked kernel task from its saved context: `pc` is a return address, `sp` and
    /// `fp` the values in the function it returns into.
    pub fn unwind_kernel_call(&self, pc: u64, sp: u64, fp: u64, mem: &impl Memory, rules: &KernelRules) -> Truth {
        let mut regs = [0u64; 34];
        (regs[29], regs[31], regs[32]) = (fp, sp, pc);
        self.truth(&regs, false, mem, Some(rules))
    }

    /// The walk from `regs`, as a [`Truth`]: `exact` when pc was interrupted (x30 known), else pc
    /// is a return address.
    fn truth(&self, regs: &[u64; 34], exact: bool, mem: &impl Memory, kernel: Option<&KernelRules>) -> Truth {
        let mut t = Truth { pcs: vec![regs[32]], complete: false, doubt: None };
        match self.walk(regs, exact, mem, kernel, &mut t.pcs) {
            Ok(()) => t.complete = true,
            Err(why) => t.doubt = Some(why),
        }
        t
    }

    /// Whether the row covering `pc` is stale there (`None`: no usable row).
    pub fn stale_at(&self, pc: u64) -> Option<bool> {
        let row = self.row(&mut UnwindContext::new(), pc)?;
        self.stale(&row, pc).ok()
    }

    /// True when an instruction between the row's start and `pc` changed the CFA register or
    /// a register the row says is still live: the row no longer describes `pc`.
    fn stale(&self, row: &UnwindTableRow<usize>, pc: u64) -> Result<bool, &'static str> {
        let rule = |r: Register| row.register(r).unwrap_or(RegisterRule::SameValue);
        let mut live = match *row.cfa() {
            CfaRule::RegisterAndOffset { register: AArch64::SP, .. } => insn::SP,
            CfaRule::RegisterAndOffset { register: AArch64::X29, .. } => insn::X29,
            _ => return Err("CFA on a register other than sp or x29"),
        };
        if rule(AArch64::X29) == RegisterRule::SameValue {
            live |= insn::X29;
        }
        if rule(AArch64::X30) == RegisterRule::SameValue {
            live |= insn::X30;
        }
        let mut a = row.start_address();
        while a < pc {
            if insn::writes(self.insn(a).ok_or("row starts outside text")?) & live != 0 {
                return Ok(true);
            }
            a += 4;
        }
        Ok(false)
    }

    /// Unwinds from registers (x0..x30, sp, pc as in `user_pt_regs`) over `mem`.
    pub fn unwind(&self, regs: &[u64; 34], mem: &impl Memory) -> Truth {
        self.truth(regs, true, mem, None)
    }

    /// As [`Image::unwind`], through signal frames: a return address equal to `sigreturn` (the
    /// vDSO's `__kernel_rt_sigreturn`, which the capture found) is the trampoline a handler
    /// returns to, and the interrupted context is read from the `rt_sigframe` at the handler's
    /// CFA, as debuggers do (gdb's aarch64_linux_sigframe_init): the ucontext after the 128-byte
    /// siginfo, its sigcontext 176 bytes in, x0..x30, sp, pc after the 8-byte fault address.
    pub fn unwind_user(&self, regs: &[u64; 34], mem: &impl Memory, sigreturn: Option<u64>) -> Truth {
        let mut t = Truth { pcs: vec![regs[32]], complete: false, doubt: None };
        match self.walk_with(regs, true, mem, None, sigreturn, &mut t.pcs) {
            Ok(()) => t.complete = true,
            Err(why) => t.doubt = Some(why),
        }
        t
    }

    /// The CFI rule at one frame, applied; `None` at the outermost frame.
    fn step_cfi(
        &self,
        ctx: &mut UnwindContext<usize>,
        mem: &impl Memory,
        (pc, sp, fp, lr): (u64, u64, Option<u64>, Option<u64>),
        innermost: bool,
    ) -> Result<Option<Caller>, &'static str> {
        let at = if innermost { pc } else { pc - 4 };
        let row = self.row(ctx, at).ok_or("no CFI covers the pc")?;
        let rule = |r: Register| row.register(r).unwrap_or(RegisterRule::SameValue);
        let (cfa_reg, cfa_off) = match *row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => (register, offset),
            CfaRule::Expression(_) => return Err("CFA is a DWARF expression"),
        };
        if rule(AArch64::X30) == RegisterRule::Undefined {
            return Ok(None); // the outermost frame: nothing called it
        }
        if innermost && self.stale(&row, pc)? {
            return Err(STALE);
        }
        let base = match cfa_reg {
            AArch64::SP => Some(sp),
            AArch64::X29 => fp,
            _ => None,
        }
        .ok_or("CFA register unknown in this frame")?;
        let cfa = base.checked_add_signed(cfa_off).ok_or("CFA overflows")?;
        if cfa < sp || (cfa == sp && !innermost) {
            return Err("CFA not above the frame's sp");
        }
        let value = |r: Register, current: Option<u64>| -> Result<Option<u64>, &'static str> {
            Ok(match rule(r) {
                RegisterRule::Undefined => None,
                RegisterRule::SameValue => current,
                RegisterRule::Offset(o) => {
                    let a = cfa.checked_add_signed(o).ok_or("slot overflows")?;
                    Some(mem.read_u64(a).ok_or("saved register outside the dumped stack")?)
                }
                RegisterRule::ValOffset(o) => cfa.checked_add_signed(o),
                RegisterRule::Register(AArch64::X29) => fp,
                RegisterRule::Register(AArch64::X30) => lr,
                _ => return Err("register rule not modelled (expression, other register)"),
            })
        };
        if !innermost && rule(AArch64::X30) == RegisterRule::SameValue {
            return Err("return address in x30 at a call site");
        }
        let ra = value(AArch64::X30, lr)?.ok_or("return address unknown")?;
        // Signed between paciasp and autiasp (kernels built with pointer authentication).
        let ra = if rule(AArch64::RA_SIGN_STATE) == RegisterRule::Constant(1) { strip_pac(ra) } else { ra };
        Ok(Some(Caller { cfa, ra, fp: value(AArch64::X29, fp)? }))
    }

    fn walk(
        &self,
        regs: &[u64; 34],
        exact: bool,
        mem: &impl Memory,
        kernel: Option<&KernelRules>,
        pcs: &mut Vec<u64>,
    ) -> Result<(), &'static str> {
        self.walk_with(regs, exact, mem, kernel, None, pcs)
    }

    fn walk_with(
        &self,
        regs: &[u64; 34],
        exact: bool,
        mem: &impl Memory,
        kernel: Option<&KernelRules>,
        sigreturn: Option<u64>,
        pcs: &mut Vec<u64>,
    ) -> Result<(), &'static str> {
        let mut ctx = UnwindContext::new();
        let (mut pc, mut sp, mut fp) = (regs[32], regs[31], Some(regs[29]));
        let mut lr = exact.then_some(regs[30]);
        let mut innermost = exact;
        loop {
            if pcs.len() > 512 {
                return Err("deeper than 512 frames");
            }
            if !self.is_text(pc) {
                return Err("pc outside the program's text (vdso, signal trampoline, library)");
            }
            let at = if innermost { pc } else { pc - 4 };
            let step = match kernel.filter(|k| k.keeps_record(at)) {
                // CFI-less assembly that keeps a frame record at x29 (call_on_irq_stack): at its
                // call site the record is the frame; mid-function its state is unknown.
                Some(_) if innermost => return Err("pc in CFI-less assembly"),
                Some(_) => {
                    let fp = fp.ok_or("x29 unknown")?;
                    if fp < sp {
                        return Err("frame record below sp");
                    }
                    let ra = mem.read_u64(fp + 8).ok_or("frame record outside the dumped stacks")?;
                    let next = mem.read_u64(fp).ok_or("frame record outside the dumped stacks")?;
                    Some(Caller { cfa: fp + 16, ra, fp: Some(next) })
                }
                None => self.step_cfi(&mut ctx, mem, (pc, sp, fp, lr), innermost)?,
            };
            let Some(Caller { cfa, ra, fp: next_fp }) = step else { return Ok(()) };
            if sigreturn == Some(ra) {
                // A signal handler returning to the trampoline: the kernel entered it with sp at
                // the rt_sigframe, so its CFA is the sigframe; the interrupted context is in it.
                const SIGCONTEXT: u64 = 128 + 176;
                let reg =
                    |n: u64| mem.read_u64(cfa + SIGCONTEXT + 8 + 8 * n).ok_or("signal frame outside the dumped stack");
                pcs.push(ra);
                let (p, s, f, l) = (reg(32)?, reg(31)?, reg(29)?, reg(30)?);
                if s <= cfa {
                    return Err("interrupted sp not above the signal frame");
                }
                pcs.push(p);
                (pc, sp, fp, lr) = (p, s, Some(f), Some(l));
                innermost = true;
                continue;
            }
            if !self.is_text(ra) {
                return Err("return address outside the program's text (vdso, signal trampoline, library)");
            }
            if !insn::is_call(self.insn(ra - 4).ok_or("return address at the start of text")?) {
                return Err("return address does not follow a bl/blr");
            }
            pcs.push(ra);
            (pc, sp, fp, lr) = (ra, cfa, next_fp, None);
            innermost = false;
            if let Some(k) = kernel {
                match k.boundary(cfa, ra, mem)? {
                    Boundary::None => {}
                    Boundary::EndOfTask => return Ok(()),
                    Boundary::Exception { pc: p, sp: s, fp: f, lr: l } => {
                        pcs.push(p);
                        (pc, sp, fp, lr) = (p, s, Some(f), Some(l));
                        innermost = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_pac;

    #[test]
    fn pac_stripped_from_kernel_and_user_return_addresses() {
        assert_eq!(strip_pac(0x3a8c_8000_8012_3458), 0xffff_8000_8012_3458);
        assert_eq!(strip_pac(0x00b5_8000_8012_3458), 0xffff_8000_8012_3458);
        assert_eq!(strip_pac(0x004d_aaaa_0040_1234), 0x0000_aaaa_0040_1234);
        assert_eq!(strip_pac(0xffff_8000_8012_3458), 0xffff_8000_8012_3458, "unsigned stays as it is");
    }
}
