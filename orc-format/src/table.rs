//! A borrowed, validated view of an ORC table and its lookup.
//!
//! The parts are the kernel's: `.orc_unwind_ip` (i32 offsets, each relative to its own slot, so
//! the table is position independent), `.orc_unwind` (parallel 8-byte entries) and the lookup
//! index (one u32 per 256-byte block of text, see [`crate::index`]). Nothing is copied: entries are
//! decoded from the byte slices on demand, so the same code reads a linked-in section in a kernel
//! and a file mapped in the simulator.
//!
//! Validation happens once, in [`OrcTable::from_parts`]; after that, `find` relies on the ip table
//! being sorted and the index being consistent. Every access is still a checked `get`, so even a
//! table that changed under us could only give a wrong entry, never a panic or an unbounded loop.

// Linked into kernels built with overflow checks on: an unchecked `+` here would link a panic.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects, clippy::indexing_slicing))]

use crate::TableError;
use crate::entry::{ENTRY_SIZE, OrcEntry};
use crate::index::{BLOCK_SHIFT, BLOCK_SIZE};

/// Size of one `.orc_unwind_ip` slot.
pub const IP_SIZE: usize = 4;

/// The lookup index: `words[b]` = number of entries whose ip <= `base + b * 256`.
#[derive(Clone, Copy, Debug)]
pub struct IndexParts<'a> {
    pub base: u64,
    /// `blocks + 1` little-endian u32 words.
    pub words: &'a [u8],
}

#[derive(Clone, Copy, Debug)]
pub struct OrcTable<'a> {
    ips: &'a [u8],
    ip_table_addr: u64,
    entries: &'a [u8],
    index: Option<IndexParts<'a>>,
    len: u32,
}

fn read_u32(bytes: &[u8], i: u32) -> Option<u32> {
    let start = (i as usize).checked_mul(4)?;
    let b: [u8; 4] = bytes.get(start..start.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

impl<'a> OrcTable<'a> {
    /// Builds and fully validates a view: lengths, strictly increasing ips, no reserved values,
    /// a terminator at the end, and (if given) an index that agrees with the ips. O(n + blocks).
    ///
    /// `ip_table_addr` is the address of the first `.orc_unwind_ip` slot (the section's address in
    /// a linked image, or the address the table file declares).
    pub fn from_parts(
        ips: &'a [u8],
        ip_table_addr: u64,
        entries: &'a [u8],
        index: Option<IndexParts<'a>>,
    ) -> Result<OrcTable<'a>, TableError> {
        if !ips.len().is_multiple_of(IP_SIZE) {
            return Err(TableError::LengthMismatch { part: ".orc_unwind_ip" });
        }
        let n = ips.len() / IP_SIZE;
        let len = u32::try_from(n).map_err(|_| TableError::BadHeader { field: "entry count" })?;
        if entries.len() != n.checked_mul(ENTRY_SIZE).ok_or(TableError::LengthMismatch { part: ".orc_unwind" })? {
            return Err(TableError::LengthMismatch { part: ".orc_unwind" });
        }
        let table = OrcTable { ips, ip_table_addr, entries, index: None, len };
        table.validate_entries()?;
        if let Some(ix) = index {
            table.validate_index(ix)?;
        }
        Ok(OrcTable { index, ..table })
    }

    /// The view without validation, for a kernel that validated these exact bytes once (at boot
    /// or module load) and must not pay O(n) per walk. A table that was not validated cannot make
    /// `find` panic or loop (every access is checked, the search is a bounded bisection), but its
    /// answers are meaningless. Lengths are still checked here.
    pub fn from_validated_parts(
        ips: &'a [u8],
        ip_table_addr: u64,
        entries: &'a [u8],
        index: Option<IndexParts<'a>>,
    ) -> Option<OrcTable<'a>> {
        let n = ips.len() / IP_SIZE;
        let len = u32::try_from(n).ok()?;
        if !ips.len().is_multiple_of(IP_SIZE) || entries.len() != n.checked_mul(ENTRY_SIZE)? {
            return None;
        }
        Some(OrcTable { ips, ip_table_addr, entries, index, len })
    }

    fn validate_entries(&self) -> Result<(), TableError> {
        let mut prev: Option<u64> = None;
        for i in 0..self.len {
            let ip = self.checked_ip(i).ok_or(TableError::IpOverflow { index: i })?;
            if prev.is_some_and(|p| ip <= p) {
                return Err(TableError::Unsorted { index: i });
            }
            prev = Some(ip);
            let e = self.entry(i).ok_or(TableError::LengthMismatch { part: ".orc_unwind" })?;
            if e.kind().is_none() || e.sp_reg().is_none() || e.fp_reg().is_none() || e.ra_reg().is_none() {
                return Err(TableError::ReservedValue { index: i });
            }
        }
        match self.len.checked_sub(1).and_then(|last| self.entry(last)) {
            Some(e) if !e.is_undefined() => Err(TableError::MissingTerminator),
            _ => Ok(()),
        }
    }

    fn validate_index(&self, ix: IndexParts<'_>) -> Result<(), TableError> {
        if !ix.words.len().is_multiple_of(4) || ix.words.len() < 4 {
            return Err(TableError::LengthMismatch { part: "lookup index" });
        }
        let words =
            u32::try_from(ix.words.len() / 4).map_err(|_| TableError::LengthMismatch { part: "lookup index" })?;
        // The whole indexed range must be addressable.
        let span = u64::from(words.saturating_sub(1)) << BLOCK_SHIFT;
        ix.base.checked_add(span).ok_or(TableError::BadHeader { field: "index base" })?;
        // Walk blocks and entries together: count(ip <= block start) for every block start.
        let mut count: u32 = 0;
        for b in 0..words {
            // In range (checked above for the last block); checked again so that no overflow panic
            // is linked in when the kernel builds with overflow checks.
            let start = ix
                .base
                .checked_add(u64::from(b) << BLOCK_SHIFT)
                .ok_or(TableError::BadHeader { field: "index base" })?;
            while count < self.len && self.ip(count) <= start {
                count = count.saturating_add(1); // < self.len
            }
            if read_u32(ix.words, b) != Some(count) {
                return Err(TableError::BadIndex { block: b });
            }
        }
        Ok(())
    }

    /// Number of entries.
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn index(&self) -> Option<IndexParts<'a>> {
        self.index
    }

    pub fn ip_table_addr(&self) -> u64 {
        self.ip_table_addr
    }

    /// The raw `.orc_unwind_ip` and `.orc_unwind` bytes, for handing a validated table to C.
    pub fn raw_parts(&self) -> (&'a [u8], &'a [u8]) {
        (self.ips, self.entries)
    }

    fn checked_ip(&self, i: u32) -> Option<u64> {
        let off = read_u32(self.ips, i)? as i32;
        let slot = self.ip_table_addr.checked_add(u64::from(i).checked_mul(IP_SIZE as u64)?)?;
        slot.checked_add_signed(i64::from(off))
    }

    /// The instruction address of entry `i` (`&slot + *slot`). Out-of-range `i` gives `u64::MAX`,
    /// which sorts after every real ip; validation proved in-range ips never overflow.
    pub fn ip(&self, i: u32) -> u64 {
        self.checked_ip(i).unwrap_or(u64::MAX)
    }

    pub fn entry(&self, i: u32) -> Option<OrcEntry> {
        let start = (i as usize).checked_mul(ENTRY_SIZE)?;
        // `try_into` rather than `copy_from_slice`: the latter keeps a length-mismatch panic
        // path when not inlined (seen at opt-level "s").
        let raw: [u8; ENTRY_SIZE] = self.entries.get(start..start.checked_add(ENTRY_SIZE)?)?.try_into().ok()?;
        Some(OrcEntry::from_bytes(raw))
    }

    /// [`Self::ip`] for the search: the slot is read checked (out of range gives `u64::MAX`), the
    /// address arithmetic wraps, which validation proved it never does for these bytes (a table
    /// that was not validated gets meaningless answers, as documented, never a panic).
    #[inline(always)]
    fn search_ip(&self, i: u32) -> u64 {
        match read_u32(self.ips, i) {
            Some(off) => self
                .ip_table_addr
                .wrapping_add(u64::from(i).wrapping_mul(IP_SIZE as u64))
                .wrapping_add_signed(i64::from(off as i32)),
            None => u64::MAX,
        }
    }

    /// Number of entries in `[lo, hi)` whose ip <= `pc`, plus `lo`: the partition point, given
    /// that the entries below `lo` are <= `pc` and those from `hi` on are above it.
    ///
    /// Branch-free bisection: the number of rounds depends only on `hi - lo`, and each round
    /// picks the next base with a conditional move (`select_unpredictable`), so a lookup pays no mispredicted branch on
    /// the ips it compares (the plain bisection mispredicted about every other round).
    fn partition(&self, lo: u32, hi: u32, pc: u64) -> u32 {
        let Some(mut size) = hi.checked_sub(lo).filter(|&n| n > 0) else { return lo };
        let mut base = lo;
        // Invariant: entries below `base` are <= pc, entries from `base + size` on are above.
        while size > 1 {
            let half = size / 2;
            let mid = base.wrapping_add(half); // < base + size <= hi
            base = core::hint::select_unpredictable(self.search_ip(mid) <= pc, mid, base);
            size = size.wrapping_sub(half); // half < size
        }
        base.wrapping_add(u32::from(self.search_ip(base) <= pc)) // base < hi <= u32::MAX
    }

    /// The search window the index allows for `pc`, or the whole table.
    fn window(&self, pc: u64) -> (u32, u32) {
        if let Some(ix) = self.index
            && let Some(delta) = pc.checked_sub(ix.base)
        {
            let block = delta >> BLOCK_SHIFT;
            if let Ok(block) = u32::try_from(block)
                && let (Some(lo), Some(hi)) =
                    (read_u32(ix.words, block), block.checked_add(1).and_then(|n| read_u32(ix.words, n)))
                && lo <= hi
                && hi <= self.len
            {
                return (lo, hi);
            }
        }
        (0, self.len)
    }

    /// The rightmost entry whose ip <= `pc`, with its ip. `None` below the first entry.
    /// The caller treats an UNDEFINED entry (terminator, gap) as "no rule".
    pub fn find(&self, pc: u64) -> Option<(u64, OrcEntry)> {
        let (lo, hi) = self.window(pc);
        self.at_count(self.partition(lo, hi, pc))
    }

    /// The entry `find` returns, without its ip: what an unwinder needs, one load fewer.
    pub fn find_entry(&self, pc: u64) -> Option<OrcEntry> {
        let (lo, hi) = self.window(pc);
        self.entry(self.partition(lo, hi, pc).checked_sub(1)?)
    }

    /// `find` without the index: plain binary search over all entries (the bench baseline).
    pub fn find_unindexed(&self, pc: u64) -> Option<(u64, OrcEntry)> {
        self.at_count(self.partition(0, self.len, pc))
    }

    fn at_count(&self, count: u32) -> Option<(u64, OrcEntry)> {
        let i = count.checked_sub(1)?;
        Some((self.ip(i), self.entry(i)?))
    }

    /// All entries in address order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, OrcEntry)> + '_ {
        (0..self.len).filter_map(move |i| Some((self.ip(i), self.entry(i)?)))
    }
}

const _: () = assert!(BLOCK_SIZE == 1 << BLOCK_SHIFT);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Reg};
    use quickcheck::{Arbitrary, Gen, quickcheck};

    /// A random table: sorted distinct ips over a small span (so pcs hit it), random usable
    /// entries, an UNDEFINED terminator last.
    #[derive(Clone, Debug)]
    struct RandomTable {
        ips: Vec<u64>,
        entries: Vec<OrcEntry>,
    }

    impl Arbitrary for RandomTable {
        fn arbitrary(g: &mut Gen) -> Self {
            let base = 0xffff_8000_8001_0000u64.wrapping_add(u64::from(u16::arbitrary(g)) * 4);
            let n = usize::arbitrary(g) % 300;
            let mut ips = Vec::with_capacity(n + 1);
            let mut ip = base;
            for _ in 0..=n {
                ips.push(ip);
                ip += 4 * (1 + u64::from(u8::arbitrary(g) % 200));
            }
            let mut entries: Vec<OrcEntry> = (0..n)
                .map(|_| {
                    let kinds = [Kind::Call, Kind::EndOfStack, Kind::Undefined, Kind::Regs];
                    let regs = [Reg::Sp, Reg::Fp, Reg::PrevSp, Reg::Undefined];
                    OrcEntry::new(
                        *g.choose(&kinds).unwrap_or(&Kind::Call),
                        *g.choose(&regs).unwrap_or(&Reg::Sp),
                        i16::arbitrary(g),
                        *g.choose(&regs).unwrap_or(&Reg::Sp),
                        i16::arbitrary(g),
                        *g.choose(&regs).unwrap_or(&Reg::Sp),
                        i16::arbitrary(g),
                        bool::arbitrary(g),
                    )
                })
                .collect();
            entries.push(OrcEntry::UNDEFINED);
            RandomTable { ips, entries }
        }
    }

    fn linear(t: &RandomTable, pc: u64) -> Option<(u64, OrcEntry)> {
        t.ips.iter().zip(&t.entries).rev().find(|(ip, _)| **ip <= pc).map(|(ip, e)| (*ip, *e))
    }

    quickcheck! {
        fn find_equals_linear_scan(t: RandomTable, probes: Vec<u32>) -> bool {
            let bytes = crate::file::write(&t.ips, &t.entries, &crate::ImageId::NONE, true).unwrap();
            let file = crate::TableFile::parse(&bytes).unwrap();
            let first = t.ips[0];
            let span = t.ips[t.ips.len() - 1] - first + 512;
            probes.iter().chain(&[0, 1, 2, u32::MAX]).all(|&p| {
                let pc = (first - 256).wrapping_add(u64::from(p) % span);
                let want = linear(&t, pc);
                file.table.find(pc) == want && file.table.find_unindexed(pc) == want
                    && file.table.find_entry(pc) == want.map(|(_, e)| e)
            }) && file.table.find(0).is_none() && file.table.find(u64::MAX) == linear(&t, u64::MAX)
        }
    }

    fn parts(ips: &[u64], entries: &[OrcEntry]) -> (Vec<u8>, Vec<u8>) {
        let base = ips[0];
        let ipb = ips
            .iter()
            .enumerate()
            .flat_map(|(i, ip)| (ip.wrapping_sub(base).wrapping_sub(4 * i as u64) as i32).to_le_bytes())
            .collect();
        let eb = entries.iter().flat_map(|e| e.to_bytes()).collect();
        (ipb, eb)
    }

    const CALL: OrcEntry = OrcEntry::new(Kind::Call, Reg::Sp, 16, Reg::PrevSp, -16, Reg::PrevSp, -8, false);

    #[test]
    fn unsorted_ips_are_refused() {
        let (i, e) = parts(&[0x1000, 0x1010, 0x1008], &[CALL, CALL, OrcEntry::UNDEFINED]);
        assert_eq!(OrcTable::from_parts(&i, 0x1000, &e, None).unwrap_err(), TableError::Unsorted { index: 2 });
        let (i, e) = parts(&[0x1000, 0x1000], &[CALL, OrcEntry::UNDEFINED]);
        assert_eq!(OrcTable::from_parts(&i, 0x1000, &e, None).unwrap_err(), TableError::Unsorted { index: 1 });
    }

    #[test]
    fn missing_terminator_is_refused() {
        let (i, e) = parts(&[0x1000, 0x1010], &[CALL, CALL]);
        assert_eq!(OrcTable::from_parts(&i, 0x1000, &e, None).unwrap_err(), TableError::MissingTerminator);
    }

    #[test]
    fn reserved_values_are_refused() {
        let bad = OrcEntry::from_raw(0, 0, 0, 0x6002); // type 6
        let (i, e) = parts(&[0x1000, 0x1010], &[bad, OrcEntry::UNDEFINED]);
        assert_eq!(OrcTable::from_parts(&i, 0x1000, &e, None).unwrap_err(), TableError::ReservedValue { index: 0 });
    }

    #[test]
    fn length_mismatch_is_refused() {
        let (i, e) = parts(&[0x1000, 0x1010], &[CALL, OrcEntry::UNDEFINED]);
        assert!(matches!(OrcTable::from_parts(&i[..7], 0x1000, &e, None), Err(TableError::LengthMismatch { .. })));
        assert!(matches!(OrcTable::from_parts(&i, 0x1000, &e[..8], None), Err(TableError::LengthMismatch { .. })));
    }

    #[test]
    fn ip_overflow_is_refused() {
        let i = 0x7fff_ffffi32.to_le_bytes();
        let e = OrcEntry::UNDEFINED.to_bytes();
        assert_eq!(OrcTable::from_parts(&i, u64::MAX - 8, &e, None).unwrap_err(), TableError::IpOverflow { index: 0 });
    }

    #[test]
    fn inconsistent_index_is_refused() {
        let (i, e) = parts(&[0x1000, 0x1200], &[CALL, OrcEntry::UNDEFINED]);
        // Correct: block starts 0x1000, 0x1100, 0x1200 -> counts 1, 1, 2.
        let good: Vec<u8> = [1u32, 1, 2].iter().flat_map(|w| w.to_le_bytes()).collect();
        assert!(OrcTable::from_parts(&i, 0x1000, &e, Some(IndexParts { base: 0x1000, words: &good })).is_ok());
        let bad: Vec<u8> = [1u32, 2, 2].iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(
            OrcTable::from_parts(&i, 0x1000, &e, Some(IndexParts { base: 0x1000, words: &bad })).unwrap_err(),
            TableError::BadIndex { block: 1 }
        );
    }
}
