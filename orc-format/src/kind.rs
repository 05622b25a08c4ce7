//! The `type` column: what kind of frame an entry describes.
//!
//! Numbering follows mainline x86/LoongArch since v6.4, where UNDEFINED is 0 so that a zeroed
//! entry can never be mistaken for a usable one.

// Linked into kernels built with overflow checks on (see table.rs).
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects, clippy::indexing_slicing))]

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// No valid rule here (gap, unsupported CFI, terminator): the unwinder must give up.
    Undefined,
    /// The outermost frame: nothing to unwind to (DWARF: return address undefined).
    EndOfStack,
    /// An ordinary call frame described by the offset columns.
    Call,
    /// A full `pt_regs` sits at the CFA.
    Regs,
    /// Only the tail of a `pt_regs` (pc, sp) sits at the CFA.
    RegsPartial,
}

impl Kind {
    pub const UNDEFINED: u8 = 0;
    pub const END_OF_STACK: u8 = 1;
    pub const CALL: u8 = 2;
    pub const REGS: u8 = 3;
    pub const REGS_PARTIAL: u8 = 4;

    /// Decodes the 3-bit field; reserved values (5..=7) give `None`.
    pub const fn from_bits(bits: u8) -> Option<Kind> {
        match bits {
            Self::UNDEFINED => Some(Kind::Undefined),
            Self::END_OF_STACK => Some(Kind::EndOfStack),
            Self::CALL => Some(Kind::Call),
            Self::REGS => Some(Kind::Regs),
            Self::REGS_PARTIAL => Some(Kind::RegsPartial),
            _ => None,
        }
    }

    pub const fn bits(self) -> u8 {
        match self {
            Kind::Undefined => Self::UNDEFINED,
            Kind::EndOfStack => Self::END_OF_STACK,
            Kind::Call => Self::CALL,
            Kind::Regs => Self::REGS,
            Kind::RegsPartial => Self::REGS_PARTIAL,
        }
    }
}
