//! The format id: version plus a hash of the layout definition, as x86's `.orc_header`.
//!
//! A table written for another entry layout must be refused, not misread. The hash covers a
//! canonical text of every layout fact a reader depends on, so changing any of them (a field, a
//! bit position, a register or type number, the index block size) changes the id. The C header
//! `include/orc_entry.h` repeats the id and a test compares it with this one.

/// Bumped when the file container changes in a way the layout text does not capture, and old
/// readers would misread. Not bumped for the image id kind byte (header offset 69, formerly
/// reserved): old readers refuse a non-zero reserved byte, and new readers read the tables
/// written before it compatibly (`file` module doc), so the shipped tables stay valid.
pub const FORMAT_VERSION: u32 = 1;

/// Every fact of the format a reader relies on. Edit it together with the code it describes.
pub const LAYOUT_DEFINITION: &str = "orcwalk-arm64-orc;\
entry=8,le,packed;\
sp_offset=i16@0;fp_offset=i16@2;ra_offset=i16@4;\
sp_reg=u4@48;fp_reg=u4@52;ra_reg=u4@56;type=u3@60;signal=u1@63;\
reg:UNDEFINED=0,PREV_SP=1,SP=2,FP=3;\
type:UNDEFINED=0,END_OF_STACK=1,CALL=2,REGS=3,REGS_PARTIAL=4;\
ip=i32,self-relative;lookup=rightmost-le;\
index=u32,block=256,count-le-block-start";

/// FNV-1a, 64-bit: tiny, const, and plenty to tell layouts apart (this is no security boundary).
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Identifies a table's format: both halves must match exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatId {
    pub version: u32,
    pub layout_hash: u64,
}

impl FormatId {
    /// The format this build of the crate reads and writes.
    pub const CURRENT: FormatId =
        FormatId { version: FORMAT_VERSION, layout_hash: fnv1a64(LAYOUT_DEFINITION.as_bytes()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn any_change_to_the_definition_changes_the_id() {
        let edited = LAYOUT_DEFINITION.replace("block=256", "block=512");
        assert_ne!(fnv1a64(edited.as_bytes()), FormatId::CURRENT.layout_hash);
    }
}
