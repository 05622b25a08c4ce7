//! Reading memory the walk does not own.

/// Every read of the walk goes through here and may fail: a kernel implementation uses a
/// non-faulting copy (`copy_from_kernel_nofault`), the simulator reads a dump. Only 8-byte
/// aligned reads are requested.
pub trait Memory {
    fn read_u64(&self, addr: u64) -> Option<u64>;
}
