//! The table file: a fixed header followed by the three parts, readable in place from a `&[u8]`.
//!
//! ```text
//! off size field
//!   0    8 magic "ORCWALK\0"
//!   8    4 format version            (FormatId::version)
//!  12    4 header length             (80 in this version; parts start here)
//!  16    8 layout hash               (FormatId::layout_hash)
//!  24    8 ip_table_addr             (address slot 0 of the ip table stands for; ip = slot + *slot)
//!  32    8 index base                (text address of index block 0)
//!  40    4 entry count n
//!  44    4 index block count m       (0 = no index)
//!  48    1 image id length (0..=20)
//!  49   20 image id of the ELF the table was made from, zero-padded
//!  69    1 image id kind             (IdKind: 0 none, 1 GNU build-id, 2 text hash)
//!  70    1 provenance                (0 rows as the compiler wrote them, 1 every row proven
//!                                     along control flow by the generator)
//!  71    9 reserved, zero
//!  80   4n .orc_unwind_ip  (i32 LE)
//!      8n .orc_unwind      (8-byte entries)
//!  4(m+1) lookup index     (u32 LE, only when m > 0)
//! ```
//! All integers are little-endian. Nothing in the body needs alignment: fields are decoded with
//! `from_le_bytes`, so a table can be used straight from wherever it was loaded.
//!
//! # The image id kind byte
//!
//! Offset 69 was the first reserved byte; it now says what the id bytes are (see
//! [`crate::image_id`]). The format version stays 1, because both directions stay safe:
//! - a reader from before the kind byte requires the reserved bytes to be zero, so it refuses
//!   every table written since (the writer always sets the kind of a non-empty id), rather than
//!   misreading a text hash as a build-id;
//! - a table written before it has kind 0. With an id (length > 0) that id can only have come
//!   from a GNU build-id (or the synthetic corpus's stamp in that role), so it is read as
//!   [`IdKind::BuildId`]: the shipped kernel tables, which take hours to rebuild, keep working
//!   byte for byte. Without an id it is [`IdKind::None`] and matches nothing, which is the point:
//!   such a table was made from an ELF without a build-id and says nothing about which code.
//!
//! A bumped version would have refused those kernel tables for no gain in safety.
//!
//! # The provenance byte
//!
//! Offset 70 says whether every row was proven along control flow (`generate::prove`). The walk
//! accepts single-witness frames (a CFA on x29, a caller without a frame record found through
//! ORC) only from a proven table: those frames are exactly as good as their rows. A table
//! without the mark (older files, `orc-format build --unproven`) is walked as in strict mode.

use crate::entry::ENTRY_SIZE;
use crate::image_id::{IdKind, ImageId, MAX_ID};
use crate::table::{IP_SIZE, IndexParts, OrcTable};
use crate::{FormatId, TableError};

pub const MAGIC: [u8; 8] = *b"ORCWALK\0";
pub const HEADER_SIZE: usize = 80;
/// Offset of the image id kind byte.
pub const ID_KIND_OFFSET: usize = 69;

/// A parsed table file: the validated table plus the identity of the image it describes.
#[derive(Clone, Copy, Debug)]
pub struct TableFile<'a> {
    pub table: OrcTable<'a>,
    pub format: FormatId,
    image_id: ImageId,
    proven: bool,
}

fn field<const N: usize>(bytes: &[u8], off: usize) -> Result<[u8; N], TableError> {
    let end = off.checked_add(N).ok_or(TableError::BadHeader { field: "offset" })?;
    let slice = bytes.get(off..end).ok_or(TableError::Truncated {
        part: "header",
        needed: HEADER_SIZE as u64,
        available: bytes.len() as u64,
    })?;
    // `try_from`, not `copy_from_slice`: the latter keeps a length-mismatch panic the optimiser
    // cannot always remove (opt-level "s"), and the kernel object must hold no panic path.
    <[u8; N]>::try_from(slice).map_err(|_| TableError::BadHeader { field: "offset" })
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, len: u64, part: &'static str) -> Result<&'a [u8], TableError> {
    let available = bytes.len().saturating_sub(*at) as u64;
    let truncated = TableError::Truncated { part, needed: len, available };
    let len = usize::try_from(len).map_err(|_| truncated)?;
    let end = at.checked_add(len).ok_or(truncated)?;
    let out = bytes.get(*at..end).ok_or(truncated)?;
    *at = end;
    Ok(out)
}

impl<'a> TableFile<'a> {
    /// Parses and validates a whole table file. Trailing bytes are refused: they mean the
    /// header's counts are not the ones the writer used.
    pub fn parse(bytes: &'a [u8]) -> Result<TableFile<'a>, TableError> {
        TableFile::parse_at(bytes, 0)
    }

    /// [`TableFile::parse`] for an image loaded `slide` bytes above the addresses the file
    /// declares (a kernel's KASLR offset): validated once, where the code really is, so a slide
    /// that wraps an ip is refused (`IpOverflow`).
    pub fn parse_at(bytes: &'a [u8], slide: u64) -> Result<TableFile<'a>, TableError> {
        if bytes.len() < MAGIC.len() || field::<8>(bytes, 0)? != MAGIC {
            return Err(TableError::BadMagic);
        }
        if bytes.len() < HEADER_SIZE {
            return Err(TableError::Truncated {
                part: "header",
                needed: HEADER_SIZE as u64,
                available: bytes.len() as u64,
            });
        }
        let format = FormatId {
            version: u32::from_le_bytes(field(bytes, 8)?),
            layout_hash: u64::from_le_bytes(field(bytes, 16)?),
        };
        if format != FormatId::CURRENT {
            return Err(TableError::FormatMismatch { version: format.version, layout_hash: format.layout_hash });
        }
        if u32::from_le_bytes(field(bytes, 12)?) as usize != HEADER_SIZE {
            return Err(TableError::BadHeader { field: "header length" });
        }
        let slid = |v: u64| v.checked_add(slide).ok_or(TableError::IpOverflow { index: 0 });
        let ip_table_addr = slid(u64::from_le_bytes(field(bytes, 24)?))?;
        let index_base = slid(u64::from_le_bytes(field(bytes, 32)?))?;
        let n = u64::from(u32::from_le_bytes(field(bytes, 40)?));
        let blocks = u64::from(u32::from_le_bytes(field(bytes, 44)?));
        let [id_len] = field::<1>(bytes, 48)?;
        let id_bytes = field::<MAX_ID>(bytes, 49)?;
        let id = id_bytes.get(..usize::from(id_len)).ok_or(TableError::BadHeader { field: "image id length" })?;
        if id_bytes.get(id.len()..).is_some_and(|pad| pad.iter().any(|&b| b != 0)) {
            return Err(TableError::BadHeader { field: "image id padding" });
        }
        let [kind] = field::<1>(bytes, ID_KIND_OFFSET)?;
        let kind = match kind {
            // Written before the kind byte existed: see the module doc.
            0 if id.is_empty() => IdKind::None,
            0 => IdKind::BuildId,
            1 => IdKind::BuildId,
            2 => IdKind::TextHash,
            _ => return Err(TableError::BadHeader { field: "image id kind" }),
        };
        let image_id = ImageId::from_parts(kind, id).ok_or(TableError::BadHeader { field: "image id" })?;
        let proven = match field::<1>(bytes, 70)? {
            [0] => false,
            [1] => true,
            _ => return Err(TableError::BadHeader { field: "provenance" }),
        };
        if field::<9>(bytes, 71)? != [0; 9] {
            return Err(TableError::BadHeader { field: "reserved" });
        }

        let mut at = HEADER_SIZE;
        let ips = take(bytes, &mut at, n * IP_SIZE as u64, ".orc_unwind_ip")?;
        let entries = take(bytes, &mut at, n * ENTRY_SIZE as u64, ".orc_unwind")?;
        let index = if blocks > 0 {
            let words = take(bytes, &mut at, (blocks + 1) * 4, "lookup index")?;
            Some(IndexParts { base: index_base, words })
        } else {
            None
        };
        if at != bytes.len() {
            return Err(TableError::LengthMismatch { part: "file (trailing bytes)" });
        }
        let table = OrcTable::from_parts(ips, ip_table_addr, entries, index)?;
        Ok(TableFile { table, format, image_id, proven })
    }

    /// True when the generator proved every row along control flow (header byte 70).
    pub fn proven(&self) -> bool {
        self.proven
    }

    /// The id of the image this table was generated from.
    pub fn image_id(&self) -> ImageId {
        self.image_id
    }

    /// Whether this table describes the image `id` names: the check every user of a table file
    /// makes before walking with it. A table without an id matches nothing.
    pub fn matches(&self, id: &ImageId) -> bool {
        self.image_id.matches(id)
    }
}

/// Serialises a table. `ips` must be sorted and `entries` parallel to it; the result is then
/// checked by parsing it back, so a writer bug cannot produce a file the reader would misread.
#[cfg(feature = "std")]
pub fn write(
    ips: &[u64],
    entries: &[crate::OrcEntry],
    image_id: &ImageId,
    with_index: bool,
) -> Result<Vec<u8>, TableError> {
    write_with(ips, entries, image_id, with_index, false)
}

/// [`write`], marking the rows as proven along control flow when `proven`.
#[cfg(feature = "std")]
pub fn write_with(
    ips: &[u64],
    entries: &[crate::OrcEntry],
    image_id: &ImageId,
    with_index: bool,
    proven: bool,
) -> Result<Vec<u8>, TableError> {
    let n = u32::try_from(ips.len()).map_err(|_| TableError::BadHeader { field: "entry count" })?;
    if entries.len() != ips.len() {
        return Err(TableError::LengthMismatch { part: ".orc_unwind" });
    }
    let ip_table_addr = ips.first().copied().unwrap_or(0);
    let (index_base, words) = match (with_index, ips.first(), ips.last()) {
        (true, Some(&first), Some(&last)) => (first, crate::index::build(ips, first, last.saturating_add(1))),
        _ => (0, Vec::new()),
    };
    let blocks =
        u32::try_from(words.len().saturating_sub(1)).map_err(|_| TableError::BadHeader { field: "index blocks" })?;
    let id = image_id.bytes();
    let kind = if image_id.is_some() { image_id.kind() as u8 } else { IdKind::None as u8 };

    let mut out = Vec::with_capacity(HEADER_SIZE + ips.len() * (IP_SIZE + ENTRY_SIZE) + words.len() * 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FormatId::CURRENT.version.to_le_bytes());
    out.extend_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    out.extend_from_slice(&FormatId::CURRENT.layout_hash.to_le_bytes());
    out.extend_from_slice(&ip_table_addr.to_le_bytes());
    out.extend_from_slice(&index_base.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&blocks.to_le_bytes());
    out.push(id.len() as u8);
    let mut padded = [0u8; MAX_ID];
    padded[..id.len()].copy_from_slice(id);
    out.extend_from_slice(&padded);
    out.push(kind);
    out.push(u8::from(proven));
    out.extend_from_slice(&[0; 9]);
    debug_assert_eq!(out.len(), HEADER_SIZE);
    for (i, &ip) in ips.iter().enumerate() {
        let slot = ip_table_addr.wrapping_add((i * IP_SIZE) as u64);
        let off =
            i32::try_from(ip.wrapping_sub(slot) as i64).map_err(|_| TableError::IpOverflow { index: i as u32 })?;
        out.extend_from_slice(&off.to_le_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.to_bytes());
    }
    if blocks > 0 {
        for w in &words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
    TableFile::parse(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, OrcEntry, Reg};
    use quickcheck::quickcheck;

    fn sample() -> Vec<u8> {
        sample_with(&ImageId::build_id(&[0xab; 20]))
    }

    fn sample_with(id: &ImageId) -> Vec<u8> {
        let call = OrcEntry::new(Kind::Call, Reg::Fp, 32, Reg::PrevSp, -32, Reg::PrevSp, -24, false);
        write(&[0x10000, 0x10004, 0x10400], &[OrcEntry::end_of_stack(), call, OrcEntry::UNDEFINED], id, true).unwrap()
    }

    #[test]
    fn roundtrip_keeps_everything() {
        let bytes = sample();
        let f = TableFile::parse(&bytes).unwrap();
        assert_eq!(f.image_id().kind(), IdKind::BuildId);
        assert_eq!(f.image_id().bytes(), &[0xab; 20]);
        assert!(f.matches(&ImageId::build_id(&[0xab; 20])));
        assert_eq!(f.table.len(), 3);
        assert_eq!(f.table.find(0x10010).unwrap().0, 0x10004);
        assert_eq!(f.table.find(0x103ff).unwrap().0, 0x10004);
        assert!(f.table.find(0x10400).unwrap().1.is_undefined());
        assert!(f.table.find(0xffff).is_none());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(TableFile::parse(&bytes[..len]).is_err(), "prefix of {len} bytes accepted");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(TableFile::parse(&long).unwrap_err(), TableError::LengthMismatch { part: "file (trailing bytes)" });
    }

    #[test]
    fn foreign_formats_are_named() {
        let mut b = sample();
        b[16] ^= 1; // layout hash
        assert!(matches!(TableFile::parse(&b), Err(TableError::FormatMismatch { .. })));
        let mut b = sample();
        b[0] = b'X';
        assert_eq!(TableFile::parse(&b).unwrap_err(), TableError::BadMagic);
        assert_eq!(TableFile::parse(b"\x7fELF\x02\x01\x01").unwrap_err(), TableError::BadMagic);
    }

    #[test]
    fn id_kinds_roundtrip_and_empty_ids_match_nothing() {
        let hash = ImageId::text_hash([0x5a; 20]);
        let b = sample_with(&hash);
        assert_eq!(b[ID_KIND_OFFSET], IdKind::TextHash as u8);
        let f = TableFile::parse(&b).unwrap();
        assert!(f.matches(&hash));
        assert!(!f.matches(&ImageId::build_id(&[0x5a; 20])), "a text hash is not a build-id");

        let b = sample_with(&ImageId::NONE);
        assert_eq!((b[48], b[ID_KIND_OFFSET]), (0, 0));
        let f = TableFile::parse(&b).unwrap();
        assert_eq!(f.image_id().kind(), IdKind::None);
        assert!(!f.matches(&ImageId::NONE));
        assert!(!f.matches(&ImageId::build_id(&[])));
    }

    /// Tables written before the kind byte (kind 0): with an id, a build-id (the shipped kernel
    /// tables); without one, nothing.
    #[test]
    fn kind_zero_with_an_id_reads_as_a_build_id() {
        let mut b = sample();
        b[ID_KIND_OFFSET] = 0;
        let f = TableFile::parse(&b).unwrap();
        assert!(f.matches(&ImageId::build_id(&[0xab; 20])));
        assert!(!f.matches(&ImageId::text_hash([0xab; 20])));
    }

    #[test]
    fn provenance_round_trips() {
        let b =
            write_with(&[0x1000], &[crate::OrcEntry::UNDEFINED], &ImageId::build_id(&[1; 20]), false, true).unwrap();
        assert!(TableFile::parse(&b).unwrap().proven());
        assert!(!TableFile::parse(&sample()).unwrap().proven());
    }

    #[test]
    fn bad_id_headers_are_refused() {
        let bad = |edit: &dyn Fn(&mut Vec<u8>), field: &'static str| {
            let mut b = sample();
            edit(&mut b);
            assert_eq!(TableFile::parse(&b).unwrap_err(), TableError::BadHeader { field }, "{field}");
        };
        bad(&|b| b[ID_KIND_OFFSET] = 3, "image id kind");
        bad(&|b| b[48] = 21, "image id length");
        bad(&|b| b[48] = 19, "image id padding");
        bad(&|b| b[48] = 0, "image id padding");
        bad(&|b| b[70] = 2, "provenance");
        bad(&|b| b[71] = 1, "reserved");
        bad(
            &|b| {
                b[48] = 0;
                b[49..69].fill(0);
            },
            "image id",
        ); // kind 1 without bytes
        let mut b = sample();
        b[48] = 10;
        b[59..69].fill(0);
        b[ID_KIND_OFFSET] = 2;
        assert_eq!(TableFile::parse(&b).unwrap_err(), TableError::BadHeader { field: "image id" }, "short text hash");
    }

    quickcheck! {
        /// Any byte flipped anywhere: parsing returns (never panics), and what it accepts is
        /// still a table that answers lookups.
        fn corruption_never_panics(pos: usize, val: u8, pcs: Vec<u64>) -> bool {
            let mut b = sample();
            let i = pos % b.len();
            b[i] = val;
            if let Ok(f) = TableFile::parse(&b) {
                for pc in pcs { let _ = f.table.find(pc); }
            }
            true
        }

        fn arbitrary_bytes_never_panic(body: Vec<u8>) -> bool {
            let mut b = sample()[..HEADER_SIZE].to_vec();
            b.extend_from_slice(&body);
            let _ = TableFile::parse(&b);
            let _ = TableFile::parse(&body);
            true
        }
    }
}
