//! Anchoring x29-based CFA rows to sp, where the instructions prove it.
//!
//! gcc keeps the CFA on x29 whenever its frame record is not at the bottom of the frame
//! (`sub sp, sp, #160; stp x29, x30, [sp, #64]; add x29, sp, #64` in `__schedule`), not only for
//! dynamic allocations. Such a row has no anchor to sp: a corrupted saved fp aimed at another
//! valid record would skip frames with every check passing, so the walk refuses it by default
//! (`FpBasedCfa`), and with it every blocked task, since `__schedule` is on all of them.
//!
//! When the frame is fixed, the row can say the same thing from sp. This module rewrites a
//! function's x29-based rows to `CFA = sp + k` when all of the following hold, each checked on
//! the instructions (so the claim rests on the code, not only on the CFI):
//! 1. all x29-based rows say `CFA = x29 + c` with the same `c`;
//! 2. no instruction in any x29-based row writes sp;
//! 3. the first x29-based row directly follows an sp-based row `CFA = sp + k` and is reached
//!    from it by falling through an instruction that does not write sp (the prologue's
//!    `add x29, sp, #n`): at its start, `CFA = sp + k`;
//! 4. no other code can enter an x29-based row with a different sp: every other row
//!    (sp-based with another offset, or UNDEFINED, e.g. an epilogue or a stale stretch) neither
//!    falls through into an x29-based row nor branches into one, and has no indirect branch
//!    (`br`) whose target could be one.
//!
//! Then every path into the x29-based rows arrives with `sp = CFA - k`, and nothing on them
//! changes sp: `CFA = sp + k` holds at each of their pcs. Functions with a dynamic allocation
//! (`invoke_syscall`'s random stack offset, VLAs) fail (2) and stay as they are.

use super::insn::{Regs, writes};
use crate::{Kind, OrcEntry, Reg};

/// How many rows and functions were anchored, for the statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anchors {
    pub functions: u64,
    pub rows: u64,
    /// Functions with x29-based rows that could not be anchored.
    pub left: u64,
    /// Where the first few of those start, and which condition failed (1-4 above).
    pub left_first: [(u64, u8); 8],
}

impl Anchors {
    fn keep(&mut self, start: u64, why: u8) {
        if let Some(slot) = usize::try_from(self.left).ok().and_then(|i| self.left_first.get_mut(i)) {
            *slot = (start, why);
        }
        self.left += 1;
    }
}

fn fp_based(e: &OrcEntry) -> bool {
    e.kind() == Some(Kind::Call) && e.sp_reg() == Some(Reg::Fp)
}

fn sp_based(e: &OrcEntry) -> Option<i16> {
    (e.kind() == Some(Kind::Call) && e.sp_reg() == Some(Reg::Sp)).then_some(e.sp_offset)
}

/// Where control can go after `i` at `pc`: the direct branch target (if any), whether it can
/// fall through, and whether it is an indirect jump (not a return).
fn flow(pc: u64, i: u32) -> (Option<u64>, bool, bool) {
    let target = |imm: u32, bits: u32| {
        let shift = 32 - bits;
        let off = (((imm << shift) as i32) >> shift) as i64 * 4;
        pc.checked_add_signed(off)
    };
    if i & 0x7c00_0000 == 0x1400_0000 && i >> 31 == 0 {
        return (target(i & 0x03ff_ffff, 26), false, false); // b
    }
    if i & 0xff00_0000 == 0x5400_0000 || i & 0x7e00_0000 == 0x3400_0000 {
        return (target((i >> 5) & 0x7_ffff, 19), true, false); // b.cond, bc.cond, cbz, cbnz
    }
    if i & 0x7e00_0000 == 0x3600_0000 {
        return (target((i >> 5) & 0x3fff, 14), true, false); // tbz, tbnz
    }
    if i & 0xfe00_0000 == 0xd600_0000 && (i >> 21) & 0xf != 0b0001 {
        // br, ret, eret and PAC forms; ret (opc 0010) ends the function.
        let ret = (i >> 21) & 0xf == 0b0010;
        return (None, false, !ret);
    }
    (None, true, false)
}

/// Rows `(start, entry)` of one function ending at `end`, with its x29-based rows anchored to
/// sp when the conditions above hold; otherwise unchanged.
pub fn anchor(
    rows: &[(u64, OrcEntry)],
    end: u64,
    insn: impl Fn(u64) -> Option<u32>,
    n: &mut Anchors,
) -> Vec<(u64, OrcEntry)> {
    let ranges: Vec<(u64, u64, OrcEntry)> = super::stale::ranges(rows, end).collect();
    let Some(first) = ranges.iter().position(|r| fp_based(&r.2)) else { return rows.to_vec() };
    let fstart = rows.first().map_or(0, |r| r.0);
    let c = ranges[first].2.sp_offset;
    let in_fp_row = |a: u64| ranges.iter().any(|&(s, e, x)| fp_based(&x) && s <= a && a < e);
    // (3) the seed.
    let Some(k) = first.checked_sub(1).and_then(|p| ranges.get(p)).and_then(|r| sp_based(&r.2)) else {
        n.keep(fstart, 3);
        return rows.to_vec();
    };
    let start = ranges[first].0;
    match start.checked_sub(4).and_then(&insn) {
        Some(i) if !writes(i).meets(Regs::SP) && matches!(flow(start - 4, i), (None, true, false)) => {}
        _ => {
            n.keep(fstart, 3);
            return rows.to_vec();
        }
    }
    for &(s, e, x) in &ranges {
        let mut a = s;
        if fp_based(&x) {
            // (1) and (2).
            if x.sp_offset != c {
                n.keep(fstart, 1);
                return rows.to_vec();
            }
            while a < e {
                match insn(a) {
                    Some(i) if !writes(i).meets(Regs::SP) => a += 4,
                    _ => {
                        n.keep(fstart, 2);
                        return rows.to_vec();
                    }
                }
            }
        } else if sp_based(&x) != Some(k) {
            // (4): nothing leads from here into an x29-based row.
            while a < e {
                let Some(i) = insn(a) else {
                    n.keep(fstart, 4);
                    return rows.to_vec();
                };
                let (target, falls, indirect) = flow(a, i);
                if indirect || target.is_some_and(in_fp_row) || (falls && a + 4 == e && in_fp_row(e)) {
                    n.keep(fstart, 4);
                    return rows.to_vec();
                }
                a += 4;
            }
        }
    }
    n.functions += 1;
    rows.iter()
        .map(|&(s, x)| {
            if fp_based(&x) {
                n.rows += 1;
                let (fp, ra) = (x.fp_reg().unwrap_or(Reg::Undefined), x.ra_reg().unwrap_or(Reg::Undefined));
                (s, OrcEntry::new(Kind::Call, Reg::Sp, k, fp, x.fp_offset, ra, x.ra_offset, x.signal()))
            } else {
                (s, x)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(sp_reg: Reg, sp: i16, saved: bool) -> OrcEntry {
        let (r, f, a) = if saved { (Reg::PrevSp, -96, -88) } else { (Reg::Undefined, 0, 0) };
        OrcEntry::new(Kind::Call, sp_reg, sp, r, f, r, a, false)
    }

    type Code = Vec<(u64, u32)>;
    type Rows = Vec<(u64, OrcEntry)>;

    /// `__schedule`'s shape (Debian 6.12 vmlinux): record in the middle of a fixed frame.
    fn schedule() -> (Code, Rows) {
        let code = vec![
            (0x00, 0xd503233f), // paciasp
            (0x04, 0xd10283ff), // sub sp, sp, #0xa0          -> row sp+160
            (0x08, 0xa9047bfd), // stp x29, x30, [sp, #64]    -> row sp+160, record saved
            (0x0c, 0x910103fd), // add x29, sp, #0x40         -> row x29+96
            (0x10, 0x94000000), // bl
            (0x14, 0x35000040), // cbnz w0, 0x1c
            (0x18, 0x94000000), // bl
            (0x1c, 0xa9447bfd), // ldp x29, x30, [sp, #64]    -> row sp+160 (x29 restored)
            (0x20, 0x910283ff), // add sp, sp, #0xa0          -> row sp+0
            (0x24, 0xd50323bf), // autiasp
            (0x28, 0xd65f03c0), // ret
        ];
        let rows = vec![
            (0x00, call(Reg::Sp, 0, false)),
            (0x08, call(Reg::Sp, 160, false)),
            (0x0c, call(Reg::Sp, 160, true)),
            (0x10, call(Reg::Fp, 96, true)),
            (0x20, call(Reg::Sp, 160, false)),
            (0x24, call(Reg::Sp, 0, false)),
        ];
        (code, rows)
    }

    fn run(code: &[(u64, u32)], rows: &[(u64, OrcEntry)]) -> (Vec<(u64, OrcEntry)>, Anchors) {
        let insn = |a: u64| code.iter().find(|c| c.0 == a).map(|c| c.1);
        let mut n = Anchors::default();
        (anchor(rows, 0x2c, insn, &mut n), n)
    }

    #[test]
    fn a_fixed_frame_is_anchored_to_sp() {
        let (code, rows) = schedule();
        let (out, n) = run(&code, &rows);
        assert_eq!(out[3], (0x10, call(Reg::Sp, 160, true)));
        assert_eq!((n.functions, n.rows, n.left), (1, 1, 0));
        assert_eq!(&out[..3], &rows[..3]);
        assert_eq!(&out[4..], &rows[4..]);
    }

    #[test]
    fn a_dynamic_allocation_keeps_the_row_on_x29() {
        let (mut code, rows) = schedule();
        code[6].1 = 0xcb2063ff; // sub sp, sp, x0 in the body
        let (out, n) = run(&code, &rows);
        assert_eq!(out, rows);
        assert_eq!((n.functions, n.rows, n.left, n.left_first[0]), (0, 0, 1, (0, 2)));
    }

    #[test]
    fn a_branch_from_an_epilogue_back_into_the_body_blocks_it() {
        let (mut code, rows) = schedule();
        code[9].1 = 0x54ffff81; // b.ne 0x14 from after `add sp` (sp+0 row) into the body
        assert_eq!(run(&code, &rows).0, rows);
    }

    #[test]
    fn the_seed_must_fall_through_without_moving_sp() {
        let (mut code, rows) = schedule();
        code[3].1 = 0xd10043ff; // sub sp, sp, #16 right before the x29 row
        assert_eq!(run(&code, &rows).0, rows);
    }

    #[test]
    fn branch_targets() {
        assert_eq!(flow(0x100, 0x54fffe01), (Some(0xc0), true, false)); // b.ne -0x40
        assert_eq!(flow(0x100, 0x17ffffff), (Some(0xfc), false, false)); // b -4
        assert_eq!(flow(0x100, 0xd65f03c0), (None, false, false)); // ret
        assert_eq!(flow(0x100, 0xd61f0200), (None, false, true)); // br x16
        assert_eq!(flow(0x100, 0x94000001), (None, true, false)); // bl
    }
}
