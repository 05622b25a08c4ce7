//! Which of sp, x29 and x30 an A64 instruction may write: enough to tell whether a CFI row
//! still describes a pc that some instructions after the row's start have already changed.
//!
//! Deliberately conservative: an encoding it cannot place "writes everything", and SIMD
//! destinations count as general registers (v29 as x29). Over-reporting only makes more truths
//! incomplete; under-reporting would make a stale truth look complete.

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
        0b0101 | 0b1101 => {
            // Add/sub (extended register) with S clear is the one form whose Rd 31 is sp.
            if bits(insn, 28, 24) == 0b01011 && bits(insn, 21, 21) == 1 && bits(insn, 29, 29) == 0 {
                gp_or_sp(rd)
            } else {
                gp(rd)
            }
        }
        0b0111 | 0b1111 => gp(rd),
        _ => ALL, // unallocated, SVE (addvl sp, …), SME
    }
}

fn data_immediate(insn: u32, rd: u32) -> u8 {
    let s = bits(insn, 29, 29);
    match bits(insn, 25, 23) {
        0b010 if s == 0 => gp_or_sp(rd), // add/sub immediate: `add sp, sp, #n`, `mov x29, sp`
        0b011 => gp_or_sp(rd),           // addg/subg
        0b100 if bits(insn, 30, 29) != 0b11 => gp_or_sp(rd), // and/orr/eor immediate
        _ => gp(rd),                     // adr(p), adds/subs, ands, movz/movk/movn, bitfield, extr
    }
}

fn branch_system(insn: u32, rd: u32) -> u8 {
    if bits(insn, 31, 26) == 0b100101 {
        return X30; // bl
    }
    if bits(insn, 31, 25) == 0b1101011 {
        // Unconditional branch (register): blr, blraa, blrab, blraaz, blrabz write x30.
        return if bits(insn, 23, 21) == 0b001 { X30 } else { 0 };
    }
    if bits(insn, 31, 22) == 0b1101010100 {
        if bits(insn, 21, 21) == 1 {
            return gp(rd); // mrs, sysl
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
    match bits(insn, 31, 29) {
        0b000 | 0b100 | 0b001 | 0b101 | 0b010 => 0,  // b, cbz/cbnz, tbz/tbnz, b.cond
        0b110 if bits(insn, 28, 24) == 0b10100 => 0, // svc, hvc, brk, …
        _ => ALL,
    }
}

fn load_store(insn: u32, rt: u32, rn: u32) -> u8 {
    let vector = bits(insn, 26, 26) == 1;
    let rt2 = bits(insn, 14, 10);
    let rs = bits(insn, 20, 16);
    let base_writeback = if rn == 31 { SP } else { gp(rn) };
    match bits(insn, 29, 27) {
        0b101 => {
            // Pair: 01 post-index, 11 pre-index write the base back.
            let wb = if matches!(bits(insn, 24, 23), 0b01 | 0b11) { base_writeback } else { 0 };
            let load = bits(insn, 22, 22) == 1 && !vector;
            wb | if load { gp(rt) | gp(rt2) } else { 0 }
        }
        0b111 => {
            let load = !vector && bits(insn, 23, 22) != 0b00;
            if bits(insn, 24, 24) == 1 {
                return if load { gp(rt) } else { 0 }; // unsigned offset
            }
            if bits(insn, 21, 21) == 0 {
                let wb = if matches!(bits(insn, 11, 10), 0b01 | 0b11) { base_writeback } else { 0 };
                return wb | if load { gp(rt) } else { 0 };
            }
            match bits(insn, 11, 10) {
                0b10 => {
                    if load {
                        gp(rt)
                    } else {
                        0
                    }
                } // register offset
                0b00 => gp(rt) | gp(rs),      // atomics write Rt
                _ => base_writeback | gp(rt), // ldraa/ldrab (W bit: writeback)
            }
        }
        0b011 => gp(rt) | gp(rn) | gp(rs), // load literal; memory copy/set
        _ => {
            // Exclusives, acquire/release, compare-and-swap, RCpc, SIMD structures (with
            // post-index writeback).
            let wb = if vector && bits(insn, 23, 23) == 1 { base_writeback } else { 0 };
            wb | gp(rt) | gp(rt2) | gp(rs)
        }
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
}
