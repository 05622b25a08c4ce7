//! The table as kernel-style ELF sections, for linking into an image, and back.
//!
//! `write_object` emits a relocatable aarch64 object:
//! - `.orc_header`: u32 format version, u32 zero, u64 layout hash (the format id);
//! - `.orc_unwind_ip`: one i32 per entry, each an `R_AARCH64_PREL32` relocation against a text
//!   symbol plus addend, so the linker writes `ip - &slot` exactly as the kernel's objtool does;
//! - `.orc_unwind`: the 8-byte entries;
//! - `.orc_lookup`: a u64 index base (`R_AARCH64_ABS64` against the same symbol) followed by the
//!   `blocks + 1` u32 index words.
//!
//! `read_linked` finds those sections in a linked ELF and gives the validated table view, so the
//! same `OrcTable` code serves a table file, a linked image and a kernel.

use object::write::{Object as WObject, Relocation, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, Object, ObjectSection, ReadRef, RelocationFlags, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};

use super::{GenError, Generated};
use crate::table::IndexParts;
use crate::{FormatId, OrcTable};

/// Writes the sections; ips are expressed relative to `text_symbol`, which must be at
/// `text_symbol_addr` in the final link.
pub fn write_object(g: &Generated, text_symbol: &str, text_symbol_addr: u64) -> Result<Vec<u8>, GenError> {
    let mut obj = WObject::new(BinaryFormat::Elf, Architecture::Aarch64, Endianness::Little);
    let sym = obj.add_symbol(Symbol {
        name: text_symbol.as_bytes().to_vec(),
        value: 0,
        size: 0,
        kind: SymbolKind::Unknown,
        scope: SymbolScope::Unknown,
        weak: false,
        section: SymbolSection::Undefined,
        flags: SymbolFlags::None,
    });
    let add = |obj: &mut WObject, name: &str, align: u64, data: &[u8]| {
        let id = obj.add_section(Vec::new(), name.as_bytes().to_vec(), SectionKind::ReadOnlyData);
        obj.append_section_data(id, data, align);
        id
    };
    let mut header = Vec::with_capacity(16);
    header.extend_from_slice(&FormatId::CURRENT.version.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&FormatId::CURRENT.layout_hash.to_le_bytes());
    add(&mut obj, ".orc_header", 8, &header);

    let ip_sec = add(&mut obj, ".orc_unwind_ip", 4, &vec![0u8; g.ips.len() * 4]);
    let reloc_err = |e: object::write::Error| GenError::Section { section: ".orc_unwind_ip", reason: e.to_string() };
    for (i, &ip) in g.ips.iter().enumerate() {
        let addend = ip.wrapping_sub(text_symbol_addr) as i64;
        obj.add_relocation(
            ip_sec,
            Relocation {
                offset: (i * 4) as u64,
                symbol: sym,
                addend,
                flags: RelocationFlags::Elf { r_type: object::elf::R_AARCH64_PREL32 },
            },
        )
        .map_err(reloc_err)?;
    }
    let entries: Vec<u8> = g.entries.iter().flat_map(|e| e.to_bytes()).collect();
    add(&mut obj, ".orc_unwind", 2, &entries);

    if let (Some(&first), Some(&last)) = (g.ips.first(), g.ips.last()) {
        let words = crate::index::build(&g.ips, first, last.saturating_add(1));
        let mut lookup = vec![0u8; 8];
        lookup.extend(words.iter().flat_map(|w| w.to_le_bytes()));
        let id = add(&mut obj, ".orc_lookup", 8, &lookup);
        obj.add_relocation(
            id,
            Relocation {
                offset: 0,
                symbol: sym,
                addend: first.wrapping_sub(text_symbol_addr) as i64,
                flags: RelocationFlags::Elf { r_type: object::elf::R_AARCH64_ABS64 },
            },
        )
        .map_err(|e| GenError::Section { section: ".orc_lookup", reason: e.to_string() })?;
    }
    obj.write().map_err(|e| GenError::Section { section: "object", reason: e.to_string() })
}

/// The ORC sections of a linked image: the view borrows the section data.
pub fn read_linked<'a, R: ReadRef<'a>>(data: R) -> Result<OrcTable<'a>, GenError> {
    let file = object::File::parse(data)?;
    let section = |name: &'static str| -> Result<(u64, &'a [u8]), GenError> {
        let s =
            file.section_by_name(name).ok_or_else(|| GenError::Section { section: name, reason: "missing".into() })?;
        let d = s.data().map_err(|e| GenError::Section { section: name, reason: e.to_string() })?;
        Ok((s.address(), d))
    };
    let (_, header) = section(".orc_header")?;
    let version = header.get(0..4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let hash = header.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    match (version, hash) {
        (Some(version), Some(layout_hash)) if (FormatId { version, layout_hash }) == FormatId::CURRENT => {}
        (Some(version), Some(layout_hash)) => {
            return Err(crate::TableError::FormatMismatch { version, layout_hash }.into());
        }
        _ => return Err(GenError::Section { section: ".orc_header", reason: "shorter than 16 bytes".into() }),
    }
    let (ip_addr, ips) = section(".orc_unwind_ip")?;
    let (_, entries) = section(".orc_unwind")?;
    let index = match file.section_by_name(".orc_lookup") {
        None => None,
        Some(_) => {
            let (_, lookup) = section(".orc_lookup")?;
            let base = lookup.get(0..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
            match (base, lookup.get(8..)) {
                (Some(base), Some(words)) => Some(IndexParts { base, words }),
                _ => return Err(GenError::Section { section: ".orc_lookup", reason: "shorter than its base".into() }),
            }
        }
    };
    Ok(OrcTable::from_parts(ips, ip_addr, entries, index)?)
}
