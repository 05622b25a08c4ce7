//! Every FDE of `.eh_frame` and `.debug_frame`, evaluated into rows with gimli.

use gimli::{BaseAddresses, CieOrFde, EndianSlice, LittleEndian, UnwindContext, UnwindSection, UnwindTableRow, Vendor};

use super::GenError;
use super::elf::{CfiSection, ElfImage};
use super::rules::{Unsupported, row_to_entry};
use crate::OrcEntry;

pub type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// One function's CFI: its range and its rows, already mapped to entries (or to why not).
/// Rows are mapped as they are read because gimli's rows are large: keeping them costs gigabytes
/// on a kernel.
#[derive(Debug)]
pub struct Fde {
    pub start: u64,
    pub end: u64,
    pub section: &'static str,
    /// Offset of the FDE inside its section, for messages.
    pub offset: u64,
    pub rows: Vec<(u64, Result<OrcEntry, Unsupported>)>,
}

/// The two CFI sections of an image, parsed with the right base addresses.
#[derive(Debug)]
pub struct CfiSections<'a> {
    pub eh: Option<(gimli::EhFrame<Slice<'a>>, CfiSection<'a>)>,
    pub debug: Option<(gimli::DebugFrame<Slice<'a>>, CfiSection<'a>)>,
    pub bases: BaseAddresses,
    eh_bases: BaseAddresses,
}

impl<'a> CfiSections<'a> {
    pub fn new(image: &ElfImage<'a>) -> Result<CfiSections<'a>, GenError> {
        if image.eh_frame.is_none() && image.debug_frame.is_none() {
            return Err(GenError::NoCfi);
        }
        let mut eh_bases = BaseAddresses::default();
        if let Some(s) = image.eh_frame {
            eh_bases = eh_bases.set_eh_frame(s.address);
        }
        if let Some(a) = image.eh_frame_hdr_address {
            eh_bases = eh_bases.set_eh_frame_hdr(a);
        }
        if let Some(a) = image.text_address {
            eh_bases = eh_bases.set_text(a);
        }
        if let Some(a) = image.got_address {
            eh_bases = eh_bases.set_got(a);
        }
        let eh = image.eh_frame.map(|s| {
            let mut sec = gimli::EhFrame::new(s.data, LittleEndian);
            sec.set_vendor(Vendor::AArch64);
            (sec, s)
        });
        let debug = image.debug_frame.map(|s| {
            let mut sec = gimli::DebugFrame::new(s.data, LittleEndian);
            sec.set_vendor(Vendor::AArch64);
            (sec, s)
        });
        Ok(CfiSections { eh, debug, bases: BaseAddresses::default(), eh_bases })
    }

    /// All FDEs of both sections, in section order.
    pub fn fdes(&self) -> Result<Vec<Fde>, GenError> {
        let mut out = Vec::new();
        let mut ctx = Box::new(UnwindContext::new());
        if let Some((sec, info)) = &self.debug {
            collect(sec, &self.bases, info.name, &mut ctx, &mut out)?;
        }
        if let Some((sec, info)) = &self.eh {
            collect(sec, &self.eh_bases, info.name, &mut ctx, &mut out)?;
        }
        Ok(out)
    }

    /// Calls `f` with every row of every FDE without collecting them (the checker's path).
    pub fn for_each_fde(&self, mut f: impl FnMut(&FdeHeader, &UnwindTableRow<usize>)) -> Result<(), GenError> {
        let mut ctx = Box::new(UnwindContext::new());
        if let Some((sec, info)) = &self.debug {
            visit(sec, &self.bases, info.name, &mut ctx, &mut f)?;
        }
        if let Some((sec, info)) = &self.eh {
            visit(sec, &self.eh_bases, info.name, &mut ctx, &mut f)?;
        }
        Ok(())
    }
}

/// What `for_each_fde` tells about the FDE a row belongs to.
#[derive(Clone, Copy, Debug)]
pub struct FdeHeader {
    pub start: u64,
    pub end: u64,
    pub section: &'static str,
    pub offset: u64,
    pub signal: bool,
}

fn visit<'a, S: UnwindSection<Slice<'a>>>(
    section: &S,
    bases: &BaseAddresses,
    name: &'static str,
    ctx: &mut UnwindContext<usize>,
    f: &mut impl FnMut(&FdeHeader, &UnwindTableRow<usize>),
) -> Result<(), GenError>
where
    S::Offset: gimli::UnwindOffset<usize>,
{
    let cfi_err = |offset: u64| move |source| GenError::Cfi { section: name, offset, source };
    let mut entries = section.entries(bases);
    let mut last_offset = 0u64;
    while let Some(entry) = entries.next().map_err(cfi_err(last_offset))? {
        let partial = match entry {
            CieOrFde::Cie(_) => continue,
            CieOrFde::Fde(p) => p,
        };
        let fde = partial.parse(S::cie_from_offset).map_err(cfi_err(last_offset))?;
        let offset = fde.offset() as u64;
        last_offset = offset;
        if fde.len() == 0 {
            continue;
        }
        let header = FdeHeader {
            start: fde.initial_address(),
            end: fde.end_address(),
            section: name,
            offset,
            signal: fde.is_signal_trampoline(),
        };
        let mut rows = fde.rows(section, bases, ctx).map_err(cfi_err(offset))?;
        while let Some(row) = rows.next_row().map_err(cfi_err(offset))? {
            f(&header, row);
        }
    }
    Ok(())
}

fn collect<'a, S: UnwindSection<Slice<'a>>>(
    section: &S,
    bases: &BaseAddresses,
    name: &'static str,
    ctx: &mut UnwindContext<usize>,
    out: &mut Vec<Fde>,
) -> Result<(), GenError>
where
    S::Offset: gimli::UnwindOffset<usize>,
{
    visit(section, bases, name, ctx, &mut |h, row| {
        let mapped = (row.start_address(), row_to_entry(row, h.signal));
        match out.last_mut() {
            Some(last) if last.offset == h.offset && last.section == h.section => last.rows.push(mapped),
            _ => out.push(Fde { start: h.start, end: h.end, section: h.section, offset: h.offset, rows: vec![mapped] }),
        }
    })
}
