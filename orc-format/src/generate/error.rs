//! Errors of the host-side generator and checker: each names the file part that is wrong.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GenError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("not a readable ELF file: {0}")]
    Elf(#[from] object::read::Error),
    #[error("ELF is {found}, orc-format generates for 64-bit little-endian aarch64 only")]
    WrongArch { found: String },
    #[error("section {section} is not readable: {reason}")]
    Section { section: &'static str, reason: String },
    #[error("corrupt CFI in {section} at offset {offset:#x}: {source}")]
    Cfi { section: &'static str, offset: u64, source: gimli::Error },
    #[error("ELF has neither .eh_frame nor .debug_frame: nothing to build ORC from")]
    NoCfi,
    #[error("table: {0}")]
    Table(#[from] crate::TableError),
}
