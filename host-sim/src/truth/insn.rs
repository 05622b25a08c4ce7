//! Which of sp, x29 and x30 an A64 instruction may write: enough to tell whether a CFI row
//! still describes a pc that some instructions after the row's start have already changed.
//!
//! Deliberately conservative: an encoding it cannot place "writes everything". Over-reporting
//! only makes more truths incomplete; under-reporting would make a stale truth look complete.
//! Vector destinations (v29, q30) are not x29 and x30: counting them would doubt sound rows.

pub const SP: u8 = 1;
pub const X29: u8 = 2;
pub const X30: u8 = 4;
const ALL: u8 = SP | X29 | X30;

fn bits(i: u32, hi: u32, lo: u32) -> u32 {
    (i >> lo) & ((1 << (hi - lo + 1)) - 1)
}

/// A general register number as a destination where 31 means the zero register.
fn gp(r: u32) -> u8 {
    match r {
        29 => X29,
        30 => X30,
        _ => 0,
    }
}

/// A destination where 31 means sp.
fn gp_or_sp(r: u32) -> u8 {
    if r == 31 { SP } else { gp(r) }
}

/// `bl` or `blr` (with or without pointer authentication): what a return address follows.
pub fn is_call(i: u32) -> bool {
    i >> 26 == 0b100101 || (i >> 25 == 0b1101011 && (i >> 21) & 7 == 0b001)
}

/// `ret`, `retaa`, `retab` (any register).
pub fn is_ret(i: u32) -> bool {
    i & 0xffff_fc1f == 0xd65f_0000 || i == 0xd65f_0bff || i == 0xd65f_0fff
}

/// The registers among sp, x29 and x30 that `insn` may write.
pub fn writes(insn: u32) -> u8 {
    let rd = bits(insn, 4, 0);
    let rn = bits(insn, 9, 5);
    match bits(insn, 28, 25) {
        0b1000 | 0b1001 => data_immediate(insn, rd),
        0b1010 | 0b1011 => branch_system(insn, rd),
        0b0100 | 0b0110 | 0b1100 | 0b1110 => load_store(insn, rd, rn),
        0b0101 | 0b1101 => data_register(insn, rd),
        0b0111 | 0b1111 => simd_fp(insn, rd),
        _ => ALL, // unallocated, SVE (addvl sp, …), SME
    }
}

fn data_immediate(insn: u32, rd: u32) -> u8 {
    let (sf, opc, s) = (bits(insn, 31, 31), bits(insn, 30, 29), bits(insn, 29, 29));
    match bits(insn, 25, 22) {
        0b0000..=0b0011 => gp(rd),                               // adr, adrp
        0b0100 | 0b0101 if s == 0 => gp_or_sp(rd),               // add/sub: `add sp, sp, #n`, `mov x29, sp`
        0b0100 | 0b0101 => gp(rd),                               // adds/subs: cmp, cmn
        0b0110 if sf == 1 && s == 0 => gp_or_sp(rd),             // addg, subg
        0b0111 if opc == 0 && bits(insn, 21, 20) == 0 => gp(rd), // smax, smin, umax, umin
        0b1000 | 0b1001 if opc != 0b11 => gp_or_sp(rd),          // and/orr/eor immediate
        0b1000 | 0b1001 => gp(rd),                               // ands: tst
        0b1010 | 0b1011 if opc != 0b01 => gp(rd),                // movn, movz, movk
        0b1100 | 0b1101 if opc != 0b11 => gp(rd),                // sbfm, bfm, ubfm
        0b1110 | 0b1111 if opc == 0 => gp(rd),                   // extr
        _ => ALL, // unallocated; autiasppc (FEAT_PAuth_LR, writes x30) sits in extract's space
    }
}

fn data_register(insn: u32, rd: u32) -> u8 {
    if bits(insn, 28, 28) == 0 {
        // Add/sub (extended register) with S clear is the one form whose Rd 31 is sp.
        let extended_add = bits(insn, 24, 24) == 1 && bits(insn, 21, 21) == 1 && bits(insn, 29, 29) == 0;
        return if extended_add { gp_or_sp(rd) } else { gp(rd) };
    }
    match bits(insn, 24, 21) {
        // irg: Xd|SP.
        0b0110 if bits(insn, 31, 29) == 0b100 && bits(insn, 15, 10) == 0b000100 => gp_or_sp(rd),
        // adc/sbc/rmif/setf, ccmp/ccmn (Rd holds nzcv, below 16), csel, 1- and 2-source, 3-source.
        0b0000 | 0b0010 | 0b0100 | 0b0110 | 0b1000..=0b1111 => gp(rd),
        _ => ALL,
    }
}

/// SIMD and FP instructions write vector registers and flags, except the moves and conversions
/// to a general register (`fmov x29, d0`, `umov w30, v0.h[1]`, `fcvtzs x29, d0`). A vector
/// destination v29 or v30 is not x29 or x30.
fn simd_fp(insn: u32, rd: u32) -> u8 {
    let copy = bits(insn, 31, 31) == 0 && bits(insn, 29, 21) == 0b0_0111_0000 && bits(insn, 15, 15) == 0;
    if copy && bits(insn, 10, 10) == 1 && matches!(bits(insn, 14, 11), 0b0101 | 0b0111) {
        return gp(rd); // smov, umov
    }
    if bits(insn, 30, 30) != 0 || bits(insn, 28, 24) != 0b11110 {
        return 0;
    }
    let opcode = bits(insn, 18, 16);
    let to_general = match (bits(insn, 21, 21), bits(insn, 15, 10)) {
        (1, 0) => !matches!(opcode, 0b010 | 0b011 | 0b111), // not scvtf, ucvtf, fmov to vector
        (0, _) => !matches!(opcode, 0b010 | 0b011),         // fixed point: fcvtzs, fcvtzu
        _ => false,                                         // FP arithmetic, compare, select
    };
    if to_general { gp(rd) } else { 0 }
}

fn branch_system(insn: u32, rd: u32) -> u8 {
    if bits(insn, 30, 26) == 0b00101 {
        return if bits(insn, 31, 31) == 1 { X30 } else { 0 }; // bl, b
    }
    if bits(insn, 31, 25) == 0b1101011 {
        // Unconditional branch (register) by opc: blr, blraa(z), blrab(z) write x30.
        return match bits(insn, 24, 21) {
            0b0001 | 0b1001 => X30,
            0b0000 | 0b1000 | 0b0010 | 0b0100 | 0b0101 => 0, // br, braa, ret(aa), eret(aa), drps
            _ => ALL,
        };
    }
    if bits(insn, 31, 22) == 0b1101010100 {
        if bits(insn, 21, 21) == 1 {
            return gp(rd); // mrs, sysl, tstart, ttest
        }
        if bits(insn, 21, 12) == 0b0000110010 && rd == 31 {
            // Hints: the pointer-authentication ones that work on x30.
            return match bits(insn, 11, 5) {
                0x07 | 0x18..=0x1f => X30,
                _ => 0,
            };
        }
        return 0; // msr, barriers, sys, other hints
    }
    match bits(insn, 31, 24) {
        0b0101_0100 => 0,                         // b.cond, bc.cond
        0b1101_0100 => 0,                         // svc, hvc, brk, …
        b if b & 0b0111_1100 == 0b0011_0100 => 0, // cbz/cbnz, tbz/tbnz
        _ => ALL,                                 // mrrs, sysp, unallocated
    }
}

fn load_store(insn: u32, rt: u32, rn: u32) -> u8 {
    let vector = bits(insn, 26, 26) == 1;
    let size = bits(insn, 31, 30);
    let opc = bits(insn, 23, 22);
    let rt2 = bits(insn, 14, 10);
    let rs = bits(insn, 20, 16);
    let base_writeback = gp_or_sp(rn);
    match bits(insn, 29, 27) {
        0b001 if vector => match (size >> 1, bits(insn, 23, 23)) {
            (0, 1) => base_writeback, // SIMD structures, post-index
            (0, _) => 0,
            _ => ALL,
        },
        0b001 => exclusive(insn, rt, rt2, rs),
        0b011 => literal_tags_copy(insn, rt, rn, rs, base_writeback),
        0b101 => {
            // Pair: 01 post-index, 11 pre-index write the base back.
            let addressing = bits(insn, 24, 23);
            if size == 0b11 || (!vector && size == 0b01 && addressing == 0) {
                return ALL; // unallocated
            }
            let wb = if addressing & 1 == 1 { base_writeback } else { 0 };
            let load = bits(insn, 22, 22) == 1 && !vector;
            wb | if load { gp(rt) | gp(rt2) } else { 0 }
        }
        _ => {
            // Single register. Which (size, opc) load a general register, which are
            // unallocated (None).
            let loads = match (vector, size, opc) {
                (_, _, 0b00) | (true, 0b00, _) | (true, _, 0b01) => Some(false),
                (true, _, _) | (false, 0b10 | 0b11, 0b11) => None,
                (false, 0b11, 0b10) => Some(false), // prfm
                (false, _, _) => Some(true),
            };
            let prefetch = !vector && size == 0b11 && opc == 0b10;
            let access = |writeback: bool| match loads {
                None => ALL,
                Some(load) => (if writeback { base_writeback } else { 0 }) | if load { gp(rt) } else { 0 },
            };
            if bits(insn, 24, 24) == 1 {
                return access(false); // unsigned offset
            }
            match (bits(insn, 21, 21), bits(insn, 11, 10)) {
                (0, 0b00) => access(false),         // unscaled: ldur, stur, prfum
                (0, _) if prefetch => ALL,          // no prfm with writeback or unprivileged
                (0, 0b10) if vector => ALL,         // no unprivileged vector loads and stores
                (0, form) => access(form & 1 == 1), // 01 post-index, 10 unprivileged, 11 pre-index
                (_, 0b10) => access(false),         // register offset
                (_, 0b00) if !vector => atomic(insn, rt, rs),
                // ldraa, ldrab (W bit 11: writeback).
                (_, form) if !vector && size == 0b11 => gp(rt) | if form == 0b11 { base_writeback } else { 0 },
                _ => ALL,
            }
        }
    }
}

/// Bits 29:24 = 001000: exclusives, acquire/release, compare-and-swap (o2 bit 23, L bit 22, o1
/// bit 21).
fn exclusive(insn: u32, rt: u32, rt2: u32, rs: u32) -> u8 {
    let load = bits(insn, 22, 22) == 1;
    if bits(insn, 24, 24) == 1 {
        return ALL;
    }
    match (bits(insn, 23, 23), bits(insn, 21, 21), bits(insn, 31, 31)) {
        (0, 0, _) | (0, 1, 1) if !load => gp(rs), // stxr, stlxr, stxp, stlxp: the status
        (0, 0, _) => gp(rt),                      // ldxr, ldaxr
        (0, 1, 1) => gp(rt) | gp(rt2),            // ldxp, ldaxp
        // casp: the compare pair Rs, Rs+1 receives memory; both must be even.
        (0, 1, _) if (rs | rt) & 1 == 0 => gp(rs) | gp(rs + 1),
        (0, 1, _) => ALL,
        (_, 0, _) => {
            if load {
                gp(rt)
            } else {
                0
            }
        } // ldar, ldlar; stlr, stllr
        _ => gp(rs), // cas
    }
}

/// Atomics write Rt (Rs is only an operand); ld64b writes eight registers from Rt, st64bv and
/// st64bv0 a status to Rs.
fn atomic(insn: u32, rt: u32, rs: u32) -> u8 {
    let o3 = bits(insn, 15, 15);
    let opc = bits(insn, 14, 12);
    let size = bits(insn, 31, 30);
    match (o3, opc) {
        (0, _) | (1, 0b000) | (1, 0b100) => gp(rt), // ldadd … ldumin, swp, ldapr
        _ if size != 0b11 => ALL,
        (1, 0b101) => (rt..rt + 8).fold(0, |w, r| w | gp(r)), // ld64b
        (1, 0b001) => 0,                                      // st64b
        (1, 0b010 | 0b011) => gp(rs),                         // st64bv0, st64bv
        _ => ALL,
    }
}

/// Bits 29:27 = 011: load literal, memory tags, memory copy/set, RCpc unscaled.
fn literal_tags_copy(insn: u32, rt: u32, rn: u32, rs: u32, base_writeback: u8) -> u8 {
    let vector = bits(insn, 26, 26) == 1;
    let size = bits(insn, 31, 30);
    if bits(insn, 24, 24) == 0 {
        // Literal: bits 9:5 are the offset, not a register.
        return match (vector, size) {
            (true, 0b11) => ALL,
            (true, _) | (false, 0b11) => 0, // vector, prfm
            (false, _) => gp(rt),
        };
    }
    if bits(insn, 31, 24) == 0b1101_1001 && bits(insn, 21, 21) == 1 {
        // Memory tags: stg, stzg, st2g, stz2g with 01 post-index or 11 pre-index write sp or
        // their base; ldg and ldgm write Rt.
        let imm9 = bits(insn, 20, 12);
        return match (bits(insn, 11, 10), bits(insn, 23, 22)) {
            (0b01 | 0b11, _) => base_writeback,
            (0b10, _) => 0,
            (_, 0b01) => gp(rt),
            _ if imm9 != 0 => ALL,
            (_, 0b11) => gp(rt),
            _ => 0, // stzgm, stgm
        };
    }
    match (bits(insn, 11, 10), vector, bits(insn, 21, 21)) {
        // cpy*: Xd!, Xs!, Xn!; set* (op1 11): Xd!, Xn!, and Xs the value. Register 31 is
        // unpredictable: count sp.
        (0b01, _, _) if size != 0 => ALL,
        (0b01, _, _) if bits(insn, 23, 22) == 0b11 => gp_or_sp(rt) | gp_or_sp(rn),
        (0b01, _, _) => gp_or_sp(rt) | gp_or_sp(rn) | gp_or_sp(rs),
        (0b00, false, 0) => {
            if bits(insn, 23, 22) == 0 {
                0
            } else {
                gp(rt)
            }
        } // stlur; ldapur
        _ => ALL, // RCpc3, 128-bit atomics, unallocated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Encodings from aarch64-linux-gnu-objdump.
    #[test]
    fn prologue_and_epilogue_instructions() {
        assert_eq!(writes(0xa9bf7bfd), SP, "stp x29, x30, [sp, #-16]!");
        assert_eq!(writes(0x910003fd), X29, "mov x29, sp");
        assert_eq!(writes(0xa8c17bfd), SP | X29 | X30, "ldp x29, x30, [sp], #16");
        assert_eq!(writes(0xa9417bfd), X29 | X30, "ldp x29, x30, [sp, #16]");
        assert_eq!(writes(0xa9017bfd), 0, "stp x29, x30, [sp, #16]");
        assert_eq!(writes(0xd10043ff), SP, "sub sp, sp, #0x10");
        assert_eq!(writes(0x910083ff), SP, "add sp, sp, #0x20");
        assert_eq!(writes(0x910003bf), SP, "mov sp, x29");
        assert_eq!(writes(0xd65f03c0), 0, "ret");
        assert_eq!(writes(0x94000000), X30, "bl");
        assert_eq!(writes(0xd63f0020), X30, "blr x1");
        assert_eq!(writes(0xd61f0020), 0, "br x1");
        assert_eq!(writes(0xd503233f), X30, "paciasp");
        assert_eq!(writes(0xd50323bf), X30, "autiasp");
        assert_eq!(writes(0xd503245f), 0, "bti c");
        assert_eq!(writes(0xd503201f), 0, "nop");
        assert_eq!(writes(0xf94007e0), 0, "ldr x0, [sp, #8]");
        assert_eq!(writes(0xf94007fd), X29, "ldr x29, [sp, #8]");
        assert_eq!(writes(0xf81f0ffe), SP, "str x30, [sp, #-16]!");
        assert_eq!(writes(0xf84107fe), SP | X30, "ldr x30, [sp], #16");
        assert_eq!(writes(0xaa0903fd), X29, "mov x29, x9");
        assert_eq!(writes(0xd2824686), 0, "mov x6, #0x1234");
        assert_eq!(writes(0xd282469d), X29, "mov x29, #0x1234");
        assert_eq!(writes(0xcb2063ff), SP, "sub sp, sp, x0 (extended)");
        assert_eq!(writes(0xeb01001f), 0, "cmp x0, x1");
        assert_eq!(writes(0x927cec1f), SP, "and sp, x0, #0xfffffffffffffff0");
        assert_eq!(writes(0x3cc107e0), SP, "ldr q0, [sp], #16");
        assert_eq!(writes(0xc85f7c1d), X29, "ldxr x29, [x0]");
        assert_eq!(writes(0xf821001d), X29, "ldadd x1, x29, [x0]");
        assert_eq!(writes(0xd53bd05d), X29, "mrs x29, tpidr_el0");
        assert_eq!(writes(0xd4000001), 0, "svc #0");
        assert_eq!(writes(0x9000001d), X29, "adrp x29, .");
        assert_eq!(writes(0x00000000), ALL, "udf");
    }

    // Encodings from aarch64-linux-gnu-as -march=armv8.8-a+memtag+ls64+mops.
    #[test]
    fn tag_stores_pairs_atomics_and_vector_destinations() {
        assert_eq!(writes(0xd92017e0), SP, "stg x0, [sp], #16");
        assert_eq!(writes(0xd93fffff), SP, "stg sp, [sp, #-16]!");
        assert_eq!(writes(0xd9201be0), 0, "stg x0, [sp, #16]");
        assert_eq!(writes(0xd9602fe1), SP, "stzg x1, [sp, #32]!");
        assert_eq!(writes(0xd9bfe7e2), SP, "st2g x2, [sp], #-32");
        assert_eq!(writes(0xd9e017a3), X29, "stz2g x3, [x29], #16");
        assert_eq!(writes(0x69bffbfd), SP, "stgp x29, x30, [sp, #-16]!");
        assert_eq!(writes(0xd96013fd), X29, "ldg x29, [sp, #16]");
        assert_eq!(writes(0x9ac1101f), SP, "irg sp, x0, x1");
        assert_eq!(writes(0x483c7c40), X29, "casp x28, x29, x0, x1, [x2]");
        assert_eq!(writes(0x487efc40), X30, "caspal x30, xzr, x0, x1, [x2]");
        assert_eq!(writes(0xf83fd016), X29, "ld64b x22, [x0]: x22..x29");
        assert_eq!(writes(0xf83fd018), X29 | X30, "ld64b x24, [x0]: undefined, objdump shows it");
        assert_eq!(writes(0xf83db020), X29, "st64bv x29, x0, [x1]");
        assert_eq!(writes(0xc81d7c20), X29, "stxr w29, x0, [x1]");
        assert_eq!(writes(0xf83d0020), 0, "ldadd x29, x0, [x1]");
        assert_eq!(writes(0xc89ffc1d), 0, "stlr x29, [x0]");
        assert_eq!(writes(0x68c17bfd), ALL, "ldpsw x29, x30, [sp], #8");
        assert_eq!(writes(0x0ddd0fe0), SP, "ld1 {{v0.b}}[3], [sp], x29");
        assert_eq!(writes(0x1d1e047d), X29 | X30, "cpyp [x29]!, [x30]!, x3!");
        assert_eq!(writes(0x19de07a0), X29, "setp [x0]!, x29!, x30");
        assert_eq!(writes(0x180007d6), 0, "ldr w22, <literal> (offset bits 9:5 = 30)");
        assert_eq!(writes(0x54000010), 0, "bc.eq");
        assert_eq!(writes(0x4e01001d), 0, "tbl v29.16b, {{v0.16b}}, v1.16b");
        assert_eq!(writes(0x3dc0001d), 0, "ldr q29, [x0]");
        assert_eq!(writes(0xad40781d), 0, "ldp q29, q30, [x0]");
        assert_eq!(writes(0xacc17bfd), SP, "ldp q29, q30, [sp], #32");
        assert_eq!(writes(0x9e67001e), 0, "fmov d30, x0");
        assert_eq!(writes(0x4e080c1d), 0, "dup v29.2d, x0");
        assert_eq!(writes(0x9e66001d), X29, "fmov x29, d0");
        assert_eq!(writes(0x0e063c1e), X30, "umov w30, v0.h[1]");
        assert_eq!(writes(0x9e78001d), X29, "fcvtzs x29, d0");
    }
}
