//! arm64 ORC unwind tables.
//!
//! The `no_std` core (always built) is what the `orcwalk` kernel crate links: the 8-byte entry, its
//! register and type numbers, the format id, the image id, and a validated zero-copy table view with an indexed
//! `find`. The `std` feature adds the generator that builds tables from an aarch64 ELF's DWARF CFI,
//! the checker that compares a table with the CFI at every instruction, and the `orc-format` CLI.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
// The core is linked into kernels: no panicking shortcuts outside tests and the host-only generator.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod a64;
pub mod entry;
pub mod error;
pub mod file;
pub mod format_id;
pub mod image_id;
pub mod index;
pub mod kind;
pub mod module;
pub mod reg;
pub mod table;

#[cfg(feature = "std")]
pub mod generate;
#[cfg(feature = "std")]
pub mod ko;
#[cfg(feature = "std")]
pub mod stdout;

pub use entry::{ENTRY_SIZE, OrcEntry};
pub use error::TableError;
pub use file::TableFile;
pub use format_id::FormatId;
pub use image_id::{IdKind, ImageId};
pub use kind::Kind;
pub use reg::Reg;
pub use table::{IndexParts, OrcTable};
