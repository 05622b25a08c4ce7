//! FDE rows → one sorted table: overlaps resolved, equal neighbours merged, every covered range
//! closed by an UNDEFINED terminator so a gap between functions is never covered by accident.

use std::collections::BTreeMap;

use super::GenError;
use super::anchor::{self, Anchors};
use super::elf::ElfImage;
use super::fde::{CfiSections, Fde};
use super::rules::Unsupported;
use super::stale::{self, Cuts};
use super::stats::Stats;
use crate::OrcEntry;

/// A table built from an ELF, ready to be written.
#[derive(Debug)]
pub struct Generated {
    pub ips: Vec<u64>,
    pub entries: Vec<OrcEntry>,
    pub image_id: crate::ImageId,
    pub stats: Stats,
}

impl Generated {
    /// The table file bytes (with the lookup index).
    pub fn to_file_bytes(&self) -> Result<Vec<u8>, GenError> {
        Ok(crate::file::write(&self.ips, &self.entries, &self.image_id, true)?)
    }
}

/// A function's mapped rows, `(start address, entry)`, over `[start, end)`.
struct Span {
    start: u64,
    end: u64,
    rows: Vec<(u64, OrcEntry)>,
}

fn map_rows(fde: &Fde, unsupported: &mut BTreeMap<Unsupported, u64>) -> Vec<(u64, OrcEntry)> {
    fde.rows
        .iter()
        .map(|&(addr, mapped)| {
            let entry = mapped.unwrap_or_else(|why| {
                *unsupported.entry(why).or_default() += 1;
                OrcEntry::UNDEFINED
            });
            (addr, entry)
        })
        .collect()
}

/// Appends a row; a row at the address of the previous one (a terminator) replaces it, and a row
/// equal to the previous entry is dropped because the previous one already covers it.
fn push(ips: &mut Vec<u64>, entries: &mut Vec<OrcEntry>, addr: u64, entry: OrcEntry) {
    if ips.last() == Some(&addr) {
        ips.pop();
        entries.pop();
    }
    if entries.last() == Some(&entry) {
        return;
    }
    ips.push(addr);
    entries.push(entry);
}

/// How to generate.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Replace the stale part of each row with UNDEFINED ([`stale`]). On by default; off only
    /// to show what an uncut table would let through.
    pub cut_stale: bool,
    /// Rewrite x29-based rows of fixed frames as sp-based where the code proves it
    /// ([`anchor`]). On by default.
    pub anchor_fp: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { cut_stale: true, anchor_fp: true }
    }
}

/// Builds the ORC table for an ELF image from its `.debug_frame` and `.eh_frame`, every row
/// checked against the instructions it covers.
pub fn generate(image: &ElfImage<'_>) -> Result<Generated, GenError> {
    generate_with(image, Options::default())
}

/// [`generate`] with options.
pub fn generate_with(image: &ElfImage<'_>, options: Options) -> Result<Generated, GenError> {
    let sections = CfiSections::new(image)?;
    let mut stats = Stats {
        eh_frame_bytes: image.eh_frame.map_or(0, |s| s.data.len() as u64),
        debug_frame_bytes: image.debug_frame.map_or(0, |s| s.data.len() as u64),
        text_bytes: image.exec_ranges.iter().map(|(s, e)| e - s).sum(),
        ..Stats::default()
    };

    let mut fdes = sections.fdes()?;
    stats.fdes_total = fdes.len() as u64;
    // Discarded functions keep their FDEs with address 0 in a linked image: only text counts.
    fdes.retain(|f| image.is_executable(f.start, f.end));
    stats.fdes_outside_text = stats.fdes_total - fdes.len() as u64;
    fdes.sort_by_key(|f| (f.start, f.end));

    let mut spans: Vec<Span> = Vec::with_capacity(fdes.len());
    let mut cuts = Cuts::default();
    let mut anchors = Anchors::default();
    for fde in &fdes {
        stats.rows += fde.rows.len() as u64;
        let rows = map_rows(fde, &mut stats.unsupported);
        let rows = if options.cut_stale { stale::cut(&rows, fde.end, |a| image.insn(a), &mut cuts) } else { rows };
        let rows =
            if options.anchor_fp { anchor::anchor(&rows, fde.end, |a| image.insn(a), &mut anchors) } else { rows };
        match spans.last_mut() {
            Some(prev) if fde.start < prev.end => {
                if prev.start == fde.start && prev.end == fde.end && prev.rows == rows {
                    stats.fdes_duplicate += 1; // the same function described in both sections
                } else {
                    // Two descriptions disagree: trust neither.
                    stats.fdes_conflicting += 1;
                    prev.end = prev.end.max(fde.end);
                    prev.rows = vec![(prev.start, OrcEntry::UNDEFINED)];
                }
            }
            _ => spans.push(Span { start: fde.start, end: fde.end, rows }),
        }
    }

    let mut ips = Vec::new();
    let mut entries = Vec::new();
    for span in &spans {
        stats.covered_bytes += span.end - span.start;
        for &(addr, entry) in &span.rows {
            push(&mut ips, &mut entries, addr, entry);
        }
        push(&mut ips, &mut entries, span.end, OrcEntry::UNDEFINED);
    }
    stats.fdes_used = spans.len() as u64;
    (stats.stale_rows_cut, stats.stale_bytes_cut) = (cuts.rows, cuts.bytes);
    stats.anchors = anchors;
    stats.anchor_left_examples = anchors
        .left_first
        .iter()
        .take(anchors.left as usize)
        .map(|&(a, why)| format!("{} (condition {why})", image.symbolize(a)))
        .collect();
    stats.stale_examples = cuts.first.iter().take(cuts.rows as usize).map(|&a| image.symbolize(a)).collect();
    stats.entries = ips.len() as u64;
    stats.functions_without_cfi = image
        .symbols
        .iter()
        .filter(|(addr, size, _)| *size > 0 && image.is_executable(*addr, addr + size))
        .filter(|(addr, size, _)| {
            let i = spans.partition_point(|s| s.end <= *addr);
            spans.get(i).is_none_or(|s| s.start >= addr + size)
        })
        .map(|(_, _, name)| name.clone())
        .collect();
    let generated = Generated { ips, entries, image_id: image.image_id, stats };
    let bytes = generated.to_file_bytes()?;
    let mut generated = generated;
    generated.stats.table_bytes = bytes.len() as u64;
    Ok(generated)
}
