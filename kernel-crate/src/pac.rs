//! Pointer-authentication codes in saved return addresses.

/// Removes a PAC from a code address: bits above the virtual-address size are set for kernel
/// addresses (bit 55 set, TTBR1) and cleared for user addresses, as mainline's
/// `ptrauth_strip_kernel_insn_pac` / `ptrauth_strip_user_insn_pac` do. Without PAC the value
/// is unchanged.
pub const fn strip_pac(addr: u64, va_bits: u32) -> u64 {
    if va_bits == 0 || va_bits >= 64 {
        return addr;
    }
    let mask = (1u64 << va_bits).wrapping_sub(1);
    if addr & (1 << 55) != 0 { addr | !mask } else { addr & mask }
}

#[cfg(test)]
mod tests {
    use super::strip_pac;

    #[test]
    fn kernel_and_user_addresses() {
        // A kernel return address signed with a PAC in bits 48..=54 and 56..=63.
        assert_eq!(strip_pac(0x3a5f_8000_8012_3456 | (1 << 55), 48), 0xffff_8000_8012_3456);
        assert_eq!(strip_pac(0xffff_8000_8012_3456, 48), 0xffff_8000_8012_3456);
        assert_eq!(strip_pac(0x0012_aaaa_bbbb_cccc, 48), 0x0000_aaaa_bbbb_cccc);
        assert_eq!(strip_pac(0x0000_aaaa_bbbb_cccc, 48), 0x0000_aaaa_bbbb_cccc);
        assert_eq!(strip_pac(0x1234, 64), 0x1234);
    }
}
