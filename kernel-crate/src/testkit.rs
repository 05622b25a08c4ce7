//! Hand-made kernel stacks for the unit tests: a builder that executes calls, prologues and
//! exceptions the way arm64 code does, writing the stack and recording the true frames as it goes,
//! plus the ORC table describing the functions it uses.

extern crate std;

use std::collections::BTreeMap;
use std::vec::Vec;

use orc_format::{Kind, OrcEntry, OrcTable, Reg, TableFile};

use crate::code::CodeInfo;
use crate::layout::{KernelLayout, META_FINAL, META_PT_REGS};
use crate::memory::Memory;
use crate::recovery::{ReturnRecovery, Trampoline};
use crate::stacks::{StackInfo, StackKind};

pub const TEXT: u64 = 0xffff_8000_8001_0000;
pub const TEXT_END: u64 = TEXT + 0x10000;
pub const TASK_LOW: u64 = 0xffff_8000_8400_0000;
pub const TASK_HIGH: u64 = TASK_LOW + 0x4000;
pub const IRQ_LOW: u64 = 0xffff_8000_8800_0000;
pub const IRQ_HIGH: u64 = IRQ_LOW + 0x4000;
/// Entry assembly (no ORC): the return address the first C handler sees.
pub const ENTRY: u64 = TEXT + 0x8000;
pub const ENTRY_RET: u64 = ENTRY + 0x10;
/// Text with no ORC at all (like assembly without CFI).
pub const NO_ORC: u64 = TEXT + 0x9000;
pub const TRAMPOLINE: u64 = TEXT + 0xa000;
/// A user program's signal-return trampoline (not text: the vDSO's `__kernel_rt_sigreturn`).
pub const SIGRETURN: u64 = TEXT_END + 0x4ec;
/// A call_on_irq_stack-like function for `switch_to_irq`: CFA = x29 + 16, record at CFA - 16.
pub const VIA: u64 = TEXT + 0x7000;

/// A function shape: its rows (offset, entry), size, and where its call site returns to.
#[derive(Clone, Copy, Debug)]
pub struct Func {
    pub base: u64,
    pub shape: Shape,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `stp x29, x30, [sp, #-n]!; mov x29, sp; ... bl; ... ldp x29, x30, [sp], #n; ret`
    Framed(u16),
    /// `sub sp, sp, #big; stp x29, x30, [sp, #-16]!; mov x29, sp; ... add sp...; ret`
    BigFrame(u16),
    /// No frame at all: LR stays live.
    Leaf,
    /// `str x30, [sp, #-16]!; ... bl; ... ldr x30, [sp], #16; ret`: saves LR, builds no record.
    NoRecord,
    /// Shrink-wrapped (LLVM): `cbz x0, early` before the prologue, then `Framed(n)` one
    /// instruction later (`stp` at +4, `mov x29, sp` at +8), a body block ending in `b` to the
    /// epilogue, and the frameless early-return block (`ret`, at [`EARLY_RET`]) laid out after
    /// it, inside the body's address range: there CFA = sp and x29/x30 are the caller's. A
    /// generator that checks rows in address order keeps the body's row at it.
    EarlyReturn(u16),
    /// Stack tagging (clang): `stp x29, x30, [sp, #-16]!; mov x29, sp; sub sp, sp, #t` (tagged
    /// locals below the record), and an epilogue that frees them with the last tag store:
    /// `st2g sp, [sp], #t` (at [`TAG_STORE`]), `ldp x29, x30, [sp], #16`, `ret`. Between the two
    /// sp moves the row is CFA = sp + 16; an unupdated one still says sp + 16 + t.
    TagStore(u16),
}

pub const CALL_RET: u64 = 0x20;
pub const EPILOGUE: u64 = 0x44;
pub const FUNC_LEN: u64 = 0x48;
/// `EarlyReturn`'s frameless `ret`, after the body's `b` at +0x2c; the body goes on at +0x34.
pub const EARLY_RET: u64 = 0x30;
/// `TagStore`'s `st2g sp, [sp], #t`; the pc after it (+0x40, the `ldp`) is between the two
/// sp moves of the epilogue.
pub const TAG_STORE: u64 = 0x3c;

/// The pcs of `shape` whose row an address-order (unproven) generator gets wrong, with the row
/// it keeps there: the early return inside the body, the instruction after the tag store.
pub fn unproven_pcs(shape: Shape) -> &'static [u64] {
    match shape {
        Shape::EarlyReturn(_) => &[EARLY_RET],
        Shape::TagStore(_) => &[TAG_STORE + 4],
        _ => &[],
    }
}

impl Func {
    pub const fn at(slot: u64, shape: Shape) -> Func {
        Func { base: TEXT + slot * 0x100, shape }
    }

    /// The exact table: the row in force at every pc (as a control-flow proof gives it).
    pub fn rows(&self) -> Vec<(u64, OrcEntry)> {
        self.rows_with(true)
    }

    /// What a generator that checks rows in address order keeps: the body's row over the early
    /// return and over the instruction after the tag store (the wrong rows of `unproven_pcs`),
    /// every other row exact.
    pub fn unproven_rows(&self) -> Vec<(u64, OrcEntry)> {
        self.rows_with(false)
    }

    fn rows_with(&self, proven: bool) -> Vec<(u64, OrcEntry)> {
        let call = |sp, fpo, rao| OrcEntry::new(Kind::Call, Reg::Sp, sp, Reg::PrevSp, fpo, Reg::PrevSp, rao, false);
        let entry = OrcEntry::new(Kind::Call, Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0, false);
        let b = self.base;
        let mut rows = std::vec![(b, entry)];
        match self.shape {
            Shape::Framed(n) => {
                let n = n as i16;
                rows.push((b + 4, call(n, -n, -n + 8)));
                rows.push((b + EPILOGUE, entry));
            }
            Shape::BigFrame(n) => {
                let n = n as i16;
                rows.push((b + 4, OrcEntry::new(Kind::Call, Reg::Sp, n, Reg::Undefined, 0, Reg::Undefined, 0, false)));
                rows.push((b + 8, call(n + 16, -n - 16, -n - 8)));
                rows.push((
                    b + EPILOGUE - 4,
                    OrcEntry::new(Kind::Call, Reg::Sp, n, Reg::Undefined, 0, Reg::Undefined, 0, false),
                ));
                rows.push((b + EPILOGUE, entry));
            }
            Shape::Leaf => {}
            Shape::NoRecord => {
                rows.push((b + 4, OrcEntry::new(Kind::Call, Reg::Sp, 16, Reg::Undefined, 0, Reg::PrevSp, -16, false)));
                rows.push((b + EPILOGUE, entry));
            }
            Shape::EarlyReturn(n) => {
                let n = n as i16;
                rows.push((b + 8, call(n, -n, -n + 8)));
                if proven {
                    rows.push((b + EARLY_RET, entry));
                    rows.push((b + EARLY_RET + 4, call(n, -n, -n + 8)));
                }
                rows.push((b + EPILOGUE, entry));
            }
            Shape::TagStore(t) => {
                let t = t as i16;
                rows.push((b + 4, call(16, -16, -8)));
                rows.push((b + 0xc, call(16 + t, -16, -8)));
                if proven {
                    rows.push((b + TAG_STORE + 4, call(16, -16, -8)));
                }
                rows.push((b + EPILOGUE, entry));
            }
        }
        rows.push((b + FUNC_LEN, OrcEntry::UNDEFINED));
        rows
    }
}

/// A validated table that owns its parts: a property run builds one per case, millions in a
/// campaign, so none may be leaked to get a `'static` view.
#[derive(Clone, Debug)]
pub struct OwnedTable {
    ips: Vec<u8>,
    entries: Vec<u8>,
    ip_addr: u64,
}

impl From<&OrcTable<'_>> for OwnedTable {
    fn from(table: &OrcTable<'_>) -> OwnedTable {
        let (ips, entries) = table.raw_parts();
        OwnedTable { ips: ips.to_vec(), entries: entries.to_vec(), ip_addr: table.ip_table_addr() }
    }
}

impl OwnedTable {
    pub fn find(&self, pc: u64) -> Option<(u64, OrcEntry)> {
        OrcTable::from_validated_parts(&self.ips, self.ip_addr, &self.entries, None)?.find(pc)
    }
}

/// The table file `orc-format` would write for `rows`, parsed and validated, its parts kept.
pub fn table_from_rows(rows: Vec<(u64, OrcEntry)>) -> OwnedTable {
    let ips: Vec<u64> = rows.iter().map(|r| r.0).collect();
    let entries: Vec<OrcEntry> = rows.iter().map(|r| r.1).collect();
    let bytes = orc_format::file::write(&ips, &entries, &orc_format::ImageId::NONE, true).unwrap();
    OwnedTable::from(&TableFile::parse(&bytes).unwrap().table)
}

/// Stack memory: written words, poison elsewhere on the stacks (real stacks are fully readable
/// and full of stale data), and optionally one address whose read faults.
#[derive(Clone, Debug, Default)]
pub struct Mem(pub BTreeMap<u64, u64>, pub Option<u64>);

pub const POISON: u64 = 0x5a5a_5a5a_5a5a_5a5a;

impl Memory for Mem {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        if self.1 == Some(addr) {
            return None;
        }
        let on_stack = (TASK_LOW..TASK_HIGH).contains(&addr) || (IRQ_LOW..IRQ_HIGH).contains(&addr);
        self.0.get(&addr).copied().or(on_stack.then_some(POISON))
    }
}

#[derive(Debug)]
pub struct Code {
    pub table: OwnedTable,
    /// Text whose CFI is valid only at call sites (clang < 16 style).
    pub sync_only: Option<(u64, u64)>,
    /// The rows were proven along control flow (an exact hand-made table is): single-witness
    /// frames and interrupted pcs are trusted only then.
    pub proven: bool,
}

impl CodeInfo for Code {
    fn is_text(&self, pc: u64) -> bool {
        (TEXT..TEXT_END).contains(&pc)
    }
    fn orc(&self, pc: u64) -> Option<OrcEntry> {
        // Entry assembly and NO_ORC text have no CFI: no table entry covers them.
        if (ENTRY..TEXT_END).contains(&pc) {
            return None;
        }
        self.table.find(pc).map(|(_, e)| e)
    }
    fn is_entry_text(&self, pc: u64) -> bool {
        (ENTRY..ENTRY + 0x100).contains(&pc)
    }
    fn exact_pc_proven(&self, pc: u64) -> bool {
        self.proven && self.sync_only.is_none_or(|(s, e)| !(s..e).contains(&pc))
    }
    fn rows_proven(&self) -> bool {
        self.proven
    }
    fn sigreturn(&self, pc: u64) -> Option<[u32; 2]> {
        (pc == SIGRETURN).then_some(crate::layout::sigframe::TRAMPOLINE)
    }
}

/// ftrace-graph style recovery: the original return address is kept per frame pointer.
#[derive(Debug, Default)]
pub struct Graph(pub BTreeMap<u64, u64>);

impl ReturnRecovery for Graph {
    fn trampoline(&self, pc: u64) -> Option<Trampoline> {
        (pc == TRAMPOLINE).then_some(Trampoline::FgraphReturn)
    }
    fn recover(&self, _which: Trampoline, fp: u64, _pc: u64) -> Option<u64> {
        self.0.get(&fp).copied()
    }
}

pub fn stacks() -> [StackInfo; 2] {
    [
        StackInfo { low: TASK_LOW, high: TASK_HIGH, kind: StackKind::Task },
        StackInfo { low: IRQ_LOW, high: IRQ_HIGH, kind: StackKind::Irq },
    ]
}

/// Executes a kernel stack: starts like a task entered from userspace (pt_regs at the top,
/// final record), then calls, takes exceptions and switches stacks. `truth` collects the
/// return addresses a perfect unwinder reports, innermost last.
#[derive(Debug)]
pub struct Builder {
    pub mem: Mem,
    pub layout: KernelLayout,
    pub sp: u64,
    pub fp: u64,
    /// The pc the current function will resume at (a return address into it), or where it is.
    pub pc: u64,
    pub lr: u64,
    pub truth: Vec<u64>,
    pub current: Option<Func>,
    /// Stack slot holding a return address -> index in `truth` of the frame it returns to.
    pub ra_slots: BTreeMap<u64, usize>,
    /// The last `interrupted` function still had its return address in x30.
    pub lr_live: bool,
}

impl Builder {
    pub fn new(layout: KernelLayout) -> Builder {
        let mut b = Builder {
            mem: Mem::default(),
            layout,
            sp: 0,
            fp: 0,
            pc: ENTRY_RET,
            lr: 0,
            truth: Vec::new(),
            current: None,
            ra_slots: BTreeMap::new(),
            lr_live: false,
        };
        let regs = TASK_HIGH - layout.pt_regs_size;
        let rec = regs + layout.stackframe;
        b.w(rec, 0);
        b.w(rec + 8, 0);
        if layout.meta_records {
            b.w(rec + 16, META_FINAL);
        }
        b.sp = regs;
        b.fp = rec;
        b.truth.push(ENTRY_RET);
        b
    }

    pub fn w(&mut self, addr: u64, val: u64) {
        self.mem.0.insert(addr, val);
    }

    /// Writes a return address for the newest frame of `truth`.
    fn w_ra(&mut self, addr: u64, ret: u64) {
        self.w(addr, ret);
        self.ra_slots.insert(addr, self.truth.len() - 1);
    }

    /// The current function calls `f` and `f` runs its prologue up to its call site.
    pub fn call(&mut self, f: Func) -> &mut Builder {
        let ret = self.pc;
        self.lr = ret;
        match f.shape {
            Shape::Framed(n) => {
                self.sp -= u64::from(n);
                self.w(self.sp, self.fp);
                self.w_ra(self.sp + 8, ret);
                self.fp = self.sp;
            }
            Shape::BigFrame(n) => {
                self.sp -= u64::from(n) + 16;
                self.w(self.sp, self.fp);
                self.w_ra(self.sp + 8, ret);
                self.fp = self.sp;
            }
            Shape::NoRecord => {
                self.sp -= 16;
                self.w_ra(self.sp, ret);
            }
            Shape::EarlyReturn(n) => {
                // The path that builds the frame (the early return was not taken).
                self.sp -= u64::from(n);
                self.w(self.sp, self.fp);
                self.w_ra(self.sp + 8, ret);
                self.fp = self.sp;
            }
            Shape::TagStore(t) => {
                self.sp -= 16;
                self.w(self.sp, self.fp);
                self.w_ra(self.sp + 8, ret);
                self.fp = self.sp;
                self.sp -= u64::from(t);
            }
            Shape::Leaf => panic!("a leaf makes no calls"),
        }
        self.pc = f.base + CALL_RET;
        self.truth.push(self.pc);
        self.current = Some(f);
        self
    }

    /// The state of the walk's caller: the current function at its call site.
    pub fn start_call(&self) -> crate::walk::Start {
        crate::walk::Start::Call { pc: self.pc, sp: self.sp, fp: self.fp }
    }

    /// The current function calls `f`, which is interrupted `off` bytes into it; returns the
    /// registers at that moment. Prologue and epilogue states follow the shape. After the
    /// epilogue has popped the frame, the record (or saved LR) is still in memory below sp, dead:
    /// written, but not a return-address slot of the truth.
    pub fn interrupted(&mut self, f: Func, off: u64) -> crate::walk::Start {
        let ret = self.pc;
        let caller_sp = self.sp;
        let mut fp = self.fp;
        // (live frame, record or LR slot address, x29 set to the record, sp at `off`)
        let (live, slot, fp_set, sp_at) = match f.shape {
            Shape::Framed(n) => {
                let r = caller_sp - u64::from(n);
                ((4..EPILOGUE).contains(&off), r, (8..EPILOGUE).contains(&off), r)
            }
            Shape::BigFrame(n) => {
                let below = caller_sp - u64::from(n);
                let r = below - 16;
                let live = (8..EPILOGUE - 4).contains(&off);
                let sp_at = if live {
                    r
                } else if (4..EPILOGUE).contains(&off) {
                    below
                } else {
                    caller_sp
                };
                (live, r, live, sp_at)
            }
            Shape::NoRecord => {
                let r = caller_sp - 16;
                ((4..EPILOGUE).contains(&off), r, false, r)
            }
            Shape::Leaf => (false, caller_sp, false, caller_sp),
            Shape::EarlyReturn(n) => {
                let r = caller_sp - u64::from(n);
                let live = (8..EPILOGUE).contains(&off) && off != EARLY_RET;
                (live, r, live && off >= 0xc, r)
            }
            Shape::TagStore(t) => {
                let r = caller_sp - 16;
                let sp_at = if (0xc..TAG_STORE + 4).contains(&off) { r - u64::from(t) } else { r };
                ((4..EPILOGUE).contains(&off), r, (8..EPILOGUE).contains(&off), sp_at)
            }
        };
        let popped = off >= EPILOGUE - 4 && f.shape != Shape::Leaf && !live;
        // A BigFrame's `sub sp` is its own step; every other shape's frame is all or nothing.
        let sp = if live || matches!(f.shape, Shape::BigFrame(_)) { sp_at } else { caller_sp };
        if live {
            if f.shape == Shape::NoRecord {
                self.w_ra(slot, ret);
            } else {
                self.w(slot, self.fp);
                self.w_ra(slot + 8, ret);
            }
            if fp_set {
                fp = slot;
            }
        } else if popped {
            // Dead: what the epilogue's `ldp`/`ldr` left below sp.
            if f.shape == Shape::NoRecord {
                self.w(slot, ret);
            } else {
                self.w(slot, self.fp);
                self.w(slot + 8, ret);
            }
        }
        self.lr_live = !live;
        let pc = f.base + off;
        self.truth.push(pc);
        self.sp = sp;
        self.fp = fp;
        self.pc = pc;
        self.lr = ret;
        crate::walk::Start::Regs { pc, sp, fp, lr: ret }
    }

    /// The current function called `fs` (each calling the next) and they all returned: their
    /// frames stay below sp as stale data (old records and return addresses, as real stacks are
    /// full of), none of them a return-address slot of the truth.
    pub fn returned(&mut self, fs: &[Func]) -> &mut Builder {
        let (sp, fp, pc, current, depth) = (self.sp, self.fp, self.pc, self.current, self.truth.len());
        let live = self.ra_slots.clone();
        for f in fs.iter().filter(|f| f.shape != Shape::Leaf) {
            self.call(*f);
        }
        (self.sp, self.fp, self.pc, self.lr, self.current, self.ra_slots) = (sp, fp, pc, pc, current, live);
        self.truth.truncate(depth);
        self
    }

    /// An exception taken at `regs` (EL1h): pt_regs pushed below sp, the entry code's record in
    /// it, and the handler chain starts from entry assembly.
    pub fn exception(&mut self, regs: crate::walk::Start) -> &mut Builder {
        let crate::walk::Start::Regs { pc, sp, fp, lr } = regs else { panic!("exception needs registers") };
        let l = self.layout;
        let base = (sp - l.pt_regs_size) & !15;
        self.w(base + l.x29, fp);
        self.w(base + l.x30, lr);
        self.w(base + l.sp, sp);
        self.w(base + l.pc, pc);
        // pt_regs.pc is the interrupted frame's pc; x30 is its caller's while LR is live.
        self.ra_slots.insert(base + l.pc, self.truth.len() - 1);
        if self.lr_live {
            self.ra_slots.insert(base + l.x30, self.truth.len() - 2);
        }
        self.w(base + l.pstate, 0x3c5); // EL1h, interrupts masked
        let rec = base + l.stackframe;
        if l.meta_records {
            self.w(rec, 0);
            self.w(rec + 8, 0);
            self.w(rec + 16, META_PT_REGS);
        } else {
            self.w(rec, fp);
            self.w(rec + 8, pc);
        }
        self.sp = base;
        self.fp = rec;
        self.pc = ENTRY_RET;
        self.truth.push(ENTRY_RET);
        self
    }

    /// A signal delivered to a user program at `regs`, as Linux and qemu-user do it: the frame
    /// record {x29, x30} at round_down(sp - 16, 16), the `rt_sigframe` (with `extra` bytes of
    /// extension records, a multiple of 16) right below it, then the handler is entered with sp
    /// at the sigframe, x29 at the record and x30 at [`SIGRETURN`] (the next `call`).
    pub fn signal(&mut self, regs: crate::walk::Start, extra: u64) -> &mut Builder {
        use crate::layout::sigframe as sf;
        let crate::walk::Start::Regs { pc, sp, fp, lr } = regs else { panic!("a signal needs registers") };
        let record = (sp - 16) & !15;
        let frame = record - sf::MIN_SIZE - extra;
        self.w(frame + sf::X29, fp);
        self.w(frame + sf::X30, lr);
        self.w(frame + sf::SP, sp);
        self.w(frame + sf::PC, pc);
        self.w(frame + sf::PSTATE, 0x6000_0000); // EL0t, flags Z and C
        self.ra_slots.insert(frame + sf::PC, self.truth.len() - 1);
        if self.lr_live {
            self.ra_slots.insert(frame + sf::X30, self.truth.len() - 2);
        }
        self.w(record, fp);
        self.w(record + 8, lr);
        self.sp = frame;
        self.fp = record;
        self.pc = SIGRETURN;
        self.truth.push(SIGRETURN);
        self
    }

    /// Moves to the IRQ stack as `call_on_irq_stack` does: a record on the old stack, then sp
    /// at the top of the IRQ stack. The switching function itself is `via` (which must have ORC
    /// saying CFA = fp + 16 for the walk to prove it).
    pub fn switch_to_irq(&mut self, via: u64) -> &mut Builder {
        self.sp -= 16;
        self.w(self.sp, self.fp);
        self.w(self.sp + 8, self.pc);
        self.fp = self.sp;
        self.sp = IRQ_HIGH;
        self.pc = via;
        self.truth.push(via);
        self
    }

    /// The truth innermost first, as a walk reports it.
    pub fn expected(&self) -> Vec<u64> {
        self.truth.iter().rev().copied().collect()
    }
}
