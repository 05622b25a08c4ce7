//! Recorded stacks as ELF core files (ET_CORE, EM_AARCH64), so gdb and crash-style tools open
//! them: one PT_LOAD per memory region, NT_PRSTATUS for the registers, and the `ORCWALK` note
//! ([`note`]) for what a core lacks.

pub mod core;
pub mod note;

pub use self::core::{Dump, Region};
pub use note::SampleInfo;

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("not an ELF file")]
    NotElf,
    #[error("not an aarch64 little-endian 64-bit ELF core (e_type {e_type}, e_machine {e_machine})")]
    NotAarch64Core { e_type: u16, e_machine: u16 },
    #[error("ELF: {0}")]
    Elf(#[from] object::read::Error),
    #[error("no NT_PRSTATUS note: no registers")]
    NoRegisters,
    #[error("no ORCWALK note: not an orcwalk dump (a plain core has no stack bounds or truth)")]
    NoNote,
    #[error("ORCWALK note version {0} is not supported (this reader reads version 1)")]
    NoteVersion(u32),
    #[error("ORCWALK note: {0}")]
    Note(&'static str),
    #[error("NT_PRSTATUS is {0} bytes, expected 392")]
    BadPrstatus(usize),
}

/// Every `*.core` dump directly in `dir`, sorted by name, parsed.
pub fn load_dir(dir: &std::path::Path) -> Result<Vec<(std::path::PathBuf, Dump)>, String> {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "core"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let dump = Dump::parse(&bytes).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p, dump))
        })
        .collect()
}
