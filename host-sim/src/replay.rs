//! Replaying a dump through the unwinder and judging the verdict against the dump's truth.

use std::collections::BTreeMap;

use orc_format::TableFile;
use orcwalk::code::TableCode;
use orcwalk::frame::Witness;
use orcwalk::recovery::{ReturnRecovery, Trampoline};
use orcwalk::{Config, EndRule, Frame, FrameKind, Policy, Reason, StackList, Verdict, walk};
use serde::{Deserialize, Serialize};

use crate::dump::{Dump, SampleInfo};

/// Trampoline recovery from the dump's note (fp -> original return address).
struct NoteRecovery<'a> {
    dump: &'a Dump,
}

impl ReturnRecovery for NoteRecovery<'_> {
    fn trampoline(&self, pc: u64) -> Option<Trampoline> {
        let i = &self.dump.info;
        if pc != 0 && pc == i.fgraph_return {
            Some(Trampoline::FgraphReturn)
        } else if pc != 0 && pc == i.kretprobe_trampoline {
            Some(Trampoline::Kretprobe)
        } else {
            None
        }
    }
    fn recover(&self, _which: Trampoline, fp: u64, _pc: u64) -> Option<u64> {
        self.dump.info.recover.iter().find(|(k, _)| *k == fp).map(|(_, ra)| *ra)
    }
}

/// How a verdict compares with the truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Reliable and every frame equals the truth.
    Correct,
    /// Unreliable: costs a retry, never safety.
    Unreliable(Reason),
    /// Reliable but the frames differ from the truth: the bug that must never ship.
    FalseReliable,
    /// Reliable, but the truth is incomplete, so only its prefix could be compared (and matched).
    UnprovenTruth,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub verdict: Verdict,
    pub frames: Vec<(u64, FrameKind)>,
    /// The frame pointer in effect for each frame (`orcwalk::Frame::fp`): where its frame record lies.
    pub fps: Vec<u64>,
    /// What proved each frame (`frames[k]` was found by a step proven by `witnesses[k]`).
    pub witnesses: Vec<Witness>,
    pub judgement: Judgement,
}

/// How much proof a replay asks for: the default accepts single-witness frames from proven
/// rows (DESIGN §7), `strict` requires two witnesses for every frame (`orcwalk::Config::strict`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    pub strict: bool,
}

impl Mode {
    pub const STRICT: Mode = Mode { strict: true };
}

/// The walk's configuration for a sample: kernel or user end rule, its layout and stacks.
pub fn config(i: &SampleInfo, policy: Policy, mode: Mode) -> Config {
    Config {
        policy,
        end: if i.kernel { EndRule::FinalRecord } else { EndRule::OrcEndOfStack },
        layout: i.layout,
        max_frames: 100,
        task_stack_only: i.task_stack_only,
        strict: mode.strict,
    }
}

/// The sample's text and entry-text ranges with `table` (and whether its rows are proven).
pub fn code<'a>(i: &'a SampleInfo, table: TableFile<'a>) -> TableCode<'a> {
    TableCode {
        table: table.table,
        text_start: i.text.0,
        text_end: i.text.1,
        entry_start: i.entry.0,
        entry_end: i.entry.1,
        text: None,
        proven: table.proven(),
        sigreturn: i.sigreturn.as_ref(),
        ftrace: None,
    }
}

/// The table file for a sample: parsed, and refused unless it was made from the image the
/// sample was taken from (`TableFile::matches`: a table or sample without an id matches
/// nothing). A table of other code, even one instruction apart, walks wrong with every check
/// passing, so replay never pairs them.
pub fn table_for<'a>(i: &SampleInfo, bytes: &'a [u8]) -> Result<TableFile<'a>, String> {
    let file = TableFile::parse(bytes).map_err(|e| e.to_string())?;
    if !file.matches(&i.image_id) {
        return Err(format!(
            "table made from image id {} is not for this sample, taken from image id {}{}",
            file.image_id(),
            i.image_id,
            if file.image_id().is_some() && i.image_id.is_some() { "" } else { " (an empty id matches nothing)" }
        ));
    }
    Ok(file)
}

/// The text of the program a table was made from, when it lies beside the table as
/// `program.elf` (the user corpora) and is that very image; `None` otherwise (the kernel
/// corpora ship no vmlinux).
pub fn text_beside(
    table_path: &std::path::Path,
    table: &TableFile<'_>,
) -> Result<Option<crate::text::ImageText>, String> {
    let elf = table_path.with_file_name("program.elf");
    let Ok(bytes) = std::fs::read(&elf) else { return Ok(None) };
    let file = object::File::parse(bytes.as_slice()).map_err(|e| format!("{}: {e}", elf.display()))?;
    if !table.matches(&orc_format::generate::elf::image_id(&file)) {
        return Err(format!("{}: not the image {} was made from", elf.display(), table_path.display()));
    }
    crate::text::ImageText::from_elf(&bytes).map(Some).map_err(|e| format!("{}: {e}", elf.display()))
}

/// Walks the dump's stack with `table` under `policy` and judges the result.
pub fn replay(dump: &Dump, table: TableFile<'_>, policy: Policy) -> Outcome {
    replay_with(dump, table, policy, Mode::default())
}

/// `replay` in the given mode (default or strict).
pub fn replay_with(dump: &Dump, table: TableFile<'_>, policy: Policy, mode: Mode) -> Outcome {
    replay_text(dump, table, None, policy, mode)
}

/// `replay_with` with the image's text, so the walk also checks that every return address
/// follows a call to the function it returns from.
pub fn replay_text(
    dump: &Dump,
    table: TableFile<'_>,
    text: Option<orcwalk::code::Text<'_>>,
    policy: Policy,
    mode: Mode,
) -> Outcome {
    let i = &dump.info;
    let (cfg, code) = (config(i, policy, mode), TableCode { text: text.as_ref(), ..code(i, table) });
    let start = i.start();
    let (mut frames, mut fps, mut witnesses) = (Vec::new(), Vec::new(), Vec::new());
    let verdict =
        walk(start, &cfg, dump, &StackList { stacks: &i.stacks }, &code, &NoteRecovery { dump }, |f: &Frame| {
            frames.push((f.pc, f.kind));
            fps.push(f.fp);
            witnesses.push(f.witness);
            true
        });
    let pcs: Vec<u64> = frames.iter().map(|f| f.0).collect();
    let judgement = match verdict {
        Verdict::Unreliable { reason, .. } => Judgement::Unreliable(reason),
        Verdict::Reliable if i.truth_complete && pcs == i.truth => Judgement::Correct,
        Verdict::Reliable if !i.truth_complete && pcs.starts_with(&i.truth) => Judgement::UnprovenTruth,
        Verdict::Reliable => Judgement::FalseReliable,
    };
    Outcome { verdict, frames, fps, witnesses, judgement }
}

/// Counts over a set of replays.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub samples: u64,
    pub truth_complete: u64,
    pub correct: u64,
    pub false_reliable: u64,
    pub unproven: u64,
    /// Unreliable verdicts by reason (`Reason::as_str`, the C ABI's reason names).
    pub unreliable: BTreeMap<String, u64>,
    /// Over the frames of reliable and correct verdicts (the start excluded): found with two
    /// witnesses, with the frame-pointer chain alone, with a proven ORC row alone.
    pub two_witness: u64,
    pub fp_witness: u64,
    pub orc_witness: u64,
    /// Reliable and correct verdicts with at least one single-witness frame.
    pub single_witness_stacks: u64,
}

impl Summary {
    /// `add`, counting the witnesses of a correct verdict's frames.
    pub fn add_outcome(&mut self, truth_complete: bool, o: &Outcome) {
        self.add(truth_complete, o.judgement);
        if o.judgement == Judgement::Correct {
            let count = |w: Witness| o.witnesses.iter().filter(|&&x| x == w).count() as u64;
            self.two_witness += count(Witness::Two);
            self.fp_witness += count(Witness::FramePointer);
            self.orc_witness += count(Witness::Orc);
            self.single_witness_stacks +=
                u64::from(o.witnesses.iter().any(|w| matches!(w, Witness::FramePointer | Witness::Orc)));
        }
    }

    pub fn add(&mut self, truth_complete: bool, j: Judgement) {
        self.samples += 1;
        self.truth_complete += u64::from(truth_complete);
        match j {
            Judgement::Correct => self.correct += 1,
            Judgement::FalseReliable => self.false_reliable += 1,
            Judgement::UnprovenTruth => self.unproven += 1,
            Judgement::Unreliable(r) => *self.unreliable.entry(r.as_str().to_string()).or_default() += 1,
        }
    }

    /// Reliable and correct, over samples whose truth is complete.
    pub fn coverage(&self) -> f64 {
        if self.truth_complete == 0 { 0.0 } else { self.correct as f64 / self.truth_complete as f64 }
    }
}

/// What an unvalidated frame-pointer unwinder (perf's `--call-graph fp`) reports for a user
/// sample: the pc, then the return address of every record on the x29 chain until a zero fp.
/// `None` when the chain leaves the dumped stack or loops. The baseline orcwalk's checks are
/// measured against: how often the plain chain would have been wrong.
pub fn fp_chain(dump: &Dump) -> Option<Vec<u64>> {
    let mut pcs = vec![dump.info.pc];
    let mut fp = dump.info.fp;
    let mut floor = dump.info.sp;
    while fp != 0 {
        if pcs.len() > 100 || fp < floor || !fp.is_multiple_of(8) {
            return None;
        }
        let next = dump.read_u64(fp)?;
        pcs.push(dump.read_u64(fp.checked_add(8)?)?);
        floor = fp.checked_add(16)?;
        fp = next;
    }
    Some(pcs)
}

/// Counts of the plain frame-pointer chain against the truth (complete truths only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSummary {
    pub correct: u64,
    pub wrong: u64,
    pub failed: u64,
}

impl ChainSummary {
    pub fn add(&mut self, dump: &Dump) {
        if !dump.info.truth_complete {
            return;
        }
        match fp_chain(dump) {
            Some(pcs) if pcs == dump.info.truth => self.correct += 1,
            Some(_) => self.wrong += 1,
            None => self.failed += 1,
        }
    }
}
