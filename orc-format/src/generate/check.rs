//! `check ELF TABLE`: at every instruction of covered text, gimli's CFI row and the table's entry
//! must say the same thing, or the table must say UNDEFINED (it may refuse a row it found stale,
//! never claim a rule the CFI does not); in text without CFI the table must say nothing (or
//! UNDEFINED).
//!
//! Then along control flow: every call frame the table claims must hold on every path into its
//! pc, by the generator's proof of the same image ([`super::prove`]): a table made by another
//! tool, or by an older generator that checked rows in address order, fails there.
//!
//! The comparison runs in the other direction from the generator: the table entry is decoded
//! back into rules ([`Expect::from_entry`]) and compared with rules read off gimli's row
//! ([`Expect::from_row`]), so a slip in the generator's mapping shows up as a mismatch here.

use std::collections::HashMap;
use std::fmt;

use gimli::{CfaRule, Register, RegisterRule, UnwindTableRow};

use super::GenError;
use super::elf::ElfImage;
use super::fde::{CfiSections, FdeHeader};
use crate::{Kind, OrcEntry, OrcTable, Reg};

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
    /// Addresses with a CFI rule where the table says UNDEFINED (stale rows cut): allowed.
    pub refused_addresses: u64,
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

struct Checker<'t, 'i> {
    table: &'t OrcTable<'t>,
    image: &'i ElfImage<'i>,
    report: CheckReport,
}

impl Checker<'_, '_> {
    fn compare(&mut self, addr: u64, expected: Expect) {
        let found = self.table.find(addr).map(|(_, e)| e);
        let got = Expect::from_entry(found);
        // The table may know less than the CFI (a row cut where it went stale), never more.
        if got == Expect::Undefined && matches!(expected, Expect::Call { .. }) {
            self.report.refused_addresses += 1;
            return;
        }
        // An x29-based row the generator anchored to sp (`generate::prove`): the same frame
        // said from sp. Everything but the CFA's base must still agree.
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

/// Groups of FDEs whose ranges overlap. Overlapping FDEs that are not exact duplicates must be
/// UNDEFINED over their union (the generator trusts neither); exact duplicates behave as one.
struct Clusters {
    of_fde: HashMap<(&'static str, u64), usize>,
    ranges: Vec<(u64, u64, usize)>,
}

fn clusters(mut headers: Vec<FdeHeader>) -> Clusters {
    headers.sort_by_key(|h| (h.start, h.end));
    let mut of_fde = HashMap::new();
    let mut ranges: Vec<(u64, u64, usize)> = Vec::new();
    for h in headers {
        match ranges.last_mut() {
            Some(last) if h.start < last.1 => {
                last.1 = last.1.max(h.end);
                last.2 += 1;
            }
            _ => ranges.push((h.start, h.end, 1)),
        }
        of_fde.insert((h.section, h.offset), ranges.len() - 1);
    }
    Clusters { of_fde, ranges }
}

/// Compares `table` with the CFI of `image` at every instruction address of executable text.
pub fn check(image: &ElfImage<'_>, table: &OrcTable<'_>) -> Result<CheckReport, GenError> {
    let sections = CfiSections::new(image)?;
    let mut headers = Vec::new();
    sections.for_each_fde(|h, _| {
        if image.is_executable(h.start, h.end)
            && headers.last().is_none_or(|l: &FdeHeader| l.offset != h.offset || l.section != h.section)
        {
            headers.push(*h);
        }
    })?;
    let clusters = clusters(headers);
    let mut checker = Checker { table, image, report: CheckReport::default() };
    // Expectations inside multi-FDE clusters, per member: address -> expectation.
    let mut shared: HashMap<usize, Vec<HashMap<u64, Expect>>> = HashMap::new();
    let mut current: Option<(&'static str, u64)> = None;

    sections.for_each_fde(|h, row| {
        let Some(&cluster) = clusters.of_fde.get(&(h.section, h.offset)) else { return };
        let expected = Expect::from_row(row, h.signal);
        let members = clusters.ranges.get(cluster).map_or(1, |r| r.2);
        let addrs = (row.start_address()..row.end_address().min(h.end)).step_by(INSN as usize);
        if members == 1 {
            for addr in addrs {
                checker.report.cfi_addresses += 1;
                checker.compare(addr, expected);
            }
        } else {
            let list = shared.entry(cluster).or_default();
            if current != Some((h.section, h.offset)) {
                list.push(HashMap::new());
                current = Some((h.section, h.offset));
            }
            if let Some(m) = list.last_mut() {
                m.extend(addrs.map(|a| (a, expected)));
            }
        }
    })?;

    for (cluster, members) in shared {
        let Some(&(start, end, _)) = clusters.ranges.get(cluster) else { continue };
        let identical = members.windows(2).all(|w| w[0] == w[1]);
        for addr in (start..end).step_by(INSN as usize) {
            checker.report.cfi_addresses += 1;
            let expected = match members.first().and_then(|m| m.get(&addr)) {
                Some(e) if identical => *e,
                _ => Expect::Undefined,
            };
            checker.compare(addr, expected);
        }
    }

    // Along control flow: the generator's proof of the same image (and the rows it derives for
    // functions without CFI from their instructions).
    let proven = super::generate(image)?;
    checker.report.proof = proven.stats.proof;
    checker.report.derived = proven.stats.derived.clone();
    let proven_bytes = proven.to_file_bytes()?;
    let proven = crate::TableFile::parse(&proven_bytes)?.table;

    // Text that no FDE covers must not be covered by the table either, but for the rows the
    // generator derives from the instructions of functions without CFI.
    for &(s, e) in &image.exec_ranges {
        let mut addr = s;
        while addr < e {
            let i = clusters.ranges.partition_point(|r| r.1 <= addr);
            match clusters.ranges.get(i) {
                Some(&(cs, ce, _)) if cs <= addr => addr = ce,
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
