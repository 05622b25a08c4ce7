//! Capturing real kernel stacks: boot an arm64 kernel in qemu-system-aarch64 (gdbstub on
//! 127.0.0.1), interrupt it at pseudo-random times, keep the stops taken at EL1, and write one
//! dump per stop with the task stack, the IRQ stack and the truth of a DWARF unwind over the
//! debug vmlinux (with the kernel rules of [`crate::truth::KernelRules`]).
//!
//! With [`KernelPlan::el2`] the machine has virtualization on and the kernel runs at EL2 with
//! VHE (as on every arm64 KVM host): the stops kept are then those at EL2 (pstate M = EL2t/EL2h),
//! where the stub's sp is SP_EL2 and kernel memory is read through the EL2&0 regime. The per-cpu
//! base comes from `__per_cpu_offset[0]` (one CPU), not from TPIDR_EL1/TPIDR_EL2.
//!
//! qemu runs one instruction per translated block, so an interrupt can stop the kernel at any
//! instruction, not only at block starts. The truth is computed from the dumped memory only.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object::{Object, ObjectSymbol};
use orcwalk::{KernelLayout, StackInfo, StackKind, Start};

use super::rsp::{Client, Stop};
use crate::dump::{Dump, Region, SampleInfo};
use crate::synth::Rng;
use crate::truth::{Image, KernelRules};

/// THREAD_SIZE and IRQ_STACK_SIZE with 4 KiB pages.
const STACK_SIZE: u64 = 0x4000;

/// The symbols a capture needs from the debug vmlinux.
#[derive(Clone, Debug)]
pub struct KernelSymbols {
    pub text: (u64, u64),
    pub entry: (u64, u64),
    pub per_cpu_offset: u64,
    pub irq_stack_ptr: u64,
    pub record_keepers: Vec<(u64, u64)>,
}

impl KernelSymbols {
    /// The truth's rules for a task whose stack ends at `task_high`.
    /// `el2`: the kernel runs at EL2 (VHE).
    pub fn rules(&self, layout: KernelLayout, task_high: u64, el2: bool) -> KernelRules {
        KernelRules {
            layout,
            entry: self.entry,
            record_keepers: self.record_keepers.clone(),
            task_regs: task_high - layout.pt_regs_size,
            el2,
        }
    }

    pub fn read(vmlinux: &[u8]) -> Result<KernelSymbols, String> {
        let file = object::File::parse(vmlinux).map_err(|e| e.to_string())?;
        let mut by_name = BTreeMap::new();
        for s in file.symbols() {
            if let Ok(n) = s.name()
                && matches!(
                    n,
                    "_stext"
                        | "_etext"
                        | "__entry_text_start"
                        | "__entry_text_end"
                        | "__per_cpu_offset"
                        | "irq_stack_ptr"
                        | "call_on_irq_stack"
                )
            {
                by_name.insert(n.to_string(), (s.address(), s.size()));
            }
        }
        let get = |n: &str| by_name.get(n).copied().ok_or(format!("vmlinux has no symbol {n}"));
        let keeper = get("call_on_irq_stack")?;
        if keeper.1 == 0 {
            return Err("call_on_irq_stack has no size".into());
        }
        Ok(KernelSymbols {
            text: (get("_stext")?.0, get("_etext")?.0),
            entry: (get("__entry_text_start")?.0, get("__entry_text_end")?.0),
            per_cpu_offset: get("__per_cpu_offset")?.0,
            irq_stack_ptr: get("irq_stack_ptr")?.0,
            record_keepers: vec![(keeper.0, keeper.0 + keeper.1)],
        })
    }
}

/// Where the fields a blocked task's walk needs sit in `struct task_struct`, from the debug
/// vmlinux (asked of gdb-multiarch, once per capture).
#[derive(Clone, Copy, Debug)]
pub struct TaskOffsets {
    pub init_task: u64,
    pub tasks: u64,
    pub stack: u64,
    pub on_cpu: u64,
    /// `int` before v7, `u8` after.
    pub on_cpu_size: u64,
    pub cpu_context: u64,
    pub ctx_fp: u64,
    pub ctx_sp: u64,
    pub ctx_pc: u64,
}

impl TaskOffsets {
    pub fn read(vmlinux: &std::path::Path) -> Result<TaskOffsets, String> {
        let exprs = [
            "(long)&init_task",
            "(long)&((struct task_struct*)0)->tasks",
            "(long)&((struct task_struct*)0)->stack",
            "(long)&((struct task_struct*)0)->on_cpu",
            "sizeof(((struct task_struct*)0)->on_cpu)",
            "(long)&((struct task_struct*)0)->thread.cpu_context",
            "(long)&((struct cpu_context*)0)->fp",
            "(long)&((struct cpu_context*)0)->sp",
            "(long)&((struct cpu_context*)0)->pc",
        ];
        let mut cmd = Command::new("gdb-multiarch");
        cmd.args(["-nx", "-batch"]);
        for e in exprs {
            cmd.arg("-ex").arg(format!("print/d {e}"));
        }
        let out = cmd.arg(vmlinux).output().map_err(|e| format!("gdb-multiarch: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<u64> = text
            .lines()
            .filter_map(|l| l.split_once(" = ").and_then(|(_, v)| v.trim().parse::<i64>().ok()))
            .map(|v| v as u64)
            .collect();
        let [init_task, tasks, stack, on_cpu, on_cpu_size, cpu_context, ctx_fp, ctx_sp, ctx_pc] = v[..] else {
            return Err(format!("gdb-multiarch could not read task_struct offsets: {text}"));
        };
        Ok(TaskOffsets { init_task, tasks, stack, on_cpu, on_cpu_size, cpu_context, ctx_fp, ctx_sp, ctx_pc })
    }
}

#[derive(Clone, Debug)]
pub struct KernelPlan {
    pub qemu: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cpu: String,
    pub samples: u32,
    pub seed: u64,
    pub layout: KernelLayout,
    /// Printed on the console by the initramfs once it is busy: sampling starts then.
    pub ready: String,
    pub table_path: String,
    /// Blocked tasks sampled per kernel stop (livepatch's case), with these offsets.
    pub blocked: Option<(u32, TaskOffsets)>,
    /// Boot with virtualization on (`-M virt,virtualization=on`): the kernel runs at EL2 with
    /// VHE, and the stops kept are those at EL2 instead of EL1.
    pub el2: bool,
}

impl KernelPlan {
    /// The exception level the kernel runs at (pstate M[3:2] of its stops).
    pub fn kernel_el(&self) -> u64 {
        if self.el2 { 2 } else { 1 }
    }
}

#[derive(Clone, Debug, Default)]
pub struct KernelStats {
    pub stops: u32,
    /// Stops not at the kernel's exception level (EL1, or EL2 with [`KernelPlan::el2`]).
    pub not_el1: u32,
    pub off_stack: u32,
    pub samples: u32,
    pub complete: u32,
    pub doubts: BTreeMap<&'static str, u32>,
    pub blocked: u32,
    pub blocked_complete: u32,
    pub blocked_skipped: BTreeMap<&'static str, u32>,
}

struct Guest {
    child: Child,
    client: Client,
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn boot(plan: &KernelPlan) -> io::Result<Guest> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
    let machine = if plan.el2 { "virt,virtualization=on" } else { "virt" };
    let mut child = Command::new(&plan.qemu)
        .args(["-M", machine, "-cpu", &plan.cpu, "-m", "512", "-nographic", "-nic", "none", "-no-reboot"])
        .args(["-accel", "tcg,one-insn-per-tb=on"])
        .arg("-kernel")
        .arg(&plan.kernel)
        .arg("-initrd")
        .arg(&plan.initrd)
        .args(["-append", "console=ttyAMA0 nokaslr panic=-1 cryptomgr.notests"])
        .args(["-gdb", &format!("tcp:127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", plan.qemu)))?;
    // Wait for the initramfs to say it is busy.
    let out = child.stdout.take().ok_or_else(|| io::Error::other("no console"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = plan.ready.clone();
    std::thread::spawn(move || {
        let mut said = false;
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if !said && line.contains(&ready) {
                said = true;
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(180)).is_err() {
        let _ = child.kill();
        return Err(io::Error::other(format!("the guest did not print {:?} within 180 s", plan.ready)));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        match TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Ok(Guest { child, client: Client::connect(stream)? })
}

fn read_u64(c: &mut Client, addr: u64) -> io::Result<Option<u64>> {
    Ok(c.memory(addr, 8)?.and_then(|b| b.try_into().ok()).map(u64::from_le_bytes))
}

/// The task stack of a stop on the IRQ stack: follow x29 records until one leaves it.
fn task_stack_from_irq(c: &mut Client, mut fp: u64, irq: (u64, u64)) -> io::Result<Option<u64>> {
    for _ in 0..64 {
        if fp == 0 || !fp.is_multiple_of(8) {
            return Ok(None);
        }
        if !(irq.0 <= fp && fp < irq.1) {
            return Ok(Some(fp & !(STACK_SIZE - 1)));
        }
        let Some(next) = read_u64(c, fp)? else { return Ok(None) };
        fp = next;
    }
    Ok(None)
}

/// Up to `n` blocked tasks (not on a CPU), chosen at random from the task list, each as a dump
/// that starts from its saved `cpu_context` (a call-site start on its task stack only).
#[allow(clippy::too_many_arguments)]
fn blocked_tasks(
    c: &mut Client,
    rng: &mut Rng,
    n: u32,
    o: &TaskOffsets,
    image: &Image,
    syms: &KernelSymbols,
    plan: &KernelPlan,
    stats: &mut KernelStats,
) -> io::Result<Vec<Dump>> {
    let head = o.init_task + o.tasks;
    let mut tasks = Vec::new();
    let mut at = read_u64(c, head)?.unwrap_or(head);
    while at != head && tasks.len() < 1024 {
        tasks.push(at - o.tasks);
        let Some(next) = read_u64(c, at)? else { break };
        at = next;
    }
    let mut out = Vec::new();
    for _ in 0..n {
        if tasks.is_empty() {
            break;
        }
        let t = tasks.swap_remove(rng.below(tasks.len() as u64) as usize);
        let Some(on_cpu) = c.memory(t + o.on_cpu, o.on_cpu_size as usize)? else {
            *stats.blocked_skipped.entry("task_struct unreadable").or_default() += 1;
            continue;
        };
        if on_cpu.iter().any(|&b| b != 0) {
            *stats.blocked_skipped.entry("on a CPU").or_default() += 1;
            continue;
        }
        let ctx = t + o.cpu_context;
        let (Some(fp), Some(sp), Some(pc), Some(stack)) = (
            read_u64(c, ctx + o.ctx_fp)?,
            read_u64(c, ctx + o.ctx_sp)?,
            read_u64(c, ctx + o.ctx_pc)?,
            read_u64(c, t + o.stack)?,
        ) else {
            continue;
        };
        if !(stack < sp && sp <= stack + STACK_SIZE) {
            continue;
        }
        // A blocked task's frames all lie between its saved sp and the top of its stack.
        let low = sp & !15;
        let Some(data) = c.memory(low, (stack + STACK_SIZE - low) as usize)? else {
            *stats.blocked_skipped.entry("stack unreadable").or_default() += 1;
            continue;
        };
        let mut regs = [0u64; 34];
        (regs[29], regs[31], regs[32]) = (fp, sp, pc);
        let mut info = SampleInfo::kernel(
            plan.layout,
            syms.text,
            syms.entry,
            Start::Call { pc, sp, fp },
            vec![StackInfo { low: stack, high: stack + STACK_SIZE, kind: StackKind::Task }],
            image.image_id,
            format!("../{}", plan.table_path),
        );
        info.task_stack_only = true;
        let mut dump = Dump { regs, info, regions: vec![Region { vaddr: low, data, exec: false }] };
        let rules = syms.rules(plan.layout, stack + STACK_SIZE, plan.el2);
        let truth = image.unwind_kernel_call(pc, sp, fp, &dump, &rules);
        dump.info.truth = truth.pcs;
        dump.info.truth_complete = truth.complete;
        stats.blocked += 1;
        stats.blocked_complete += u32::from(truth.complete);
        out.push(dump);
    }
    Ok(out)
}

/// Boots the kernel and writes `plan.samples` stops at its exception level (EL1, or EL2) to `sink`.
pub fn capture_kernel(
    plan: &KernelPlan,
    image: &Image,
    syms: &KernelSymbols,
    mut sink: impl FnMut(Dump) -> io::Result<()>,
    mut blocked_sink: impl FnMut(Dump) -> io::Result<()>,
) -> io::Result<KernelStats> {
    let mut rng = Rng::new(plan.seed);
    let mut stats = KernelStats::default();
    let mut g = boot(plan)?;
    let c = &mut g.client;
    let _ = c.status()?;
    // Kernel memory is readable through the stub only while the CPU is in the kernel (EL1, or
    // EL2 for a VHE kernel).
    let el = plan.kernel_el();
    let mut at_kernel_el = None;
    for _ in 0..200 {
        if (c.registers()?[33] >> 2) & 3 == el
            && let Some(off) = read_u64(c, syms.per_cpu_offset)?
            && let Some(base) = read_u64(c, syms.irq_stack_ptr.wrapping_add(off))?
        {
            at_kernel_el = Some(base);
            break;
        }
        c.resume(0)?;
        std::thread::sleep(Duration::from_micros(500 + rng.below(2000)));
        c.interrupt()?;
        c.wait()?;
    }
    let irq_base = at_kernel_el
        .ok_or_else(|| io::Error::other(format!("cannot read irq_stack_ptr (never stopped at EL{el}?)")))?;
    let irq = (irq_base, irq_base + STACK_SIZE);
    while stats.samples < plan.samples {
        c.resume(0)?;
        std::thread::sleep(Duration::from_micros(2000 + rng.below(20_000)));
        c.interrupt()?;
        match c.wait()? {
            Stop::Signal(_) => {}
            other => return Err(io::Error::other(format!("guest ended: {other:?}"))),
        }
        stats.stops += 1;
        let regs = c.registers()?;
        if (regs[33] >> 2) & 3 != el {
            stats.not_el1 += 1;
            continue;
        }
        if let Some((n, offsets)) = &plan.blocked {
            for d in blocked_tasks(c, &mut rng, *n, offsets, image, syms, plan, &mut stats)? {
                blocked_sink(d)?;
            }
        }
        let sp = regs[31];
        let task_low = if irq.0 <= sp && sp < irq.1 {
            task_stack_from_irq(c, regs[29], irq)?
        } else {
            Some(sp.wrapping_sub(1) & !(STACK_SIZE - 1))
        };
        let Some(task_low) = task_low else {
            stats.off_stack += 1;
            continue;
        };
        let (Some(task), Some(irq_data)) =
            (c.memory(task_low, STACK_SIZE as usize)?, c.memory(irq.0, STACK_SIZE as usize)?)
        else {
            stats.off_stack += 1;
            continue;
        };
        let task_high = task_low + STACK_SIZE;
        let on_known = (task_low <= sp && sp <= task_high) || (irq.0 <= sp && sp < irq.1);
        if !on_known {
            stats.off_stack += 1;
            continue;
        }
        let info = SampleInfo::kernel(
            plan.layout,
            syms.text,
            syms.entry,
            Start::Regs { pc: regs[32], sp, fp: regs[29], lr: regs[30] },
            vec![
                StackInfo { low: task_low, high: task_high, kind: StackKind::Task },
                StackInfo { low: irq.0, high: irq.1, kind: StackKind::Irq },
            ],
            image.image_id,
            plan.table_path.clone(),
        );
        let regions = vec![
            Region { vaddr: task_low, data: task, exec: false },
            Region { vaddr: irq.0, data: irq_data, exec: false },
        ];
        let mut dump = Dump { regs, info, regions };
        let truth = image.unwind_kernel(&regs, &dump, &syms.rules(plan.layout, task_high, plan.el2));
        dump.info.truth = truth.pcs;
        dump.info.truth_complete = truth.complete;
        stats.samples += 1;
        match truth.doubt {
            None => stats.complete += 1,
            Some(d) => *stats.doubts.entry(d).or_default() += 1,
        }
        sink(dump)?;
    }
    Ok(stats)
}
