//! Capturing real user stacks: run an aarch64 program under qemu-user's gdbstub, stop it at
//! pseudo-random points, and write one dump per stop with its ground truth.
//!
//! Where the stops fall: the program's own CPU-time interval timer (SIGVTALRM every 2 ms) stops
//! it wherever it happens to be, as a real interrupt would. qemu runs one instruction per
//! translated block, so the stop can be any instruction, prologues and epilogues included; CPU
//! time does not pass while the program is stopped, so the next stop is again a random point.
//! Every signal is then delivered (the handler runs, and is sampled with its frames when the
//! next stop falls in it). One more stop per run comes after a pseudo-random number of single
//! steps (0..`max_steps`) from the first instruction, so start-up code is sampled too. Timing
//! makes runs differ: a regenerated corpus is equivalent, not identical. A run ends when the
//! program does, or, with `Plan::stops_per_run`, when the capture ends it after that many
//! stops; then the program is started again. Only the bound makes the number of runs
//! independent of timing.

pub mod kernel;
pub mod rsp;
pub mod target;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use self::rsp::Stop;
use self::target::Target;
use crate::dump::{Dump, Region, SampleInfo};
use crate::synth::Rng;
use crate::truth::insn::{is_call, is_ret};
use crate::truth::{Image, Position, STALE};

const SIGTRAP: u8 = 5;
/// Larger stacks are not this workload's: something went wrong.
const MAX_STACK: u64 = 1 << 20;

#[derive(Clone, Debug)]
pub struct Plan {
    pub qemu: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub samples: u32,
    pub seed: u64,
    pub max_steps: u64,
    /// The signal whose stops are sampled (the program's timer); others are only delivered.
    pub signal: u8,
    /// Path of the ORC table the dumps name, relative to the dumps.
    pub table_path: String,
    /// Stops sampled in one run (the start-up stop included, so at least one) before the
    /// capture kills the program and starts it again; `None`: until the program ends.
    pub stops_per_run: Option<u32>,
}

/// What a capture produced besides the dumps.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub runs: u32,
    /// Runs that ended because the program did (the others the capture ended: at the plan's
    /// bound or its last sample).
    pub ended: u32,
    pub samples: u32,
    pub complete: u32,
    /// Why truths are incomplete, with counts.
    pub doubts: BTreeMap<&'static str, u32>,
    /// Stops in an epilogue without CFI whose truth came from letting the program return, and
    /// how many stale rows were tried that way.
    pub epilogues_run_out: u32,
    pub epilogue_attempts: u32,
    /// Where the stops fell in their functions.
    pub positions: BTreeMap<Position, u32>,
}

/// The signal to deliver on resuming after `stop` (0 for none); `None` when the program ended.
fn pending(stop: Stop) -> Option<u8> {
    match stop {
        Stop::Signal(SIGTRAP) => Some(0),
        Stop::Signal(s) => Some(s),
        Stop::Exited(_) | Stop::Killed(_) => None,
    }
}

/// Steps `n` instructions; `None` when the program ended.
fn steps(t: &mut Target, mut signal: u8, n: u64) -> io::Result<Option<u8>> {
    for _ in 0..n {
        match pending(t.client.step(signal)?) {
            Some(s) => signal = s,
            None => return Ok(None),
        }
    }
    Ok(Some(signal))
}

/// The signal-return trampoline the target's handlers return to, and its first two
/// instructions: the vDSO's `__kernel_rt_sigreturn` (qemu-user maps its own vDSO, as Linux
/// does). Found from the auxiliary vector on the initial stack (`top` = sp at the first
/// instruction: argc, argv[], NULL, envp[], NULL, auxv) and the vDSO's dynamic symbols.
pub fn find_sigreturn(t: &mut Target, top: u64) -> io::Result<Option<(u64, [u32; 2])>> {
    const AT_SYSINFO_EHDR: u64 = 33;
    let word = |t: &mut Target, at: u64| -> io::Result<Option<u64>> {
        Ok(t.client.memory(at, 8)?.and_then(|b| b.try_into().ok()).map(u64::from_le_bytes))
    };
    let Some(argc) = word(t, top)? else { return Ok(None) };
    let mut at = top + 8 * (argc + 2); // argv[] and its NULL
    while let Some(w) = word(t, at)? {
        at += 8;
        if w == 0 {
            break; // the end of envp[]
        }
    }
    let mut vdso = None;
    for _ in 0..64 {
        let (Some(k), Some(v)) = (word(t, at)?, word(t, at + 8)?) else { break };
        at += 16;
        match k {
            0 => break,
            AT_SYSINFO_EHDR => vdso = Some(v),
            _ => {}
        }
    }
    let Some(base) = vdso else { return Ok(None) };
    let mut bytes = Vec::new();
    for page in 0..16u64 {
        match t.client.memory(base + page * 4096, 4096)? {
            Some(p) => bytes.extend(p),
            None => break,
        }
    }
    use object::{Object, ObjectSymbol};
    let Ok(elf) = object::File::parse(bytes.as_slice()) else { return Ok(None) };
    let Some(sym) = elf.dynamic_symbols().chain(elf.symbols()).find(|s| s.name() == Ok("__kernel_rt_sigreturn")) else {
        return Ok(None);
    };
    // The vDSO is linked at 0 (or its own base): the symbol's offset into the image.
    let first = elf.segments().map(|s| object::ObjectSegment::address(&s)).min().unwrap_or(0);
    let off = sym.address() - first;
    let insn =
        |o: u64| -> Option<u32> { Some(u32::from_le_bytes(bytes.get(o as usize..o as usize + 4)?.try_into().ok()?)) };
    Ok(insn(off).zip(insn(off + 4)).map(|(a, b)| (base + off, [a, b])))
}

/// Reads the registers and the stack `[sp, top)` and builds the dump with its truth.
fn sample(
    t: &mut Target,
    image: &Image,
    plan: &Plan,
    top: u64,
    sigreturn: Option<(u64, [u32; 2])>,
) -> io::Result<Option<(Dump, Option<&'static str>)>> {
    let regs = t.client.registers()?;
    let low = regs[31] & !15;
    if low >= top || top - low > MAX_STACK {
        return Ok(None);
    }
    let Some(data) = t.client.memory(low, (top - low) as usize)? else { return Ok(None) };
    let mut info = SampleInfo::user(&regs, image.text, (low, top), image.image_id, plan.table_path.clone());
    info.sigreturn = sigreturn;
    let mut dump = Dump { regs, info, regions: vec![Region { vaddr: low, data, exec: false }] };
    let truth = image.unwind_user(&regs, &dump, sigreturn.map(|s| s.0));
    dump.info.truth = truth.pcs;
    dump.info.truth_complete = truth.complete;
    Ok(Some((dump, truth.doubt)))
}

/// The truth CFI cannot give: a stop in an epilogue the compiler described with no CFI (clang
/// before 16). The program itself answers: let it return (delivering the pending signal first:
/// the handler runs below sp and comes back to the same pc and sp), watch the `ret` (or the
/// tail call's branch) execute, or step on to where the function's rows hold again (a
/// prologue), and unwind from the registers then, where the rows are exact. The stack above sp is unchanged by then, so the dump's memory still serves.
/// Returns the truth (when found) and the signal still to deliver (`None`: the program ended).
fn run_out_epilogue(
    t: &mut Target,
    image: &Image,
    dump: &Dump,
    signal: u8,
) -> io::Result<(Option<Vec<u64>>, Option<u8>)> {
    let (pc, sp) = (dump.regs[32], dump.regs[31]);
    let mut signal = signal;
    if signal != 0 {
        t.client.breakpoint(pc, true)?;
        let mut back = false;
        for _ in 0..64 {
            match pending(t.client.cont(signal)?) {
                None => return Ok((None, None)),
                Some(0) => {
                    signal = 0;
                    let r = t.client.registers()?;
                    if r[32] == pc && r[31] == sp {
                        back = true;
                        break;
                    }
                }
                Some(s) => signal = s,
            }
        }
        t.client.breakpoint(pc, false)?;
        if !back {
            return Ok((None, Some(signal)));
        }
    }
    for _ in 0..8 {
        let r = t.client.registers()?;
        let Some(i) = image.insn(r[32]) else { return Ok((None, Some(0))) };
        if is_call(i) {
            return Ok((None, Some(0))); // not an epilogue after all
        }
        match pending(t.client.step(0)?) {
            None => return Ok((None, None)),
            Some(0) => {}
            Some(s) => return Ok((None, Some(s))), // a signal came first: give up, keep it
        }
        let after = t.client.registers()?;
        // A `ret` leaves the caller's registers; a tail call (a branch out of the function)
        // leaves them with the callee's entry on top, which the truth at pc does not have.
        // Still in the function once its rows describe the pc again (the end of a prologue the
        // CFI skipped): the same frame, with the caller above it.
        let here = image.function(after[32]);
        let skip = if is_ret(i) {
            0
        } else if here.is_some() && (here != image.function(pc) || image.stale_at(after[32]) == Some(false)) {
            1
        } else {
            continue;
        };
        let rest = image.unwind_user(&after, dump, dump.info.sigreturn.map(|s| s.0));
        if !rest.complete || rest.pcs.len() <= skip {
            return Ok((None, Some(0)));
        }
        let mut truth = vec![pc];
        truth.extend(&rest.pcs[skip..]);
        return Ok((Some(truth), Some(0)));
    }
    Ok((None, Some(0)))
}

/// Runs the program as often as needed for `plan.samples` stops, handing each dump to `sink`.
pub fn capture(plan: &Plan, image: &Image, mut sink: impl FnMut(Dump) -> io::Result<()>) -> io::Result<Stats> {
    let mut rng = Rng::new(plan.seed);
    let mut stats = Stats::default();
    // Records a sample; with a stale innermost row, first asks the program for the truth.
    let mut take = |t: &mut Target,
                    dump: Option<(Dump, Option<&'static str>)>,
                    stats: &mut Stats,
                    signal: u8|
     -> io::Result<Option<u8>> {
        let mut signal = Some(signal);
        if let Some((mut dump, mut doubt)) = dump {
            if doubt == Some(STALE) {
                stats.epilogue_attempts += 1;
                let (truth, s) = run_out_epilogue(t, image, &dump, signal.unwrap_or(0))?;
                signal = s;
                if let Some(truth) = truth {
                    dump.info.truth = truth;
                    dump.info.truth_complete = true;
                    doubt = None;
                    stats.epilogues_run_out += 1;
                }
            }
            stats.samples += 1;
            *stats.positions.entry(image.position(dump.regs[32])).or_default() += 1;
            match doubt {
                None => stats.complete += 1,
                Some(d) => *stats.doubts.entry(d).or_default() += 1,
            }
            sink(dump)?;
        }
        Ok(signal)
    };
    while stats.samples < plan.samples {
        if stats.runs > plan.samples {
            return Err(io::Error::other("the program keeps ending before a stop could be taken"));
        }
        stats.runs += 1;
        let mut t = Target::spawn(&plan.qemu, &plan.program, &plan.args)?;
        // Initial sp: everything the program's frames use lies below it.
        let top = t.client.registers()?[31];
        let sigreturn = find_sigreturn(&mut t, top)?;
        let n = rng.below(plan.max_steps);
        let Some(signal) = steps(&mut t, 0, n)? else {
            stats.ended += 1;
            continue;
        };
        let before = stats.samples;
        let first = sample(&mut t, image, plan, top, sigreturn)?;
        let Some(mut signal) = take(&mut t, first, &mut stats, signal)? else {
            stats.ended += 1;
            continue;
        };
        // Single steps burn the emulator's CPU time, so the timer's next stop would fall right
        // after them: the stop after a run-out is delivered without a sample.
        let mut skip = false;
        while stats.samples < plan.samples && plan.stops_per_run.is_none_or(|k| stats.samples - before < k) {
            let Some(s) = pending(t.client.cont(signal)?) else {
                stats.ended += 1;
                break;
            };
            signal = s;
            if s == plan.signal && !std::mem::take(&mut skip) {
                let d = sample(&mut t, image, plan, top, sigreturn)?;
                let tried = stats.epilogue_attempts;
                let Some(s) = take(&mut t, d, &mut stats, s)? else {
                    stats.ended += 1;
                    break;
                };
                skip = stats.epilogue_attempts != tried;
                signal = s;
            }
        }
    }
    Ok(stats)
}
