//! Where an A64 instruction sends control: the one decoding of branches and calls that both the
//! generator's control-flow proof (`generate::flow`) and the unwinder's call-site witness
//! (`orcwalk::call`) use. `no_std`, panic-free: linked into kernels.

/// Where control goes after the instruction at `pc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// A direct branch's target (not a call's: see [`call_target`]).
    pub target: Option<u64>,
    pub falls: bool,
    /// An indirect jump (not a return, not a call).
    pub indirect: bool,
}

/// `pc` plus the `BITS`-wide signed word offset `imm` (`BITS` < 32, a constant: the shifts
/// cannot overflow).
#[inline]
fn branch_target<const BITS: u32>(pc: u64, imm: u32) -> Option<u64> {
    let words = i64::from(((imm << (32 - BITS)) as i32) >> (32 - BITS));
    pc.checked_add_signed(words.checked_mul(4)?)
}

#[inline]
pub fn flow(pc: u64, i: u32) -> Flow {
    let f = |target, falls, indirect| Flow { target, falls, indirect };
    if i & 0x7c00_0000 == 0x1400_0000 && i >> 31 == 0 {
        return f(branch_target::<26>(pc, i & 0x03ff_ffff), false, false); // b
    }
    if i & 0xff00_0000 == 0x5400_0000 || i & 0x7e00_0000 == 0x3400_0000 {
        return f(branch_target::<19>(pc, (i >> 5) & 0x7_ffff), true, false); // b.cond, bc.cond, cbz, cbnz
    }
    if i & 0x7e00_0000 == 0x3600_0000 {
        return f(branch_target::<14>(pc, (i >> 5) & 0x3fff), true, false); // tbz, tbnz
    }
    if i & 0xfe00_0000 == 0xd600_0000 {
        return match (i >> 21) & 0xf {
            0b0001 => f(None, true, false),          // blr and its PAC forms: a call
            0b0000 | 0b1000 => f(None, false, true), // br, braa, brab
            _ => f(None, false, false),              // ret, eret, drps and PAC forms
        };
    }
    f(None, true, false)
}

/// The target of a direct call (`bl`).
#[inline]
pub fn call_target(pc: u64, i: u32) -> Option<u64> {
    if i & 0xfc00_0000 != 0x9400_0000 {
        return None;
    }
    branch_target::<26>(pc, i & 0x03ff_ffff)
}

/// `blr`, `blraa`, `blrab`, `blraaz`, `blrabz`.
#[inline]
pub fn is_indirect_call(i: u32) -> bool {
    i & 0xfeff_f000 == 0xd63f_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_targets() {
        assert_eq!(flow(0x100, 0x54fffe01), Flow { target: Some(0xc0), falls: true, indirect: false }); // b.ne -0x40
        assert_eq!(flow(0x100, 0x17ffffff), Flow { target: Some(0xfc), falls: false, indirect: false }); // b -4
        assert_eq!(flow(0x100, 0xd65f03c0), Flow { target: None, falls: false, indirect: false }); // ret
        assert_eq!(flow(0x100, 0xd61f0200), Flow { target: None, falls: false, indirect: true }); // br x16
        assert_eq!(flow(0x100, 0x94000001), Flow { target: None, falls: true, indirect: false }); // bl
        assert_eq!(call_target(0x104, 0x9400_003f), Some(0x200));
        assert_eq!(call_target(0x104, 0x97ff_ffff), Some(0x100));
        assert!(is_indirect_call(0xd63f_0020) && !is_indirect_call(0xd61f_0020));
    }
}
