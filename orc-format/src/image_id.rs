//! Which image a table (or a dump) belongs to, and the one comparison that decides whether two
//! ids name the same code.
//!
//! An id is the ELF's GNU build-id or, for an ELF without one, a hash of its text (computed on
//! the host by `generate::elf::image_id`; this reading side only compares). A table is only as
//! good as the code it was made from: the same table on code one instruction apart makes the
//! walk read a record where the code has none yet, with every check passing. So an id that
//! names nothing ([`IdKind::None`], or no bytes) matches nothing, not even another empty id:
//! two ELFs without a build-id used to both have the empty id and be taken for each other.
//! [`ImageId::matches`] is the only comparison (there is deliberately no `PartialEq`).

/// The longest id kept: SHA-1 build-ids and the text hash are 20 bytes. A longer build-id is
/// cut to its first 20 bytes, the same way on every side, so the sides still agree.
pub const MAX_ID: usize = 20;

/// What an id's bytes are. The number is the table header byte at offset 69.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// The image had neither a build-id nor text: the table is bound to nothing.
    None = 0,
    /// The ELF's GNU build-id (`.note.gnu.build-id`), or an id its producer stamped in the
    /// same role (the synthetic corpus).
    BuildId = 1,
    /// SHA-256 over the image's executable sections, cut to 20 bytes (`generate::elf`).
    TextHash = 2,
}

impl IdKind {
    pub fn name(self) -> &'static str {
        match self {
            IdKind::None => "none",
            IdKind::BuildId => "build-id",
            IdKind::TextHash => "text-hash",
        }
    }
}

/// An image id: a kind and up to [`MAX_ID`] bytes.
#[derive(Clone, Copy, Debug)]
pub struct ImageId {
    kind: IdKind,
    len: u8,
    bytes: [u8; MAX_ID],
}

impl ImageId {
    /// No id: matches nothing.
    pub const NONE: ImageId = ImageId { kind: IdKind::None, len: 0, bytes: [0; MAX_ID] };

    fn of(kind: IdKind, id: &[u8]) -> ImageId {
        let id = id.get(..MAX_ID.min(id.len())).unwrap_or(&[]);
        if id.is_empty() {
            return ImageId::NONE;
        }
        let mut bytes = [0u8; MAX_ID];
        // Byte by byte: `copy_from_slice` keeps a length-mismatch panic at opt-level "s".
        bytes.iter_mut().zip(id).for_each(|(d, s)| *d = *s);
        ImageId { kind, len: id.len() as u8, bytes }
    }

    /// A GNU build-id (cut to [`MAX_ID`] bytes); empty gives [`ImageId::NONE`].
    pub fn build_id(id: &[u8]) -> ImageId {
        ImageId::of(IdKind::BuildId, id)
    }

    /// A text hash.
    pub fn text_hash(digest: [u8; MAX_ID]) -> ImageId {
        ImageId { kind: IdKind::TextHash, len: MAX_ID as u8, bytes: digest }
    }

    /// Rebuilds an id from its kind and bytes as stored (a dump's note); `None` for a kind that
    /// cannot hold these bytes.
    pub fn from_parts(kind: IdKind, id: &[u8]) -> Option<ImageId> {
        match kind {
            IdKind::None if id.is_empty() => Some(ImageId::NONE),
            IdKind::BuildId if !id.is_empty() && id.len() <= MAX_ID => Some(ImageId::build_id(id)),
            IdKind::TextHash => id.try_into().ok().map(ImageId::text_hash),
            _ => None,
        }
    }

    pub fn kind(&self) -> IdKind {
        self.kind
    }

    pub fn bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// True when this id names an image at all.
    pub fn is_some(&self) -> bool {
        self.kind != IdKind::None && self.len > 0
    }

    /// Whether `self` and `other` name the same code: both name an image, of the same kind, with
    /// the same bytes. An empty id or one of kind `None` matches nothing, itself included.
    pub fn matches(&self, other: &ImageId) -> bool {
        self.is_some() && other.is_some() && self.kind == other.kind && self.bytes() == other.bytes()
    }
}

/// `build-id 0123…`, `text-hash 89ab…`, or `none`.
impl core::fmt::Display for ImageId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if !self.is_some() {
            return f.write_str("none");
        }
        f.write_str(self.kind.name())?;
        f.write_str(" ")?;
        for b in self.bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ids_match_nothing() {
        assert!(!ImageId::NONE.matches(&ImageId::NONE));
        assert!(!ImageId::build_id(&[]).matches(&ImageId::build_id(&[])));
        assert!(!ImageId::build_id(&[]).is_some());
        assert!(!ImageId::NONE.matches(&ImageId::build_id(&[1])));
        assert!(!ImageId::build_id(&[1]).matches(&ImageId::NONE));
    }

    #[test]
    fn equal_kind_and_bytes_match() {
        assert!(ImageId::build_id(&[1, 2, 3]).matches(&ImageId::build_id(&[1, 2, 3])));
        assert!(!ImageId::build_id(&[1, 2, 3]).matches(&ImageId::build_id(&[1, 2, 4])));
        assert!(!ImageId::build_id(&[1, 2, 3]).matches(&ImageId::build_id(&[1, 2])));
        assert!(ImageId::text_hash([7; 20]).matches(&ImageId::text_hash([7; 20])));
        // The same bytes of another kind are another image.
        assert!(!ImageId::text_hash([7; 20]).matches(&ImageId::build_id(&[7; 20])));
    }

    #[test]
    fn long_build_ids_are_cut_alike() {
        let long = [5u8; 32];
        let id = ImageId::build_id(&long);
        assert_eq!(id.bytes(), &[5u8; 20]);
        assert!(id.matches(&ImageId::build_id(&long[..20])));
    }

    #[test]
    fn from_parts_refuses_what_a_kind_cannot_hold() {
        assert!(ImageId::from_parts(IdKind::None, &[1]).is_none());
        assert!(ImageId::from_parts(IdKind::BuildId, &[]).is_none());
        assert!(ImageId::from_parts(IdKind::BuildId, &[1; 21]).is_none());
        assert!(ImageId::from_parts(IdKind::TextHash, &[1; 19]).is_none());
        assert!(ImageId::from_parts(IdKind::TextHash, &[1; 20]).unwrap().matches(&ImageId::text_hash([1; 20])));
        assert!(!ImageId::from_parts(IdKind::None, &[]).unwrap().is_some());
    }

    #[test]
    fn display_names_the_kind() {
        assert_eq!(ImageId::build_id(&[0xab, 0x01]).to_string(), "build-id ab01");
        assert_eq!(ImageId::text_hash([0; 20]).to_string(), "text-hash 0000000000000000000000000000000000000000");
        assert_eq!(ImageId::NONE.to_string(), "none");
    }
}
