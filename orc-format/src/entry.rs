//! The 8-byte arm64 ORC entry.
//!
//! Layout (little-endian, packed), as mainline LoongArch's `struct orc_entry`:
//! `i16 sp_offset; i16 fp_offset; i16 ra_offset;` then a u16 holding the bitfields
//! `sp_reg:4, fp_reg:4, ra_reg:4, type:3, signal:1` allocated from the least significant bit, which
//! is how GCC and Clang lay out `unsigned int x:4` fields in a packed struct on little-endian targets.
//! The arm64 RFC's 6-byte entry has no RA column and so cannot say whether LR is still live; this
//! one can. `orc-format/include/orc_entry.h` declares the same struct in C and a bindgen test holds
//! the two together.
//!
//! The entry keeps the raw bits so that decoding never fails and re-encoding is exact; the typed
//! accessors report reserved values as `None` and the unwinder treats those as unusable.

// Linked into kernels built with overflow checks on (see table.rs).
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects, clippy::indexing_slicing))]

use crate::{Kind, Reg};

/// Size of one encoded entry in bytes.
pub const ENTRY_SIZE: usize = 8;

const SP_REG_SHIFT: u16 = 0;
const FP_REG_SHIFT: u16 = 4;
const RA_REG_SHIFT: u16 = 8;
const TYPE_SHIFT: u16 = 12;
const SIGNAL_SHIFT: u16 = 15;
const REG_MASK: u16 = 0xf;
const TYPE_MASK: u16 = 0x7;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OrcEntry {
    pub sp_offset: i16,
    pub fp_offset: i16,
    pub ra_offset: i16,
    bits: u16,
}

impl OrcEntry {
    /// The all-UNDEFINED entry: terminators and anything the generator cannot express.
    pub const UNDEFINED: OrcEntry = OrcEntry { sp_offset: 0, fp_offset: 0, ra_offset: 0, bits: 0 };

    /// An entry from its fields. `signal` marks an interrupted frame whose next lookup uses the
    /// exact pc.
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        kind: Kind,
        sp_reg: Reg,
        sp_offset: i16,
        fp_reg: Reg,
        fp_offset: i16,
        ra_reg: Reg,
        ra_offset: i16,
        signal: bool,
    ) -> OrcEntry {
        let bits = ((sp_reg.bits() as u16) << SP_REG_SHIFT)
            | ((fp_reg.bits() as u16) << FP_REG_SHIFT)
            | ((ra_reg.bits() as u16) << RA_REG_SHIFT)
            | ((kind.bits() as u16) << TYPE_SHIFT)
            | ((signal as u16) << SIGNAL_SHIFT);
        OrcEntry { sp_offset, fp_offset, ra_offset, bits }
    }

    /// An END_OF_STACK entry: the outermost frame (DWARF said the return address is undefined).
    pub const fn end_of_stack() -> OrcEntry {
        OrcEntry::new(Kind::EndOfStack, Reg::Undefined, 0, Reg::Undefined, 0, Reg::Undefined, 0, false)
    }

    /// Decodes 8 little-endian bytes. Never fails: reserved bit patterns surface through the
    /// typed accessors.
    pub const fn from_bytes(b: [u8; ENTRY_SIZE]) -> OrcEntry {
        OrcEntry {
            sp_offset: i16::from_le_bytes([b[0], b[1]]),
            fp_offset: i16::from_le_bytes([b[2], b[3]]),
            ra_offset: i16::from_le_bytes([b[4], b[5]]),
            bits: u16::from_le_bytes([b[6], b[7]]),
        }
    }

    pub const fn to_bytes(self) -> [u8; ENTRY_SIZE] {
        let s = self.sp_offset.to_le_bytes();
        let f = self.fp_offset.to_le_bytes();
        let r = self.ra_offset.to_le_bytes();
        let t = self.bits.to_le_bytes();
        [s[0], s[1], f[0], f[1], r[0], r[1], t[0], t[1]]
    }

    /// The raw bitfield word (for the C-compat tests and for dumping garbage faithfully).
    pub const fn raw_bits(self) -> u16 {
        self.bits
    }

    pub const fn from_raw(sp_offset: i16, fp_offset: i16, ra_offset: i16, bits: u16) -> OrcEntry {
        OrcEntry { sp_offset, fp_offset, ra_offset, bits }
    }

    pub const fn sp_reg(self) -> Option<Reg> {
        Reg::from_bits(((self.bits >> SP_REG_SHIFT) & REG_MASK) as u8)
    }

    pub const fn fp_reg(self) -> Option<Reg> {
        Reg::from_bits(((self.bits >> FP_REG_SHIFT) & REG_MASK) as u8)
    }

    pub const fn ra_reg(self) -> Option<Reg> {
        Reg::from_bits(((self.bits >> RA_REG_SHIFT) & REG_MASK) as u8)
    }

    pub const fn kind(self) -> Option<Kind> {
        Kind::from_bits(((self.bits >> TYPE_SHIFT) & TYPE_MASK) as u8)
    }

    pub const fn signal(self) -> bool {
        (self.bits >> SIGNAL_SHIFT) & 1 != 0
    }

    /// True when the unwinder may not use this entry at all: UNDEFINED type or a reserved value
    /// in any column.
    pub const fn is_undefined(self) -> bool {
        !matches!(
            (self.kind(), self.sp_reg(), self.fp_reg(), self.ra_reg()),
            (Some(k), Some(_), Some(_), Some(_)) if !matches!(k, Kind::Undefined)
        )
    }
}

impl core::fmt::Debug for OrcEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

/// The `objtool --dump`-like one-line form: `type cfa fp ra [signal]`.
impl core::fmt::Display for OrcEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        fn col(f: &mut core::fmt::Formatter<'_>, name: &str, reg: Option<Reg>, off: i16) -> core::fmt::Result {
            match reg {
                Some(Reg::Undefined) => write!(f, " {name}:(und)"),
                Some(Reg::PrevSp) => write!(f, " {name}:prevsp{off:+}"),
                Some(Reg::Sp) => write!(f, " {name}:sp{off:+}"),
                Some(Reg::Fp) => write!(f, " {name}:fp{off:+}"),
                None => write!(f, " {name}:(bad)"),
            }
        }
        match self.kind() {
            Some(Kind::Undefined) => f.write_str("type:undef")?,
            Some(Kind::EndOfStack) => f.write_str("type:end_of_stack")?,
            Some(Kind::Call) => f.write_str("type:call")?,
            Some(Kind::Regs) => f.write_str("type:regs")?,
            Some(Kind::RegsPartial) => f.write_str("type:regs_partial")?,
            None => f.write_str("type:(bad)")?,
        }
        col(f, "sp", self.sp_reg(), self.sp_offset)?;
        col(f, "fp", self.fp_reg(), self.fp_offset)?;
        col(f, "ra", self.ra_reg(), self.ra_offset)?;
        if self.signal() {
            f.write_str(" signal")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    #[test]
    fn bit_positions_match_the_c_bitfield_order() {
        // sp_reg in the low nibble, then fp_reg, ra_reg, type (3 bits), signal in bit 15.
        let e = OrcEntry::new(Kind::Regs, Reg::Fp, -1, Reg::PrevSp, 2, Reg::Sp, -3, true);
        assert_eq!(e.to_bytes(), [0xff, 0xff, 2, 0, 0xfd, 0xff, 0x13, 0xb2]);
    }

    #[test]
    fn zeroed_bytes_are_undefined() {
        assert!(OrcEntry::from_bytes([0; 8]).is_undefined());
        assert_eq!(OrcEntry::from_bytes([0; 8]), OrcEntry::UNDEFINED);
    }

    #[test]
    fn reserved_values_make_the_entry_unusable() {
        // type 7 is reserved
        let e = OrcEntry::from_raw(16, 0, 8, 0x7000 | 0x0012);
        assert_eq!(e.kind(), None);
        assert!(e.is_undefined());
        // sp_reg 9 is reserved
        let e = OrcEntry::from_raw(16, 0, 8, 0x2009);
        assert_eq!(e.sp_reg(), None);
        assert!(e.is_undefined());
    }

    quickcheck! {
        fn bytes_roundtrip(b: (u8, u8, u8, u8, u8, u8, u8, u8)) -> bool {
            let bytes = [b.0, b.1, b.2, b.3, b.4, b.5, b.6, b.7];
            OrcEntry::from_bytes(bytes).to_bytes() == bytes
        }
    }
}
