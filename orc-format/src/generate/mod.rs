//! Host side: ORC from an aarch64 ELF's DWARF CFI, and the checker that holds the result to it.
//!
//! The generator and the checker both read CFI through gimli, each with its own reader ([`fde`];
//! [`check`]'s own), and interpret it independently: the generator maps rules to entries
//! ([`rules`]), the checker decodes entries back into rules and compares them with gimli's row at
//! every instruction ([`check`]).

pub mod assemble;
pub mod check;
pub mod derive;
pub mod elf;
pub mod error;
pub mod fde;
pub mod flow;
pub mod insn;
pub mod prove;
pub mod rules;
pub mod sections;
pub mod stats;

pub use assemble::{Generated, Options, generate, generate_with};
pub use check::{Mismatch, check};
pub use elf::ElfImage;
pub use error::GenError;
pub use stats::Stats;

/// Opens a file for lazy reading with `ElfImage::parse(&cache)`.
pub fn open_cached(path: &std::path::Path) -> Result<object::ReadCache<std::fs::File>, GenError> {
    let file = std::fs::File::open(path).map_err(|source| GenError::Io { path: path.display().to_string(), source })?;
    Ok(object::ReadCache::new(file))
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, GenError> {
    std::fs::read(path).map_err(|source| GenError::Io { path: path.display().to_string(), source })
}

/// This generator's fingerprint (orc-format/build.rs): changes with any change to the code that
/// decides a table's bytes. Shipped kernel tables carry the fingerprint they were made with.
pub const FINGERPRINT: &str = env!("ORC_GENERATOR_FINGERPRINT");
