//! A loadable module's ORC table, as its `.ko` carries it (section [`SECTION`]).
//!
//! A module's text sections are placed independently when it loads (core text, init text, each
//! wherever the allocator puts them), so the table cannot hold addresses, nor one offset for all
//! of them as a table file does. It holds, per text section, the section's name and size and its
//! entries as offsets into it. At load the kernel says where each section went
//! ([`ModuleTable::place`]), and the entries become an ordinary [`OrcTable`] in memory the caller
//! owns, validated like any other table. Each section's entries end in an UNDEFINED
//! terminator, so nothing past a section (a PLT, an ftrace trampoline, the next section) is
//! covered by a row made for something else.
//!
//! Layout, little-endian:
//! - header (40 bytes): magic `ORCWMOD\0`, u32 format version, u32 flags (bit 0: rows proven
//!   along control flow), u64 layout hash, u32 sections, u32 entries, u32 string bytes, u32 zero;
//! - per section (24 bytes): u32 name offset, u32 name length (into the strings), u32 first
//!   entry, u32 entry count, u64 section size;
//! - per entry a u32 offset into its section, then per entry the 8-byte ORC entry;
//! - the strings.
//!
//! Sections appear in the order of their entries (section `k` holds entries `first..first +
//! count`, and `first` is the sum of the earlier counts); offsets rise strictly in a section.

// Linked into kernels built with overflow checks on, like table.rs.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects, clippy::indexing_slicing))]

use crate::entry::{ENTRY_SIZE, OrcEntry};
use crate::table::{IP_SIZE, OrcTable};
use crate::{FormatId, TableError};

/// The `.ko` section that carries the table.
pub const SECTION: &str = ".orcwalk_module";
pub const MAGIC: [u8; 8] = *b"ORCWMOD\0";
pub const HEADER_SIZE: usize = 40;
pub const SECTION_RECORD_SIZE: usize = 24;
/// Flag bit: every row was proven along control flow (as a table file's provenance mark).
pub const FLAG_PROVEN: u32 = 1;
/// More text sections than any module has; bounds the placement's selection loop.
pub const MAX_SECTIONS: u32 = 64;

/// One text section of the module as the table describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleSection<'a> {
    pub name: &'a [u8],
    pub first: u32,
    pub count: u32,
    pub size: u64,
}

/// A validated view of a module table's bytes.
#[derive(Clone, Copy, Debug)]
pub struct ModuleTable<'a> {
    records: &'a [u8],
    offsets: &'a [u8],
    entries: &'a [u8],
    strings: &'a [u8],
    nr_sections: u32,
    len: u32,
    proven: bool,
}

/// Where a placed table stands: `ip_addr` is the address its slot 0 is relative to (as
/// [`OrcTable::from_parts`] takes it) and `len` the number of entries written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    pub ip_addr: u64,
    pub len: u32,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// `bytes[at..at + len]`, or the named truncation.
fn part<'a>(bytes: &'a [u8], at: usize, len: usize, name: &'static str) -> Result<&'a [u8], TableError> {
    let end = at.checked_add(len).ok_or(TableError::BadHeader { field: name })?;
    bytes.get(at..end).ok_or(TableError::Truncated { part: name, needed: end as u64, available: bytes.len() as u64 })
}

impl<'a> ModuleTable<'a> {
    /// Parses and validates the bytes of a module's [`SECTION`]: header, format, the section
    /// records (contiguous, non-empty, names inside the strings), offsets rising strictly and
    /// within each section, entries free of reserved values, and each section's last entry an
    /// UNDEFINED terminator.
    pub fn parse(bytes: &'a [u8]) -> Result<ModuleTable<'a>, TableError> {
        let header = part(bytes, 0, HEADER_SIZE, "module table header")?;
        if header.get(..8) != Some(&MAGIC[..]) {
            return Err(TableError::BadMagic);
        }
        let field = |at, name| u32_at(header, at).ok_or(TableError::BadHeader { field: name });
        let version = field(8, "version")?;
        let flags = field(12, "flags")?;
        let layout_hash = u64_at(header, 16).ok_or(TableError::BadHeader { field: "layout hash" })?;
        if (FormatId { version, layout_hash }) != FormatId::CURRENT {
            return Err(TableError::FormatMismatch { version, layout_hash });
        }
        if flags & !FLAG_PROVEN != 0 {
            return Err(TableError::BadHeader { field: "flags" });
        }
        let nr_sections = field(24, "sections")?;
        let len = field(28, "entries")?;
        let nr_strings = field(32, "strings")?;
        if field(36, "reserved")? != 0 {
            return Err(TableError::BadHeader { field: "reserved" });
        }
        if nr_sections == 0 || nr_sections > MAX_SECTIONS {
            return Err(TableError::BadHeader { field: "sections" });
        }
        let n = len as usize;
        let records_len = (nr_sections as usize).checked_mul(SECTION_RECORD_SIZE);
        let records =
            part(bytes, HEADER_SIZE, records_len.ok_or(TableError::BadHeader { field: "sections" })?, "sections")?;
        let at = HEADER_SIZE.saturating_add(records.len());
        let offsets =
            part(bytes, at, n.checked_mul(IP_SIZE).ok_or(TableError::BadHeader { field: "entries" })?, "offsets")?;
        let at = at.saturating_add(offsets.len());
        let entries =
            part(bytes, at, n.checked_mul(ENTRY_SIZE).ok_or(TableError::BadHeader { field: "entries" })?, "entries")?;
        let at = at.saturating_add(entries.len());
        let strings = part(bytes, at, nr_strings as usize, "strings")?;
        if at.saturating_add(strings.len()) != bytes.len() {
            return Err(TableError::LengthMismatch { part: "module table" });
        }
        let t = ModuleTable { records, offsets, entries, strings, nr_sections, len, proven: flags & FLAG_PROVEN != 0 };
        t.validate()?;
        Ok(t)
    }

    fn validate(&self) -> Result<(), TableError> {
        let mut next: u32 = 0;
        for k in 0..self.nr_sections {
            let s = self.section(k).ok_or(TableError::BadHeader { field: "section name" })?;
            if s.first != next || s.count == 0 || s.name.is_empty() {
                return Err(TableError::BadHeader { field: "section entries" });
            }
            next = s.first.checked_add(s.count).ok_or(TableError::BadHeader { field: "section entries" })?;
            let mut prev: Option<u32> = None;
            for i in s.first..next {
                let off = self.offset(i).ok_or(TableError::LengthMismatch { part: "offsets" })?;
                if prev.is_some_and(|p| off <= p) {
                    return Err(TableError::Unsorted { index: i });
                }
                if u64::from(off) > s.size {
                    return Err(TableError::IpOverflow { index: i });
                }
                prev = Some(off);
                let e = self.entry(i).ok_or(TableError::LengthMismatch { part: "entries" })?;
                if e.kind().is_none() || e.sp_reg().is_none() || e.fp_reg().is_none() || e.ra_reg().is_none() {
                    return Err(TableError::ReservedValue { index: i });
                }
            }
            if !self.entry(next.saturating_sub(1)).is_some_and(OrcEntry::is_undefined) {
                return Err(TableError::MissingTerminator);
            }
        }
        if next != self.len {
            return Err(TableError::LengthMismatch { part: "section entries" });
        }
        Ok(())
    }

    /// Number of entries in all sections.
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn sections(&self) -> u32 {
        self.nr_sections
    }

    /// The rows were proven along control flow by the generator.
    pub fn proven(&self) -> bool {
        self.proven
    }

    pub fn section(&self, k: u32) -> Option<ModuleSection<'a>> {
        let at = (k as usize).checked_mul(SECTION_RECORD_SIZE)?;
        let r = self.records.get(at..at.checked_add(SECTION_RECORD_SIZE)?)?;
        let name_at = u32_at(r, 0)? as usize;
        let name = self.strings.get(name_at..name_at.checked_add(u32_at(r, 4)? as usize)?)?;
        Some(ModuleSection { name, first: u32_at(r, 8)?, count: u32_at(r, 12)?, size: u64_at(r, 16)? })
    }

    /// Entry `i`'s offset into its section.
    pub fn offset(&self, i: u32) -> Option<u32> {
        u32_at(self.offsets, (i as usize).checked_mul(IP_SIZE)?)
    }

    pub fn entry(&self, i: u32) -> Option<OrcEntry> {
        let at = (i as usize).checked_mul(ENTRY_SIZE)?;
        Some(OrcEntry::from_bytes(self.entries.get(at..at.checked_add(ENTRY_SIZE)?)?.try_into().ok()?))
    }

    /// Writes the table for the module as it was loaded: `address(name, size)` says where the
    /// section of that name and size is, or `None` when it was not loaded (its entries are left
    /// out: no pc can be there). Sections are written in address order into `ips` (4 bytes an
    /// entry, self-relative to `ip_addr`, the lowest address placed) and `orc` (8 bytes an
    /// entry), which must hold [`ModuleTable::len`] entries; the result is then validated as
    /// any table is, so overlapping sections or a span beyond ±2 GiB are refused, never
    /// written wrong. Use the first `len` entries of each buffer with `Placed::ip_addr`.
    pub fn place(
        &self,
        mut address: impl FnMut(&[u8], u64) -> Option<u64>,
        ips: &mut [u8],
        orc: &mut [u8],
    ) -> Result<Placed, TableError> {
        // Sections in address order by selection, asking `address` again each round: no
        // allocation and no per-section array on a kernel stack (at most MAX_SECTIONS rounds).
        let mut loaded: u32 = 0;
        let mut ip_addr: Option<u64> = None;
        for k in 0..self.nr_sections {
            let s = self.section(k).ok_or(TableError::BadHeader { field: "section name" })?;
            if let Some(a) = address(s.name, s.size) {
                loaded = loaded.saturating_add(1);
                ip_addr = Some(ip_addr.map_or(a, |m: u64| m.min(a)));
            }
        }
        let ip_addr = ip_addr.ok_or(TableError::BadHeader { field: "no section loaded" })?;
        let mut written: u32 = 0;
        let mut placed: u32 = 0;
        let mut last: Option<u64> = None;
        loop {
            let mut pick: Option<(u32, u64)> = None;
            for k in 0..self.nr_sections {
                let s = self.section(k).ok_or(TableError::BadHeader { field: "section name" })?;
                if let Some(a) = address(s.name, s.size)
                    && last.is_none_or(|l| a > l)
                    && pick.is_none_or(|(_, p)| a < p)
                {
                    pick = Some((k, a));
                }
            }
            let Some((k, base)) = pick else { break };
            last = Some(base);
            placed = placed.saturating_add(1);
            let s = self.section(k).ok_or(TableError::BadHeader { field: "section name" })?;
            for i in s.first..s.first.saturating_add(s.count) {
                let off = self.offset(i).ok_or(TableError::LengthMismatch { part: "offsets" })?;
                let ip = base.checked_add(u64::from(off)).ok_or(TableError::IpOverflow { index: i })?;
                let slot_addr = (u64::from(written).checked_mul(IP_SIZE as u64))
                    .and_then(|o| ip_addr.checked_add(o))
                    .ok_or(TableError::IpOverflow { index: i })?;
                let rel = i32::try_from(ip.wrapping_sub(slot_addr) as i64)
                    .map_err(|_| TableError::IpOverflow { index: i })?;
                let e = self.entry(i).ok_or(TableError::LengthMismatch { part: "entries" })?;
                let w = written as usize;
                let ip_dst = ips
                    .get_mut(w.saturating_mul(IP_SIZE)..w.saturating_mul(IP_SIZE).saturating_add(IP_SIZE))
                    .ok_or(TableError::LengthMismatch { part: ".orc_unwind_ip" })?;
                ip_dst.iter_mut().zip(rel.to_le_bytes()).for_each(|(d, b)| *d = b);
                let orc_dst = orc
                    .get_mut(w.saturating_mul(ENTRY_SIZE)..w.saturating_mul(ENTRY_SIZE).saturating_add(ENTRY_SIZE))
                    .ok_or(TableError::LengthMismatch { part: ".orc_unwind" })?;
                orc_dst.iter_mut().zip(e.to_bytes()).for_each(|(d, b)| *d = b);
                written = written.saturating_add(1);
            }
        }
        // Two sections at one address: one of them would be described by the other's rows.
        if placed != loaded {
            return Err(TableError::BadHeader { field: "two sections at one address" });
        }
        let n = written as usize;
        let ips = ips.get(..n.saturating_mul(IP_SIZE)).ok_or(TableError::LengthMismatch { part: ".orc_unwind_ip" })?;
        let orc = orc.get(..n.saturating_mul(ENTRY_SIZE)).ok_or(TableError::LengthMismatch { part: ".orc_unwind" })?;
        OrcTable::from_parts(ips, ip_addr, orc, None)?;
        Ok(Placed { ip_addr, len: written })
    }
}

/// One text section for [`write`]: its name, size and `(offset, entry)` rows, offsets rising and
/// the last entry an UNDEFINED terminator.
#[cfg(feature = "std")]
#[derive(Clone, Debug)]
pub struct SectionRows<'a> {
    pub name: &'a str,
    pub size: u64,
    pub rows: Vec<(u32, OrcEntry)>,
}

/// The bytes of a module table; [`ModuleTable::parse`] is run on them before they are returned.
#[cfg(feature = "std")]
pub fn write(sections: &[SectionRows<'_>], proven: bool) -> Result<Vec<u8>, TableError> {
    let too_big = |field| TableError::BadHeader { field };
    let n: usize = sections.iter().map(|s| s.rows.len()).sum();
    let mut strings = Vec::new();
    let mut records = Vec::new();
    let mut first = 0u32;
    for s in sections {
        let count = u32::try_from(s.rows.len()).map_err(|_| too_big("entries"))?;
        for v in [strings.len() as u32, s.name.len() as u32, first, count] {
            records.extend_from_slice(&v.to_le_bytes());
        }
        records.extend_from_slice(&s.size.to_le_bytes());
        strings.extend_from_slice(s.name.as_bytes());
        first = first.checked_add(count).ok_or(too_big("entries"))?;
    }
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FormatId::CURRENT.version.to_le_bytes());
    out.extend_from_slice(&(if proven { FLAG_PROVEN } else { 0 }).to_le_bytes());
    out.extend_from_slice(&FormatId::CURRENT.layout_hash.to_le_bytes());
    for v in [sections.len(), n, strings.len(), 0] {
        out.extend_from_slice(&u32::try_from(v).map_err(|_| too_big("counts"))?.to_le_bytes());
    }
    out.extend_from_slice(&records);
    sections.iter().flat_map(|s| &s.rows).for_each(|(off, _)| out.extend_from_slice(&off.to_le_bytes()));
    sections.iter().flat_map(|s| &s.rows).for_each(|(_, e)| out.extend_from_slice(&e.to_bytes()));
    out.extend_from_slice(&strings);
    ModuleTable::parse(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Reg};

    fn call(sp: i16) -> OrcEntry {
        OrcEntry::new(Kind::Call, Reg::Sp, sp, Reg::PrevSp, -16, Reg::PrevSp, -8, false)
    }

    /// `.text` (0x100 bytes, two functions) and `.init.text` (0x40, one).
    fn sample() -> Vec<u8> {
        write(
            &[
                SectionRows {
                    name: ".text",
                    size: 0x100,
                    rows: vec![
                        (0, call(16)),
                        (0x40, OrcEntry::UNDEFINED),
                        (0x48, call(32)),
                        (0xf0, OrcEntry::UNDEFINED),
                    ],
                },
                SectionRows {
                    name: ".init.text",
                    size: 0x40,
                    rows: vec![(0x8, call(16)), (0x40, OrcEntry::UNDEFINED)],
                },
            ],
            true,
        )
        .unwrap()
    }

    fn placed(bytes: &[u8], at: &[(&str, u64)]) -> Result<(Vec<u8>, Vec<u8>, Placed), TableError> {
        let t = ModuleTable::parse(bytes)?;
        let (mut ips, mut orc) = (vec![0; t.len() as usize * 4], vec![0; t.len() as usize * 8]);
        let p = t.place(|name, _| at.iter().find(|(n, _)| n.as_bytes() == name).map(|a| a.1), &mut ips, &mut orc)?;
        Ok((ips, orc, p))
    }

    #[test]
    fn placed_sections_make_one_table_in_address_order() {
        // init text below core text: its entries come first.
        let (ips, orc, p) =
            placed(&sample(), &[(".text", 0xffff_8000_0100_0000), (".init.text", 0xffff_8000_00f0_0000)]).unwrap();
        assert_eq!(p, Placed { ip_addr: 0xffff_8000_00f0_0000, len: 6 });
        let t = OrcTable::from_parts(&ips, p.ip_addr, &orc, None).unwrap();
        let got: Vec<u64> = t.iter().map(|(ip, _)| ip).collect();
        assert_eq!(
            got,
            [
                0xffff_8000_00f0_0008,
                0xffff_8000_00f0_0040,
                0xffff_8000_0100_0000,
                0xffff_8000_0100_0040,
                0xffff_8000_0100_0048,
                0xffff_8000_0100_00f0
            ]
        );
        assert_eq!(t.find(0xffff_8000_0100_0050).unwrap().1, call(32));
        // Past a section's end, its terminator answers, not its last function's row.
        assert!(t.find(0xffff_8000_00f0_0800).unwrap().1.is_undefined());
    }

    #[test]
    fn a_section_not_loaded_is_left_out() {
        let (_, _, p) = placed(&sample(), &[(".text", 0xffff_8000_0100_0000)]).unwrap();
        assert_eq!(p, Placed { ip_addr: 0xffff_8000_0100_0000, len: 4 });
        assert!(placed(&sample(), &[]).is_err(), "nothing loaded: no table");
    }

    #[test]
    fn two_sections_at_one_address_are_refused() {
        let same = placed(&sample(), &[(".text", 0x1000_0000), (".init.text", 0x1000_0000)]);
        assert!(matches!(same, Err(TableError::BadHeader { .. })), "{same:?}");
    }

    #[test]
    fn overlapping_or_distant_sections_are_refused() {
        // .init.text placed inside .text: the ips would not rise.
        let overlap = placed(&sample(), &[(".text", 0x1000_0000), (".init.text", 0x1000_0020)]);
        assert!(matches!(overlap, Err(TableError::Unsorted { .. })), "{overlap:?}");
        let far = placed(&sample(), &[(".text", 0x1000_0000), (".init.text", 0x1_9000_0000)]);
        assert!(matches!(far, Err(TableError::IpOverflow { .. })), "{far:?}");
    }

    #[test]
    fn the_caller_states_each_size_and_short_buffers_are_refused() {
        let bytes = sample();
        let t = ModuleTable::parse(&bytes).unwrap();
        let mut sizes = Vec::new();
        let (mut ips, mut orc) = (vec![0; 4 * 6], vec![0; 8 * 6]);
        t.place(
            |n, size| {
                if !sizes.contains(&(n.to_vec(), size)) {
                    sizes.push((n.to_vec(), size));
                }
                Some(if n == b".text" { 0x10_0000 } else { 0x20_0000 })
            },
            &mut ips,
            &mut orc,
        )
        .unwrap();
        assert_eq!(sizes, [(b".text".to_vec(), 0x100), (b".init.text".to_vec(), 0x40)]);
        let (mut ips, mut orc) = (vec![0; 4 * 5], vec![0; 8 * 6]);
        assert!(t.place(|_, _| Some(0x1000), &mut ips, &mut orc).is_err());
    }

    #[test]
    fn malformed_tables_are_refused_by_name() {
        let good = sample();
        assert!(ModuleTable::parse(&good).is_ok());
        let mutate = |at: usize, v: u8| {
            let mut b = good.clone();
            b[at] = v;
            ModuleTable::parse(&b).map(|_| ())
        };
        assert_eq!(mutate(0, b'X').unwrap_err(), TableError::BadMagic);
        assert!(matches!(mutate(8, 9), Err(TableError::FormatMismatch { .. })));
        assert_eq!(mutate(12, 2).unwrap_err(), TableError::BadHeader { field: "flags" });
        assert!(matches!(ModuleTable::parse(&good[..good.len() - 1]), Err(TableError::Truncated { .. })));
        let mut long = good.clone();
        long.push(0);
        assert!(ModuleTable::parse(&long).is_err());
        // Offsets: header + 2 records; entry 1's offset (0x40) made 0: not rising.
        let offsets = HEADER_SIZE + 2 * SECTION_RECORD_SIZE;
        assert_eq!(mutate(offsets + 4, 0).unwrap_err(), TableError::Unsorted { index: 1 });
        // Entry 5's offset (0x40 in .init.text, size 0x40) made 0x41: past its section.
        assert_eq!(mutate(offsets + 20, 0x41).unwrap_err(), TableError::IpOverflow { index: 5 });
        // .text's terminator (entry 3) made a call row.
        let entries = offsets + 6 * 4;
        let mut b = good.clone();
        b[entries + 3 * 8..entries + 4 * 8].copy_from_slice(&call(16).to_bytes());
        assert_eq!(ModuleTable::parse(&b).unwrap_err(), TableError::MissingTerminator);
        // The first record's entry count made 2: the records no longer tile the entries.
        assert!(matches!(mutate(HEADER_SIZE + 12, 2), Err(TableError::BadHeader { .. })));
        // 0 sections.
        assert_eq!(mutate(24, 0).unwrap_err(), TableError::BadHeader { field: "sections" });
    }
}
