//! ORC for functions the compiler gave no CFI (the kernel's assembly: `call_on_irq_stack`,
//! `memset`, the user-copy routines), derived from the abstract machine's state at each
//! instruction rather than checked against rows that do not exist.
//!
//! Where the machine knows sp exactly the row is `CFA = sp + k`; where only x29 is known (after
//! a stack switch) `CFA = x29 + k`; the caller's x29 and return address are where the state says
//! (still in the register, or in a live slot). Anything less is UNDEFINED.
//!
//! Derived only where the entry points are known: a function that starts with a BTI landing pad
//! (`bti c`/`bti jc`, `paciasp`/`pacibsp`, as assembly built for BTI does, so every indirect
//! entry is a pad), entered at its start, at each pad inside it and at every `bl` target inside
//! it, all with the call entry state; a function some direct branch from elsewhere jumps into
//! is left alone (that branch would bring its own state). Entry and vector code (exception
//! frames, described by `pt_regs`) is never derived.

use super::flow::{self, Fp, Seed, Sp, State};
use super::prove::Patches;
use crate::{Kind, OrcEntry, Reg};

/// What derivation produced, for the statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Derived {
    pub functions: u64,
    /// Instructions given a row (the rest of those functions stays UNDEFINED).
    pub instructions: u64,
    pub undefined: u64,
    /// The first few functions derived, by address.
    pub first: Vec<u64>,
}

/// `bti c`, `bti jc`, `paciasp`, `pacibsp`: where an indirect call may land in BTI-built code.
pub fn is_call_pad(i: u32) -> bool {
    matches!(i, 0xd503_245f | 0xd503_24df | 0xd503_233f | 0xd503_237f)
}

/// The row that holds in state `s`, if the state says enough.
pub fn row(s: &State) -> Option<OrcEntry> {
    let off = |d: i64| i16::try_from(d.checked_neg()?).ok();
    let (cfa_reg, cfa_off) = match (s.sp, s.fp) {
        (Sp::At(d), _) => (Reg::Sp, off(d)?),
        (_, Fp::At(d)) => (Reg::Fp, off(d)?),
        _ => return None,
    };
    let slot = |o: Option<i64>| -> Option<i16> {
        let o = o?;
        (o <= -8 && s.slot_live(o)).then(|| i16::try_from(o).ok()).flatten()
    };
    // A saved copy first: at a call instruction the row serves the return address after the
    // call, when x30 no longer holds the caller's (and x29 may not).
    let (fp_reg, fp_off) = match (slot(s.fp_slot), s.fp) {
        (Some(o), _) => (Reg::PrevSp, o),
        (None, Fp::Caller) => (Reg::Undefined, 0),
        _ => return None,
    };
    let (ra_reg, ra_off) = match (slot(s.ra_slot), s.lr) {
        (Some(o), _) => (Reg::PrevSp, o),
        (None, true) => (Reg::Undefined, 0),
        _ => return None,
    };
    Some(OrcEntry::new(Kind::Call, cfa_reg, cfa_off, fp_reg, fp_off, ra_reg, ra_off, false))
}

/// Rows for the CFI-less function `[start, end)` entered at `start` and at `entries` (call
/// entry state at each), or `None` when it cannot be derived.
pub fn derive(
    start: u64,
    end: u64,
    insn: impl Fn(u64) -> Option<u32>,
    entries: &[u64],
    patches: Patches<'_>,
    stats: &mut Derived,
) -> Option<Vec<(u64, OrcEntry)>> {
    let len = end.checked_sub(start)?;
    if !start.is_multiple_of(4) || !len.is_multiple_of(4) || len == 0 {
        return None;
    }
    let words = super::prove::words(start, end, insn);
    let code = patches.code(start, end, &words, entries);
    let states = flow::analyse(&code, Seed::Entry)?;
    let mut out: Vec<(u64, OrcEntry)> = Vec::new();
    for (k, st) in states.iter().enumerate() {
        let pc = start + 4 * k as u64;
        let e = match st.and_then(|s| row(&s)) {
            Some(e) => {
                stats.instructions += 1;
                e
            }
            None => {
                stats.undefined += 1;
                OrcEntry::UNDEFINED
            }
        };
        if out.last().is_none_or(|l| l.1 != e) {
            out.push((pc, e));
        }
    }
    stats.functions += 1;
    if stats.first.len() < 8 {
        stats.first.push(start);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_PATCHES: Patches<'static> =
        Patches { anchor: true, jump_labels: &[], opaque: &|_| false, returns: &|_| true, stops: &|_| false };

    /// 7.2's `call_on_irq_stack`: the frame record on the task stack, then sp switched to the
    /// IRQ stack (loaded from per-cpu memory); the callee's return address is found through x29.
    #[test]
    fn call_on_irq_stack_is_derived() {
        let code: &[(u64, u32)] = &[
            (0x00, 0xd503245f), // bti c
            (0x04, 0xd53b4229), // mrs x9, daif
            (0x08, 0xd5034fdf), // msr daifset, #0xf
            (0x0c, 0xa9bf7bfd), // stp x29, x30, [sp, #-16]!
            (0x10, 0x910003fd), // mov x29, sp
            (0x14, 0xb0013bd0), // adrp x16, this_cpu_vector
            (0x18, 0x91038210), // add x16, x16, #0xe0
            (0x1c, 0xd538d091), // mrs x17, tpidr_el1
            (0x20, 0xf8716a10), // ldr x16, [x16, x17]
            (0x24, 0x9140121f), // add sp, x16, #0x4, lsl #12
            (0x28, 0xd51b4229), // msr daif, x9
            (0x2c, 0xd63f0020), // blr x1
            (0x30, 0xd53b4229), // mrs x9, daif
            (0x34, 0xd5034fdf), // msr daifset, #0xf
            (0x38, 0x910003bf), // mov sp, x29
            (0x3c, 0xa8c17bfd), // ldp x29, x30, [sp], #16
            (0x40, 0xd51b4229), // msr daif, x9
            (0x44, 0xd65f03c0), // ret
        ];
        let insn = |a: u64| code.iter().find(|c| c.0 == a).map(|c| c.1);
        let mut stats = Derived::default();
        let rows = derive(0, 0x48, insn, &[], NO_PATCHES, &mut stats).unwrap();
        let at = |pc: u64| rows.iter().rev().find(|r| r.0 <= pc).unwrap().1;
        let entry = OrcEntry::new(Kind::Call, Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0, false);
        assert_eq!(at(0x00), entry);
        assert_eq!(at(0x10), OrcEntry::new(Kind::Call, Reg::Sp, 16, Reg::PrevSp, -16, Reg::PrevSp, -8, false));
        // On the IRQ stack: the CFA only through x29 (its row is the blr's, the callee's caller).
        assert_eq!(at(0x2c), OrcEntry::new(Kind::Call, Reg::Fp, 16, Reg::PrevSp, -16, Reg::PrevSp, -8, false));
        assert_eq!(at(0x3c), OrcEntry::new(Kind::Call, Reg::Sp, 16, Reg::PrevSp, -16, Reg::PrevSp, -8, false));
        assert_eq!(at(0x40), entry);
        assert_eq!(stats.undefined, 0);
    }

    /// sp moved up through a register the machine does not follow: slots may be dead, nothing is
    /// derived there.
    #[test]
    fn an_untracked_sp_gives_no_row() {
        let code: &[(u64, u32)] = &[
            (0x00, 0xd503245f), // bti c
            (0x04, 0xa9bf7bfd), // stp x29, x30, [sp, #-16]!
            (0x08, 0x910043e8), // add x8, sp, #16
            (0x0c, 0x9100011f), // mov sp, x8
            (0x10, 0xd65f03c0), // ret
        ];
        let insn = |a: u64| code.iter().find(|c| c.0 == a).map(|c| c.1);
        let mut stats = Derived::default();
        let rows = derive(0, 0x14, insn, &[], NO_PATCHES, &mut stats).unwrap();
        assert_eq!(rows.last(), Some(&(0x10, OrcEntry::UNDEFINED)));
    }
}
