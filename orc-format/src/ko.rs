//! A module's table ([`crate::module`]) from its `.ko`, made the way vmlinux's is.
//!
//! A `.ko` is a relocatable object: its CFI, jump labels, bug table and calls are relocations
//! waiting for the module loader. The generator reads linked images, so the `.ko` is linked
//! once, by the kernel's own linker, into a throwaway executable in which each text section
//! keeps its name and sits at an address of its own (a linker script made here); undefined
//! symbols (the kernel's exports) resolve to 0, which changes only where calls lead, and no row
//! depends on that. The generator proves the rows of that image as it does vmlinux's, and
//! each row is written back as an offset into its named section.

use std::path::Path;
use std::process::Command;

use object::{Object, ObjectSection, SectionFlags};

use crate::OrcEntry;
use crate::generate::{self, ElfImage, GenError};
use crate::module::{SectionRows, write};

/// Where the first text section goes in the throwaway link, and how far apart they are: far
/// more than any module's section, so no row can fall between two of them.
const BASE: u64 = 0x1000_0000;
const STRIDE: u64 = 0x1000_0000;

/// The allocated executable sections of a relocatable object, by name, in file order. Names
/// must be unique: the table finds each section by its name at load.
pub fn text_sections(ko: &[u8]) -> Result<Vec<(String, u64)>, GenError> {
    let file = object::File::parse(ko)?;
    if file.kind() != object::ObjectKind::Relocatable {
        return Err(GenError::Section { section: "ELF header", reason: "not a relocatable object (.ko)".into() });
    }
    let mut out: Vec<(String, u64)> = Vec::new();
    for s in file.sections() {
        let SectionFlags::Elf { sh_flags, .. } = s.flags() else { continue };
        let exec = object::elf::SHF_ALLOC.0 | object::elf::SHF_EXECINSTR.0;
        if sh_flags.0 & exec != exec || s.size() == 0 {
            continue;
        }
        let name = s.name().map_err(|e| GenError::Section { section: "section names", reason: e.to_string() })?;
        if out.iter().any(|(n, _)| n == name) {
            return Err(GenError::Section { section: "text sections", reason: format!("two sections named {name}") });
        }
        if s.size() >= STRIDE {
            return Err(GenError::Section { section: "text sections", reason: format!("{name} too large") });
        }
        out.push((name.to_string(), s.size()));
    }
    if out.is_empty() {
        return Err(GenError::Section { section: "text sections", reason: "none".into() });
    }
    Ok(out)
}

/// A linker script that keeps each of `sections` whole, under its own name, at its own address.
pub fn linker_script(sections: &[(String, u64)]) -> String {
    let mut s = String::from("SECTIONS {\n");
    for (k, (name, _)) in sections.iter().enumerate() {
        let addr = BASE + STRIDE * k as u64;
        s.push_str(&format!("  {name} {addr:#x} : {{ *({name}) }}\n"));
    }
    s.push_str("}\n");
    s
}

/// The module table of the linked image `linked`, in which `sections` were placed by
/// [`linker_script`]. Every row must lie in one of them; a section whose rows do not end in an
/// UNDEFINED terminator gets one at its end (its last function runs to the end of it).
pub fn table_from_linked(linked: &ElfImage<'_>, sections: &[(String, u64)]) -> Result<(Vec<u8>, u64), GenError> {
    let g = generate::generate_with(linked, generate::Options { prove: true, anchor: true })?;
    let mut rows: Vec<SectionRows<'_>> =
        sections.iter().map(|(name, size)| SectionRows { name, size: *size, rows: Vec::new() }).collect();
    for (&ip, &e) in g.ips.iter().zip(&g.entries) {
        let rel = ip.checked_sub(BASE);
        let section = rel.and_then(|r| usize::try_from(r / STRIDE).ok()).and_then(|k| rows.get_mut(k));
        match (section, rel.map(|r| r % STRIDE)) {
            (Some(s), Some(off)) if off <= s.size => s.rows.push((off as u32, e)),
            // A terminator the generator put after a section's end.
            _ if e.is_undefined() => {}
            _ => {
                return Err(GenError::Section {
                    section: "text sections",
                    reason: format!("a row at {ip:#x} outside every text section of the module"),
                });
            }
        }
    }
    for s in &mut rows {
        match s.rows.last() {
            Some((_, e)) if e.is_undefined() => {}
            Some((off, _)) if u64::from(*off) == s.size => {
                return Err(GenError::Section {
                    section: "text sections",
                    reason: format!("a row at the end of {}", s.name),
                });
            }
            Some(_) => s.rows.push((s.size as u32, OrcEntry::UNDEFINED)),
            None => {}
        }
    }
    rows.retain(|s| !s.rows.is_empty());
    let n = rows.iter().map(|s| s.rows.len() as u64).sum();
    Ok((write(&rows, g.proven)?, n))
}

/// The whole step: `ko`'s text sections, the throwaway link by `ld` (in `work`, a scratch
/// directory), and the table. Returns the table bytes and the number of entries.
pub fn build(ko: &Path, ld: &str, work: &Path) -> Result<(Vec<u8>, u64), GenError> {
    let bytes = generate::read_file(ko)?;
    let sections = text_sections(&bytes)?;
    fn io(path: &Path) -> impl Fn(std::io::Error) -> GenError + '_ {
        move |source| GenError::Io { path: path.display().to_string(), source }
    }
    let script = work.join("orcwalk-module.lds");
    let linked = work.join("orcwalk-module.elf");
    std::fs::write(&script, linker_script(&sections)).map_err(io(&script))?;
    let out = Command::new(ld)
        .args(["--unresolved-symbols=ignore-all", "-e", "0", "-T"])
        .arg(&script)
        .arg("-o")
        .arg(&linked)
        .arg(ko)
        .output()
        .map_err(io(Path::new(ld)))?;
    if !out.status.success() {
        return Err(GenError::Section {
            section: "module link",
            reason: format!("{ld} failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    let image_bytes = generate::read_file(&linked)?;
    let image = ElfImage::parse(image_bytes.as_slice())?;
    table_from_linked(&image, &sections)
}
