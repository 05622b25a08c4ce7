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
//! makes runs differ: a regenerated corpus is equivalent, not identical.

pub mod rsp;
pub mod target;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use orcwalk::{KernelLayout, StackInfo, StackKind};

use self::rsp::Stop;
use self::target::Target;
use crate::dump::{Dump, Region, SampleInfo};
use crate::synth::Rng;
use crate::truth::{Image, Position};

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
}

/// What a capture produced besides the dumps.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub runs: u32,
    pub samples: u32,
    pub complete: u32,
    /// Why truths are incomplete, with counts.
    pub doubts: BTreeMap<&'static str, u32>,
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

/// Reads the registers and the stack `[sp, top)` and builds the dump with its truth.
fn sample(t: &mut Target, image: &Image, plan: &Plan, top: u64) -> io::Result<Option<(Dump, Option<&'static str>)>> {
    let regs = t.client.registers()?;
    let low = regs[31] & !15;
    if low >= top || top - low > MAX_STACK {
        return Ok(None);
    }
    let Some(data) = t.client.memory(low, (top - low) as usize)? else { return Ok(None) };
    let mut dump = Dump {
        regs,
        info: SampleInfo {
            kernel: false,
            start_regs: true,
            task_stack_only: true,
            // Only va_bits (PAC stripping) matters for a user stack.
            layout: KernelLayout::V6_12,
            text: image.text,
            entry: (0, 0),
            pc: regs[32],
            sp: regs[31],
            fp: regs[29],
            lr: regs[30],
            fgraph_return: 0,
            kretprobe_trampoline: 0,
            stacks: vec![StackInfo { low, high: top, kind: StackKind::Task }],
            truth: Vec::new(),
            truth_complete: false,
            recover: Vec::new(),
            image_id: image.build_id.clone(),
            image_path: plan.table_path.clone(),
        },
        regions: vec![Region { vaddr: low, data, exec: false }],
    };
    let truth = image.unwind(&regs, &dump);
    dump.info.truth = truth.pcs;
    dump.info.truth_complete = truth.complete;
    Ok(Some((dump, truth.doubt)))
}

/// Runs the program as often as needed for `plan.samples` stops, handing each dump to `sink`.
pub fn capture(plan: &Plan, image: &Image, mut sink: impl FnMut(Dump) -> io::Result<()>) -> io::Result<Stats> {
    let mut rng = Rng::new(plan.seed);
    let mut stats = Stats::default();
    let mut take = |dump: Option<(Dump, Option<&'static str>)>, stats: &mut Stats| -> io::Result<()> {
        if let Some((dump, doubt)) = dump {
            stats.samples += 1;
            *stats.positions.entry(image.position(dump.regs[32])).or_default() += 1;
            match doubt {
                None => stats.complete += 1,
                Some(d) => *stats.doubts.entry(d).or_default() += 1,
            }
            sink(dump)?;
        }
        Ok(())
    };
    while stats.samples < plan.samples {
        if stats.runs > plan.samples {
            return Err(io::Error::other("the program keeps ending before a stop could be taken"));
        }
        stats.runs += 1;
        let mut t = Target::spawn(&plan.qemu, &plan.program, &plan.args)?;
        // Initial sp: everything the program's frames use lies below it.
        let top = t.client.registers()?[31];
        let n = rng.below(plan.max_steps);
        let Some(mut signal) = steps(&mut t, 0, n)? else { continue };
        take(sample(&mut t, image, plan, top)?, &mut stats)?;
        while stats.samples < plan.samples {
            let Some(s) = pending(t.client.cont(signal)?) else { break };
            signal = s;
            if s == plan.signal {
                take(sample(&mut t, image, plan, top)?, &mut stats)?;
            }
        }
    }
    Ok(stats)
}
