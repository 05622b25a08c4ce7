//! FDE rows → one sorted table: overlaps resolved, equal neighbours merged, every covered range
//! closed by an UNDEFINED terminator so a gap between functions is never covered by accident.

use std::collections::BTreeMap;

use super::GenError;
use super::derive;
use super::elf::ElfImage;
use super::fde::{CfiSections, Fde};
use super::flow;
use super::insn::{Regs, writes};
use super::prove::{self, Patches, Proof};
use super::rules::Unsupported;
use super::stats::Stats;
use crate::OrcEntry;

/// A table built from an ELF, ready to be written.
#[derive(Debug)]
pub struct Generated {
    pub ips: Vec<u64>,
    pub entries: Vec<OrcEntry>,
    pub image_id: crate::ImageId,
    /// Every row proven along control flow (`Options::prove`), marked in the file's header.
    pub proven: bool,
    pub stats: Stats,
}

impl Generated {
    /// The table file bytes (with the lookup index).
    pub fn to_file_bytes(&self) -> Result<Vec<u8>, GenError> {
        Ok(crate::file::write_with(&self.ips, &self.entries, &self.image_id, true, self.proven)?)
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
    /// Prove every row along control flow and make UNDEFINED what does not hold ([`prove`]).
    /// On by default; off only to show what an unproven table would let through.
    pub prove: bool,
    /// Rewrite proven x29-based rows as sp-based where sp is known exactly. On by default.
    pub anchor: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { prove: true, anchor: true }
    }
}

/// Sorted `[start, end)` ranges of instructions that alternatives may replace with code the
/// proof cannot see: a boot-time callback, or a replacement that writes sp, x29 or x30.
/// Replacements that do neither (barriers, system registers, `nop` for `b`) leave the proof
/// intact; their control flow is added by [`patch_edges`].
fn opaque_ranges(image: &ElfImage<'_>) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = image
        .alternatives
        .iter()
        .filter(|a| {
            (a.replacement_len == 0 && !patches_nops(image, a) && !rewrites_in_place(image, a))
                || (0..a.replacement_len / 4)
                    .any(|k| image.insn(a.replacement + 4 * k).is_none_or(|i| writes(i).meets(Regs::ALL)))
        })
        .map(|a| (a.site, a.site.saturating_add(a.len)))
        .collect();
    v.sort_unstable();
    v
}

/// A callback alternative whose callback (`kvm_update_va_mask`, behind every `kern_hyp_va`)
/// rewrites each original instruction into a `nop` or an `and`/`ror`/`add` (immediate) with the
/// original's own Rd and Rn (`compute_instruction(i, rd, rn)`): it writes no register the
/// original does not write. Taken only where every original is such a data-processing
/// instruction that writes neither sp, x29 nor x30 (so Rd is none of them), does not branch and
/// is not a move-wide (whose constant the machine tracks and the callback would change): the
/// machine's own step over it then already covers whatever the callback puts there.
fn rewrites_in_place(image: &ElfImage<'_>, a: &super::elf::Alternative) -> bool {
    const MOVE_WIDE: (u32, u32) = (0x1f80_0000, 0x1280_0000);
    a.replacement_len == 0
        && a.len > 0
        && image.symbols.binary_search_by_key(&a.replacement, |s| s.0).is_ok_and(|k| {
            image.symbols.get(k).is_some_and(|s| s.2.trim_start_matches("__kvm_nvhe_") == "kvm_update_va_mask")
        })
        && (0..a.len / 4).all(|k| {
            let pc = a.site + 4 * k;
            image.insn(pc).is_some_and(|i| {
                let f = flow::flow(pc, i);
                !writes(i).meets(Regs::ALL)
                    && f.falls
                    && f.target.is_none()
                    && call_free(i)
                    && i & 0x0a00_0000 != 0x0800_0000
                    && i & MOVE_WIDE.0 != MOVE_WIDE.1
            })
        })
}

/// Not a call (`bl`, `blr`): those fall through but write x30, which `writes` already says.
fn call_free(i: u32) -> bool {
    flow::call_target(0, i).is_none() && i & 0xfe00_0000 != 0xd600_0000
}

/// A callback alternative whose callback writes `nop`s (`alt_cb_patch_nops`, behind every
/// `alternative_has_cap_*` on arm64): it can only turn a branch into a fall-through.
fn patches_nops(image: &ElfImage<'_>, a: &super::elf::Alternative) -> bool {
    a.replacement_len == 0
        && image
            .symbols
            .binary_search_by_key(&a.replacement, |s| s.0)
            .is_ok_and(|k| image.symbols.get(k).is_some_and(|s| s.2.ends_with("alt_cb_patch_nops")))
}

/// `(site, target)` edges the code may take at run time besides its own: every jump label
/// (its site is a `nop` or a branch), every instruction an alternative may replace (it may fall
/// through where the original branched, or branch where the replacement does: arm64 resolves a
/// replacement's branch to the same absolute target). Sorted by site.
fn patch_edges(image: &ElfImage<'_>) -> Vec<(u64, u64)> {
    let mut v = image.jump_labels.clone();
    for a in &image.alternatives {
        for k in 0..a.len / 4 {
            let site = a.site + 4 * k;
            v.push((site, site + 4));
            let pc = a.replacement + 4 * k;
            if let Some(t) = image.insn(pc).filter(|_| k < a.replacement_len / 4).and_then(|i| flow::flow(pc, i).target)
            {
                v.push((site, t));
            }
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// The functions (FDE starts) that can return: the least fixpoint of "some path reaches a
/// return, an indirect jump, or a tail call to a function that can return, passing only calls
/// to functions that can return". Calls to anything else are taken to return. The rest never
/// return (`abort`, `panic`, `do_exit`), and the code after a call to them is not its successor.
fn returning_functions(
    fdes: &[Fde],
    words: &[Vec<Option<u32>>],
    patches: Patches<'_>,
) -> std::collections::HashSet<u64> {
    let starts: std::collections::HashSet<u64> = fdes.iter().map(|f| f.start).collect();
    let mut set = std::collections::HashSet::new();
    loop {
        let before = set.len();
        for (f, w) in fdes.iter().zip(words) {
            if set.contains(&f.start) {
                continue;
            }
            let returns = |t: u64| !starts.contains(&t) || set.contains(&t);
            let with_returns = Patches { returns: &returns, ..patches };
            if with_returns.code(f.start, f.end, w, &[]).can_return() {
                set.insert(f.start);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// Rows derived from the instructions ([`derive`]) for the functions without CFI that qualify:
/// they start with a BTI call pad, lie outside the exception entry text, and no direct branch
/// from elsewhere lands inside them. Inner `bl` targets and call pads are further entries.
fn derive_without_cfi(
    image: &ElfImage<'_>,
    candidates: &[(u64, u64, String)],
    compiled: &dyn Fn(u64) -> bool,
    patches: Patches<'_>,
    stats: &mut derive::Derived,
) -> Vec<Span> {
    let sym = |name: &str| image.symbols.iter().find(|s| s.2 == name).map(|s| s.0);
    let excluded: Vec<(u64, u64)> =
        [("__entry_text_start", "__entry_text_end"), ("__irqentry_text_start", "__irqentry_text_end")]
            .iter()
            .filter_map(|(a, b)| Some((sym(a)?, sym(b)?)))
            .collect();
    // Every direct branch and call in the text, by target.
    let (mut branches, mut calls): (Vec<(u64, u64)>, Vec<u64>) = (Vec::new(), Vec::new());
    for &(base, bytes) in &image.code {
        for (k, w) in bytes.chunks_exact(4).enumerate() {
            let pc = base + 4 * k as u64;
            let i = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            if let Some(t) = flow::call_target(pc, i) {
                calls.push(t);
            } else if let Some(t) = flow::flow(pc, i).target {
                branches.push((t, pc));
            }
        }
    }
    branches.sort_unstable();
    calls.sort_unstable();
    calls.dedup();
    let mut out: Vec<Span> = Vec::new();
    for &(start, size, _) in candidates {
        let end = start + size;
        let inside = |a: u64| start < a && a < end;
        if excluded.iter().any(|&(s, e)| s <= start && start < e)
            || !image.insn(start).is_some_and(derive::is_call_pad)
            || out.last().is_some_and(|p| p.end > start)
        {
            continue;
        }
        // Branches from elsewhere: into the middle, never; to the start, only tail calls from
        // compiled code (which has CFI and has torn its frame down by then). Assembly jumping
        // to it (`b _cpu_resume`) brings a state the entry assumption knows nothing of.
        let lo = branches.partition_point(|b| b.0 < start);
        let hi = branches.partition_point(|b| b.0 < end);
        let foreign = |&(to, from): &(u64, u64)| !(start..end).contains(&from) && (to != start || !compiled(from));
        if branches[lo..hi].iter().any(foreign) {
            continue;
        }
        let mut entries: Vec<u64> =
            calls[calls.partition_point(|&c| c <= start)..calls.partition_point(|&c| c < end)].to_vec();
        entries.extend(
            (start + 4..end).step_by(4).filter(|&a| inside(a) && image.insn(a).is_some_and(derive::is_call_pad)),
        );
        if let Some(rows) = derive::derive(start, end, |a| image.insn(a), &entries, patches, stats) {
            out.push(Span { start, end, rows });
        }
    }
    out
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
    let mut proof = Proof::default();
    let opaque = opaque_ranges(image);
    let is_opaque = |pc: u64| {
        let k = opaque.partition_point(|r| r.0 <= pc);
        k.checked_sub(1).and_then(|k| opaque.get(k)).is_some_and(|r| pc < r.1)
    };
    let edges = patch_edges(image);
    let stops = |pc: u64| image.bugs.binary_search(&pc).is_ok();
    // Every function's words, read once for the noreturn fixpoint and the proof (none without).
    let words: Vec<Vec<Option<u32>>> = if options.prove {
        fdes.iter().map(|f| prove::words(f.start, f.end, |a| image.insn(a))).collect()
    } else {
        vec![Vec::new(); fdes.len()]
    };
    let all_return = |_: u64| true;
    let base = Patches {
        anchor: options.anchor,
        jump_labels: &edges,
        opaque: &is_opaque,
        returns: &all_return,
        stops: &stops,
    };
    let returning = if options.prove { returning_functions(&fdes, &words, base) } else { Default::default() };
    let starts: std::collections::HashSet<u64> = fdes.iter().map(|f| f.start).collect();
    let returns = |t: u64| !starts.contains(&t) || returning.contains(&t);
    let patches = Patches { returns: &returns, ..base };
    for (fde, words) in fdes.iter().zip(&words) {
        stats.rows += fde.rows.len() as u64;
        let rows = map_rows(fde, &mut stats.unsupported);
        let rows = match rows.first() {
            Some(&(first, _)) if options.prove && first == fde.start => {
                prove::prove_words(&rows, fde.end, words, patches, &mut proof)
            }
            _ if options.prove => prove::prove(&rows, fde.end, |a| image.insn(a), patches, &mut proof),
            _ => rows,
        };
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

    let without_cfi: Vec<(u64, u64, String)> = image
        .symbols
        .iter()
        .filter(|(addr, size, _)| *size > 0 && image.is_executable(*addr, addr + size))
        .filter(|(addr, size, _)| {
            let i = spans.partition_point(|s| s.end <= *addr);
            spans.get(i).is_none_or(|s| s.start >= addr + size)
        })
        .cloned()
        .collect();
    stats.functions_without_cfi = without_cfi.iter().map(|f| f.2.clone()).collect();
    if options.prove {
        let covered: Vec<(u64, u64)> = spans.iter().map(|s| (s.start, s.end)).collect();
        let compiled = |pc: u64| {
            let k = covered.partition_point(|c| c.1 <= pc);
            covered.get(k).is_some_and(|c| c.0 <= pc)
        };
        let derived = derive_without_cfi(image, &without_cfi, &compiled, patches, &mut stats.derived);
        spans.extend(derived);
        spans.sort_by_key(|s| s.start);
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
    stats.proof = proof;
    stats.cut_examples =
        proof.first_cut.iter().take(proof.cut_stretches as usize).map(|&a| image.symbolize(a)).collect();
    stats.entries = ips.len() as u64;
    stats.derived_examples = stats.derived.first.iter().map(|&a| image.symbolize(a)).collect();
    let generated = Generated { ips, entries, image_id: image.image_id, proven: options.prove, stats };
    let bytes = generated.to_file_bytes()?;
    let mut generated = generated;
    generated.stats.table_bytes = bytes.len() as u64;
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::super::elf::Alternative;
    use super::*;

    fn image<'a>(code: &'a [u8], callback: &str) -> ElfImage<'a> {
        ElfImage {
            eh_frame: None,
            debug_frame: None,
            eh_frame_hdr_address: None,
            got_address: None,
            text_address: Some(0x1000),
            exec_ranges: vec![(0x1000, 0x1000 + code.len() as u64)],
            code: vec![(0x1000, code)],
            image_id: crate::ImageId::NONE,
            symbols: vec![(0x2000, 4, callback.to_string())],
            jump_labels: Vec::new(),
            alternatives: vec![Alternative { site: 0x1000, len: 20, replacement: 0x2000, replacement_len: 0 }],
            bugs: Vec::new(),
        }
    }

    fn bytes(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// `kern_hyp_va x20` (`create_hyp_mappings`, Debian 6.12 vmlinux): the callback rewrites the
    /// five instructions on x20 in place, so they are not opaque (the rows of every function
    /// using it were cut after them). The same callback over `x29`, over a move-wide, or an
    /// unknown callback stay opaque.
    #[test]
    fn kern_hyp_va_is_rewritten_in_place() {
        let kern_hyp_va = [0x92400294, 0x93d40694, 0x91000294, 0x91400294, 0x93d4fe94];
        let code = bytes(&kern_hyp_va);
        assert_eq!(opaque_ranges(&image(&code, "__kvm_nvhe_kvm_update_va_mask")), vec![]);
        assert_eq!(opaque_ranges(&image(&code, "kvm_update_va_mask")), vec![]);
        assert_eq!(opaque_ranges(&image(&code, "kvm_patch_vector_branch")), vec![(0x1000, 0x1014)]);
        // and x29, x29, #1; ror x29, x29, #1; add x29, x29, #0; ...: writes x29.
        let fp = bytes(&[0x924003bd, 0x93dd07bd, 0x910003bd, 0x914003bd, 0x93ddffbd]);
        assert_eq!(opaque_ranges(&image(&fp, "kvm_update_va_mask")), vec![(0x1000, 0x1014)]);
        // movz x20, #0 first: a constant the machine would track and the callback may change.
        let movz = bytes(&[0xd2800014, 0x93d40694, 0x91000294, 0x91400294, 0x93d4fe94]);
        assert_eq!(opaque_ranges(&image(&movz, "kvm_update_va_mask")), vec![(0x1000, 0x1014)]);
    }
}
