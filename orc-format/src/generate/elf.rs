//! The parts of an aarch64 ELF the generator and checker need: CFI sections, executable ranges,
//! the image id and function symbols for messages. Read through `object`, nothing copied.

use object::{Object, ObjectSection, ObjectSymbol, ReadRef, SectionFlags, SectionKind};
use sha2::{Digest, Sha256};

use super::GenError;
use crate::image_id::{ImageId, MAX_ID};

/// Domain tag hashed first, so the text hash cannot collide with a hash of anything else, and
/// can be changed (to `-v2`) if what it covers ever changes.
pub const TEXT_HASH_TAG: &[u8] = b"orcwalk-text-hash-v1\0";

/// The id of an ELF: its GNU build-id, or, without one, the hash of its text
/// ([`text_hash`]); [`ImageId::NONE`] when it has neither. The generator puts this in tables
/// and the captures put it in dumps (`orcwalk_sim::truth::Image`), so both make ids one way.
pub fn image_id<'data, R: ReadRef<'data>>(file: &object::File<'data, R>) -> ImageId {
    match file.build_id() {
        Ok(Some(id)) if !id.is_empty() => ImageId::build_id(id),
        _ => text_hash(file).map_or(ImageId::NONE, ImageId::text_hash),
    }
}

/// SHA-256, cut to 20 bytes, over [`TEXT_HASH_TAG`] and then every allocated executable section
/// that has bytes in the file (`SHF_ALLOC | SHF_EXECINSTR`, not `SHT_NOBITS`), in address order
/// (ties by size), each as its address (u64 LE), its size (u64 LE) and its bytes. The addresses
/// are in, so the same code linked elsewhere is another image (the table holds addresses).
/// `None` without such a section, or when one cannot be read: then nothing binds the table.
pub fn text_hash<'data, R: ReadRef<'data>>(file: &object::File<'data, R>) -> Option<[u8; MAX_ID]> {
    let mut sections = Vec::new();
    for s in file.sections() {
        let SectionFlags::Elf { sh_flags, sh_type } = s.flags() else { continue };
        let exec = object::elf::SHF_ALLOC.0 | object::elf::SHF_EXECINSTR.0;
        if sh_flags.0 & exec != exec || sh_type == object::elf::SHT_NOBITS || s.size() == 0 {
            continue;
        }
        sections.push((s.address(), s.data().ok()?));
    }
    if sections.is_empty() {
        return None;
    }
    sections.sort_unstable_by_key(|&(address, data)| (address, data.len()));
    let mut h = Sha256::new();
    h.update(TEXT_HASH_TAG);
    for (address, data) in sections {
        h.update(address.to_le_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    let digest = h.finalize();
    let mut out = [0u8; MAX_ID];
    out.copy_from_slice(digest.get(..MAX_ID)?);
    Some(out)
}

/// One CFI section and the address it is loaded at (needed for .eh_frame's pc-relative pointers).
#[derive(Clone, Copy, Debug)]
pub struct CfiSection<'a> {
    pub name: &'static str,
    pub data: &'a [u8],
    pub address: u64,
}

#[derive(Debug)]
pub struct ElfImage<'a> {
    pub eh_frame: Option<CfiSection<'a>>,
    pub debug_frame: Option<CfiSection<'a>>,
    pub eh_frame_hdr_address: Option<u64>,
    pub got_address: Option<u64>,
    pub text_address: Option<u64>,
    /// Executable sections as `[start, end)`, sorted.
    pub exec_ranges: Vec<(u64, u64)>,
    /// The bytes of the executable sections, `(address, bytes)`, to check CFI rows against.
    pub code: Vec<(u64, &'a [u8])>,
    /// The GNU build-id, or the text hash without one ([`image_id`]).
    pub image_id: ImageId,
    /// Function symbols `(address, size, name)`, sorted by address.
    pub symbols: Vec<(u64, u64, String)>,
    /// Kernel jump labels `(site, target)` from `__jump_table`, sorted by site: at run time the
    /// site is either a `nop` or a branch to the target, whichever the image holds now.
    pub jump_labels: Vec<(u64, u64)>,
    /// Kernel alternatives from `.altinstructions`: `(site, length, replacement, length)`;
    /// a replacement length of 0 is a callback that writes code at boot.
    pub alternatives: Vec<Alternative>,
    /// Kernel `BUG()` sites from `__bug_table`, sorted: a `brk #0x800` whose bug entry is not a
    /// warning. The trap handler kills the task there (`die`); execution never resumes after it.
    pub bugs: Vec<u64>,
}

/// One `struct alt_instr` (arm64): instructions at `site` the kernel may replace at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alternative {
    pub site: u64,
    pub len: u64,
    pub replacement: u64,
    pub replacement_len: u64,
}

/// A 32-bit self-relative field at `data[at..]` whose own address is `base + at`.
fn rel32(data: &[u8], base: u64, at: usize) -> Option<u64> {
    let v = i32::from_le_bytes(data.get(at..at.checked_add(4)?)?.try_into().ok()?);
    base.checked_add(at as u64)?.checked_add_signed(i64::from(v))
}

/// `struct jump_entry { s32 code; s32 target; long key; }` (relative, arm64).
fn jump_labels(data: &[u8], base: u64) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = (0..data.len() / 16)
        .filter_map(|k| Some((rel32(data, base, 16 * k)?, rel32(data, base, 16 * k + 4)?)))
        .collect();
    v.sort_unstable();
    v
}

/// `BRK #0x800` (`BUG_BRK_IMM`): `BUG()` and `WARN()` on arm64.
pub const BUG_BRK: u32 = 0xd421_0000;

/// `struct bug_entry { s32 bug_addr_disp; s32 file_disp; u16 line; u16 flags; }` (arm64,
/// relative pointers, verbose): `(address, flags)` of each entry.
fn bug_entries(data: &[u8], base: u64) -> Vec<(u64, u16)> {
    (0..data.len() / 12)
        .filter_map(|k| {
            let at = 12 * k;
            let flags = u16::from_le_bytes(data.get(at + 10..at + 12)?.try_into().ok()?);
            Some((rel32(data, base, at)?, flags))
        })
        .collect()
}

/// `struct alt_instr { s32 orig_offset; s32 alt_offset; u16 cpucap; u8 orig_len; u8 alt_len; }`.
fn alternatives(data: &[u8], base: u64) -> Vec<Alternative> {
    (0..data.len() / 12)
        .filter_map(|k| {
            let at = 12 * k;
            Some(Alternative {
                site: rel32(data, base, at)?,
                replacement: rel32(data, base, at + 4)?,
                len: u64::from(*data.get(at + 10)?),
                replacement_len: u64::from(*data.get(at + 11)?),
            })
        })
        .collect()
}

fn section_data<'a, R: ReadRef<'a>>(s: &object::Section<'a, '_, R>, name: &'static str) -> Result<&'a [u8], GenError> {
    s.data().map_err(|e| GenError::Section { section: name, reason: e.to_string() })
}

impl<'a> ElfImage<'a> {
    /// Reads the image from bytes in memory or lazily from a file (`&object::ReadCache<File>`),
    /// which on a 350 MB debug vmlinux reads only the CFI sections and the symbol table.
    pub fn parse<R: ReadRef<'a>>(data: R) -> Result<ElfImage<'a>, GenError> {
        let file = object::File::parse(data)?;
        if file.architecture() != object::Architecture::Aarch64 || !file.is_little_endian() || !file.is_64() {
            return Err(GenError::WrongArch {
                found: format!(
                    "{:?} {}-bit {}",
                    file.architecture(),
                    if file.is_64() { 64 } else { 32 },
                    if file.is_little_endian() { "LE" } else { "BE" }
                ),
            });
        }
        let mut image = ElfImage {
            eh_frame: None,
            debug_frame: None,
            eh_frame_hdr_address: None,
            got_address: None,
            text_address: None,
            exec_ranges: Vec::new(),
            code: Vec::new(),
            image_id: ImageId::NONE,
            symbols: Vec::new(),
            jump_labels: Vec::new(),
            alternatives: Vec::new(),
            bugs: Vec::new(),
        };
        let mut bug_table: Vec<(u64, u16)> = Vec::new();
        for s in file.sections() {
            let name = s.name().unwrap_or("");
            match name {
                ".eh_frame" => {
                    image.eh_frame = Some(CfiSection {
                        name: ".eh_frame",
                        data: section_data(&s, ".eh_frame")?,
                        address: s.address(),
                    })
                }
                ".debug_frame" => {
                    image.debug_frame = Some(CfiSection {
                        name: ".debug_frame",
                        data: section_data(&s, ".debug_frame")?,
                        address: s.address(),
                    })
                }
                ".eh_frame_hdr" => image.eh_frame_hdr_address = Some(s.address()),
                ".got" => image.got_address = Some(s.address()),
                ".text" => image.text_address = Some(s.address()),
                "__jump_table" => image.jump_labels = jump_labels(section_data(&s, "__jump_table")?, s.address()),
                "__bug_table" => bug_table = bug_entries(section_data(&s, "__bug_table")?, s.address()),
                ".altinstructions" => {
                    image.alternatives = alternatives(section_data(&s, ".altinstructions")?, s.address())
                }
                _ => {}
            }
            // object reports allocated SHF_EXECINSTR progbits as Text.
            if s.kind() == SectionKind::Text && s.size() > 0 {
                let end = s.address().checked_add(s.size()).ok_or_else(|| GenError::Section {
                    section: "executable section",
                    reason: format!("{name} wraps the address space"),
                })?;
                image.exec_ranges.push((s.address(), end));
                // NOBITS text (none in practice) has no bytes: its rows are then all cut.
                if let Ok(data) = s.data() {
                    image.code.push((s.address(), data));
                }
            }
        }
        image.exec_ranges.sort_unstable();
        image.image_id = image_id(&file);
        for sym in file.symbols() {
            if sym.kind() == object::SymbolKind::Text
                && sym.address() != 0
                && let Ok(name) = sym.name()
            {
                image.symbols.push((sym.address(), sym.size(), name.to_string()));
            }
        }
        // vmlinux keeps its jump table inside a data section, between two linker symbols.
        if image.jump_labels.is_empty() {
            let find = |name: &str| file.symbols().find(|s| s.name() == Ok(name)).map(|s| s.address());
            if let (Some(lo), Some(hi)) = (find("__start___jump_table"), find("__stop___jump_table")) {
                let bytes = file.sections().find_map(|s| {
                    let (a, size) = (s.address(), s.size());
                    if a > lo || hi > a.checked_add(size)? {
                        return None;
                    }
                    let data = s.data().ok()?;
                    data.get(usize::try_from(lo - a).ok()?..usize::try_from(hi - a).ok()?)
                });
                match bytes {
                    Some(b) => image.jump_labels = jump_labels(b, lo),
                    None => {
                        return Err(GenError::Section {
                            section: "__jump_table",
                            reason: "symbols present but the bytes between them are not readable".into(),
                        });
                    }
                }
            }
        }
        // Only a table whose entries point at `brk #0x800` is read as this layout (another
        // layout, or none, leaves every `brk` falling through). BUGFLAG_WARNING is bit 0.
        let at_brk = bug_table.iter().filter(|b| image.insn(b.0) == Some(BUG_BRK)).count();
        if at_brk > 0 && at_brk * 10 >= bug_table.len() * 9 {
            image.bugs =
                bug_table.iter().filter(|b| b.1 & 1 == 0 && image.insn(b.0) == Some(BUG_BRK)).map(|b| b.0).collect();
            image.bugs.sort_unstable();
            image.bugs.dedup();
        }
        image.symbols.sort_unstable();
        image.symbols.dedup_by_key(|s| s.0);
        Ok(image)
    }

    /// The instruction word at `addr`, if it lies in executable section data.
    pub fn insn(&self, addr: u64) -> Option<u32> {
        let (start, data) = self.code.iter().find(|(s, d)| *s <= addr && addr - s < d.len() as u64)?;
        let at = usize::try_from(addr - start).ok()?;
        Some(u32::from_le_bytes(data.get(at..at.checked_add(4)?)?.try_into().ok()?))
    }

    pub fn is_executable(&self, start: u64, end: u64) -> bool {
        self.exec_ranges.iter().any(|&(s, e)| s <= start && end <= e)
    }

    /// `name+0xoff` for messages; plain hex when no symbol covers the address.
    pub fn symbolize(&self, addr: u64) -> String {
        let i = self.symbols.partition_point(|s| s.0 <= addr);
        match i.checked_sub(1).and_then(|i| self.symbols.get(i)) {
            Some((start, size, name)) if *size == 0 || addr < start + size => format!("{name}+{:#x}", addr - start),
            _ => format!("{addr:#x}"),
        }
    }
}

/// The address of symbol `name`, of any kind: a kernel's `_text` is a linker-script symbol
/// without a type, which [`ElfImage::symbols`] (functions only) leaves out.
pub fn symbol_address<'d, R: object::ReadRef<'d>>(data: R, name: &str) -> Option<u64> {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(data).ok()?;
    file.symbols().find(|s| s.name() == Ok(name) && !s.is_undefined()).map(|s| s.address())
}
