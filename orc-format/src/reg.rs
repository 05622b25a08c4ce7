//! Register numbers used by the `sp_reg`, `fp_reg` and `ra_reg` columns.
//!
//! The numbering is the arm64 ORC RFC's and mainline LoongArch's, so tables and tools can be compared.

// Linked into kernels built with overflow checks on (see table.rs).
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects, clippy::indexing_slicing))]

/// A register column of an ORC entry. Stored as 4 bits; values 4..=15 are reserved and make the
/// entry invalid rather than being reinterpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reg {
    /// No rule: for `fp_reg`/`ra_reg` the value still lives in x29/x30; for `sp_reg` the entry is unusable.
    Undefined,
    /// The value was saved in memory at CFA + offset.
    PrevSp,
    /// The stack pointer (CFA base).
    Sp,
    /// x29, the frame pointer (CFA base).
    Fp,
}

impl Reg {
    pub const UNDEFINED: u8 = 0;
    pub const PREV_SP: u8 = 1;
    pub const SP: u8 = 2;
    pub const FP: u8 = 3;

    /// Decodes a 4-bit field; reserved values give `None`.
    pub const fn from_bits(bits: u8) -> Option<Reg> {
        match bits {
            Self::UNDEFINED => Some(Reg::Undefined),
            Self::PREV_SP => Some(Reg::PrevSp),
            Self::SP => Some(Reg::Sp),
            Self::FP => Some(Reg::Fp),
            _ => None,
        }
    }

    pub const fn bits(self) -> u8 {
        match self {
            Reg::Undefined => Self::UNDEFINED,
            Reg::PrevSp => Self::PREV_SP,
            Reg::Sp => Self::SP,
            Reg::Fp => Self::FP,
        }
    }
}
