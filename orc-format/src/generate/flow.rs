//! An abstract interpretation of one function along its control flow: at every instruction, what
//! sp, x29 and x30 hold relative to the function's CFA, and where the caller's x29 and return
//! address are saved. The generator proves each CFI row against these states ([`super::prove`]).
//!
//! Why along control flow and not in address order: compilers lay out code so that address order
//! lies. LLVM's shrink-wrapping puts frameless early-return blocks inside the body's CFI row (they
//! are reached by a branch from the entry, before the prologue ran); a tail of a loop can sit
//! before its head. A row is only true at a pc if it is true on every path into that pc.
//!
//! The domain is small on purpose. sp is exact (`At`), bounded above (`AtMost`, after a dynamic
//! allocation) or unknown; x29 is the caller's, exact, or unknown; x30 is the return address or
//! not; each save slot is a CFA offset or unknown. Instructions whose effect is not modelled
//! exactly fall back to [`super::insn::writes`]: whatever they may write becomes unknown. Joins
//! lose precision, never soundness, and the lattice is finite in height, so the fixpoint ends.
//!
//! What the machine assumes (and a reviewer should know):
//! - a function is entered at its first instruction with sp = CFA, x29 and x30 the caller's
//!   (any other first row seeds the state from the CFI and is counted, see [`Seed`]);
//! - callees preserve sp and x29 and return (AAPCS64); stores through registers other than sp
//!   and x29 do not hit this frame's save slots (code that does is memory corruption, out of
//!   scope as for mainline);
//! - an indirect jump that is not a tail call lands on a `bti j`/`bti jc` pad when the function
//!   has any (as BTI-built code must); otherwise at the start of a block no direct path reaches
//!   (after an unconditional branch or return). An indirect jump with the frame torn down (the
//!   state a tail call needs) counts only when no other indirect jump keeps a frame: then it may
//!   be a frameless function's jump table. A jump table whose target is also reached
//!   directly gets no join from the jump: for that to hide a wrong row, the CFI would have to
//!   be wrong at the target *and* right for every direct path into it;
//! - the kernel's `BUG()` (`brk #0x800` with a bug-table entry that is not a warning) never
//!   resumes: `die()` ends the task. (A die-chain notifier that returns NOTIFY_STOP, a
//!   debugger, would resume it into code the compiler made after `__builtin_unreachable()`:
//!   undefined already, as a noreturn callee returning.)
//! - kernel jump labels may turn their site into a branch to their target or back, and
//!   alternatives may replace their instructions: both are given to the machine as extra edges
//!   and opaque instructions.

use super::insn::{Regs, writes};

/// sp relative to the CFA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sp {
    At(i64),
    /// sp ≤ CFA + d (below a dynamic allocation).
    AtMost(i64),
    /// On another stack: sp was set from a pointer loaded from memory that is not this frame
    /// (`call_on_irq_stack` loads the per-cpu IRQ stack). Exceptions taken there push onto that
    /// stack, so this frame's slots stay intact; the CFA can then only come from x29.
    Foreign,
    Unknown,
}

/// x29.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fp {
    /// Still the caller's value.
    Caller,
    /// CFA + d: this function's frame record.
    At(i64),
    Unknown,
}

/// The machine state before an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    pub sp: Sp,
    pub fp: Fp,
    /// x30 still holds the return address (possibly PAC-signed).
    pub lr: bool,
    /// CFA offset of the slot holding the caller's x29.
    pub fp_slot: Option<i64>,
    /// CFA offset of the slot holding the return address.
    pub ra_slot: Option<i64>,
    /// A register set to a constant by `movz`/`movn`/`movk` (`mov x12, #0x1780` before
    /// `sub sp, sp, x12`: how compilers allocate frames over 4 KiB), kept only across the few
    /// instruction forms known not to write it (`keeps`).
    pub konst: Option<(u8, i64)>,
    /// A register (< 29) just loaded from memory through a base other than sp and x29: a
    /// pointer that is not into this frame. Kept like `konst`.
    pub loaded: Option<u8>,
}

impl State {
    /// At a function's first instruction, as the caller's `bl` left it.
    pub const ENTRY: State =
        State { sp: Sp::At(0), fp: Fp::Caller, lr: true, fp_slot: None, ra_slot: None, konst: None, loaded: None };

    /// The frame is torn down: what a tail call or a return needs.
    pub fn is_exit(&self) -> bool {
        self.sp == Sp::At(0) && self.fp == Fp::Caller && self.lr
    }

    /// The state on either path; `self` is the one recorded first (see `sp`).
    fn join(self, o: State) -> State {
        let sp = match (self.sp, o.sp) {
            (a, b) if a == b => a,
            (Sp::At(a), Sp::At(b) | Sp::AtMost(b)) => Sp::AtMost(a.max(b)),
            // `self` is the state already recorded: a bound never rises, it widens to unknown
            // instead. So sp goes At -> AtMost -> Unknown at most, and loops that move sp after
            // an allocation (`add sp, sp, #16`) reach a fixpoint.
            (Sp::AtMost(a), Sp::At(b) | Sp::AtMost(b)) if b <= a => Sp::AtMost(a),
            (Sp::Foreign, Sp::Foreign) => Sp::Foreign,
            _ => Sp::Unknown,
        };
        let same = |a: Option<i64>, b: Option<i64>| if a == b { a } else { None };
        State {
            sp,
            fp: if self.fp == o.fp { self.fp } else { Fp::Unknown },
            lr: self.lr && o.lr,
            fp_slot: same(self.fp_slot, o.fp_slot),
            ra_slot: same(self.ra_slot, o.ra_slot),
            konst: if self.konst == o.konst { self.konst } else { None },
            loaded: if self.loaded == o.loaded { self.loaded } else { None },
        }
    }

    /// True when the 8-byte slot at CFA + `off` lies at or above sp: below sp, an exception
    /// frame may already have overwritten it.
    pub fn slot_live(&self, off: i64) -> bool {
        match self.sp {
            Sp::At(d) | Sp::AtMost(d) => d <= off,
            Sp::Foreign => true,
            Sp::Unknown => false,
        }
    }

    fn set_sp(&mut self, sp: Sp) {
        // Slots sp has moved above are gone for good (an exception frame may have used them):
        // below an exact sp, below a bound that rose (`add sp, sp, #n` after an alloca), and
        // below the sp a switch to another stack left (nothing there is this frame's any more).
        let floor = match (sp, self.sp) {
            (Sp::At(d) | Sp::AtMost(d), _) | (Sp::Foreign, Sp::At(d) | Sp::AtMost(d)) => Some(d),
            _ => None,
        };
        self.sp = sp;
        if let Some(d) = floor {
            self.fp_slot = self.fp_slot.filter(|&s| s >= d);
            self.ra_slot = self.ra_slot.filter(|&s| s >= d);
        }
    }

    fn forget_slots_in(&mut self, lo: i64, len: i64) {
        let hit = |s: i64| s < lo.saturating_add(len) && lo < s.saturating_add(8);
        self.fp_slot = self.fp_slot.filter(|&s| !hit(s));
        self.ra_slot = self.ra_slot.filter(|&s| !hit(s));
    }

    fn forget_slots(&mut self) {
        (self.fp_slot, self.ra_slot) = (None, None);
    }

    /// Everything the instruction may write becomes unknown.
    fn clobber(&mut self, w: Regs) {
        if w.meets(Regs::SP) {
            self.set_sp(Sp::Unknown);
        }
        if w.meets(Regs::FP) {
            self.fp = Fp::Unknown;
        }
        if w.meets(Regs::LR) {
            self.lr = false;
        }
    }

    /// The value of base register `r` as a CFA offset (exact), if known.
    fn base(&self, r: u32) -> Option<i64> {
        match (r, self.sp, self.fp) {
            (31, Sp::At(d), _) | (29, _, Fp::At(d)) => Some(d),
            _ => None,
        }
    }

    /// Writes `r` with CFA + `v` (`None`: unknown).
    fn write(&mut self, r: u32, v: Option<i64>) {
        match r {
            31 => self.set_sp(v.map_or(Sp::Unknown, Sp::At)),
            29 => self.fp = v.map_or(Fp::Unknown, Fp::At),
            30 => self.lr = false,
            _ => {}
        }
    }
}

fn sext(v: u32, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((i64::from(v)) << shift) >> shift
}

/// Hints that sign, authenticate or strip x30: it still holds the same return address.
const LR_HINTS: [u32; 9] = [
    0xd503_233f,
    0xd503_237f,
    0xd503_23bf,
    0xd503_23ff,
    0xd503_231f,
    0xd503_235f,
    0xd503_239f,
    0xd503_23df,
    0xd503_20ff,
];

/// A memory access the machine models: base register, CFA-relative address (if known), bytes,
/// writeback amount, and the registers it loads or stores.
struct Access {
    rn: u32,
    /// Offset added to the base for the access (0 for post-index).
    off: i64,
    /// Base change after the access (pre- and post-index).
    wb: Option<i64>,
    bytes: i64,
    load: bool,
    /// General registers transferred, 64-bit wide ones flagged.
    regs: [Option<(u32, bool)>; 2],
    /// A tag-only store (stg, st2g): memory contents unchanged.
    tags_only: bool,
}

/// Decodes the load/store forms prologues and epilogues are made of.
fn access(i: u32) -> Option<Access> {
    let (rt, rn, rt2) = (i & 31, (i >> 5) & 31, (i >> 10) & 31);
    // Memory tags (stg, stzg, st2g, stz2g): imm9 scaled by 16, op2 01 post, 10 offset, 11 pre.
    if i & 0xff20_0000 == 0xd920_0000 && (i >> 10) & 3 != 0 {
        let imm = sext((i >> 12) & 0x1ff, 9) * 16;
        let two = (i >> 23) & 1 == 1;
        let zero = (i >> 22) & 1 == 1;
        let (off, wb) = match (i >> 10) & 3 {
            1 => (0, Some(imm)),
            2 => (imm, None),
            _ => (imm, Some(imm)),
        };
        let bytes = if two { 32 } else { 16 };
        return Some(Access { rn, off, wb, bytes, load: false, regs: [None, None], tags_only: !zero });
    }
    // Pairs: opc(31:30) 101 V(26) mode(24:23) L(22) imm7.
    if (i >> 27) & 7 == 0b101 && (i >> 25) & 1 == 0 {
        let (opc, simd, load) = (i >> 30, (i >> 26) & 1 == 1, (i >> 22) & 1 == 1);
        let size: i64 = match (simd, opc, load) {
            (_, 3, _) => return None,
            (true, o, _) => 4 << o,
            (false, 0, _) => 4,
            (false, 1, false) => 16, // stgp: two 8-byte registers, imm scaled by 16
            (false, 1, true) => 4,   // ldpsw
            (false, _, _) => 8,
        };
        let bytes = if !simd && opc == 1 && !load { 16 } else { 2 * size };
        let imm = sext((i >> 15) & 0x7f, 7) * size;
        let (off, wb) = match (i >> 23) & 3 {
            1 => (0, Some(imm)),
            3 => (imm, Some(imm)),
            _ => (imm, None),
        };
        let wide = !simd && opc == 2;
        let regs = if simd { [None, None] } else { [Some((rt, wide)), Some((rt2, wide))] };
        return Some(Access { rn, off, wb, bytes, load, regs, tags_only: false });
    }
    // Single register: size(31:30) 111 V(26) 0 opc(23:22); unsigned offset (bit 24) or imm9.
    if (i >> 27) & 7 == 0b111 && (i >> 25) & 1 == 0 {
        let (size, simd, opc) = (i >> 30, (i >> 26) & 1 == 1, (i >> 22) & 3);
        let unsigned = (i >> 24) & 1 == 1;
        if !unsigned && (i >> 21) & 1 == 1 {
            return None; // register offset, atomics, PAC loads: not modelled
        }
        let (bytes, load): (i64, bool) = match (simd, size, opc) {
            (true, 0, 2 | 3) => (16, opc == 3),
            (true, _, 0 | 1) => (1 << size, opc == 1),
            (true, _, _) => return None,
            (false, 3, 2) => return None, // prfm, prfum: nothing written (fallback agrees)
            (false, _, 0) => (1 << size, false),
            (false, _, _) => (1 << size, true),
        };
        let (off, wb) = if unsigned {
            (i64::from((i >> 10) & 0xfff) * bytes, None)
        } else {
            let imm = sext((i >> 12) & 0x1ff, 9);
            match (i >> 10) & 3 {
                1 => (0, Some(imm)),
                3 => (imm, Some(imm)),
                _ => (imm, None), // unscaled, unprivileged
            }
        };
        let wide = !simd && size == 3 && opc <= 1; // str x / ldr x
        let regs = if simd { [None, None] } else { [Some((rt, wide)), None] };
        return Some(Access { rn, off, wb, bytes, load, regs, tags_only: false });
    }
    None
}

/// True when `i` certainly leaves general register `r` (< 29) alone: the forms prologues and
/// epilogues are made of. Anything else may write it.
fn keeps(i: u32, r: u32) -> bool {
    if LR_HINTS.contains(&i) || i == 0xd503_201f {
        return true; // PAC hints on x30, nop
    }
    if i & 0xbf80_0000 == 0x9100_0000 {
        return i & 31 != r; // add/sub immediate
    }
    match access(i) {
        Some(a) => {
            let loaded = a.load && a.regs.iter().flatten().any(|&(t, _)| t == r);
            let written_back = a.wb.is_some() && a.rn == r;
            !(loaded || written_back)
        }
        None => false,
    }
}

/// The state after `i` runs in state `s`. `opaque` marks an instruction that alternatives may
/// replace with one the machine cannot see: it may write anything.
pub fn step(s: &State, i: u32, opaque: bool) -> State {
    let mut n = *s;
    n.konst = s.konst.filter(|k| keeps(i, u32::from(k.0)));
    n.loaded = s.loaded.filter(|&r| keeps(i, u32::from(r)));
    if opaque {
        n.clobber(Regs::ALL);
        n.forget_slots();
        return n;
    }
    if LR_HINTS.contains(&i) {
        return n;
    }
    // add/sub (immediate), 64-bit, not setting flags: sp and x29 arithmetic.
    if i & 0xbf80_0000 == 0x9100_0000 {
        let (rd, rn) = (i & 31, (i >> 5) & 31);
        let imm = i64::from((i >> 10) & 0xfff) << if (i >> 22) & 1 == 1 { 12 } else { 0 };
        let imm = if (i >> 30) & 1 == 1 { -imm } else { imm };
        if let (31, 31, Sp::AtMost(d)) = (rd, rn, s.sp) {
            n.set_sp(Sp::AtMost(d.saturating_add(imm)));
            return n;
        }
        if rd == 31 && s.loaded.is_some_and(|r| u32::from(r) == rn) {
            n.set_sp(Sp::Foreign);
            return n;
        }
        n.write(rd, s.base(rn).map(|b| b.saturating_add(imm)));
        return n;
    }
    // mov xN, #imm (movz, movn; 32-bit movz zero-extends) and movk on the same register.
    let (rd, hw) = (i & 31, (i >> 21) & 3);
    let imm16 = i64::from((i >> 5) & 0xffff);
    let moved = match i & 0xff80_0000 {
        0xd280_0000 => Some(imm16 << (16 * hw)),
        0x9280_0000 => Some(!(imm16 << (16 * hw))),
        0x5280_0000 if hw < 2 => Some(imm16 << (16 * hw)),
        0xf280_0000 => match s.konst {
            Some((r, v)) if u32::from(r) == rd => Some((v & !(0xffff << (16 * hw))) | (imm16 << (16 * hw))),
            _ => None,
        },
        _ => None,
    };
    if let Some(v) = moved {
        // These write only xN; x29/x30 as destinations are not a constant the machine wants.
        n.clobber(writes(i));
        n.konst = u8::try_from(rd).ok().filter(|&r| r < 29).map(|r| (r, v));
        return n;
    }
    // add/sub sp, sp, xM (extended register, uxtx, no shift): exact after a constant, else a
    // dynamic allocation (sub: sp only goes down).
    if i & 0xbfe0_fc00 == 0x8b20_6000 && rd == 31 && (i >> 5) & 31 == 31 {
        let sub = (i >> 30) & 1 == 1;
        let known = s.konst.filter(|k| u32::from(k.0) == (i >> 16) & 31).map(|k| if sub { -k.1 } else { k.1 });
        n.set_sp(match (s.sp, known) {
            (Sp::At(d), Some(v)) => Sp::At(d.saturating_add(v)),
            (Sp::AtMost(d), Some(v)) => Sp::AtMost(d.saturating_add(v)),
            (Sp::At(d) | Sp::AtMost(d), None) if sub => Sp::AtMost(d),
            _ => Sp::Unknown,
        });
        return n;
    }
    // ldr xt, [xn, xm{, lsl #3}] through a base other than sp/x29: a pointer from memory.
    // Rt 31 is the zero register (a load for its fault only), not sp: it writes nothing.
    if i & 0xffe0_0c00 == 0xf860_0800 && !matches!((i >> 5) & 31, 29 | 31) && rd != 31 {
        n.write(rd, None);
        n.loaded = u8::try_from(rd).ok().filter(|&r| r < 29);
        return n;
    }
    if let Some(a) = access(i) {
        let base = s.base(a.rn);
        let addr = base.map(|b| b.saturating_add(a.off));
        if a.load {
            for (k, (r, wide)) in a.regs.iter().enumerate().filter_map(|(k, r)| r.map(|r| (k, r))) {
                let at = addr.map(|x| x.saturating_add(if k == 0 { 0 } else { a.bytes / 2 }));
                match r {
                    29 => n.fp = if wide && at.is_some() && at == s.fp_slot { Fp::Caller } else { Fp::Unknown },
                    30 => n.lr = wide && at.is_some() && at == s.ra_slot,
                    // A pointer from memory that is not this frame (a function pointer, the
                    // per-cpu IRQ stack).
                    r if wide && r < 29 && !matches!(a.rn, 29 | 31) && a.wb.is_none() => {
                        n.loaded = u8::try_from(r).ok();
                    }
                    _ => {}
                }
            }
        } else if !a.tags_only {
            match addr {
                Some(lo) => n.forget_slots_in(lo, a.bytes),
                // A store to this frame at an address the machine lost: trust no slot.
                None if a.rn == 31 || a.rn == 29 => n.forget_slots(),
                None => {}
            }
            if let Some(lo) = addr {
                let half = a.bytes / 2;
                for (k, (r, wide)) in a.regs.iter().enumerate().filter_map(|(k, r)| r.map(|r| (k, r))) {
                    let at = lo.saturating_add(if k == 0 { 0 } else { half });
                    match r {
                        // A second copy (`stur x30, [x29, #-64]` for the kernel's shadow
                        // stack of return addresses) leaves the first, which CFI describes.
                        29 if wide && s.fp == Fp::Caller && n.fp_slot.is_none() => n.fp_slot = Some(at),
                        30 if wide && s.lr && n.ra_slot.is_none() => n.ra_slot = Some(at),
                        _ => {}
                    }
                }
            }
        }
        if let Some(wb) = a.wb {
            // Writeback of a base register: the base moves by the immediate.
            match (a.rn, s.sp) {
                (31, Sp::AtMost(d)) => n.set_sp(Sp::AtMost(d.saturating_add(wb))),
                _ => {
                    let v = base.map(|b| b.saturating_add(wb));
                    // A load into the base itself leaves it unknown.
                    if !(a.load && a.regs.iter().flatten().any(|r| r.0 == a.rn)) {
                        n.write(a.rn, v);
                    }
                }
            }
        }
        return n;
    }
    // SVE (bits 28:25 = 0010; the decoder calls all of it "everything"): nearly every form
    // writes only Z, P or FFR registers, and SVE memory accesses have no writeback. The few that
    // write a general register: addvl/addpl (Rd or sp), rdvl/rdsvl, the scalar element counts
    // (cnt*, inc*, dec*, sq/uq*), cntp, scalar incp/decp, lasta/lastb, clasta/clastb.
    if i & 0x1e00_0000 == 0x0400_0000 {
        let gpr = i & 0xffa0_f800 == 0x0420_5000
            || i & 0xffa0_f800 == 0x0420_5800 // addsvl, addspl (SME): Rd or sp
            || i & 0xff30_f800 == 0x2520_8800 // inc/dec and saturating by predicate count
            || i & 0xffff_f000 == 0x04bf_5000
            || (i >> 29 == 0 && i & 0xff20_e000 == 0x0420_e000)
            || i & 0xff3f_c200 == 0x2520_8000
            || i & 0xff3c_fe00 == 0x252c_8800
            || i & 0xff3e_e000 == 0x0520_a000
            || i & 0xff3e_e000 == 0x0530_a000;
        if gpr {
            n.write(rd, None);
        } else if i >> 31 == 1 && matches!((i >> 5) & 31, 29 | 31) {
            n.forget_slots(); // a store through sp or x29 may hit a save slot
        }
        return n;
    }
    // SME's ZA and ZT0 fills and spills (bit 31 set, bits 28:25 = 0000, which the decoder calls
    // "everything"): `ldr`/`str za[wv, #o], [xn, #o, mul vl]` and `ldr`/`str zt0, [xn]` (bit 21:
    // store), the kernel's `sme_load_state`/`sme_save_state`. They read wv and xn|sp and write
    // only ZA, ZT0 or memory: no general register, no writeback. The rest of SME stays
    // "everything" (`movt xt, zt0[...]` writes a general register).
    if i & 0xffdf_9c10 == 0xe100_0000 || i & 0xffdf_fc1f == 0xe11f_8000 {
        if i & 0x0020_0000 != 0 && matches!((i >> 5) & 31, 29 | 31) {
            n.forget_slots(); // a store through sp or x29 may hit a save slot
        }
        return n;
    }
    // Everything else: what it may write is lost; a memory access through sp or x29 that the
    // machine does not model may hit a save slot.
    let w = writes(i);
    n.clobber(w);
    let rn = (i >> 5) & 31;
    if i & 0x0a00_0000 == 0x0800_0000 && (rn == 31 || rn == 29) {
        n.forget_slots();
    }
    n
}

pub use crate::a64::{Flow, call_target, flow};

/// `bti j` and `bti jc`: where an indirect jump may land in BTI-built code.
fn is_jump_pad(i: u32) -> bool {
    i == 0xd503_249f || i == 0xd503_24df
}

/// How the first state of a function was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seed {
    /// The call entry state: sp = CFA, x29 and x30 the caller's.
    Entry,
    /// Taken from the first CFI row (a function part such as gcc's `.cold` that is entered by a
    /// branch from another FDE): an assumption, so `prove` cuts such a part's rows instead.
    Cfi(State),
}

/// The code of one function: instruction words from `start`, with runtime patch sites.
#[allow(missing_debug_implementations)]
pub struct Code<'a> {
    pub start: u64,
    pub words: &'a [Option<u32>],
    /// Jump label sites in this function and their targets: the site may be either a `nop` or a
    /// branch at run time.
    pub jump_labels: &'a [(u64, u64)],
    /// Instructions alternatives may replace with something the machine cannot see.
    pub opaque: &'a dyn Fn(u64) -> bool,
    /// False for a call target proven never to return (`abort`, `panic`): code after a `bl` to
    /// it is not reached from the call (compilers put unrelated blocks there).
    pub returns: &'a dyn Fn(u64) -> bool,
    /// True for a trap that never resumes (the kernel's `BUG()`: a `brk #0x800` its bug table
    /// does not call a warning): no fall-through (compilers put other blocks after it).
    pub stops: &'a dyn Fn(u64) -> bool,
    /// Further entry points, each entered with the call entry state (inner `bl` targets and
    /// BTI pads of assembly, see `derive`).
    pub entries: &'a [u64],
}

impl Code<'_> {
    fn index(&self, a: u64) -> Option<usize> {
        let off = a.checked_sub(self.start)?;
        if off % 4 != 0 {
            return None;
        }
        usize::try_from(off / 4).ok().filter(|&k| k < self.words.len())
    }

    /// Successors of instruction `k` (word `i`), the call-aware flow plus patch sites.
    fn successors(&self, k: usize, i: u32, out: &mut Vec<usize>) {
        let pc = self.start + 4 * k as u64;
        let mut fl = flow(pc, i);
        if let Some(callee) = call_target(pc, i) {
            fl.falls = (self.returns)(callee);
        }
        if (self.stops)(pc) {
            fl.falls = false;
        }
        if fl.falls || (self.opaque)(pc) {
            out.extend(self.index(pc + 4));
        }
        out.extend(fl.target.and_then(|t| self.index(t)));
        for &(_, t) in self.jump_labels.iter().filter(|(site, _)| *site == pc) {
            out.extend(self.index(t));
            out.extend(self.index(pc + 4));
        }
    }

    /// Whether some path from the entry leaves the function by a return, a tail call to code that
    /// returns (`returns`), or an indirect jump (which may be a tail call). Part of a least
    /// fixpoint over the image: a function is only called non-returning when no path can return.
    pub fn can_return(&self) -> bool {
        let n = self.words.len();
        let mut seen = vec![false; n];
        let mut work = vec![0usize];
        let mut next = Vec::new();
        while let Some(k) = work.pop() {
            if k >= n || std::mem::replace(&mut seen[k], true) {
                continue;
            }
            let Some(i) = self.words[k] else { return true }; // unreadable: assume the worst
            let pc = self.start + 4 * k as u64;
            let fl = flow(pc, i);
            let leaves = match fl.target {
                Some(t) => self.index(t).is_none() && (self.returns)(t),
                _ => false,
            };
            let ret = !fl.falls && fl.target.is_none();
            if leaves || ret || fl.indirect {
                return true;
            }
            next.clear();
            self.successors(k, i, &mut next);
            work.extend_from_slice(&next);
        }
        false
    }
}

/// The state before every instruction (`None`: no path reaches it, or it could not be decoded),
/// or `None` when the analysis gave up (too many iterations).
pub fn analyse(code: &Code<'_>, seed: Seed) -> Option<Vec<Option<State>>> {
    let n = code.words.len();
    let mut states: Vec<Option<State>> = vec![None; n];
    let first = match seed {
        Seed::Entry => State::ENTRY,
        Seed::Cfi(s) => s,
    };
    let pads: Vec<usize> = (0..n).filter(|&k| code.words[k].is_some_and(is_jump_pad)).collect();
    // Without pads, the code no direct path reaches (once chosen, always fed).
    let mut landing: Vec<usize> = Vec::new();
    let mut work: Vec<(usize, State)> = if n > 0 { vec![(0, first)] } else { Vec::new() };
    work.extend(code.entries.iter().filter_map(|&e| code.index(e)).map(|k| (k, State::ENTRY)));
    let mut budget = n.saturating_mul(64).saturating_add(1024);
    let mut succ = Vec::new();
    loop {
        while let Some((k, s)) = work.pop() {
            budget = budget.checked_sub(1)?;
            let merged = match states[k] {
                Some(old) => {
                    let j = old.join(s);
                    if j == old {
                        continue;
                    }
                    j
                }
                None => s,
            };
            states[k] = Some(merged);
            let Some(i) = code.words[k] else { continue };
            let pc = code.start + 4 * k as u64;
            let next = step(&merged, i, (code.opaque)(pc));
            succ.clear();
            code.successors(k, i, &mut succ);
            work.extend(succ.iter().map(|&j| (j, next)));
        }
        // Indirect jumps that may be jump tables feed their targets their state: any jump with a
        // frame up, and a jump with the frame torn down unless its target is a pointer just
        // loaded from memory (`ldr x1, [x9, w8, uxtw #3]; ...; br x1`: a tail call through a
        // function pointer). A computed target (`adr; add; br`) is a jump table whatever the
        // frame: frameless case blocks of a shrink-wrapped switch start in the torn-down state
        // (`a_frameless_jump_table_beside_a_framed_one_is_not_proven`).
        let mut joined: Option<State> = None;
        for (k, (&s, &i)) in states.iter().zip(code.words).enumerate() {
            let (Some(s), Some(i)) = (s, i) else { continue };
            let pc = code.start + 4 * k as u64;
            if flow(pc, i).indirect {
                let tail_call = s.is_exit() && s.loaded.is_some_and(|r| u32::from(r) == (i >> 5) & 31);
                if !tail_call {
                    let after = step(&s, i, (code.opaque)(pc));
                    joined = Some(joined.map_or(after, |f| f.join(after)));
                }
            }
        }
        let Some(from) = joined else { break };
        if pads.is_empty() {
            // Unreached block starts only: a jump lands at a label, not in the middle of the
            // straight-line code that follows it (which the label's block then reaches).
            let leader = |k: usize| {
                k.checked_sub(1).is_none_or(|p| {
                    let pc = code.start + 4 * p as u64;
                    code.words[p].is_none_or(|w| !flow(pc, w).falls)
                })
            };
            landing.extend((0..n).filter(|&k| states[k].is_none() && leader(k)));
            landing.sort_unstable();
            landing.dedup();
        }
        let targets = if pads.is_empty() { &landing } else { &pads };
        let before = work.len();
        for &k in targets {
            if states[k].is_none_or(|s| s.join(from) != s) {
                work.push((k, from));
            }
        }
        if work.len() == before {
            break;
        }
    }
    Some(states)
}
