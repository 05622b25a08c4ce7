//! One CFI row → one ORC entry, exactly or not at all.
//!
//! gcc and clang on aarch64 describe frames with `CFA = sp|x29 + off`, x29/x30 `Offset(n)`, and
//! same-value or undefined rules. Those map one to one onto the entry's columns. Anything else
//! (expressions, values kept in other registers, offsets that do not fit an i16) becomes an
//! UNDEFINED entry and is counted by kind: the unwinder must then say "unreliable", which is the
//! honest answer, instead of following a rule we approximated.

use gimli::{AArch64, CfaRule, Register, RegisterRule, UnwindTableRow};

use crate::{Kind, OrcEntry, Reg};

/// Why a row could not be expressed; `stats` counts rows by this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unsupported {
    /// CFA given by a DWARF expression.
    CfaExpression,
    /// CFA based on a register other than sp or x29.
    CfaRegister,
    /// An offset that does not fit the entry's i16 columns.
    OffsetRange,
    /// x29 recovered by a rule other than same-value or saved-at-offset.
    FpRule,
    /// x30 recovered by a rule other than same-value, saved-at-offset or undefined.
    RaRule,
    /// A rule for sp itself: CFA is by definition the caller's sp, so one would contradict it.
    SpRule,
}

impl Unsupported {
    pub fn describe(self) -> &'static str {
        match self {
            Unsupported::CfaExpression => "CFA is a DWARF expression",
            Unsupported::CfaRegister => "CFA based on a register other than sp/x29",
            Unsupported::OffsetRange => "offset does not fit i16",
            Unsupported::FpRule => "x29 rule is not same-value/offset",
            Unsupported::RaRule => "x30 rule is not same-value/offset/undefined",
            Unsupported::SpRule => "explicit rule for sp",
        }
    }
}

fn offset16(off: i64) -> Result<i16, Unsupported> {
    i16::try_from(off).map_err(|_| Unsupported::OffsetRange)
}

/// The (reg, offset) column for a callee-saved register: same value means "still in the register".
fn saved_column<T: gimli::ReaderOffset>(
    rule: Option<RegisterRule<T>>,
    err: Unsupported,
) -> Result<(Reg, i16), Unsupported> {
    match rule {
        None | Some(RegisterRule::SameValue) => Ok((Reg::Undefined, 0)),
        Some(RegisterRule::Offset(n)) => Ok((Reg::PrevSp, offset16(n)?)),
        Some(_) => Err(err),
    }
}

/// Maps one row. `signal` comes from the CIE (`S` augmentation: the frame was interrupted).
pub fn row_to_entry<T: gimli::ReaderOffset>(row: &UnwindTableRow<T>, signal: bool) -> Result<OrcEntry, Unsupported> {
    // A rule for sp would mean CFA is not the caller's sp.
    if row.register(AArch64::SP).is_some() {
        return Err(Unsupported::SpRule);
    }
    // The outermost frame: DWARF marks it with an undefined return address (e.g. glibc's _start).
    if matches!(row.register(AArch64::X30), Some(RegisterRule::Undefined)) {
        return Ok(OrcEntry::end_of_stack());
    }
    let (sp_reg, sp_offset) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            let reg = match register {
                Register(31) => Reg::Sp,
                Register(29) => Reg::Fp,
                _ => return Err(Unsupported::CfaRegister),
            };
            (reg, offset16(offset)?)
        }
        CfaRule::Expression(_) => return Err(Unsupported::CfaExpression),
    };
    let (fp_reg, fp_offset) = saved_column(row.register(AArch64::X29), Unsupported::FpRule)?;
    let (ra_reg, ra_offset) = saved_column(row.register(AArch64::X30), Unsupported::RaRule)?;
    Ok(OrcEntry::new(Kind::Call, sp_reg, sp_offset, fp_reg, fp_offset, ra_reg, ra_offset, signal))
}
