//! The fast lookup index, as x86's `orc_lookup`: one u32 per 256-byte block of text.
//!
//! `index[b]` is the number of entries whose ip <= `base + b * 256`. For a pc in block `b`, the
//! rightmost entry with ip <= pc is then among entries `index[b] - 1 ..= index[b + 1] - 1`, so a lookup
//! binary-searches a handful of entries instead of the whole table. The index is built on the host
//! and shipped with the table; the kernel never allocates one.

pub const BLOCK_SHIFT: u32 = 8;
pub const BLOCK_SIZE: u64 = 1 << BLOCK_SHIFT;

/// Builds the index words for sorted `ips` over `[base, end)`: `blocks + 1` counts.
#[cfg(feature = "std")]
pub fn build(ips: &[u64], base: u64, end: u64) -> Vec<u32> {
    let blocks = end.saturating_sub(base).div_ceil(BLOCK_SIZE);
    let mut words = Vec::with_capacity(usize::try_from(blocks).unwrap_or(0).saturating_add(1));
    let mut count = 0usize;
    for b in 0..=blocks {
        let start = base.saturating_add(b << BLOCK_SHIFT);
        while count < ips.len() && ips[count] <= start {
            count += 1;
        }
        words.push(u32::try_from(count).unwrap_or(u32::MAX));
    }
    words
}
