//! Why a table was refused. `no_std`, so a plain enum with `Display`; every variant names the place.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The input ends before the named part is complete.
    Truncated { part: &'static str, needed: u64, available: u64 },
    /// The file does not start with the table magic.
    BadMagic,
    /// The table was written for another format (version or layout hash differ).
    FormatMismatch { version: u32, layout_hash: u64 },
    /// A header field is out of range.
    BadHeader { field: &'static str },
    /// Part lengths disagree (ip table, entries, index).
    LengthMismatch { part: &'static str },
    /// Instruction addresses are not strictly increasing at this entry.
    Unsorted { index: u32 },
    /// An ip does not fit the address space (self-relative offset overflows).
    IpOverflow { index: u32 },
    /// An entry uses a reserved type or register value.
    ReservedValue { index: u32 },
    /// The last entry must be an UNDEFINED terminator so nothing past the table is covered.
    MissingTerminator,
    /// The lookup index disagrees with the ip table at this block.
    BadIndex { block: u32 },
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            TableError::Truncated { part, needed, available } => {
                write!(f, "truncated {part}: needs {needed} bytes, {available} available")
            }
            TableError::BadMagic => f.write_str("not an orcwalk ORC table (bad magic)"),
            TableError::FormatMismatch { version, layout_hash } => write!(
                f,
                "table format v{version} layout {layout_hash:#018x} is not this reader's v{} layout {:#018x}",
                crate::FormatId::CURRENT.version,
                crate::FormatId::CURRENT.layout_hash
            ),
            TableError::BadHeader { field } => write!(f, "bad header field `{field}`"),
            TableError::LengthMismatch { part } => write!(f, "length of {part} does not match the entry count"),
            TableError::Unsorted { index } => write!(f, "ip table not strictly increasing at entry {index}"),
            TableError::IpOverflow { index } => write!(f, "ip of entry {index} overflows the address space"),
            TableError::ReservedValue { index } => write!(f, "entry {index} uses a reserved type or register value"),
            TableError::MissingTerminator => f.write_str("last entry is not an UNDEFINED terminator"),
            TableError::BadIndex { block } => write!(f, "lookup index wrong at block {block}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TableError {}
