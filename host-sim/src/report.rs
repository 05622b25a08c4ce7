//! What `replay` and `show` say, as people and programs read it. One set of types serves the
//! text output, `--json` (serde; the schema is docs/json.md) and `show --svg`: each is a view of
//! the same report, so none can say what the others do not.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use orcwalk::frame::Witness;
use orcwalk::{FrameKind, KernelLayout, Policy, Reason, StackKind, Verdict};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dump::Dump;
use crate::lines::{Lines, SourceLine};
use crate::replay::{ChainSummary, Judgement, Mode, Outcome, Summary, replay_text, table_for, text_beside};
use crate::symbols::Symbols;
use crate::text::ImageText;

/// The schema's version, the `version` field of every document: raised when a field changes
/// meaning or goes away (a new field may appear without it).
pub const VERSION: u32 = 1;

/// An address or register value; in JSON a hex string, `"0xffff800080010000"` (kernel addresses
/// are past the 2^53 a JSON number holds exactly in most readers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr(pub u64);

impl fmt::LowerHex for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:#x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Addr, D::Error> {
        let s = String::deserialize(d)?;
        s.strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .map(Addr)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a hex address \"0x…\", found {s:?}")))
    }
}

/// The unwinder's enums (its `no_std` crate knows nothing of serde) by name in JSON.
pub trait Named: Copy + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|x| x.name() == name)
    }
}

/// Reasons by the names the C ABI gives them (`orcwalk_reason_name`).
impl Named for Reason {
    const ALL: &'static [Reason] = &Reason::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Named for FrameKind {
    const ALL: &'static [FrameKind] =
        &[FrameKind::Start, FrameKind::Return, FrameKind::Recovered, FrameKind::Exception, FrameKind::LinkRegister];
    fn name(self) -> &'static str {
        match self {
            FrameKind::Start => "start",
            FrameKind::Return => "return",
            FrameKind::Recovered => "recovered",
            FrameKind::Exception => "exception",
            FrameKind::LinkRegister => "link_register",
        }
    }
}

impl Named for Witness {
    const ALL: &'static [Witness] = &[Witness::Given, Witness::Two, Witness::FramePointer, Witness::Orc];
    fn name(self) -> &'static str {
        match self {
            Witness::Given => "given",
            Witness::Two => "two",
            Witness::FramePointer => "frame_pointer",
            Witness::Orc => "orc",
        }
    }
}

impl Named for Policy {
    const ALL: &'static [Policy] = &[Policy::Orcwalk, Policy::Mainline];
    fn name(self) -> &'static str {
        match self {
            Policy::Orcwalk => "orcwalk",
            Policy::Mainline => "mainline",
        }
    }
}

impl Named for StackKind {
    const ALL: &'static [StackKind] = &[
        StackKind::Task,
        StackKind::Irq,
        StackKind::Overflow,
        StackKind::SdeiNormal,
        StackKind::SdeiCritical,
        StackKind::Efi,
    ];
    fn name(self) -> &'static str {
        match self {
            StackKind::Task => "task",
            StackKind::Irq => "irq",
            StackKind::Overflow => "overflow",
            StackKind::SdeiNormal => "sdei_normal",
            StackKind::SdeiCritical => "sdei_critical",
            StackKind::Efi => "efi",
        }
    }
}

/// `#[serde(with = "named")]` for a [`Named`] field.
mod named {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Named;

    pub fn serialize<T: Named, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }

    pub fn deserialize<'de, T: Named, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let name = String::deserialize(d)?;
        T::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = T::ALL.iter().map(|x| x.name()).collect();
            serde::de::Error::custom(format!("unknown name {name:?} (known: {})", known.join(", ")))
        })
    }
}

/// One frame of a walk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameReport {
    pub pc: Addr,
    /// `name+0xoff/0xsize`, as the kernel's `%pS` prints it; `null` where no symbol is at hand.
    pub function: Option<String>,
    /// The frame pointer in effect for the frame: where its frame record lies (0: none yet).
    pub fp: Addr,
    #[serde(with = "named")]
    pub kind: FrameKind,
    /// What proved the step that found this frame: `two` witnesses, one (`frame_pointer` or
    /// `orc`), or none for the start (`given`).
    #[serde(with = "named")]
    pub witness: Witness,
    /// The truth's pc at this depth; `null` past the truth's end.
    pub truth: Option<Addr>,
    /// The source line, where debug info is at hand (`program.elf`, `--elf`, `--vmlinux`):
    /// of the pc itself when it was interrupted, of the call (`pc - 4`) for a return address.
    #[serde(default)]
    pub source: Option<SourceLine>,
}

/// A walk's verdict judged against the truth; an unreliable one says why and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "judgement", rename_all = "snake_case")]
pub enum VerdictReport {
    /// Reliable, and every frame equals the truth.
    Correct,
    /// Reliable; the truth is incomplete and its prefix matched.
    UnprovenTruth,
    /// Reliable, but the frames differ from the truth: the bug that must never ship.
    FalseReliable,
    /// The step from the frame at `pc`, `fp` (the last one listed) could not be proven.
    Unreliable {
        #[serde(with = "named")]
        reason: Reason,
        pc: Addr,
        function: Option<String>,
        fp: Addr,
    },
}

impl fmt::Display for VerdictReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerdictReport::Correct => f.write_str("reliable, matches truth"),
            VerdictReport::UnprovenTruth => f.write_str("reliable, truth incomplete"),
            VerdictReport::FalseReliable => f.write_str("FALSE-RELIABLE: frames differ from truth"),
            VerdictReport::Unreliable { reason, pc, function, fp } => {
                write!(f, "unreliable: {} at pc {pc:#x}{} fp {fp:#x}", reason.as_str(), spaced(function))
            }
        }
    }
}

/// `" name+off/size"`, or nothing.
fn spaced(function: &Option<String>) -> String {
    function.as_ref().map_or(String::new(), |n| format!(" {n}"))
}

/// One dump's walk under one policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpReport {
    pub dump: PathBuf,
    pub kernel: bool,
    #[serde(with = "named")]
    pub policy: Policy,
    pub strict: bool,
    pub truth_complete: bool,
    pub verdict: VerdictReport,
    pub frames: Vec<FrameReport>,
}

impl DumpReport {
    /// The report of `out`, the walk of `dump` (read from `path`) under `policy` and `mode`,
    /// naming functions with `symbolize` and lines with `locate` (given the address to look up,
    /// [`crate::lines::lookup_pc`]).
    pub fn new(
        path: &Path,
        dump: &Dump,
        out: &Outcome,
        policy: Policy,
        mode: Mode,
        symbolize: impl Fn(u64) -> Option<String>,
        locate: impl Fn(u64) -> Option<SourceLine>,
    ) -> DumpReport {
        let strip = |pc: u64| orcwalk::pac::strip_pac(pc, dump.info.layout.va_bits);
        let symbolize = |pc: u64| symbolize(strip(pc));
        let verdict = match out.judgement {
            Judgement::Correct => VerdictReport::Correct,
            Judgement::UnprovenTruth => VerdictReport::UnprovenTruth,
            Judgement::FalseReliable => VerdictReport::FalseReliable,
            Judgement::Unreliable(reason) => {
                let (pc, fp) = match out.verdict {
                    Verdict::Unreliable { pc, fp, .. } => (pc, fp),
                    Verdict::Reliable => unreachable!("judged unreliable"),
                };
                VerdictReport::Unreliable { reason, pc: Addr(pc), function: symbolize(pc), fp: Addr(fp) }
            }
        };
        let frames = out
            .frames
            .iter()
            .zip(&out.fps)
            .zip(&out.witnesses)
            .enumerate()
            .map(|(i, ((&(pc, kind), &fp), &witness))| FrameReport {
                pc: Addr(pc),
                function: symbolize(pc),
                fp: Addr(fp),
                kind,
                witness,
                truth: dump.info.truth.get(i).copied().map(Addr),
                source: locate(crate::lines::lookup_pc(strip(pc), kind, dump.info.start_regs)),
            })
            .collect();
        DumpReport {
            dump: path.to_path_buf(),
            kernel: dump.info.kernel,
            policy,
            strict: mode.strict,
            truth_complete: dump.info.truth_complete,
            verdict,
            frames,
        }
    }

    /// `DUMP: verdict (N frames)`, and with `verbose` a line per frame.
    pub fn text(&self, verbose: bool) -> String {
        let mut s = format!("{}: {} ({} frames)", self.dump.display(), self.verdict, self.frames.len());
        if verbose {
            s.push_str(&self.frame_lines());
        }
        s
    }

    /// `\n    #i pc name+off/size (file.c:49) Kind =` (or `truth 0x…`, `(no truth)`) per frame;
    /// the line where one is known.
    pub fn frame_lines(&self) -> String {
        let mut s = String::new();
        for (i, f) in self.frames.iter().enumerate() {
            let t = match f.truth {
                None => "(no truth)".to_string(),
                Some(t) if t == f.pc => "=".to_string(),
                Some(t) => format!("truth {t:#x}"),
            };
            let line = f.source.as_ref().map_or(String::new(), |l| format!(" ({l})"));
            let _ = write!(s, "\n    #{i:<2} {:#018x}{}{line} {:?} {t}", f.pc, spaced(&f.function), f.kind);
        }
        s
    }
}

/// Counts over a set of dumps: both policies, orcwalk in strict mode too when asked (the
/// results table's column), and the plain frame-pointer chain on user samples.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Under the replay's mode (`strict` when the replay is).
    pub orcwalk: Summary,
    pub mainline: Summary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcwalk_strict: Option<Summary>,
    pub fp_chain: ChainSummary,
}

impl Totals {
    fn add(&mut self, dump: &Dump, orcwalk: &Outcome, mainline: &Outcome, strict: Option<&Outcome>) {
        let complete = dump.info.truth_complete;
        self.orcwalk.add_outcome(complete, orcwalk);
        self.mainline.add(complete, mainline.judgement);
        if let Some(s) = strict {
            self.orcwalk_strict.get_or_insert_default().add(complete, s.judgement);
        }
        if !dump.info.kernel {
            self.fp_chain.add(dump);
        }
    }

    fn text(&self) -> String {
        format!(
            "{}\n{}{}",
            summary_line("orcwalk", &self.orcwalk),
            summary_line("mainline", &self.mainline),
            chain_line(&self.fp_chain)
        )
    }

    /// A row of the results table: coverage as "correct (percent)", false-reliable verdicts named.
    fn markdown_row(&self, label: &str) -> String {
        let cell = |s: &Summary| {
            let fr =
                if s.false_reliable > 0 { format!(", **{} false-reliable**", s.false_reliable) } else { String::new() };
            format!("{} ({:.1} %){fr}", s.correct, 100.0 * s.coverage())
        };
        let strict = self.orcwalk_strict.as_ref().map_or("-".to_string(), cell);
        format!(
            "| {label} | {} | {} | {} | {strict} | {} |",
            self.orcwalk.samples,
            self.orcwalk.truth_complete,
            cell(&self.orcwalk),
            cell(&self.mainline)
        )
    }
}

fn summary_line(name: &str, s: &Summary) -> String {
    let reasons: Vec<String> = s.unreliable.iter().map(|(r, n)| format!("{n} {r}")).collect();
    let witnesses = if s.two_witness + s.fp_witness + s.orc_witness > 0 {
        format!(
            "; frames of correct stacks: {} two-witness, {} frame-pointer only, {} ORC only ({} stacks with a single-witness frame)",
            s.two_witness, s.fp_witness, s.orc_witness, s.single_witness_stacks
        )
    } else {
        String::new()
    };
    format!(
        "{name:>8}: {} samples, {} reliable and correct, {} unreliable ({}), FALSE-RELIABLE {}, coverage {:.1}% of {} with complete truth{witnesses}",
        s.samples,
        s.correct,
        s.unreliable.values().sum::<u64>(),
        if reasons.is_empty() { "-".into() } else { reasons.join(", ") },
        s.false_reliable,
        100.0 * s.coverage(),
        s.truth_complete
    )
}

/// `\nfp-chain: …` for user samples (nothing otherwise).
fn chain_line(c: &ChainSummary) -> String {
    if c.correct + c.wrong + c.failed > 0 {
        format!(
            "\nfp-chain: {} right, {} WRONG, {} broken (plain x29 chain, no checks, on the same samples with complete truth)",
            c.correct, c.wrong, c.failed
        )
    } else {
        String::new()
    }
}

/// The totals of the dumps of one directory (one program or kernel each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryTotals {
    pub path: PathBuf,
    #[serde(flatten)]
    pub totals: Totals,
}

/// `orcwalk-sim replay --json`: every dump's walk, then the totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    pub version: u32,
    /// The policy of every `dumps[].verdict` (both are counted in the totals).
    #[serde(with = "named")]
    pub policy: Policy,
    pub strict: bool,
    pub dumps: Vec<DumpReport>,
    /// Per directory, sorted by path.
    pub directories: Vec<DirectoryTotals>,
    pub all: Totals,
    /// Samples whose walk also checked call sites against the image's text.
    pub call_sites_checked: u64,
}

impl ReplayReport {
    /// False-reliable verdicts of the chosen policy (the command's exit status 1).
    pub fn false_reliable(&self) -> u64 {
        match self.policy {
            Policy::Orcwalk => self.all.orcwalk.false_reliable,
            Policy::Mainline => self.all.mainline.false_reliable,
        }
    }

    /// What follows the per-dump lines in the text output: totals per directory (when there
    /// are several) and in all.
    pub fn totals_text(&self) -> String {
        let mut s = String::new();
        if self.directories.len() > 1 {
            for d in &self.directories {
                let _ = write!(s, "\n{}:\n{}\n", d.path.display(), d.totals.text());
            }
            s.push_str("\nall:\n");
        }
        let _ = write!(
            s,
            "\n{}\ncall sites: checked against the image's text on {} of {} samples (the rest have no image at hand)",
            self.all.text(),
            self.call_sites_checked,
            self.all.orcwalk.samples
        );
        s
    }

    /// The results table (`--markdown`): per directory, labelled relative to `root`, and in all.
    pub fn markdown(&self, root: &Path) -> String {
        let mut s = String::from(
            "| corpus | samples | truth complete | orcwalk (default) | orcwalk `--strict` | mainline's rule |\n|---|---:|---:|---:|---:|---:|",
        );
        for d in &self.directories {
            let label = d.path.strip_prefix(root).unwrap_or(&d.path).display().to_string();
            let _ = write!(s, "\n{}", d.totals.markdown_row(&label));
        }
        let _ = write!(s, "\n{}", self.all.markdown_row("all"));
        s
    }
}

/// `pt_regs` as the dump's note records it (`orcwalk::KernelLayout`, field for field).
#[derive(Serialize, Deserialize)]
#[serde(remote = "KernelLayout")]
struct LayoutDef {
    pt_regs_size: u64,
    x29: u64,
    x30: u64,
    sp: u64,
    pc: u64,
    pstate: u64,
    stackframe: u64,
    meta_records: bool,
    va_bits: u32,
}

/// `orcwalk-sim show`: a dump as recorded, and its walk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowReport {
    pub version: u32,
    pub dump: PathBuf,
    pub kernel: bool,
    /// The `pt_regs` layout the walk crosses exceptions with (user samples carry one too, unused).
    #[serde(with = "LayoutDef")]
    pub layout: KernelLayout,
    pub start: StartReport,
    /// x0..x30, sp, pc, pstate.
    pub registers: Vec<Addr>,
    /// The memory the dump holds.
    pub regions: Vec<RegionReport>,
    /// The stacks the walk may use, whether or not all of each was dumped.
    pub stacks: Vec<StackReport>,
    pub text: Span,
    pub entry_text: Span,
    pub image: ImageReport,
    pub sigreturn: Option<SigreturnReport>,
    pub truth_complete: bool,
    pub truth: Vec<TruthFrame>,
    /// Trampoline recovery: the original return address for the frame record at `fp`.
    pub recover: Vec<RecoveryReport>,
    /// The walk with the dump's table (or `--table`, `--elf`); `null` when there is none, and
    /// then `no_walk` says why.
    pub walk: Option<DumpReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_walk: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartReport {
    /// From an exception's registers (the pc was interrupted), else at a call site (the pc is a
    /// return address).
    pub from_registers: bool,
    pub pc: Addr,
    pub sp: Addr,
    pub fp: Addr,
    pub lr: Addr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionReport {
    pub start: Addr,
    pub end: Addr,
    /// Executable (text) rather than stack memory.
    pub text: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackReport {
    /// `task`, `irq`, `overflow`, `sdei_normal`, `sdei_critical`, `efi`.
    #[serde(with = "named")]
    pub kind: StackKind,
    pub low: Addr,
    pub high: Addr,
}

/// `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: Addr,
    pub end: Addr,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageReport {
    /// The table or ELF the note names, relative to the dump.
    pub path: String,
    /// `build-id …`, `text-hash …` or `none`.
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigreturnReport {
    pub at: Addr,
    /// Its first two instruction words.
    pub insns: [u32; 2],
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthFrame {
    pub pc: Addr,
    pub function: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryReport {
    pub fp: Addr,
    pub return_address: Addr,
}

impl ShowReport {
    /// The report on `dump` (read from `path`): `walk` is its walk, or why there is none.
    pub fn new(
        path: &Path,
        dump: &Dump,
        walk: Result<DumpReport, String>,
        symbolize: impl Fn(u64) -> Option<String>,
    ) -> ShowReport {
        let i = &dump.info;
        let span = |(start, end): (u64, u64)| Span { start: Addr(start), end: Addr(end) };
        let (walk, no_walk) = match walk {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e)),
        };
        ShowReport {
            version: VERSION,
            dump: path.to_path_buf(),
            kernel: i.kernel,
            layout: i.layout,
            start: StartReport {
                from_registers: i.start_regs,
                pc: Addr(i.pc),
                sp: Addr(i.sp),
                fp: Addr(i.fp),
                lr: Addr(i.lr),
            },
            registers: dump.regs.iter().copied().map(Addr).collect(),
            regions: dump
                .regions
                .iter()
                .map(|r| RegionReport { start: Addr(r.vaddr), end: Addr(r.vaddr + r.data.len() as u64), text: r.exec })
                .collect(),
            stacks: i
                .stacks
                .iter()
                .map(|s| StackReport { kind: s.kind, low: Addr(s.low), high: Addr(s.high) })
                .collect(),
            text: span(i.text),
            entry_text: span(i.entry),
            image: ImageReport { path: i.image_path.clone(), id: i.image_id.to_string() },
            sigreturn: i.sigreturn.map(|(at, insns)| SigreturnReport { at: Addr(at), insns }),
            truth_complete: i.truth_complete,
            truth: i
                .truth
                .iter()
                .map(|&pc| TruthFrame {
                    pc: Addr(pc),
                    function: symbolize(orcwalk::pac::strip_pac(pc, i.layout.va_bits)),
                })
                .collect(),
            recover: i
                .recover
                .iter()
                .map(|&(fp, ra)| RecoveryReport { fp: Addr(fp), return_address: Addr(ra) })
                .collect(),
            walk,
            no_walk,
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let st = &self.start;
        let r = |n: usize| self.registers.get(n).copied().unwrap_or_default();
        let _ = writeln!(
            s,
            "{}: {} sample, layout {:?}",
            self.dump.display(),
            if self.kernel { "kernel" } else { "user" },
            self.layout
        );
        let _ = writeln!(
            s,
            "start {}: pc {:#x} sp {:#x} fp {:#x} lr {:#x}",
            if st.from_registers { "from exception registers" } else { "at a call site" },
            st.pc,
            st.sp,
            st.fp,
            st.lr
        );
        let _ = writeln!(
            s,
            "registers: x29 {:#x} x30 {:#x} sp {:#x} pc {:#x} pstate {:#x}",
            r(29),
            r(30),
            r(31),
            r(32),
            r(33)
        );
        for g in &self.regions {
            let _ = writeln!(
                s,
                "region {:#x}..{:#x} ({} bytes{})",
                g.start,
                g.end,
                g.end.0 - g.start.0,
                if g.text { ", text" } else { "" }
            );
        }
        for k in &self.stacks {
            let _ = writeln!(s, "stack {:?} {:#x}..{:#x}", k.kind, k.low, k.high);
        }
        let _ = writeln!(
            s,
            "text {:#x}..{:#x}, entry text {:#x}..{:#x}",
            self.text.start, self.text.end, self.entry_text.start, self.entry_text.end
        );
        let _ = writeln!(s, "image {} ({})", self.image.path, self.image.id);
        if let Some(t) = &self.sigreturn {
            let _ = writeln!(s, "signal-return trampoline {:#x}: {:08x} {:08x}", t.at, t.insns[0], t.insns[1]);
        }
        let _ = write!(s, "truth ({}):", if self.truth_complete { "complete" } else { "incomplete" });
        for (n, t) in self.truth.iter().enumerate() {
            let _ = write!(s, "\n    #{n:<2} {:#018x}{}", t.pc, spaced(&t.function));
        }
        for t in &self.recover {
            let _ = write!(s, "\ntrampoline recovery: fp {:#x} -> {:#x}", t.fp, t.return_address);
        }
        match (&self.walk, &self.no_walk) {
            (Some(w), _) => {
                let _ = write!(
                    s,
                    "\nwalk ({}{}): {} ({} frames){}",
                    w.policy.name(),
                    if w.strict { ", strict" } else { "" },
                    w.verdict,
                    w.frames.len(),
                    w.frame_lines()
                );
            }
            (None, why) => {
                let _ = write!(s, "\nwalk: none ({})", why.as_deref().unwrap_or("no table"));
            }
        }
        s
    }
}

/// Where `replay` and `show` take tables, text and symbols from, and how they walk.
#[derive(Clone, Debug)]
pub struct Options {
    /// An ORC table file to use instead of the one each dump names.
    pub table: Option<PathBuf>,
    /// An aarch64 ELF to build the table from (its CFI) and to symbolize with.
    pub elf: Option<PathBuf>,
    /// The policy whose verdicts are reported per dump (both are counted).
    pub policy: Policy,
    pub mode: Mode,
    /// Also count orcwalk in strict mode (the results table's column).
    pub count_strict: bool,
    /// A kernel's debug vmlinux for source lines: refused for a dump of another image.
    pub vmlinux: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            table: None,
            elf: None,
            policy: Policy::Orcwalk,
            mode: Mode::default(),
            count_strict: false,
            vmlinux: None,
        }
    }
}

/// Replays dumps one at a time, keeping what each table needs (its bytes, the image's text,
/// its symbols and lines) and the totals.
#[derive(Debug)]
pub struct Replayer {
    opts: Options,
    tables: HashMap<PathBuf, Vec<u8>>,
    elf_bytes: Option<Vec<u8>>,
    elf_symbols: Option<Symbols>,
    elf_lines: Option<Lines>,
    /// `--vmlinux`: its lines and its image id.
    vmlinux: Option<(Option<Lines>, orc_format::ImageId)>,
    symbols: BTreeMap<PathBuf, Option<Symbols>>,
    lines: BTreeMap<PathBuf, Option<Lines>>,
    texts: BTreeMap<PathBuf, Option<ImageText>>,
    directories: BTreeMap<PathBuf, Totals>,
    all: Totals,
    call_sites_checked: u64,
    dumps: Vec<DumpReport>,
}

impl Replayer {
    pub fn new(opts: Options) -> Result<Replayer, String> {
        let mut tables = HashMap::new();
        let (mut elf_bytes, mut elf_symbols, mut elf_lines) = (None, None, None);
        if let Some(e) = &opts.elf {
            let bytes = std::fs::read(e).map_err(|err| format!("{}: {err}", e.display()))?;
            let table = orc_format::generate::ElfImage::parse(bytes.as_slice())
                .and_then(|i| orc_format::generate::generate(&i))
                .and_then(|g| g.to_file_bytes())
                .map_err(|err| format!("{}: {err}", e.display()))?;
            tables.insert(e.clone(), table);
            elf_symbols = Some(Symbols::from_elf(&bytes)?);
            elf_lines = Lines::from_elf(bytes.clone()).map_err(|err| format!("{}: {err}", e.display()))?;
            elf_bytes = Some(bytes);
        }
        let vmlinux = match &opts.vmlinux {
            Some(v) => Some(read_vmlinux(v)?),
            None => None,
        };
        Ok(Replayer {
            opts,
            tables,
            elf_bytes,
            elf_symbols,
            elf_lines,
            vmlinux,
            symbols: BTreeMap::new(),
            lines: BTreeMap::new(),
            texts: BTreeMap::new(),
            directories: BTreeMap::new(),
            all: Totals::default(),
            call_sites_checked: 0,
            dumps: Vec::new(),
        })
    }

    /// Walks `dump` (read from `path`) under both policies, counts both, and reports the chosen one.
    pub fn replay(&mut self, path: &Path, dump: &Dump) -> Result<&DumpReport, String> {
        let w = self.walk(path, dump)?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        self.all.add(dump, &w.orcwalk, &w.mainline, w.strict.as_ref());
        self.directories.entry(dir).or_default().add(dump, &w.orcwalk, &w.mainline, w.strict.as_ref());
        self.call_sites_checked += u64::from(w.with_text);
        self.dumps.push(w.report);
        Ok(self.dumps.last().unwrap_or_else(|| unreachable!("just pushed")))
    }

    /// The chosen policy's report on one dump, counting nothing.
    pub fn report(&mut self, path: &Path, dump: &Dump) -> Result<DumpReport, String> {
        self.walk(path, dump).map(|w| w.report)
    }

    /// The table a dump is walked with: `--elf`, `--table`, or the one its note names.
    fn table_path(&self, path: &Path, dump: &Dump) -> PathBuf {
        self.opts
            .elf
            .clone()
            .or_else(|| self.opts.table.clone())
            .unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).join(&dump.info.image_path))
    }

    /// The symbols a dump's frames are named with: the `--elf` image's, or those beside its table.
    pub fn symbols_for(&mut self, path: &Path, dump: &Dump) -> Result<Option<&Symbols>, String> {
        if self.elf_symbols.is_some() {
            return Ok(self.elf_symbols.as_ref());
        }
        let tpath = self.table_path(path, dump);
        if !self.symbols.contains_key(&tpath) {
            self.symbols.insert(tpath.clone(), symbols_beside(&tpath)?);
        }
        Ok(self.symbols[&tpath].as_ref())
    }

    /// The lines a dump's frames are located with: `--vmlinux` (refused for a dump of another
    /// image), the `--elf` image's, or `program.elf` beside its table.
    pub fn lines_for(&mut self, path: &Path, dump: &Dump) -> Result<Option<&Lines>, String> {
        if let Some((lines, id)) = &self.vmlinux {
            if !id.matches(&dump.info.image_id) {
                let v = self.opts.vmlinux.as_deref().unwrap_or(Path::new("")).display();
                return Err(format!(
                    "--vmlinux {v} is not the image of {}: the vmlinux is {id}, the dump's image is {}",
                    path.display(),
                    dump.info.image_id
                ));
            }
            return Ok(lines.as_ref());
        }
        if self.elf_bytes.is_some() {
            return Ok(self.elf_lines.as_ref());
        }
        let tpath = self.table_path(path, dump);
        if !self.lines.contains_key(&tpath) {
            self.lines.insert(tpath.clone(), lines_beside(&tpath)?);
        }
        Ok(self.lines[&tpath].as_ref())
    }

    fn walk(&mut self, path: &Path, dump: &Dump) -> Result<Walked, String> {
        let tpath = self.table_path(path, dump);
        if !self.tables.contains_key(&tpath) {
            let bytes =
                std::fs::read(&tpath).map_err(|e| format!("{}: table {}: {e}", path.display(), tpath.display()))?;
            self.tables.insert(tpath.clone(), bytes);
        }
        self.symbols_for(path, dump)?;
        self.lines_for(path, dump)?;
        let tfile = table_for(&dump.info, &self.tables[&tpath])
            .map_err(|e| format!("{}: table {}: {e}", path.display(), tpath.display()))?;
        if !self.texts.contains_key(&tpath) {
            let text = match &self.elf_bytes {
                Some(b) => Some(ImageText::from_elf(b)?),
                None => text_beside(&tpath, &tfile)?,
            };
            self.texts.insert(tpath.clone(), text);
        }
        let (opts, text) = (&self.opts, self.texts[&tpath].as_ref().map(ImageText::view));
        let a = replay_text(dump, tfile, text, Policy::Orcwalk, opts.mode);
        let b = replay_text(dump, tfile, text, Policy::Mainline, opts.mode);
        let strict = opts.count_strict.then(|| replay_text(dump, tfile, text, Policy::Orcwalk, Mode::STRICT));
        let syms = self.elf_symbols.as_ref().or(self.symbols.get(&tpath).and_then(Option::as_ref));
        let lines = match (&self.vmlinux, &self.elf_bytes) {
            (Some((l, _)), _) => l.as_ref(),
            (None, Some(_)) => self.elf_lines.as_ref(),
            (None, None) => self.lines.get(&tpath).and_then(Option::as_ref),
        };
        let chosen = if opts.policy == Policy::Orcwalk { &a } else { &b };
        let report = DumpReport::new(
            path,
            dump,
            chosen,
            opts.policy,
            opts.mode,
            |pc| syms.and_then(|s| s.symbolize(pc)),
            |pc| lines.and_then(|l| l.locate(pc)),
        );
        Ok(Walked { report, orcwalk: a, mainline: b, strict, with_text: text.is_some() })
    }

    /// Everything replayed so far, with the totals.
    pub fn finish(self) -> ReplayReport {
        ReplayReport {
            version: VERSION,
            policy: self.opts.policy,
            strict: self.opts.mode.strict,
            dumps: self.dumps,
            directories: self.directories.into_iter().map(|(path, totals)| DirectoryTotals { path, totals }).collect(),
            all: self.all,
            call_sites_checked: self.call_sites_checked,
        }
    }
}

/// One dump walked: the chosen policy's report and both outcomes to count.
struct Walked {
    report: DumpReport,
    orcwalk: Outcome,
    mainline: Outcome,
    strict: Option<Outcome>,
    with_text: bool,
}

/// Symbols for the dumps replayed with `table`: `vmlinux.syms` beside it, or `program.elf`.
pub fn symbols_beside(table: &Path) -> Result<Option<Symbols>, String> {
    let syms = table.with_file_name("vmlinux.syms");
    if let Ok(text) = std::fs::read_to_string(&syms) {
        return Symbols::parse(&text).map(Some).map_err(|e| format!("{}: {e}", syms.display()));
    }
    let elf = table.with_file_name("program.elf");
    match std::fs::read(&elf) {
        Ok(b) => Symbols::from_elf(&b).map(Some).map_err(|e| format!("{}: {e}", elf.display())),
        Err(_) => Ok(None),
    }
}

/// Lines for the dumps replayed with `table`: `program.elf` beside it, when it has a line table.
pub fn lines_beside(table: &Path) -> Result<Option<Lines>, String> {
    let elf = table.with_file_name("program.elf");
    match std::fs::read(&elf) {
        Ok(b) => Lines::from_elf(b).map_err(|e| format!("{}: {e}", elf.display())),
        Err(_) => Ok(None),
    }
}

/// `--vmlinux`: its lines (none without a line table) and its image id, a build-id as the
/// kernel corpora's dumps carry.
fn read_vmlinux(path: &Path) -> Result<(Option<Lines>, orc_format::ImageId), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("--vmlinux {}: {e}", path.display()))?;
    let file = object::File::parse(bytes.as_slice()).map_err(|e| format!("--vmlinux {}: {e}", path.display()))?;
    let id = orc_format::generate::elf::image_id(&file);
    drop(file);
    let lines = Lines::from_elf(bytes).map_err(|e| format!("--vmlinux {}: {e}", path.display()))?;
    Ok((lines, id))
}

/// The dumps under `path`: the file itself, or every `*.core` below a directory, sorted.
pub fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x == "core") {
                collect(&e, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

pub fn load(path: &Path) -> Result<Dump, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Dump::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// `replay --json` in one call: every dump under `paths`, in order.
pub fn replay_paths(paths: &[PathBuf], opts: Options) -> Result<ReplayReport, String> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files)?;
    }
    let mut r = Replayer::new(opts)?;
    for f in &files {
        r.replay(f, &load(f)?)?;
    }
    Ok(r.finish())
}

/// `show` in one call: the dump at `path` and its walk.
pub fn show(path: &Path, opts: Options) -> Result<ShowReport, String> {
    let dump = load(path)?;
    let mut replayer = Replayer::new(opts)?;
    // A `--vmlinux` of another image is refused outright, not reported as a walk not made.
    replayer.lines_for(path, &dump)?;
    let walk = replayer.report(path, &dump);
    let syms = replayer.symbols_for(path, &dump)?;
    Ok(ShowReport::new(path, &dump, walk, |pc| syms.and_then(|s| s.symbolize(pc))))
}
