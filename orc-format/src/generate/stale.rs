//! Cross-checking CFI against the instructions it describes: a row holds from its start until an
//! instruction changes the register the CFA hangs off, or a register the row says still holds
//! the caller's value (x29, x30). From the instruction after that, up to the next row, the row
//! is stale (clang 14 describes no epilogue and only the end of each prologue; hand-written CFI
//! can lag), and following it drops or repeats a frame with every other check passing. Those
//! pcs get UNDEFINED: the walk then says "unreliable" there instead of trusting a stale rule.
//! Return addresses are unaffected: a call site's row is looked up at the `bl` itself.

use super::insn::{Regs, writes};
use crate::{Kind, OrcEntry, Reg};

/// The registers whose change invalidates `e`.
fn live(e: &OrcEntry) -> Option<Regs> {
    if e.kind() != Some(Kind::Call) {
        return None;
    }
    let mut r = match e.sp_reg() {
        Some(Reg::Sp) => Regs::SP,
        Some(Reg::Fp) => Regs::FP,
        _ => return None,
    };
    if e.fp_reg() == Some(Reg::Undefined) {
        r = r.union(Regs::FP);
    }
    if e.ra_reg() == Some(Reg::Undefined) {
        r = r.union(Regs::LR);
    }
    Some(r)
}

/// What a cut removed, for the statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cuts {
    pub rows: u64,
    pub bytes: u64,
    /// The first few addresses where a cut starts, for the statistics.
    pub first: [u64; 8],
}

impl Cuts {
    fn add(&mut self, from: u64, to: u64) {
        if let Some(slot) = usize::try_from(self.rows).ok().and_then(|i| self.first.get_mut(i)) {
            *slot = from;
        }
        self.rows += 1;
        self.bytes += to - from;
    }
}

/// Each row of a function ending at `end` as `(start, end, entry)`: a row holds up to the next.
pub(super) fn ranges(rows: &[(u64, OrcEntry)], end: u64) -> impl Iterator<Item = (u64, u64, OrcEntry)> + '_ {
    rows.iter().enumerate().map(move |(k, &(s, e))| (s, rows.get(k + 1).map_or(end, |r| r.0), e))
}

/// Rows `(start, entry)` of one function ending at `end`, with every stale stretch replaced by
/// UNDEFINED. `insn` reads the instruction at an address; code it cannot read is cut too.
pub fn cut(
    rows: &[(u64, OrcEntry)],
    end: u64,
    insn: impl Fn(u64) -> Option<u32>,
    cuts: &mut Cuts,
) -> Vec<(u64, OrcEntry)> {
    let mut out = Vec::with_capacity(rows.len());
    for (start, row_end, e) in ranges(rows, end) {
        out.push((start, e));
        let Some(live) = live(&e) else { continue };
        let mut at = start;
        while at < row_end {
            let stale_from = match insn(at) {
                Some(i) if !writes(i).meets(live) => {
                    at += 4;
                    continue;
                }
                Some(_) => at + 4, // this instruction runs under the row; the next does not
                None => at,
            };
            if stale_from == start {
                out.pop();
                out.push((start, OrcEntry::UNDEFINED));
                cuts.add(start, row_end);
            } else if stale_from < row_end {
                out.push((stale_from, OrcEntry::UNDEFINED));
                cuts.add(stale_from, row_end);
            }
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(sp_reg: Reg, sp: i16, fp_reg: Reg, fp: i16, ra_reg: Reg, ra: i16) -> OrcEntry {
        OrcEntry::new(Kind::Call, sp_reg, sp, fp_reg, fp, ra_reg, ra, false)
    }

    /// clang 14's `ping` (tests/fixtures/user/workload-clang-O2): CFI rows at entry and after
    /// `mov x29, sp`, nothing for the epilogue.
    #[test]
    fn clang_prologue_and_epilogue_are_cut() {
        let code: &[(u64, u32)] = &[
            (0x00, 0x7100001f), // cmp w0, #0
            (0x04, 0x5400010d), // b.le
            (0x08, 0xa9bf7bfd), // stp x29, x30, [sp, #-16]!   <- sp changes under the entry row
            (0x0c, 0x910003fd), // mov x29, sp
            (0x10, 0x51000400), // sub w0, w0, #1                (row 2: CFA = x29 + 16)
            (0x14, 0x97fffff0), // bl pong
            (0x18, 0xd37ff800), // lsl x0, x0, #1
            (0x1c, 0xa8c17bfd), // ldp x29, x30, [sp], #16     <- x29 changes under row 2
            (0x20, 0xd65f03c0), // ret
        ];
        let insn = |a: u64| code.iter().find(|c| c.0 == a).map(|c| c.1);
        let entry = call(Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0);
        let body = call(Reg::Fp, 16, Reg::PrevSp, -16, Reg::PrevSp, -8);
        let mut cuts = Cuts::default();
        let rows = cut(&[(0x00, entry), (0x10, body)], 0x24, insn, &mut cuts);
        assert_eq!(rows, vec![(0x00, entry), (0x0c, OrcEntry::UNDEFINED), (0x10, body), (0x20, OrcEntry::UNDEFINED)]);
        assert_eq!((cuts.rows, cuts.bytes, cuts.first[..2].to_vec()), (2, 8, vec![0x0c, 0x20]));
    }

    /// gcc describes every change right after it: nothing to cut.
    #[test]
    fn gcc_rows_stay_whole() {
        let code: &[(u64, u32)] = &[
            (0x00, 0xa9bf7bfd), // stp x29, x30, [sp, #-16]!
            (0x04, 0x910003fd), // mov x29, sp                  (row: CFA = sp + 16, x29/x30 saved)
            (0x08, 0x94000000), // bl
            (0x0c, 0xa8c17bfd), // ldp x29, x30, [sp], #16
            (0x10, 0xd65f03c0), // ret                          (row: CFA = sp, x30 live)
        ];
        let insn = |a: u64| code.iter().find(|c| c.0 == a).map(|c| c.1);
        let entry = call(Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0);
        let body = call(Reg::Sp, 16, Reg::PrevSp, -16, Reg::PrevSp, -8);
        let rows = [(0x00, entry), (0x04, body), (0x10, entry)];
        let mut cuts = Cuts::default();
        assert_eq!(cut(&rows, 0x14, insn, &mut cuts), rows.to_vec());
        assert_eq!(cuts, Cuts::default());
    }

    #[test]
    fn unreadable_code_is_not_trusted() {
        let entry = call(Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0);
        let mut cuts = Cuts::default();
        let rows = cut(&[(0x100, entry)], 0x110, |_| None, &mut cuts);
        assert_eq!(rows, vec![(0x100, OrcEntry::UNDEFINED)]);
        assert_eq!((cuts.rows, cuts.bytes), (1, 16));
    }
}
