//! Seeded synthetic kernel stacks: a program of functions with varied prologue shapes and its ORC
//! table, and stacks executed through it (`orcwalk::testkit::Builder`: calls, exceptions at any
//! instruction, IRQ-stack switches, ftrace-graph trampolines, PAC-signed return addresses), some
//! corrupted on purpose. Ground truth is known by construction; for a corrupted sample it stays
//! the uncorrupted truth, so a corrupted stack may only ever be unreliable or exactly right.

use std::collections::BTreeMap;

use orc_format::{Kind, OrcEntry, Reg};
use orcwalk::testkit::{self as tk, Builder, FUNC_LEN, Func, Shape};
use orcwalk::{KernelLayout, StackInfo, Start};

use crate::dump::{Dump, Region, SampleInfo};

/// A small deterministic generator (SplitMix64): the corpus must be reproducible from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// The synthetic program: functions at fixed slots with seeded shapes, and its ORC rows.
#[derive(Clone, Debug)]
pub struct Program {
    pub funcs: Vec<Func>,
}

impl Program {
    pub fn new(rng: &mut Rng) -> Program {
        let funcs = (1..=40)
            .map(|slot| {
                let shape = match rng.below(12) {
                    0 => Shape::Leaf,
                    1 => Shape::NoRecord,
                    2 => Shape::BigFrame(4096),
                    // Shrink-wrapped (a frameless early return inside the body) and stack-tagged
                    // (`st2g sp, [sp], #t` in the epilogue): the shapes an address-order table
                    // generator gets wrong.
                    3 => Shape::EarlyReturn(16 * (1 + rng.below(16)) as u16),
                    4 => Shape::TagStore(16 * (1 + rng.below(4)) as u16),
                    _ => Shape::Framed(16 * (1 + rng.below(16)) as u16),
                };
                Func::at(slot, shape)
            })
            .collect();
        Program { funcs }
    }

    pub fn rows(&self) -> Vec<(u64, OrcEntry)> {
        Self::with_switch(self.funcs.iter().flat_map(|f| f.rows()).collect())
    }

    /// The functions' rows and the IRQ-stack switch's.
    fn with_switch(mut rows: Vec<(u64, OrcEntry)>) -> Vec<(u64, OrcEntry)> {
        rows.push((tk::VIA, OrcEntry::new(Kind::Call, Reg::Fp, 16, Reg::PrevSp, -16, Reg::PrevSp, -8, false)));
        rows.push((tk::VIA + 0x40, OrcEntry::UNDEFINED));
        rows
    }

    /// The table file bytes for this program: exact by construction, so marked proven.
    pub fn table_file(&self) -> Vec<u8> {
        Self::file(self.rows(), true)
    }

    /// A table with a gap: every fifth function's rows are missing, as for code without CFI.
    pub fn gap_table_file(&self) -> Vec<u8> {
        let kept = Program {
            funcs: self.funcs.iter().copied().enumerate().filter(|(i, _)| i % 5 != 2).map(|(_, f)| f).collect(),
        };
        Self::file(kept.rows(), true)
    }

    /// A stale table (from "another build"): every fourth framed function's frame is 16 bytes
    /// larger than the code's. It carries the same image id, the worst case.
    pub fn stale_table_file(&self) -> Vec<u8> {
        let funcs = self
            .funcs
            .iter()
            .enumerate()
            .map(|(i, f)| match f.shape {
                Shape::Framed(n) if i % 4 == 1 => Func { base: f.base, shape: Shape::Framed(n + 16) },
                _ => *f,
            })
            .collect();
        // Marked proven: the worst case, a wrong table that claims to be right.
        Self::file(Program { funcs }.rows(), true)
    }

    /// The table an address-order (unproven) generator makes of this program, with the right
    /// image id: the body's row kept over every early return and after every tag store.
    pub fn unproven_table_file(&self) -> Vec<u8> {
        Self::file(Self::with_switch(self.funcs.iter().flat_map(|f| f.unproven_rows()).collect()), false)
    }

    fn file(rows: Vec<(u64, OrcEntry)>, proven: bool) -> Vec<u8> {
        let ips: Vec<u64> = rows.iter().map(|r| r.0).collect();
        let entries: Vec<OrcEntry> = rows.iter().map(|r| r.1).collect();
        orc_format::file::write_with(&ips, &entries, &synthetic_id(), true, proven).unwrap_or_default()
    }

    /// The shape of the function containing `pc`.
    pub fn shape_of(&self, pc: u64) -> Option<Shape> {
        self.funcs.iter().find(|f| f.base <= pc && pc < f.base + FUNC_LEN).map(|f| f.shape)
    }

    fn caller(&self, rng: &mut Rng) -> Func {
        loop {
            let f = self.funcs[rng.below(self.funcs.len() as u64) as usize];
            if f.shape != Shape::Leaf {
                return f;
            }
        }
    }

    fn any(&self, rng: &mut Rng) -> Func {
        self.funcs[rng.below(self.funcs.len() as u64) as usize]
    }
}

/// The image id of every synthetic program, tables and dumps alike: a stamp in the build-id role.
pub fn synthetic_id() -> orc_format::ImageId {
    orc_format::ImageId::build_id(b"orcwalk-synthetic")
}

/// What was done to a sample on purpose (the list of corruptions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    WrongSavedFp,
    MissingRecord,
    FpLoop,
    FpOffStack,
    UnknownText,
    TrampolineWithoutRecovery,
    /// The dump names `program-gap.orc`.
    OrcGap,
    /// The dump names `program-stale.orc`.
    StaleOrc,
    /// The dump names `program-unproven.orc`.
    UnprovenOrc,
}

/// The table files a corpus directory holds, by the name dumps use.
pub fn tables(p: &Program) -> [(&'static str, Vec<u8>); 4] {
    [
        ("program.orc", p.table_file()),
        ("program-gap.orc", p.gap_table_file()),
        ("program-stale.orc", p.stale_table_file()),
        ("program-unproven.orc", p.unproven_table_file()),
    ]
}

/// One generated sample: the dump and what was corrupted, if anything.
#[derive(Debug)]
pub struct Sample {
    pub dump: Dump,
    pub corruption: Option<Corruption>,
}

const LAYOUTS: [KernelLayout; 3] = [KernelLayout::V6_12, KernelLayout::V6_13, KernelLayout::GENERIC_ENTRY];

/// Between 1 and `max` calls of random non-leaf functions.
fn calls(b: &mut Builder, p: &Program, rng: &mut Rng, max: u64) {
    let n = 1 + rng.below(max);
    for _ in 0..n {
        b.call(p.caller(rng));
    }
}

/// An instruction of `f` to interrupt: any, or (one time in four, where `f` has them) one whose
/// row an address-order generator gets wrong.
fn interrupt_at(f: Func, rng: &mut Rng) -> u64 {
    let wrong = tk::unproven_pcs(f.shape);
    if !wrong.is_empty() && rng.chance(4) {
        return wrong[rng.below(wrong.len() as u64) as usize];
    }
    4 * rng.below(FUNC_LEN / 4)
}

/// Generates one kernel-shaped sample.
pub fn sample(p: &Program, rng: &mut Rng, image_path: &str) -> Sample {
    loop {
        if let Some(s) = attempt(p, rng, image_path) {
            return s;
        }
    }
}

/// One try; `None` when the executed stack would not fit its stacks (a real kernel would have
/// overflowed, not produced a sample).
fn attempt(p: &Program, rng: &mut Rng, image_path: &str) -> Option<Sample> {
    let layout = LAYOUTS[rng.below(3) as usize];
    let mut b = Builder::new(layout);
    calls(&mut b, p, rng, 8);
    if rng.chance(2) {
        // Earlier, deeper calls that returned: their records stay below sp, stale.
        let fs = [p.caller(rng), p.caller(rng)];
        b.returned(&fs);
    }
    if rng.chance(2) {
        let f = p.any(rng);
        let off = interrupt_at(f, rng);
        let regs = b.interrupted(f, off);
        b.exception(regs);
        calls(&mut b, p, rng, 4);
        if rng.chance(3) {
            b.switch_to_irq(tk::VIA + 0x10);
            calls(&mut b, p, rng, 3);
        }
    }
    let start = if rng.chance(3) {
        let f = p.any(rng);
        let off = interrupt_at(f, rng);
        b.interrupted(f, off)
    } else {
        b.start_call()
    };
    if !fits(&b) {
        return None;
    }
    let truth = b.expected();

    // Records: a return-address slot with the saved fp right below it.
    let records: Vec<u64> =
        b.ra_slots.keys().filter(|&&s| s % 16 == 8 && b.mem.0.contains_key(&(s - 8))).map(|s| s - 8).collect();
    let mut recover = BTreeMap::new();
    let mut trampoline = None;
    if rng.chance(5) && !records.is_empty() {
        let r = records[rng.below(records.len() as u64) as usize];
        let (saved_fp, ra) = (b.mem.0[&r], b.mem.0[&(r + 8)]);
        b.w(r + 8, tk::TRAMPOLINE);
        recover.insert(saved_fp, ra);
        trampoline = Some(saved_fp);
    }
    if rng.chance(4) {
        // PAC-sign every saved return address (bits 48..54 and 56..63; bit 55 stays).
        for slot in b.ra_slots.keys().copied().collect::<Vec<_>>() {
            if let Some(v) = b.mem.0.get(&slot).copied().filter(|v| *v >= tk::TEXT && *v < tk::TEXT_END) {
                b.w(slot, v ^ (rng.next_u64() & 0x7f7f_0000_0000_0000));
            }
        }
    }
    let mut image_path = image_path.to_string();
    let corruption = if rng.chance(8) {
        let (kind, name) = match rng.below(3) {
            0 => (Corruption::OrcGap, "program-gap.orc"),
            1 => (Corruption::StaleOrc, "program-stale.orc"),
            _ => (Corruption::UnprovenOrc, "program-unproven.orc"),
        };
        image_path = name.to_string();
        Some(kind)
    } else if rng.chance(3) && !records.is_empty() {
        let r = records[rng.below(records.len() as u64) as usize];
        let kind = match rng.below(6) {
            5 if trampoline.is_some() => Corruption::TrampolineWithoutRecovery,
            0 => Corruption::MissingRecord,
            1 => Corruption::FpLoop,
            2 => Corruption::FpOffStack,
            3 => Corruption::UnknownText,
            _ => Corruption::WrongSavedFp,
        };
        match kind {
            Corruption::WrongSavedFp => {
                let v = b.mem.0[&r];
                b.w(r, v.wrapping_add(16 * (1 + rng.below(4))));
            }
            Corruption::MissingRecord => {
                b.w(r, 0);
                b.w(r + 8, 0);
            }
            Corruption::FpLoop => b.w(r, r),
            Corruption::FpOffStack => b.w(r, 0xffff_8000_9000_0000 + 16 * rng.below(1024)),
            Corruption::UnknownText => b.w(r + 8, 0xffff_8000_c000_0000 + 4 * rng.below(1024)),
            Corruption::TrampolineWithoutRecovery => recover.clear(),
            Corruption::OrcGap | Corruption::StaleOrc | Corruption::UnprovenOrc => {}
        }
        Some(kind)
    } else {
        None
    };

    let dump = into_dump(&b, layout, start, truth, recover.into_iter().collect(), image_path);
    Some(Sample { dump, corruption })
}

/// Whether everything the builder wrote, and its sp, lies on a stack with room to spare.
fn fits(b: &Builder) -> bool {
    let fits = |a: u64| tk::stacks().iter().any(|s| s.low + 0x100 <= a && a < s.high);
    fits(b.sp) && b.mem.0.keys().all(|&a| fits(a))
}

/// A blocked task `depth` calls deep, as livepatch checks it: a call-site start, no exception,
/// nothing corrupted. `None` when the stack would not fit.
pub fn blocked_task(p: &Program, rng: &mut Rng, depth: u32) -> Option<Dump> {
    let layout = KernelLayout::V6_13;
    let mut b = Builder::new(layout);
    for _ in 0..depth {
        b.call(p.caller(rng));
    }
    let start = b.start_call();
    if !fits(&b) {
        return None;
    }
    let truth = b.expected();
    Some(into_dump(&b, layout, start, truth, Vec::new(), "program.orc".to_string()))
}

/// The dump of what the builder executed.
fn into_dump(
    b: &Builder,
    layout: KernelLayout,
    start: Start,
    truth: Vec<u64>,
    recover: Vec<(u64, u64)>,
    image_path: String,
) -> Dump {
    let stacks = tk::stacks().to_vec();
    let regions = stacks.iter().filter_map(|s| region(b, s)).collect();
    let mut info = SampleInfo::kernel(
        layout,
        (tk::TEXT, tk::TEXT_END),
        (tk::ENTRY, tk::ENTRY + 0x100),
        start,
        stacks,
        synthetic_id(),
        image_path,
    );
    (info.fgraph_return, info.truth, info.truth_complete, info.recover) = (tk::TRAMPOLINE, truth, true, recover);
    let mut regs = [0u64; 34];
    (regs[29], regs[30], regs[31], regs[32], regs[33]) = (info.fp, info.lr, info.sp, info.pc, 0x3c5);
    Dump { regs, info, regions }
}

/// The used part of one stack (from just below its lowest written word to its top), with
/// unwritten words holding the builder's poison, as a real stack holds stale data.
fn region(b: &Builder, s: &StackInfo) -> Option<Region> {
    let lowest = *b.mem.0.range(s.low..s.high).next()?.0;
    let start = (lowest.saturating_sub(0x100) & !0xff).max(s.low);
    let mut data = Vec::with_capacity((s.high - start) as usize);
    let mut addr = start;
    while addr < s.high {
        data.extend_from_slice(&b.mem.0.get(&addr).copied().unwrap_or(tk::POISON).to_le_bytes());
        addr += 8;
    }
    Some(Region { vaddr: start, data, exec: false })
}
