//! Which of sp, x29 and x30 an A64 instruction can write: what the generator needs to find CFI
//! rows that stop describing their code part-way (clang 14 describes no epilogues and only the
//! end of each prologue; hand-written CFI can lag the instructions).
//!
//! Table-driven and conservative: encodings not in the table write everything. (The harness's
//! ground truth has its own decoder, written separately; `tests/insn_agree.rs` holds the two to
//! the same answers on every instruction of the shipped binaries.)

/// A set of the three registers the walk depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Regs(pub u8);

impl Regs {
    pub const NONE: Regs = Regs(0);
    pub const SP: Regs = Regs(1);
    pub const FP: Regs = Regs(2);
    pub const LR: Regs = Regs(4);
    pub const ALL: Regs = Regs(7);

    pub fn union(self, o: Regs) -> Regs {
        Regs(self.0 | o.0)
    }
    pub fn meets(self, o: Regs) -> bool {
        self.0 & o.0 != 0
    }
}

/// Register fields an encoding class writes.
#[derive(Clone, Copy)]
enum Writes {
    Nothing,
    Lr,
    /// Bits 4:0, 31 = zero register.
    Rd,
    /// Bits 4:0, 31 = sp.
    RdSp,
    /// Load/store: bits 4:0 and 14:10 when it loads into general registers, bits 9:5 (31 = sp)
    /// when it writes the base back. The closure-free description below decides both.
    Memory,
    Everything,
}

/// `(mask, value, writes)`, first match wins.
const CLASSES: &[(u32, u32, Writes)] = &[
    (0xfc00_0000, 0x9400_0000, Writes::Lr),         // bl
    (0xfeff_f000, 0xd63f_0000, Writes::Lr),         // blr, blraa(z), blrab(z)
    (0xfe00_0000, 0xd600_0000, Writes::Nothing),    // br, ret, eret and their PAC forms
    (0x7c00_0000, 0x1400_0000, Writes::Nothing),    // b
    (0x7e00_0000, 0x3400_0000, Writes::Nothing),    // cbz, cbnz
    (0x7e00_0000, 0x3600_0000, Writes::Nothing),    // tbz, tbnz
    (0xff00_0010, 0x5400_0000, Writes::Nothing),    // b.cond
    (0xff00_0000, 0xd400_0000, Writes::Nothing),    // svc, hvc, smc, brk, hlt
    (0xffff_f01f, 0xd503_201f, Writes::Nothing),    // hints (PAC-on-x30 ones listed first below)
    (0xffe0_0000, 0xd520_0000, Writes::Rd),         // mrs, sysl (Rt in bits 4:0)
    (0xffc0_0000, 0xd500_0000, Writes::Nothing),    // msr, sys, barriers
    (0x3f80_0000, 0x1100_0000, Writes::RdSp),       // add/sub immediate
    (0x3fc0_0000, 0x1180_0000, Writes::RdSp),       // addg/subg
    (0x3f80_0000, 0x3100_0000, Writes::Rd),         // adds/subs immediate (cmp, cmn)
    (0x1f80_0000, 0x1200_0000, Writes::RdSp),       // and/orr/eor immediate (ands: fixed below)
    (0x1f00_0000, 0x1000_0000, Writes::Rd),         // adr, adrp
    (0x1f80_0000, 0x1280_0000, Writes::Rd),         // movn, movz, movk
    (0x1f00_0000, 0x1300_0000, Writes::Rd),         // bitfield, extract
    (0x3f20_0000, 0x0b20_0000, Writes::RdSp),       // add/sub extended register
    (0x0e00_0000, 0x0a00_0000, Writes::Rd),         // data processing (register)
    (0x0e00_0000, 0x0e00_0000, Writes::Rd),         // SIMD and FP (fmov/umov to general)
    (0x0a00_0000, 0x0800_0000, Writes::Memory),     // loads and stores
    (0x0000_0000, 0x0000_0000, Writes::Everything), // unallocated, SVE, SME
];

/// Hints that sign, authenticate or strip x30.
const LR_HINTS: [u32; 9] = [
    0xd503_233f,
    0xd503_237f,
    0xd503_23bf,
    0xd503_23ff, // paciasp, pacibsp, autiasp, autibsp
    0xd503_231f,
    0xd503_235f,
    0xd503_239f,
    0xd503_23df, // paciaz, pacibz, autiaz, autibz
    0xd503_20ff, // xpaclri
];

fn field(i: u32, lo: u32) -> Regs {
    match (i >> lo) & 31 {
        29 => Regs::FP,
        30 => Regs::LR,
        _ => Regs::NONE,
    }
}

fn field_sp(i: u32, lo: u32) -> Regs {
    if (i >> lo) & 31 == 31 { Regs::SP } else { field(i, lo) }
}

fn memory(i: u32) -> Regs {
    let simd = i & (1 << 26) != 0;
    let base = field_sp(i, 5);
    let (loads, writeback, second) = match (i >> 27) & 7 {
        // Pairs: L is bit 22; bit 23 set is post- or pre-index.
        0b101 => (i & (1 << 22) != 0, i & (1 << 23) != 0, true),
        0b111 if i & (1 << 24) != 0 => ((i >> 22) & 3 != 0, false, false), // unsigned offset
        0b111 if i & (1 << 21) == 0 => ((i >> 22) & 3 != 0, (i >> 10) & 1 == 1, false), // imm9 forms
        0b111 => match (i >> 10) & 3 {
            0b10 => ((i >> 22) & 3 != 0, false, false),     // register offset
            0b00 => return field(i, 0).union(field(i, 16)), // atomics (ldadd, swp, …)
            _ => return field(i, 0).union(base),            // ldraa, ldrab (writeback in bit 11)
        },
        0b011 => return field(i, 0).union(field(i, 5)).union(field(i, 16)), // literal; cpy/set
        // Exclusives, acquire/release, compare-and-swap, RCpc; SIMD structures.
        _ => {
            let wb = if simd && i & (1 << 23) != 0 { base } else { Regs::NONE };
            return wb.union(field(i, 0)).union(field(i, 10)).union(field(i, 16));
        }
    };
    let mut w = if writeback { base } else { Regs::NONE };
    if loads && !simd {
        w = w.union(field(i, 0));
        if second {
            w = w.union(field(i, 10));
        }
    }
    w
}

/// The registers among sp, x29 and x30 that `i` may write.
pub fn writes(i: u32) -> Regs {
    if LR_HINTS.contains(&i) {
        return Regs::LR;
    }
    // ands (immediate) writes the zero register, not sp, when Rd is 31.
    if i & 0x7f80_0000 == 0x7200_0000 {
        return field(i, 0);
    }
    let class = CLASSES.iter().find(|(mask, value, _)| i & mask == *value).map_or(Writes::Everything, |c| c.2);
    match class {
        Writes::Nothing => Regs::NONE,
        Writes::Lr => Regs::LR,
        Writes::Rd => field(i, 0),
        Writes::RdSp => field_sp(i, 0),
        Writes::Memory => memory(i),
        Writes::Everything => Regs::ALL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodings as aarch64-linux-gnu-as assembles them.
    #[test]
    fn the_instructions_of_prologues_and_epilogues() {
        let cases: &[(u32, Regs, &str)] = &[
            (0xa9bf7bfd, Regs::SP, "stp x29, x30, [sp, #-16]!"),
            (0x910003fd, Regs::FP, "mov x29, sp"),
            (0xa8c17bfd, Regs::ALL, "ldp x29, x30, [sp], #16"),
            (0xa9417bfd, Regs(6), "ldp x29, x30, [sp, #16]"),
            (0xa9017bfd, Regs::NONE, "stp x29, x30, [sp, #16]"),
            (0xd10043ff, Regs::SP, "sub sp, sp, #0x10"),
            (0x910083ff, Regs::SP, "add sp, sp, #0x20"),
            (0x910003bf, Regs::SP, "mov sp, x29"),
            (0xd65f03c0, Regs::NONE, "ret"),
            (0x94000000, Regs::LR, "bl"),
            (0xd63f0020, Regs::LR, "blr x1"),
            (0xd61f0020, Regs::NONE, "br x1"),
            (0xd503233f, Regs::LR, "paciasp"),
            (0xd503245f, Regs::NONE, "bti c"),
            (0xf94007fd, Regs::FP, "ldr x29, [sp, #8]"),
            (0xf81f0ffe, Regs::SP, "str x30, [sp, #-16]!"),
            (0xf84107fe, Regs(5), "ldr x30, [sp], #16"),
            (0xaa0903fd, Regs::FP, "mov x29, x9"),
            (0xcb2063ff, Regs::SP, "sub sp, sp, x0"),
            (0xeb01001f, Regs::NONE, "cmp x0, x1"),
            (0x927cec1f, Regs::SP, "and sp, x0, #0xfffffffffffffff0"),
            (0xf27cec1f, Regs::NONE, "tst x0, #0xfffffffffffffff0"),
            (0x3cc107e0, Regs::SP, "ldr q0, [sp], #16"),
            (0xd53bd05d, Regs::FP, "mrs x29, tpidr_el0"),
            (0x00000000, Regs::ALL, "udf"),
        ];
        for &(i, want, text) in cases {
            assert_eq!(writes(i), want, "{text} ({i:#010x})");
        }
    }
}
