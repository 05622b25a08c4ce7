//! `check ELF TABLE`: at every instruction of covered text, gimli's CFI row and the table's entry
//! must say the same thing, or the table must say UNDEFINED (it may refuse a row it found stale,
//! never claim a rule the CFI does not); in text without CFI the table must say nothing (or
//! UNDEFINED), or exactly the row the generator derives from the instructions there.
//!
//! The CFI is read here with gimli alone (`Cfi`: `DebugFrame`/`EhFrame`, `entries`, each FDE
//! parsed with its CIE, its rows evaluated by `UnwindTable`), not through the generator's reader
//! (`generate::fde`), so that a mistake in that reader is caught rather than shared. FDEs are
//! grouped as the generator groups them: overlapping ranges form one cluster, which holds only
//! where all its members agree at every address (exact duplicates, e.g. a function in both
//! `.debug_frame` and `.eh_frame`), else the table must say UNDEFINED over all of it.
//!
//! Then along control flow: every call frame the table claims must hold on every path into its
//! pc, by the generator's proof of the same image ([`super::prove`]): a table made by another
//! tool, or by an older generator that checked rows in address order, fails there. An anchored
//! row (CFA on sp where the CFI has it on x29) is compared with the CFI in every rule but the
//! CFA; its CFA (register and offset: sp's distance to the CFA is not in the CFI) must be the
//! one the proof computes from the instructions.
//!
//! The comparison runs in the other direction from the generator: the table entry is decoded
//! back into rules ([`Expect::from_entry`]) and compared with rules read off gimli's row
//! ([`Expect::from_row`]), so a slip in the generator's mapping shows up as a mismatch here.

use std::fmt;

use gimli::{
    BaseAddresses, CfaRule, CieOrFde, DebugFrame, EhFrame, EndianSlice, FrameDescriptionEntry, LittleEndian, Register,
    RegisterRule, UnwindContext, UnwindOffset, UnwindSection, UnwindTable, UnwindTableRow, Vendor,
};

use super::GenError;
use super::elf::ElfImage;
use crate::{Kind, OrcEntry, OrcTable, Reg};

type Slice<'a> = EndianSlice<'a, LittleEndian>;

const INSN: u64 = 4;

/// Where a register of the caller is found, as both DWARF and ORC can say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// Still in the register (DWARF same-value / no rule; ORC reg UNDEFINED).
    Live,
    /// At CFA + offset.
    At(i64),
}

/// What the unwinder may conclude at one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No usable rule.
    Undefined,
    /// Outermost frame.
    EndOfStack,
    Call {
        cfa_on_fp: bool,
        cfa_offset: i64,
        fp: Saved,
        ra: Saved,
        signal: bool,
    },
}

impl Expect {
    fn from_row(row: &UnwindTableRow<usize>, signal: bool) -> Expect {
        let saved = |r: Option<RegisterRule<usize>>| match r {
            None | Some(RegisterRule::SameValue) => Some(Saved::Live),
            Some(RegisterRule::Offset(n)) if i16::try_from(n).is_ok() => Some(Saved::At(n)),
            _ => None,
        };
        if row.register(Register(31)).is_some() {
            return Expect::Undefined;
        }
        if row.register(Register(30)) == Some(RegisterRule::Undefined) {
            return Expect::EndOfStack;
        }
        let (cfa_on_fp, cfa_offset) = match row.cfa() {
            CfaRule::RegisterAndOffset { register: Register(31), offset } => (false, *offset),
            CfaRule::RegisterAndOffset { register: Register(29), offset } => (true, *offset),
            _ => return Expect::Undefined,
        };
        if i16::try_from(cfa_offset).is_err() {
            return Expect::Undefined;
        }
        match (saved(row.register(Register(29))), saved(row.register(Register(30)))) {
            (Some(fp), Some(ra)) => Expect::Call { cfa_on_fp, cfa_offset, fp, ra, signal },
            _ => Expect::Undefined,
        }
    }

    /// Decodes a table answer; `None` (no entry at all) means the same as UNDEFINED.
    fn from_entry(e: Option<OrcEntry>) -> Expect {
        let Some(e) = e else { return Expect::Undefined };
        if e.is_undefined() {
            return Expect::Undefined;
        }
        let saved = |reg, off: i16| match reg {
            Some(Reg::Undefined) => Some(Saved::Live),
            Some(Reg::PrevSp) => Some(Saved::At(i64::from(off))),
            _ => None,
        };
        match e.kind() {
            Some(Kind::EndOfStack) => Expect::EndOfStack,
            Some(Kind::Call) => {
                let cfa_on_fp = match e.sp_reg() {
                    Some(Reg::Sp) => false,
                    Some(Reg::Fp) => true,
                    _ => return Expect::Undefined,
                };
                match (saved(e.fp_reg(), e.fp_offset), saved(e.ra_reg(), e.ra_offset)) {
                    (Some(fp), Some(ra)) => {
                        Expect::Call { cfa_on_fp, cfa_offset: i64::from(e.sp_offset), fp, ra, signal: e.signal() }
                    }
                    _ => Expect::Undefined,
                }
            }
            // DWARF never describes pt_regs frames: such an entry cannot come from CFI.
            _ => Expect::Undefined,
        }
    }
}

/// One disagreement between the table and the CFI.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub addr: u64,
    pub symbol: String,
    pub expected: Expect,
    pub found: Option<OrcEntry>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x} {}: CFI says {:?}, table says ", self.addr, self.symbol, self.expected)?;
        match self.found {
            Some(e) => write!(f, "{e}"),
            None => f.write_str("(no entry)"),
        }
    }
}

/// The result of a check: how much was compared and every mismatch (the first `MAX_LISTED`).
#[derive(Debug, Default)]
pub struct CheckReport {
    pub cfi_addresses: u64,
    pub gap_addresses: u64,
    /// Addresses with a CFI rule where the table says UNDEFINED (stale rows cut): allowed,
    /// counted, and bounded by the tests on the shipped tables.
    pub refused_addresses: u64,
    /// Of the refused addresses, those where the proof of the image keeps a call frame: the
    /// table refuses more than the generator would (allowed, counted; none in its own tables).
    pub refused_where_proven: u64,
    /// Addresses where CFI puts the CFA on x29 and the table on sp (fixed frames anchored).
    pub anchored_addresses: u64,
    /// The generator's control-flow proof of the same image ([`super::prove`]), in instructions.
    pub proof: super::prove::Proof,
    /// Addresses where the table claims a call frame that the proof does not hold on every
    /// path (counted in `mismatch_count` too).
    pub contradicted_addresses: u64,
    /// Addresses without CFI whose row the table has from the generator's derivation (equal).
    pub derived_addresses: u64,
    pub derived: super::derive::Derived,
    pub mismatch_count: u64,
    pub mismatches: Vec<Mismatch>,
}

const MAX_LISTED: usize = 1000;

struct Checker<'t, 'p, 'i> {
    table: &'t OrcTable<'t>,
    /// The table the generator's proof makes of the same image.
    proven: &'p OrcTable<'p>,
    image: &'i ElfImage<'i>,
    report: CheckReport,
}

impl Checker<'_, '_, '_> {
    fn compare(&mut self, addr: u64, expected: Expect) {
        let found = self.table.find(addr).map(|(_, e)| e);
        let got = Expect::from_entry(found);
        // The table may know less than the CFI (a row cut where it went stale), never more.
        if got == Expect::Undefined && matches!(expected, Expect::Call { .. }) {
            self.report.refused_addresses += 1;
            if self.proven.find(addr).is_some_and(|(_, p)| p.kind() == Some(Kind::Call)) {
                self.report.refused_where_proven += 1;
            }
            return;
        }
        // An x29-based row the generator anchored to sp (`generate::prove`): the same frame
        // said from sp. Every rule but the CFA must agree with the CFI here; the CFA (sp's
        // distance to it is not in the CFI) is held to the proof's below.
        if let (
            Expect::Call { cfa_on_fp: false, fp, ra, signal, .. },
            Expect::Call { cfa_on_fp: true, fp: efp, ra: era, signal: esig, .. },
        ) = (got, expected)
            && (fp, ra, signal) == (efp, era, esig)
        {
            self.report.anchored_addresses += 1;
            return;
        }
        if got != expected {
            self.report.mismatch_count += 1;
            if self.report.mismatches.len() < MAX_LISTED {
                self.report.mismatches.push(Mismatch { addr, symbol: self.image.symbolize(addr), expected, found });
            }
        }
    }
}

/// Which CFI section an FDE was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Debug,
    Eh,
}

/// One FDE as the checker reads it: gimli's own parse, kept whole so that its rows can be
/// evaluated when its turn comes (a row is large, an FDE is not).
struct Function<'a> {
    start: u64,
    end: u64,
    section: Section,
    fde: FrameDescriptionEntry<Slice<'a>>,
}

/// The image's CFI as gimli sees it, read here and not through the generator's reader
/// (`generate::fde`): a mistake there (a base address, a skipped FDE, a row cut short, a flag
/// taken from the wrong place) then shows up as a mismatch instead of being shared.
struct Cfi<'a> {
    debug: Option<DebugFrame<Slice<'a>>>,
    eh: Option<EhFrame<Slice<'a>>>,
    /// `.debug_frame` pointers are absolute: no base.
    debug_bases: BaseAddresses,
    /// `.eh_frame` pointers may be relative to the section itself, `.eh_frame_hdr`, `.text` or
    /// the GOT, each at its load address.
    eh_bases: BaseAddresses,
}

impl<'a> Cfi<'a> {
    fn new(image: &ElfImage<'a>) -> Result<Cfi<'a>, GenError> {
        let debug = image.debug_frame.map(|s| {
            let mut d = DebugFrame::new(s.data, LittleEndian);
            d.set_vendor(Vendor::AArch64);
            d
        });
        let eh = image.eh_frame.map(|s| {
            let mut e = EhFrame::new(s.data, LittleEndian);
            e.set_vendor(Vendor::AArch64);
            e
        });
        if debug.is_none() && eh.is_none() {
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
        Ok(Cfi { debug, eh, debug_bases: BaseAddresses::default(), eh_bases })
    }

    /// Every FDE of both sections whose non-empty range lies in executable text (a linked image
    /// keeps discarded functions' FDEs at address 0), sorted by range, `.debug_frame` first
    /// where two ranges are equal.
    fn functions(&self, image: &ElfImage<'_>) -> Result<Vec<Function<'a>>, GenError> {
        let mut out = Vec::new();
        if let Some(s) = &self.debug {
            read_fdes(s, &self.debug_bases, Section::Debug, image, &mut out)?;
        }
        if let Some(s) = &self.eh {
            read_fdes(s, &self.eh_bases, Section::Eh, image, &mut out)?;
        }
        out.sort_by_key(|f| (f.start, f.end));
        Ok(out)
    }

    /// What the CFI says at each instruction of `f`: `(address, expectation)` for every
    /// 4-byte address its rows cover, clipped to its range.
    fn expectations(
        &self,
        f: &Function<'a>,
        ctx: &mut UnwindContext<usize>,
        mut each: impl FnMut(u64, Expect),
    ) -> Result<(), GenError> {
        let signal = f.fde.cie().is_signal_trampoline();
        let mut step = |row: &UnwindTableRow<usize>| {
            let expected = Expect::from_row(row, signal);
            for addr in (row.start_address().max(f.start)..row.end_address().min(f.end)).step_by(INSN as usize) {
                each(addr, expected);
            }
        };
        match (f.section, &self.debug, &self.eh) {
            (Section::Debug, Some(s), _) => each_row(s, &self.debug_bases, ctx, &f.fde, ".debug_frame", &mut step),
            (Section::Eh, _, Some(s)) => each_row(s, &self.eh_bases, ctx, &f.fde, ".eh_frame", &mut step),
            _ => Ok(()),
        }
    }
}

fn name(section: Section) -> &'static str {
    match section {
        Section::Debug => ".debug_frame",
        Section::Eh => ".eh_frame",
    }
}

/// The FDEs of one section, each parsed with its CIE by gimli.
fn read_fdes<'a, S: UnwindSection<Slice<'a>>>(
    s: &S,
    bases: &BaseAddresses,
    section: Section,
    image: &ElfImage<'_>,
    out: &mut Vec<Function<'a>>,
) -> Result<(), GenError>
where
    S::Offset: UnwindOffset<usize>,
{
    let err = |offset: usize| move |source| GenError::Cfi { section: name(section), offset: offset as u64, source };
    let mut entries = s.entries(bases);
    let mut at = 0;
    while let Some(entry) = entries.next().map_err(err(at))? {
        let CieOrFde::Fde(partial) = entry else { continue };
        let fde = partial.parse(S::cie_from_offset).map_err(err(at))?;
        at = fde.offset();
        let (start, end) = (fde.initial_address(), fde.end_address());
        if start < end && image.is_executable(start, end) {
            out.push(Function { start, end, section, fde });
        }
    }
    Ok(())
}

/// gimli's rows of one FDE (`UnwindTable`), in order.
fn each_row<'a, S: UnwindSection<Slice<'a>>>(
    s: &S,
    bases: &BaseAddresses,
    ctx: &mut UnwindContext<usize>,
    fde: &FrameDescriptionEntry<Slice<'a>>,
    section: &'static str,
    f: &mut impl FnMut(&UnwindTableRow<usize>),
) -> Result<(), GenError>
where
    S::Offset: UnwindOffset<usize>,
{
    let err = |source| GenError::Cfi { section, offset: fde.offset() as u64, source };
    let mut table = UnwindTable::new(s, bases, ctx, fde).map_err(err)?;
    while let Some(row) = table.next_row().map_err(err)? {
        f(row);
    }
    Ok(())
}

/// Compares `table` with the CFI of `image` at every instruction address of executable text.
pub fn check(image: &ElfImage<'_>, table: &OrcTable<'_>) -> Result<CheckReport, GenError> {
    let cfi = Cfi::new(image)?;
    let functions = cfi.functions(image)?;
    // The generator's proof of the same image (and the rows it derives for functions without
    // CFI from their instructions), to hold the table's claims to along control flow.
    let generated = super::generate(image)?;
    let proven_bytes = generated.to_file_bytes()?;
    let proven = crate::TableFile::parse(&proven_bytes)?.table;
    let report = CheckReport { proof: generated.stats.proof, derived: generated.stats.derived, ..Default::default() };
    let mut checker = Checker { table, proven: &proven, image, report };
    let mut ctx = Box::new(UnwindContext::new());

    // Functions whose ranges overlap form one cluster, `[start, end)`. A cluster of one is
    // compared row by row. In a larger one (the same function in both sections, or two
    // descriptions of overlapping code) the CFI holds only where every member says the same
    // thing at every address (exact duplicates behave as one); otherwise nothing is trusted and
    // the table must say UNDEFINED over the whole cluster.
    let mut covered: Vec<(u64, u64)> = Vec::new();
    let mut rest = functions.as_slice();
    while let Some(first) = rest.first() {
        let (start, mut end, mut n) = (first.start, first.end, 1);
        while let Some(next) = rest.get(n).filter(|f| f.start < end) {
            end = end.max(next.end);
            n += 1;
        }
        let (cluster, tail) = rest.split_at(n);
        rest = tail;
        covered.push((start, end));
        if let [only] = cluster {
            cfi.expectations(only, &mut ctx, |addr, expected| {
                checker.report.cfi_addresses += 1;
                checker.compare(addr, expected);
            })?;
            continue;
        }
        let slots = usize::try_from((end - start).div_ceil(INSN)).unwrap_or(0);
        let mut members: Vec<Vec<Option<Expect>>> = Vec::with_capacity(cluster.len());
        for f in cluster {
            let mut says = vec![None; slots];
            cfi.expectations(f, &mut ctx, |addr, expected| {
                if let Some(slot) = usize::try_from((addr - start) / INSN).ok().and_then(|k| says.get_mut(k)) {
                    *slot = Some(expected);
                }
            })?;
            members.push(says);
        }
        let agree = members.windows(2).all(|w| w[0] == w[1]);
        for (k, addr) in (start..end).step_by(INSN as usize).enumerate() {
            checker.report.cfi_addresses += 1;
            let expected = match members.first().and_then(|m| m.get(k)).copied().flatten() {
                Some(e) if agree => e,
                _ => Expect::Undefined,
            };
            checker.compare(addr, expected);
        }
    }

    // Text that no FDE covers must not be covered by the table either, but for the rows the
    // generator derives from the instructions of functions without CFI.
    for &(s, e) in &image.exec_ranges {
        let mut addr = s;
        while addr < e {
            let i = covered.partition_point(|r| r.1 <= addr);
            match covered.get(i) {
                Some(&(cs, ce)) if cs <= addr => addr = ce,
                next => {
                    let stop = next.map_or(e, |r| r.0.min(e));
                    while addr < stop {
                        checker.report.gap_addresses += 1;
                        let claim = table.find(addr).map(|(_, e)| e);
                        let derived = proven.find(addr).map(|(_, e)| e).filter(|e| e.kind() == Some(Kind::Call));
                        if derived.is_some() && claim == derived {
                            checker.report.derived_addresses += 1;
                        } else {
                            checker.compare(addr, Expect::Undefined);
                        }
                        addr += INSN;
                    }
                }
            }
        }
    }
    // Every call frame the table claims must be what the proof holds at that pc (or its
    // x29-based form, where the proof anchored it to sp).
    for &(s, e) in &image.exec_ranges {
        for addr in (s..e).step_by(INSN as usize) {
            let Some((_, claim)) = table.find(addr) else { continue };
            if claim.kind() != Some(Kind::Call) {
                continue;
            }
            let holds = proven.find(addr).map(|(_, p)| p);
            let same_frame = |p: OrcEntry| {
                p == claim
                    || (claim.sp_reg() == Some(Reg::Fp)
                        && p.sp_reg() == Some(Reg::Sp)
                        && (p.fp_reg(), p.fp_offset, p.ra_reg(), p.ra_offset, p.signal())
                            == (claim.fp_reg(), claim.fp_offset, claim.ra_reg(), claim.ra_offset, claim.signal()))
            };
            if !holds.is_some_and(same_frame) {
                checker.report.contradicted_addresses += 1;
                checker.report.mismatch_count += 1;
                if checker.report.mismatches.len() < MAX_LISTED {
                    let expected = Expect::from_entry(holds);
                    checker.report.mismatches.push(Mismatch {
                        addr,
                        symbol: image.symbolize(addr),
                        expected,
                        found: Some(claim),
                    });
                }
            }
        }
    }
    Ok(checker.report)
}
