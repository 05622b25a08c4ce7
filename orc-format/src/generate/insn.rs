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
    /// `self` if `yes`, else none.
    fn when(self, yes: bool) -> Regs {
        if yes { self } else { Regs::NONE }
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
    /// Loads and stores: see [`memory`].
    Memory,
    Everything,
}

/// `(mask, value, writes)`, first match wins. Unallocated encodings fall through to
/// `Everything` where a row's mask can tell them apart cheaply.
const CLASSES: &[(u32, u32, Writes)] = &[
    // Branches, exception generation, system.
    (0xfc00_0000, 0x9400_0000, Writes::Lr),      // bl
    (0xfc00_0000, 0x1400_0000, Writes::Nothing), // b
    (0xfee0_0000, 0xd620_0000, Writes::Lr),      // blr, blraa(z), blrab(z)
    (0xfee0_0000, 0xd600_0000, Writes::Nothing), // br, braa(z), brab(z)
    (0xffe0_0000, 0xd640_0000, Writes::Nothing), // ret, retaa, retab
    (0xffc0_0000, 0xd680_0000, Writes::Nothing), // eret, eretaa, eretab, drps
    (0x7e00_0000, 0x3400_0000, Writes::Nothing), // cbz, cbnz
    (0x7e00_0000, 0x3600_0000, Writes::Nothing), // tbz, tbnz
    (0xff00_0000, 0x5400_0000, Writes::Nothing), // b.cond, bc.cond
    (0xff00_0000, 0xd400_0000, Writes::Nothing), // svc, hvc, smc, brk, hlt, tcancel, dcps
    (0xffff_f01f, 0xd503_201f, Writes::Nothing), // hints (PAC-on-x30 ones listed first below)
    (0xffe0_0000, 0xd520_0000, Writes::Rd),      // mrs, sysl, tstart, ttest (Rt in bits 4:0)
    (0xffe0_0000, 0xd500_0000, Writes::Nothing), // msr, sys, barriers (mrrs, sysp: everything)
    // Data processing (immediate).
    (0x3f80_0000, 0x1100_0000, Writes::RdSp),       // add/sub immediate
    (0x3f80_0000, 0x3100_0000, Writes::Rd),         // adds/subs immediate (cmp, cmn)
    (0xbfc0_0000, 0x9180_0000, Writes::RdSp),       // addg/subg
    (0x7ff0_0000, 0x11c0_0000, Writes::Rd),         // smax, smin, umax, umin immediate
    (0x7f80_0000, 0x7200_0000, Writes::Rd),         // ands immediate (tst): 31 is the zero register
    (0x1f80_0000, 0x1200_0000, Writes::RdSp),       // and/orr/eor immediate
    (0x1f00_0000, 0x1000_0000, Writes::Rd),         // adr, adrp
    (0x7f80_0000, 0x3280_0000, Writes::Everything), // move wide, opc 01: unallocated
    (0x1f80_0000, 0x1280_0000, Writes::Rd),         // movn, movz, movk
    (0x7f80_0000, 0x7300_0000, Writes::Everything), // bitfield, opc 11: unallocated
    (0x1f80_0000, 0x1300_0000, Writes::Rd),         // sbfm, bfm, ubfm
    (0x7f80_0000, 0x1380_0000, Writes::Rd),         // extr (other op21: autiasppc and unallocated)
    // Data processing (register).
    (0x1f00_0000, 0x0a00_0000, Writes::Rd),   // logical (shifted register)
    (0x1f20_0000, 0x0b00_0000, Writes::Rd),   // add/sub (shifted register)
    (0x3f20_0000, 0x0b20_0000, Writes::RdSp), // add/sub (extended register)
    (0x3f20_0000, 0x2b20_0000, Writes::Rd),   // adds/subs (extended register)
    (0xffe0_fc00, 0x9ac0_1000, Writes::RdSp), // irg
    (0x1fa0_0000, 0x1a00_0000, Writes::Rd),   // adc, sbc, rmif, setf; ccmp, ccmn (nzcv < 16)
    (0x1fa0_0000, 0x1a80_0000, Writes::Rd),   // csel, csinc, csinv, csneg; 1- and 2-source
    (0x1f00_0000, 0x1b00_0000, Writes::Rd),   // 3-source (madd, smulh, …)
    // SIMD and FP: only these have a general destination.
    (0xbfe0_ec00, 0x0e00_2c00, Writes::Rd),      // smov, umov
    (0x5f26_fc00, 0x1e22_0000, Writes::Nothing), // scvtf, ucvtf (from a general register)
    (0x5f27_fc00, 0x1e27_0000, Writes::Nothing), // fmov to a vector register
    (0x5f20_fc00, 0x1e20_0000, Writes::Rd),      // fcvt*, fmov, fjcvtzs to a general register
    (0x5f26_0000, 0x1e02_0000, Writes::Nothing), // scvtf, ucvtf (fixed-point)
    (0x5f20_0000, 0x1e00_0000, Writes::Rd),      // fcvtzs, fcvtzu (fixed-point)
    // The rest of SIMD and FP, allocated or not, writes vector registers and flags only:
    // v29 and v30 are not x29 and x30.
    (0x0e00_0000, 0x0e00_0000, Writes::Nothing),
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

fn bit(i: u32, n: u32) -> bool {
    (i >> n) & 1 != 0
}

/// Loads and stores, by bits 29:27; V (bit 26) says the data registers are vector registers.
/// Rt is bits 4:0 (31 = zero register), Rn the base (31 = sp), Rt2 bits 14:10, Rs bits 20:16.
fn memory(i: u32) -> Regs {
    let simd = bit(i, 26);
    let base = field_sp(i, 5);
    match (i >> 27) & 7 {
        // SIMD structures (ld1..ld4, st1..st4): bit 23 is post-index, writing the base.
        0b001 if simd => match (bit(i, 31), bit(i, 23)) {
            (true, _) => Regs::ALL,
            (false, post_index) => base.when(post_index),
        },
        0b001 => exclusive(i),
        0b011 => tags_rcpc_copy_literal(i, simd, base),
        // Pairs: L is bit 22; bits 24:23 01 and 11 are post- and pre-index.
        0b101 => {
            let (opc, addressing) = (i >> 30, (i >> 23) & 3);
            if opc == 3 || (!simd && opc == 1 && addressing == 0) {
                return Regs::ALL; // unallocated (stgp and ldpsw have no non-temporal form)
            }
            let loaded = field(i, 0).union(field(i, 10));
            base.when(addressing & 1 == 1).union(loaded.when(bit(i, 22) && !simd))
        }
        _ => single(i, simd, base),
    }
}

/// Does a single-register load or store with size bits 31:30 and opc bits 23:22 write Rt?
/// `None`: unallocated.
fn loads(i: u32, simd: bool) -> Option<bool> {
    match (simd, i >> 30, (i >> 22) & 3) {
        (_, _, 0) => Some(false),
        (true, 0, _) | (true, _, 1) => Some(false),
        (true, _, _) => None,
        (false, 3, 2) => Some(false), // prfm
        (false, 2 | 3, 3) => None,
        (false, _, _) => Some(true),
    }
}

/// Bits 29:27 = 111: one register, by unsigned offset, imm9 (unscaled, post-index,
/// unprivileged, pre-index), register offset, atomics and the pointer-authenticating loads.
fn single(i: u32, simd: bool, base: Regs) -> Regs {
    let rt = field(i, 0);
    let form = (i >> 10) & 3;
    let access = |writeback: bool| match loads(i, simd) {
        Some(load) => base.when(writeback).union(rt.when(load)),
        None => Regs::ALL,
    };
    let prefetch = !simd && i >> 30 == 3 && (i >> 22) & 3 == 2;
    match (bit(i, 24), bit(i, 21), form) {
        (true, _, _) => access(false),
        (false, false, 0) => access(false),
        (false, false, _) if prefetch => Regs::ALL, // no prfm with writeback or unprivileged
        (false, false, 0b10) if simd => Regs::ALL,  // no unprivileged vector forms
        (false, false, _) => access(form & 1 == 1),
        (false, true, 0b10) => access(false),
        (false, true, 0b00) if !simd => atomic(i, rt),
        // ldraa, ldrab: bit 11 writes the base back.
        (false, true, _) if !simd && i >> 30 == 3 => rt.union(base.when(bit(i, 11))),
        (false, true, _) => Regs::ALL,
    }
}

/// Atomic memory operations (ldadd, swp, …, ldapr) write Rt; Rs only supplies the operand.
/// The 64-byte single-copy atomics: ld64b loads x(t)..x(t+7) (t even and below 24, or the
/// instruction is undefined and writes nothing), st64bv and st64bv0 write a status to Rs.
fn atomic(i: u32, rt: Regs) -> Regs {
    let (o3, opc) = (bit(i, 15), (i >> 12) & 7);
    if !o3 || opc == 0b000 || opc == 0b100 {
        return rt;
    }
    let t = i & 31;
    match opc {
        _ if i >> 30 != 3 => Regs::ALL,
        0b101 => Regs::FP.when((22..=29).contains(&t)).union(Regs::LR.when((23..=30).contains(&t))),
        0b001 => Regs::NONE,           // st64b
        0b010 | 0b011 => field(i, 16), // st64bv0, st64bv
        _ => Regs::ALL,
    }
}

/// Bits 29:24 = 001000: exclusives, load-acquire/store-release, compare-and-swap, by o2 (bit 23)
/// and o1 (bit 21); L is bit 22.
fn exclusive(i: u32) -> Regs {
    if bit(i, 24) {
        return Regs::ALL;
    }
    match (bit(i, 23), bit(i, 21), bit(i, 22)) {
        (false, false, true) => field(i, 0),                                  // ldxr, ldaxr
        (false, true, true) if bit(i, 31) => field(i, 0).union(field(i, 10)), // ldxp, ldaxp
        (false, false, false) => field(i, 16),                                // stxr, stlxr: the status
        (false, true, false) if bit(i, 31) => field(i, 16),                   // stxp, stlxp: the status
        // casp: loads the Rs, Rs+1 pair (x28:x29, x30:xzr); odd registers are unallocated.
        (false, true, _) => match (i & (1 << 16 | 1), (i >> 16) & 31) {
            (0, 28) => Regs::FP,
            (0, 30) => Regs::LR,
            (0, _) => Regs::NONE,
            _ => Regs::ALL,
        },
        (true, false, load) => field(i, 0).when(load), // ldar, ldlar; stlr, stllr
        (true, true, _) => field(i, 16),               // cas: Rs
    }
}

/// Bits 29:27 = 011: load literal; with bit 24 set the memory tag instructions (stg, ldg, …),
/// memory copy and set (cpy*, set*), and the RCpc unscaled ones (ldapur, stlur).
fn tags_rcpc_copy_literal(i: u32, simd: bool, base: Regs) -> Regs {
    let (size, opc) = (i >> 30, (i >> 22) & 3);
    if !bit(i, 24) {
        // Literal: bits 9:5 are the offset, not a register.
        return match (simd, size) {
            (true, 3) => Regs::ALL,
            (true, _) | (false, 3) => Regs::NONE, // vector literal, prfm
            (false, _) => field(i, 0),
        };
    }
    if i & 0xff20_0000 == 0xd920_0000 {
        // Tags: bits 11:10 01 and 11 are post- and pre-index (stg, stzg, st2g, stz2g); 00 is
        // ldg (opc 01) and, with a zero imm9, stzgm, stgm, ldgm.
        return match ((i >> 10) & 3, opc) {
            (0b01 | 0b11, _) => base,
            (0b00, 0b01) => field(i, 0),
            (0b00, _) if (i >> 12) & 0x1ff != 0 => Regs::ALL,
            (0b00, 0b11) => field(i, 0), // ldgm
            _ => Regs::NONE,
        };
    }
    match ((i >> 10) & 3, simd, bit(i, 21)) {
        // cpy* write Rd, Rs and Rn back; set* (op1, bits 23:22, 11) Rd and Rn, Rs is the value.
        // Register 31 is unpredictable: count sp.
        (0b01, _, _) if size != 0 => Regs::ALL,
        (0b01, _, _) => field_sp(i, 0).union(base).union(field_sp(i, 16).when(opc != 3)),
        (0b00, false, false) => field(i, 0).when(opc != 0), // ldapur; stlur
        _ => Regs::ALL, // RCpc3 and 128-bit atomics (ldiapp, ldclrp, …), unallocated
    }
}

/// The registers among sp, x29 and x30 that `i` may write.
pub fn writes(i: u32) -> Regs {
    if LR_HINTS.contains(&i) {
        return Regs::LR;
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

    /// Writers the decoder once missed, and vector destinations it once took for x29/x30.
    /// Encodings from `aarch64-linux-gnu-as -march=armv8.8-a+memtag+ls64+mops`.
    #[test]
    fn tag_stores_pairs_atomics_and_vector_destinations() {
        let (sp, fp, lr) = (Regs::SP, Regs::FP, Regs::LR);
        let cases: &[(u32, Regs, &str)] = &[
            (0xd92017e0, sp, "stg x0, [sp], #16"),
            (0xd93fffff, sp, "stg sp, [sp, #-16]!"),
            (0xd9201be0, Regs::NONE, "stg x0, [sp, #16]"),
            (0xd9602fe1, sp, "stzg x1, [sp, #32]!"),
            (0xd9bfe7e2, sp, "st2g x2, [sp], #-32"),
            (0xd9e017a3, fp, "stz2g x3, [x29], #16"),
            (0x69bffbfd, sp, "stgp x29, x30, [sp, #-16]!"),
            (0x688087e0, sp, "stgp x0, x1, [sp], #16"),
            (0xd96013fd, fp, "ldg x29, [sp, #16]"),
            (0xd9e0001d, fp, "ldgm x29, [x0]"),
            (0x9ac1101f, sp, "irg sp, x0, x1"),
            (0x483c7c40, fp, "casp x28, x29, x0, x1, [x2]"),
            (0x487efc40, lr, "caspal x30, xzr, x0, x1, [x2]"),
            (0xc8bd7c20, fp, "cas x29, x0, [x1]"),
            (0xf83fd016, fp, "ld64b x22, [x0] (x22..x29)"),
            (0xf83fd018, Regs(6), "ld64b x24, [x0] (undefined; objdump shows it)"),
            (0xf83db020, fp, "st64bv x29, x0, [x1]"),
            (0xc87ff420, fp, "ldaxp x0, x29, [x1]"),
            (0xc81d7c20, fp, "stxr w29, x0, [x1]"),
            (0xc89ffc1d, Regs::NONE, "stlr x29, [x0]"),
            (0xf83d0020, Regs::NONE, "ldadd x29, x0, [x1]"),
            (0xf82083fe, lr, "swp x0, x30, [sp]"),
            (0x68c17bfd, Regs::ALL, "ldpsw x29, x30, [sp], #8"),
            (0xf8201ffd, Regs(3), "ldraa x29, [sp, #8]!"),
            (0x4cdf73e0, sp, "ld1 {v0.16b}, [sp], #16"),
            (0x0ddd0fe0, sp, "ld1 {v0.b}[3], [sp], x29"),
            (0x1d1e047d, Regs(6), "cpyp [x29]!, [x30]!, x3!"),
            (0x19de07a0, fp, "setp [x0]!, x29!, x30"),
            (0xd95f83fe, lr, "ldapur x30, [sp, #-8]"),
            (0xd528001e, lr, "sysl x30, #0, C0, C0, #0"),
            (0xd523307d, fp, "tstart x29"),
            (0x180007d6, Regs::NONE, "ldr w22, <literal> (offset bits 9:5 = 30)"),
            (0xf98007e0, Regs::NONE, "prfm pldl1keep, [sp, #8]"),
            (0x54000010, Regs::NONE, "bc.eq"),
            (0x11c003de, lr, "smax w30, w30, #0"),
            (0x4e01001d, Regs::NONE, "tbl v29.16b, {v0.16b}, v1.16b"),
            (0x3dc0001d, Regs::NONE, "ldr q29, [x0]"),
            (0xad40781d, Regs::NONE, "ldp q29, q30, [x0]"),
            (0xacc17bfd, sp, "ldp q29, q30, [sp], #32"),
            (0x9e67001e, Regs::NONE, "fmov d30, x0"),
            (0x4e080c1d, Regs::NONE, "dup v29.2d, x0"),
            (0x9e66001d, fp, "fmov x29, d0"),
            (0x0e063c1e, lr, "umov w30, v0.h[1]"),
            (0x4e083c1e, lr, "mov x30, v0.d[0]"),
            (0x9e78001d, fp, "fcvtzs x29, d0"),
        ];
        for &(i, want, text) in cases {
            assert_eq!(writes(i), want, "{text} ({i:#010x})");
        }
    }
}
