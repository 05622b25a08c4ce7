//! The walk on hand-made stacks: every row kind, every prologue position after an exception,
//! each supported kernel layout, and one test per reason. Ground truth comes from the builder
//! (`testkit`), which executes the calls rather than describing them.

extern crate std;

use std::vec::Vec;

use orc_format::{Kind, OrcEntry, Reg};

use crate::frame::Witness;
use crate::recovery::{ReturnRecovery, Trampoline};
use crate::stacks::StackInfo;
use crate::testkit::*;
use crate::{Config, EndRule, FrameKind, KernelLayout, Policy, Reason, StackList, Start, Verdict, walk};

const A: Func = Func::at(1, Shape::Framed(32));
const B: Func = Func::at(2, Shape::Framed(48));
const BIG: Func = Func::at(3, Shape::BigFrame(4096));
const LEAF: Func = Func::at(4, Shape::Leaf);
const NOREC: Func = Func::at(5, Shape::NoRecord);
const H: Func = Func::at(6, Shape::Framed(16));
/// Shrink-wrapped: a frameless early `ret` inside the body (same frame size as B).
const ER: Func = Func::at(7, Shape::EarlyReturn(48));
/// Stack tagging: the epilogue frees 16 bytes of tagged locals with `st2g sp, [sp], #16`.
const TAG: Func = Func::at(9, Shape::TagStore(16));
const FUNCS: [Func; 8] = [A, B, BIG, LEAF, NOREC, H, ER, TAG];
/// Functions whose single row is set per test (slot 0x10..).
const ODD: u64 = TEXT + 0x1000;
/// A user program's _start: END_OF_STACK after its first instruction.
const USTART: u64 = TEXT + 0x800;

fn rows(extra: &[(u64, OrcEntry)]) -> Vec<(u64, OrcEntry)> {
    rows_of(FUNCS.iter().flat_map(|f| f.rows()).collect(), extra)
}

/// The table an address-order (unproven) generator makes of the same code: wrong at the early
/// return and after the tag store, with nothing to tell it from the exact one.
fn unproven_rows() -> Vec<(u64, OrcEntry)> {
    rows_of(FUNCS.iter().flat_map(|f| f.unproven_rows()).collect(), &[])
}

fn rows_of(mut r: Vec<(u64, OrcEntry)>, extra: &[(u64, OrcEntry)]) -> Vec<(u64, OrcEntry)> {
    r.push((VIA, OrcEntry::new(Kind::Call, Reg::Fp, 16, Reg::PrevSp, -16, Reg::PrevSp, -8, false)));
    r.push((VIA + 0x40, OrcEntry::UNDEFINED));
    r.push((USTART, OrcEntry::new(Kind::Call, Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0, false)));
    r.push((USTART + 4, OrcEntry::end_of_stack()));
    r.push((USTART + 0x40, OrcEntry::UNDEFINED));
    r.extend_from_slice(extra);
    r.sort_by_key(|e| e.0);
    r
}

#[derive(Debug, PartialEq)]
struct Run {
    verdict: Verdict,
    pcs: Vec<u64>,
    kinds: Vec<FrameKind>,
    witnesses: Vec<Witness>,
}

fn run_with(
    b: &Builder,
    start: Start,
    cfg: Config,
    extra: &[(u64, OrcEntry)],
    graph: &impl ReturnRecovery,
    stacks: &[StackInfo],
) -> Run {
    let code = Code { table: table_from_rows(rows(extra)), sync_only: None, proven: true };
    walk_code(b, start, cfg, &code, graph, stacks)
}

/// The walk of `b` from `start` through `code`, every frame recorded.
fn walk_code<C: crate::code::CodeInfo>(
    b: &Builder,
    start: Start,
    cfg: Config,
    code: &C,
    graph: &impl ReturnRecovery,
    stacks: &[StackInfo],
) -> Run {
    let (mut pcs, mut kinds, mut witnesses) = (Vec::new(), Vec::new(), Vec::new());
    let verdict = walk(start, &cfg, &b.mem, &StackList { stacks }, code, graph, |f| {
        pcs.push(f.pc);
        kinds.push(f.kind);
        witnesses.push(f.witness);
        true
    });
    Run { verdict, pcs, kinds, witnesses }
}

fn run(b: &Builder, start: Start, cfg: Config) -> Run {
    run_with(b, start, cfg, &[], &Graph::default(), &stacks())
}

fn reason(r: &Run) -> Option<Reason> {
    match r.verdict {
        Verdict::Reliable => None,
        Verdict::Unreliable { reason, .. } => Some(reason),
    }
}

const LAYOUTS: [KernelLayout; 3] = [KernelLayout::V6_12, KernelLayout::V6_13, KernelLayout::GENERIC_ENTRY];

#[test]
fn call_chain_is_reliable_and_exact() {
    for layout in LAYOUTS {
        let mut b = Builder::new(layout);
        b.call(A).call(B).call(BIG).call(NOREC).call(A);
        // NOREC built no frame record: in strict mode ORC alone is not proof enough...
        let strict = Config { strict: true, ..Config::kernel(layout) };
        assert_eq!(reason(&run(&b, b.start_call(), strict)), Some(Reason::NoFrameRecord));
        // ...by default its return address comes from the slot its proven row names (one witness).
        let r = run(&b, b.start_call(), Config::kernel(layout));
        assert_eq!(r.verdict, Verdict::Reliable, "{layout:?}");
        assert_eq!(r.pcs, b.expected());
        assert_eq!(r.witnesses.iter().filter(|w| **w == Witness::Orc).count(), 1);
        // Without NOREC every frame has a record: proven by default.
        let mut b = Builder::new(layout);
        b.call(A).call(B).call(BIG).call(A).call(ER).call(TAG).call(TAG).call(ER);
        let r = run(&b, b.start_call(), Config::kernel(layout));
        assert_eq!(r.verdict, Verdict::Reliable, "{layout:?}");
        assert_eq!(r.pcs, b.expected());
    }
}

/// An exception may interrupt any instruction: before the `stp`, between `stp` and `mov x29`,
/// in the body, after the `ldp`, in a leaf, in a big frame between `sub sp` and `stp`, in a
/// function that saves only LR, at a shrink-wrapped early return inside the body, between the
/// two sp moves of a tag-store epilogue. The walk must cross the pt_regs and prove every
/// position with the exact table. Stale frames of earlier calls lie below every sp.
#[test]
fn every_instruction_of_every_shape_after_an_exception() {
    for layout in LAYOUTS {
        for f in [A, BIG, LEAF, NOREC, ER, TAG] {
            for off in (0..FUNC_LEN).step_by(4) {
                let mut b = Builder::new(layout);
                b.call(A).returned(&[TAG, ER, A]).call(B).returned(&[f, B]);
                let regs = b.interrupted(f, off);
                b.exception(regs).call(H).call(A);
                let r = run(&b, b.start_call(), Config::kernel(layout));
                assert_eq!(r.verdict, Verdict::Reliable, "{layout:?} {:?}+{off:#x}", f.shape);
                assert_eq!(r.pcs, b.expected(), "{layout:?} {:?}+{off:#x}", f.shape);
                assert!(r.kinds.contains(&FrameKind::Exception));
            }
        }
    }
}

#[test]
fn starting_from_exception_registers() {
    let mut b = Builder::new(KernelLayout::V6_13);
    b.call(A);
    let regs = b.interrupted(LEAF, 8);
    let r = run(&b, regs, Config::kernel(KernelLayout::V6_13));
    assert_eq!(r.verdict, Verdict::Reliable);
    assert_eq!(r.pcs, b.expected());
    assert_eq!(r.kinds[1], FrameKind::LinkRegister);
}

#[test]
fn mainline_policy_stops_at_exceptions_only() {
    let layout = KernelLayout::V6_13;
    let cfg = Config { policy: Policy::Mainline, ..Config::kernel(layout) };
    let mut b = Builder::new(layout);
    b.call(A).call(B);
    let r = run(&b, b.start_call(), cfg);
    assert_eq!(r.verdict, Verdict::Reliable);
    assert_eq!(r.pcs, b.expected());
    let regs = b.interrupted(A, 0x10);
    b.exception(regs).call(H);
    assert_eq!(reason(&run(&b, b.start_call(), cfg)), Some(Reason::ExceptionBoundary));
    assert_eq!(run(&b, b.start_call(), Config::kernel(layout)).verdict, Verdict::Reliable);
}

#[test]
fn irq_stack_switch_and_no_reentry() {
    let layout = KernelLayout::V6_13;
    let mut b = Builder::new(layout);
    b.call(A);
    let regs = b.interrupted(B, 0x10);
    b.exception(regs).call(H).switch_to_irq(VIA + 0x10).call(H).call(A);
    // The switching function's CFA is on x29: refused in strict mode, accepted by default on
    // its proven row with the frame-pointer chain as the one witness.
    let strict = Config { strict: true, ..Config::kernel(layout) };
    assert_eq!(reason(&run(&b, b.start_call(), strict)), Some(Reason::FpBasedCfa));
    let r = run(&b, b.start_call(), Config::kernel(layout));
    assert_eq!(r.verdict, Verdict::Reliable);
    assert_eq!(r.pcs, b.expected());
    assert!(r.witnesses.contains(&Witness::FramePointer));

    // A blocked task may not use the IRQ stack: its saved sp there is a bad start, and a task
    // record leading onto it is off its stacks.
    let cfg = Config { task_stack_only: true, ..Config::kernel(layout) };
    assert_eq!(reason(&run(&b, b.start_call(), cfg)), Some(Reason::BadStart));
    let mut t = Builder::new(layout);
    t.call(A).call(B);
    let rec = t.fp;
    t.w(rec, IRQ_HIGH - 0x40);
    assert_eq!(reason(&run(&t, t.start_call(), cfg)), Some(Reason::OffStack));

    // A task-stack record that points back into the IRQ stack: re-entry.
    let mut b = Builder::new(layout);
    b.call(A).switch_to_irq(VIA + 0x10).call(H).call(A);
    let task_rec =
        b.mem.0.iter().find(|(a, v)| **a < TASK_HIGH && **v == A.base + CALL_RET).map(|(a, _)| a - 8).unwrap();
    let irq_rec = b.fp;
    b.w(task_rec, irq_rec + 0x10);
    b.w(irq_rec + 0x10, 0);
    b.w(irq_rec + 0x18, A.base + CALL_RET);
    // ORC already refuses the bent record; the one-way stack rule is the backstop that catches
    // it without ORC (mainline policy).
    assert_eq!(reason(&run(&b, b.start_call(), Config::kernel(layout))), Some(Reason::FpMismatch));
    let mainline = Config { policy: Policy::Mainline, ..Config::kernel(layout) };
    assert_eq!(reason(&run(&b, b.start_call(), mainline)), Some(Reason::StackReentered));
}

#[test]
fn user_program_ends_at_orc_end_of_stack() {
    let mut b = Builder::new(KernelLayout::V6_13);
    b.mem.0.clear();
    b.sp = TASK_HIGH;
    b.fp = 0;
    b.pc = USTART + 8;
    b.truth = std::vec![USTART + 8];
    b.call(A).call(B).call(NOREC).call(A);
    let cfg = Config { end: EndRule::OrcEndOfStack, ..Config::kernel(KernelLayout::V6_13) };
    let r = run(&b, b.start_call(), cfg);
    assert_eq!(r.verdict, Verdict::Reliable);
    assert_eq!(r.pcs, b.expected());
    // The plain frame-pointer walk skips the function that built no record: reliable but wrong,
    // which is exactly what orcwalk's ORC check exists to prevent.
    let m = run(&b, b.start_call(), Config { policy: Policy::Mainline, ..cfg });
    assert_ne!(m.pcs, b.expected());
}

/// A plain chain new → A → B → A, and the address of the innermost record.
fn chain() -> Builder {
    let mut b = Builder::new(KernelLayout::V6_13);
    b.call(A).call(B).call(A);
    b
}

fn corrupt(f: impl FnOnce(&mut Builder, u64)) -> Option<Reason> {
    let mut b = chain();
    let rec = b.fp;
    f(&mut b, rec);
    reason(&run(&b, b.start_call(), Config::kernel(KernelLayout::V6_13)))
}

#[test]
fn reason_fp_mismatch() {
    assert_eq!(
        corrupt(|b, rec| {
            let s = b.mem.0[&rec];
            b.w(rec, s + 16)
        }),
        Some(Reason::FpMismatch)
    );
}

#[test]
fn reason_missing_orc() {
    assert_eq!(corrupt(|b, rec| b.w(rec + 8, NO_ORC + 8)), Some(Reason::MissingOrc));
}

#[test]
fn reason_orc_undefined() {
    assert_eq!(corrupt(|b, rec| b.w(rec + 8, B.base + FUNC_LEN + 8)), Some(Reason::OrcUndefined));
}

#[test]
fn reason_unknown_text() {
    assert_eq!(corrupt(|b, rec| b.w(rec + 8, 0x1234)), Some(Reason::UnknownText));
}

#[test]
fn reason_alignment_and_off_stack() {
    // Memory safety is checked before ORC: a misaligned saved fp is an alignment failure.
    assert_eq!(
        corrupt(|b, rec| {
            let s = b.mem.0[&rec];
            b.w(rec, s + 4)
        }),
        Some(Reason::Alignment)
    );
    let mut b = chain();
    let fp = b.fp;
    assert_eq!(
        reason(&run(&b, Start::Call { pc: b.pc, sp: b.sp, fp: fp + 4 }, Config::kernel(KernelLayout::V6_13))),
        Some(Reason::Alignment)
    );
    b.fp = 0xdead_0000;
    assert_eq!(reason(&run(&b, b.start_call(), Config::kernel(KernelLayout::V6_13))), Some(Reason::OffStack));
}

#[test]
fn reason_not_increasing_loop() {
    let mut b = chain();
    let rec = b.fp;
    b.w(rec, rec); // the record points at itself
    let cfg = Config { policy: Policy::Mainline, ..Config::kernel(KernelLayout::V6_13) };
    assert_eq!(reason(&run(&b, b.start_call(), cfg)), Some(Reason::NotIncreasing));
    assert!(!run(&b, b.start_call(), Config::kernel(KernelLayout::V6_13)).verdict.is_reliable());
}

#[test]
fn reason_read_fault() {
    assert_eq!(corrupt(|b, rec| b.mem.1 = Some(rec + 8)), Some(Reason::ReadFault));
}

/// `chain()` with the first record's return address replaced by [`TRAMPOLINE`]: the stack, the
/// caller's fp the recovery is keyed by, and the original return address.
fn trampolined_chain() -> (Builder, u64, u64) {
    let mut b = chain();
    let rec = b.fp;
    let orig = b.mem.0[&(rec + 8)];
    let caller_fp = b.mem.0[&rec];
    b.w(rec + 8, TRAMPOLINE);
    (b, caller_fp, orig)
}

#[test]
fn trampolines_recovered_or_unreliable() {
    let layout = KernelLayout::V6_13;
    let (b, caller_fp, orig) = trampolined_chain();
    assert_eq!(reason(&run(&b, b.start_call(), Config::kernel(layout))), Some(Reason::Trampoline));
    let mut g = Graph::default();
    g.0.insert(caller_fp, orig);
    let r = run_with(&b, b.start_call(), Config::kernel(layout), &[], &g, &stacks());
    assert_eq!(r.verdict, Verdict::Reliable);
    assert_eq!(r.pcs, b.expected());
    assert_eq!(r.kinds[1], FrameKind::Recovered);
}

/// The function-graph tracer and a kretprobe on the same function: the record holds one
/// trampoline, whose original is the other (seen in Debian's 7.2 with both on anon_pipe_read).
#[test]
fn stacked_trampolines_recovered_in_turn() {
    const KRETPROBE: u64 = TRAMPOLINE + 0x40;
    struct Both(u64, u64, bool);
    impl ReturnRecovery for Both {
        fn trampoline(&self, pc: u64) -> Option<Trampoline> {
            match pc {
                TRAMPOLINE => Some(Trampoline::FgraphReturn),
                KRETPROBE => Some(Trampoline::Kretprobe),
                _ => None,
            }
        }
        fn recover(&self, which: Trampoline, fp: u64, _pc: u64) -> Option<u64> {
            (fp == self.0).then_some(match (which, self.2) {
                (Trampoline::FgraphReturn, _) => KRETPROBE,
                (Trampoline::Kretprobe, false) => self.1,
                // A broken recovery that hands back the trampoline it was asked about.
                (Trampoline::Kretprobe, true) => KRETPROBE,
            })
        }
    }
    let layout = KernelLayout::V6_13;
    let (b, caller_fp, orig) = trampolined_chain();
    let r = run_with(&b, b.start_call(), Config::kernel(layout), &[], &Both(caller_fp, orig, false), &stacks());
    assert_eq!(r.verdict, Verdict::Reliable);
    assert_eq!(r.pcs, b.expected());
    assert_eq!(r.kinds[1], FrameKind::Recovered);
    // Each trampoline is undone once: a loop between them is refused.
    let r = run_with(&b, b.start_call(), Config::kernel(layout), &[], &Both(caller_fp, orig, true), &stacks());
    assert_eq!(reason(&r), Some(Reason::Trampoline));
}

#[test]
fn pac_signed_return_addresses() {
    let mut b = chain();
    let rec = b.fp;
    let ra = b.mem.0[&(rec + 8)];
    b.w(rec + 8, (ra & 0x00ff_ffff_ffff_ffff) | 0x5a00_0000_0000_0000 | (1 << 55));
    let r = run(&b, b.start_call(), Config::kernel(KernelLayout::V6_13));
    assert_eq!(r.verdict, Verdict::Reliable);
    assert_eq!(r.pcs, b.expected());
}

#[test]
fn reason_frame_limit() {
    let b = chain();
    let cfg = Config { max_frames: 2, ..Config::kernel(KernelLayout::V6_13) };
    assert_eq!(reason(&run(&b, b.start_call(), cfg)), Some(Reason::FrameLimit));
    let code = Code { table: table_from_rows(rows(&[])), sync_only: None, proven: true };
    let v = walk(
        b.start_call(),
        &Config::kernel(KernelLayout::V6_13),
        &b.mem,
        &StackList { stacks: &stacks() },
        &code,
        &Graph::default(),
        |_| false,
    );
    assert!(matches!(v, Verdict::Unreliable { reason: Reason::FrameLimit, .. }));
}

#[test]
fn reason_bad_meta_record() {
    for ty in [crate::layout::META_FINAL, crate::layout::META_NONE, 7] {
        assert_eq!(
            corrupt(|b, rec| {
                b.w(rec, 0);
                b.w(rec + 8, 0);
                b.w(rec + 16, ty)
            }),
            Some(Reason::BadMetaRecord),
            "type {ty}"
        );
    }
}

fn odd_row(e: OrcEntry) -> Option<Reason> {
    odd_row_cfg(e, Config::kernel(KernelLayout::V6_13))
}

fn odd_row_cfg(e: OrcEntry, cfg: Config) -> Option<Reason> {
    let mut b = chain();
    let rec = b.fp;
    b.w(rec + 8, ODD + 0x10);
    let extra = [(ODD, e), (ODD + 0x40, OrcEntry::UNDEFINED)];
    reason(&run_with(&b, b.start_call(), cfg, &extra, &Graph::default(), &stacks()))
}

#[test]
fn reasons_from_orc_rows() {
    // Return address into a function whose row says LR is live: impossible at a call site.
    assert_eq!(
        odd_row(OrcEntry::new(Kind::Call, Reg::Sp, 16, Reg::PrevSp, -16, Reg::Undefined, 0, false)),
        Some(Reason::LrLiveAtCall)
    );
    // CFA on x29: unanchored, refused in strict mode (by default the record check decides).
    let on_fp = OrcEntry::new(Kind::Call, Reg::Fp, 16, Reg::PrevSp, -16, Reg::PrevSp, -8, false);
    assert_eq!(
        odd_row_cfg(on_fp, Config { strict: true, ..Config::kernel(KernelLayout::V6_13) }),
        Some(Reason::FpBasedCfa)
    );
    // No record, CFA on a frame pointer the function never set (also by default).
    let trusting = Config::kernel(KernelLayout::V6_13);
    let no_record = OrcEntry::new(Kind::Call, Reg::Fp, 16, Reg::Undefined, 0, Reg::PrevSp, -8, false);
    assert_eq!(odd_row_cfg(no_record, trusting), Some(Reason::NoFrameRecord));
    // CFA below the callee's.
    assert_eq!(
        odd_row(OrcEntry::new(Kind::Call, Reg::Sp, -16, Reg::PrevSp, -16, Reg::PrevSp, -8, false)),
        Some(Reason::CfaBelowCallee)
    );
    // pt_regs rows and END_OF_STACK do not come from a kernel's CFI.
    assert_eq!(
        odd_row(OrcEntry::new(Kind::Regs, Reg::Sp, 16, Reg::PrevSp, -16, Reg::PrevSp, -8, false)),
        Some(Reason::OrcUnexpected)
    );
    assert_eq!(odd_row(OrcEntry::end_of_stack()), Some(Reason::OrcUnexpected));
}

#[test]
fn reason_bad_start() {
    let b = chain();
    let r = run(&b, Start::Call { pc: b.pc, sp: 0x1000, fp: b.fp }, Config::kernel(KernelLayout::V6_13));
    assert_eq!(reason(&r), Some(Reason::BadStart));
}

#[test]
fn call_site_only_cfi_is_not_trusted_at_an_interrupted_pc() {
    // clang < 16 leaves the "frame set up" row in force through the epilogue. After the `ldp`,
    // following that stale row reads the caller's record as this function's and silently skips
    // the caller: reliable with a frame missing. Marked call-site-only, it is refused instead.
    let layout = KernelLayout::V6_13;
    let stale = [
        (ODD, OrcEntry::new(Kind::Call, Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0, false)),
        (ODD + 4, OrcEntry::new(Kind::Call, Reg::Fp, 32, Reg::PrevSp, -32, Reg::PrevSp, -24, false)),
        (ODD + FUNC_LEN, OrcEntry::UNDEFINED),
    ];
    let mut b = Builder::new(layout);
    // (The ORC check of the next caller catches the skip when frame sizes differ, as with A -> B;
    // with equal sizes, or FP-based callers as in all-clang code, nothing does.)
    b.call(A).call(A);
    // ODD ran `stp; mov x29, sp` and then `ldp` (after +0x40): sp, x29 and x30 are the caller's again.
    let regs = Start::Regs { pc: ODD + 0x44, sp: b.sp, fp: b.fp, lr: b.pc };
    b.truth.push(ODD + 0x44);
    b.exception(regs).call(H);
    let code = |sync_only| Code { table: table_from_rows(rows(&stale)), sync_only, proven: true };
    let walk_with = |c: &Code| {
        let mut pcs = Vec::new();
        let v = walk(
            b.start_call(),
            &Config::kernel(layout),
            &b.mem,
            &StackList { stacks: &stacks() },
            c,
            &Graph::default(),
            |f| {
                pcs.push(f.pc);
                true
            },
        );
        (v, pcs)
    };
    let (v, pcs) = walk_with(&code(None));
    assert!(v.is_reliable() && pcs != b.expected(), "the hazard this guards against: {v:?}");
    let (v, _) = walk_with(&code(Some((ODD, ODD + FUNC_LEN))));
    assert!(matches!(v, Verdict::Unreliable { reason: Reason::SyncOnlyCfi, .. }), "{v:?}");
}

#[test]
fn exception_sp_must_sit_right_above_pt_regs() {
    // EL1 entry pushes pt_regs directly below the interrupted sp. A saved sp anywhere else
    // (here: a deeper frame's record, which would let the walk skip frames) is refused.
    let layout = KernelLayout::V6_13;
    let mut b = Builder::new(layout);
    b.call(A).call(BIG);
    let regs = b.interrupted(B, 4);
    b.exception(regs).call(H);
    let pt_regs = b.mem.0.iter().find(|(_, v)| **v == 0x3c5).map(|(a, _)| a - layout.pstate).unwrap();
    assert_eq!(run(&b, b.start_call(), Config::kernel(layout)).verdict, Verdict::Reliable);
    b.w(pt_regs + layout.sp, TASK_HIGH - 0x200);
    assert_eq!(reason(&run(&b, b.start_call(), Config::kernel(layout))), Some(Reason::BadMetaRecord));
}

#[test]
fn a_saved_fp_redirected_to_the_final_record_is_caught() {
    // Found by the corruption property: the first handler's saved fp moved from its PT_REGS
    // record to the task's FINAL record "ends" the walk cleanly, dropping the interrupted
    // context. Its CFA is not the base of that pt_regs, so it is refused.
    for layout in LAYOUTS {
        let mut b = Builder::new(layout);
        b.call(A);
        let regs = b.interrupted(B, 0x10);
        b.exception(regs).call(H);
        assert_eq!(run(&b, b.start_call(), Config::kernel(layout)).verdict, Verdict::Reliable);
        let h_rec = b.fp;
        b.w(h_rec, TASK_HIGH - layout.pt_regs_size + layout.stackframe);
        assert_eq!(reason(&run(&b, b.start_call(), Config::kernel(layout))), Some(Reason::BadMetaRecord), "{layout:?}");
    }
}

#[test]
fn v6_12_synthetic_record_must_match_pt_regs() {
    let layout = KernelLayout::V6_12;
    let mut b = Builder::new(layout);
    b.call(A);
    let regs = b.interrupted(B, 0x10);
    b.exception(regs).call(H);
    assert_eq!(run(&b, b.start_call(), Config::kernel(layout)).verdict, Verdict::Reliable);
    // The entry code's record disagrees with the pt_regs it sits in.
    let rec = b.mem.0.iter().find(|(_, v)| **v == ENTRY_RET).map(|(a, _)| a - 8).unwrap();
    let synthetic = b.mem.0[&rec];
    b.w(synthetic + 8, A.base + 8);
    assert_eq!(reason(&run(&b, b.start_call(), Config::kernel(layout))), Some(Reason::BadMetaRecord));
}

/// The walk of `b` from `start` with the unproven (address-order) table.
fn run_unproven(b: &Builder, start: Start, cfg: Config) -> Run {
    let code = Code { table: table_from_rows(unproven_rows()), sync_only: None, proven: false };
    walk_code(b, start, cfg, &code, &Graph::default(), &stacks())
}

/// The second witness planned for exception crossings (walk.rs, another branch), evaluated
/// here on the registers alone: where the row at the interrupted pc says x29 is saved at slot S,
/// x29 must be S's address or the value saved at S. True when it would let the stop through.
fn second_witness_passes(b: &Builder, regs: Start, table: &[(u64, OrcEntry)]) -> bool {
    let Start::Regs { pc, sp, fp, .. } = regs else { return true };
    let Some(&(_, e)) = table.iter().rev().find(|r| r.0 <= pc) else { return true };
    if e.fp_reg() != Some(Reg::PrevSp) || e.sp_reg() != Some(Reg::Sp) {
        return true;
    }
    let slot = sp.wrapping_add_signed(i64::from(e.sp_offset)).wrapping_add_signed(i64::from(e.fp_offset));
    fp == slot || b.mem.0.get(&slot) == Some(&fp)
}

/// Every stack that stops at a pc of `f` where the unproven table is wrong, under every pair of
/// callers, after an exception (the stop crossed from pt_regs) or from the registers themselves,
/// with the sound defaults and with ORC-only frames. Returns the cases walked RELIABLE with
/// frames other than the true ones, each saying whether the planned second witness refuses it.
fn unproven_stops_fooled(f: Func) -> Vec<std::string::String> {
    let layout = KernelLayout::V6_13;
    let callers: Vec<Func> = FUNCS.iter().copied().filter(|f| f.shape != Shape::Leaf).collect();
    let table = unproven_rows();
    let mut fooled = Vec::new();
    for &off in unproven_pcs(f.shape) {
        for &g in &callers {
            for &c in &callers {
                for via_exception in [true, false] {
                    let mut b = Builder::new(layout);
                    b.call(A).call(g).call(c);
                    let regs = b.interrupted(f, off);
                    let start = if via_exception {
                        b.exception(regs).call(H).call(A);
                        b.start_call()
                    } else {
                        regs
                    };
                    for cfg in [Config::kernel(layout), Config { strict: true, ..Config::kernel(layout) }] {
                        // The exact table proves the stop (or refuses a record-less caller).
                        let exact = run(&b, start, cfg);
                        assert!(!exact.verdict.is_reliable() || exact.pcs == b.expected());
                        let r = run_unproven(&b, start, cfg);
                        if r.verdict.is_reliable() && r.pcs != b.expected() {
                            fooled.push(std::format!(
                                "{:?}+{off:#x} called by {:?} called by {:?}, {}, strict {}: \
                                 walked {:x?}, true {:x?}; second witness {}",
                                f.shape,
                                c.shape,
                                g.shape,
                                if via_exception { "across pt_regs" } else { "from the registers" },
                                cfg.strict,
                                r.pcs,
                                b.expected(),
                                if second_witness_passes(&b, regs, &table) { "passes it" } else { "refuses it" }
                            ));
                        }
                    }
                }
            }
        }
    }
    fooled
}

/// The exact table proves every unproven-pc stop whose callers all keep records.
#[test]
fn unproven_pcs_are_proven_with_the_exact_table() {
    let layout = KernelLayout::V6_13;
    for f in [ER, TAG] {
        for &off in unproven_pcs(f.shape) {
            let mut b = Builder::new(layout);
            b.call(A).call(B).call(TAG).call(ER);
            let regs = b.interrupted(f, off);
            b.exception(regs).call(H).call(A);
            let r = run(&b, b.start_call(), Config::kernel(layout));
            assert_eq!(r.verdict, Verdict::Reliable, "{:?}+{off:#x}", f.shape);
            assert_eq!(r.pcs, b.expected());
        }
    }
}

/// A table from an address-order generator (right image id) keeps `CFA = sp + 16 + t` after
/// `st2g sp, [sp], #t`: the slots it names lie t bytes too high. It may make a stop unreliable,
/// never reliable with other frames. Such a table is not marked proven, so the walk trusts its
/// rows at call sites only and refuses the interrupted pc (`SyncOnlyCfi`); before that rule
/// TagStore(16)+0x40 called by Framed(16) was RELIABLE with the caller missing (26 stops).
#[test]
fn unproven_tag_store_row_never_fools_the_walk() {
    let fooled = unproven_stops_fooled(TAG);
    assert!(fooled.is_empty(), "{} stops fooled:\n{}", fooled.len(), fooled.join("\n"));
}

/// The same table keeps the body's row (`CFA = sp + n`, record at CFA - n) over the frameless
/// early return, where sp is still the caller's sp: the "record" it names is the caller's own
/// (at its sp when it keeps it there), and with equal frame sizes the CFA it gives is the
/// caller's, so every later check passes with the caller dropped (52 stops were, before
/// unproven rows were refused at interrupted pcs; x29 cannot tell, it is that very record, and
/// only x30 with the text at hand can: see `x30_contradicting_a_stale_epilogue_row_is_caught`).
#[test]
fn unproven_early_return_row_never_fools_the_walk() {
    let fooled = unproven_stops_fooled(ER);
    assert!(fooled.is_empty(), "{} stops fooled:\n{}", fooled.len(), fooled.join("\n"));
}

mod properties {
    use super::*;
    use core::cell::Cell;
    use quickcheck::{QuickCheck, TestResult};

    /// Memory that is any function of the address: every read succeeds with seeded garbage.
    struct Garbage {
        seed: u64,
        reads: Cell<u32>,
    }

    impl crate::Memory for Garbage {
        fn read_u64(&self, addr: u64) -> Option<u64> {
            self.reads.set(self.reads.get() + 1);
            let mut x = addr ^ self.seed;
            x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
            x ^= x >> 33;
            // Mostly plausible values: stack addresses, text addresses, zero.
            Some(match x % 4 {
                0 => TASK_LOW + (x >> 8) % 0x4000 / 8 * 8,
                1 => TEXT + (x >> 8) % 0x1000 / 4 * 4,
                2 => 0,
                _ => x,
            })
        }
    }

    fn garbage_never_panics_and_is_bounded(seed: u64, pc: u16, sp: u16, fp: u16, regs: bool) -> bool {
        let mem = Garbage { seed, reads: Cell::new(0) };
        let code = Code { table: table_from_rows(rows(&[])), sync_only: None, proven: true };
        let (pc, sp, fp) =
            (TEXT + u64::from(pc) % 0x1000, TASK_LOW + u64::from(sp) % 0x4000, TASK_LOW + u64::from(fp) % 0x4000);
        let start = if regs { Start::Regs { pc, sp, fp, lr: pc } } else { Start::Call { pc, sp, fp } };
        let cfg = Config::kernel(KernelLayout::V6_13);
        let mut frames = 0u32;
        let _ = walk(start, &cfg, &mem, &StackList { stacks: &stacks() }, &code, &Graph::default(), |_| {
            frames += 1;
            true
        });
        // At most 100 frames, and a handful of reads per frame.
        frames <= cfg.max_frames && mem.reads.get() <= 16 * (cfg.max_frames + 1)
    }

    /// One random row: ip slot, type, sp/fp/ra registers, sp/fp/ra offsets.
    type RandomRow = (u16, u8, u8, u8, u8, i16, i16, i16);

    /// Arbitrary (valid-format) ORC over arbitrary memory: every register, offset, type and
    /// signal bit drawn at random.
    fn garbage_orc_never_panics(rows: Vec<RandomRow>, seed: u64, pc: u16, sp: u16, opts: u8) -> bool {
        let regs = [Reg::Undefined, Reg::PrevSp, Reg::Sp, Reg::Fp];
        let kinds = [Kind::Undefined, Kind::EndOfStack, Kind::Call, Kind::Regs, Kind::RegsPartial];
        let mut r: Vec<(u64, OrcEntry)> = rows
            .iter()
            .map(|&(ip, k, a, b, c, so, fo, ro)| {
                let e = OrcEntry::new(
                    kinds[k as usize % 5],
                    regs[a as usize % 4],
                    so,
                    regs[b as usize % 4],
                    fo,
                    regs[c as usize % 4],
                    ro,
                    k & 0x80 != 0,
                );
                (TEXT + u64::from(ip) * 4, e)
            })
            .collect();
        r.sort_by_key(|e| e.0);
        r.dedup_by_key(|e| e.0);
        r.push((TEXT + 0x4_0000, OrcEntry::UNDEFINED));
        let code = Code { table: table_from_rows(r), sync_only: None, proven: true };
        let mem = Garbage { seed, reads: Cell::new(0) };
        let (pc, sp) = (TEXT + u64::from(pc) * 4, TASK_LOW + u64::from(sp) % 0x4000 / 8 * 8);
        let start = if opts & 1 != 0 { Start::Regs { pc, sp, fp: sp, lr: pc } } else { Start::Call { pc, sp, fp: sp } };
        let cfg = Config { strict: opts & 2 != 0, ..Config::kernel(KernelLayout::V6_13) };
        let mut frames = 0u32;
        let _ = walk(start, &cfg, &mem, &StackList { stacks: &stacks() }, &code, &Graph::default(), |_| {
            frames += 1;
            true
        });
        frames <= cfg.max_frames && mem.reads.get() <= 16 * (cfg.max_frames + 1)
    }

    #[test]
    fn arbitrary_orc_never_panics_and_reads_are_bounded() {
        property(
            "arbitrary_orc",
            cases() / 4,
            1,
            garbage_orc_never_panics as fn(Vec<RandomRow>, u64, u16, u16, u8) -> bool,
        );
    }

    #[test]
    fn arbitrary_memory_never_panics_and_reads_are_bounded() {
        property(
            "arbitrary_memory",
            cases(),
            1,
            garbage_never_panics_and_is_bounded as fn(u64, u16, u16, u16, bool) -> bool,
        );
    }

    /// Which function is interrupted, where, and which word is corrupted how: (an exception on
    /// the stack, the interrupted function, its pc, the word, the kind of corruption, a value).
    type Corruption = (bool, u8, u8, u16, u8, u16);

    /// A valid stack with one word corrupted (`None` when the corruption would not change it):
    /// the interrupted function is any shape at any instruction; earlier calls that returned
    /// left their frames below sp. The builder, where to start, and the corrupted address.
    fn corrupted_stack(c: Corruption) -> Option<(Builder, Start, u64)> {
        let (interrupt, which, off, victim, kind, val) = c;
        let layout = KernelLayout::V6_13;
        let mut b = Builder::new(layout);
        b.call(A).call(BIG).call(NOREC).returned(&[TAG, ER, B]);
        if interrupt {
            let f = FUNCS[usize::from(which) % FUNCS.len()];
            let regs = b.interrupted(f, u64::from(off % 18) * 4);
            b.exception(regs).call(H).returned(&[A, B]);
        }
        b.call(TAG).call(ER).call(A).call(B).returned(&[A, TAG, ER]);
        let start = b.start_call();
        let words: Vec<u64> = b.mem.0.keys().copied().collect();
        let addr = words[usize::from(victim) % words.len()];
        let old = b.mem.0[&addr];
        let new = match kind % 5 {
            0 => TASK_LOW + u64::from(val) % 0x4000 / 8 * 8,
            1 => TEXT + u64::from(val) % 0x800 / 4 * 4,
            2 => 0,
            3 => old.wrapping_add(u64::from(val % 8) * 8 + 8),
            _ => old ^ (1 << (val % 64)),
        };
        if new == old {
            return None;
        }
        b.w(addr, new);
        Some((b, start, addr))
    }

    /// Corrupt one word of a valid stack (which must change it): the walk may say unreliable,
    /// but if it says reliable, the frames must be the true ones.
    fn corrupted_never_falsely_reliable(c: Corruption) -> TestResult {
        let Some((b, start, addr)) = corrupted_stack(c) else {
            return TestResult::discard();
        };
        let truth = b.expected();
        // Live return-address slots and pt_regs.pc define the stack rather than corrupt it: any
        // text address there is another self-consistent stack (interrupted elsewhere, returning
        // elsewhere) whose truth this builder did not execute, and a live record is out of scope
        // (DESIGN §7). Everything else is corrupted here: saved frame pointers, saved sp/x29,
        // meta records, dead x30 in pt_regs, and the stale records and return addresses that
        // popped epilogues and returned calls left below sp (in scope: stale stack memory).
        if b.ra_slots.contains_key(&addr) {
            return TestResult::discard();
        }
        // With a correct table, recovering record-less frames through ORC is sound: exercise it.
        let r = run(&b, start, Config::kernel(b.layout));
        TestResult::from_bool(!r.verdict.is_reliable() || r.pcs == truth)
    }

    /// `walk` as the general step alone takes it (no `common_row`).
    fn without_common_row<T>(f: impl FnOnce() -> T) -> T {
        crate::walk::NO_COMMON_ROW.with(|c| c.set(true));
        let r = f();
        crate::walk::NO_COMMON_ROW.with(|c| c.set(false));
        r
    }

    /// The common row's shortcut gives exactly the general step's walk (verdict, reason, the
    /// failing frame, every frame's pc, kind and witness) on any corrupted stack, any word
    /// included (live return addresses too), strict or not.
    fn common_row_agrees_on_corrupted_stacks(c: Corruption, strict: bool) -> TestResult {
        let Some((b, start, _)) = corrupted_stack(c) else {
            return TestResult::discard();
        };
        let cfg = Config { strict, ..Config::kernel(b.layout) };
        let fast = run(&b, start, cfg);
        TestResult::from_bool(fast == without_common_row(|| run(&b, start, cfg)))
    }

    /// The same on memory that is garbage everywhere, from any start.
    fn common_row_agrees_on_garbage(seed: u64, pc: u16, sp: u16, fp: u16, regs: bool) -> bool {
        let code = Code { table: table_from_rows(rows(&[])), sync_only: None, proven: true };
        let (pc, sp, fp) =
            (TEXT + u64::from(pc) % 0x1000, TASK_LOW + u64::from(sp) % 0x4000, TASK_LOW + u64::from(fp) % 0x4000);
        let start = if regs { Start::Regs { pc, sp, fp, lr: pc } } else { Start::Call { pc, sp, fp } };
        let cfg = Config::kernel(KernelLayout::V6_13);
        let walk_garbage = || {
            let mem = Garbage { seed, reads: Cell::new(0) };
            let mut frames = Vec::new();
            let v = walk(start, &cfg, &mem, &StackList { stacks: &stacks() }, &code, &Graph::default(), |f| {
                frames.push((f.pc, f.fp, f.kind, f.witness));
                true
            });
            (v, frames)
        };
        walk_garbage() == without_common_row(walk_garbage)
    }

    /// The same on two frames made for any rows of the common row's registers (any offsets,
    /// any sign, misaligned, any type, signal bit or not, call-site-only CFI or not; x29 off
    /// the record or not; the second record above or below the first; near the stack's top):
    /// the chain the rows ask for, with its words where they land (readable on the stack or
    /// off it, as kernel memory is), so that each of the shortcut's checks meets both answers.
    /// `x`: bits 0-1 and 2-3 the rows' types, 4-5 their signal bits, 6 call-site-only CFI at
    /// the second function, 7 the first record right under the stack's top; `flags`: 0-5 and 6
    /// which offsets are any, 7 x29 off the record.
    fn common_row_agrees_on_any_rows(o: [i8; 6], flags: u8, ra2: u16, below_top: u8, x: u8) -> bool {
        // Half the cases all offsets as a prologue makes them (the CFA above sp, the record and
        // the return address below it); the other half each one any multiple of 4 (either sign,
        // misaligned half the time) at random.
        let off = |i: usize| {
            let v = i16::from(o[i]);
            if flags & 0x40 != 0 && flags & (1 << i) != 0 {
                return v * 4;
            }
            let n = 8 * (v.unsigned_abs() % 64) as i16;
            // (An eighth of the return addresses above the CFA, to meet the stack's top.)
            [16 + n, -16 - n, if v < -96 { n } else { -8 - n }][i % 3]
        };
        let kinds = [Kind::Call, Kind::Call, Kind::EndOfStack, Kind::Regs];
        let row = |i: usize, k: u8, signal: bool| {
            let kind = kinds[usize::from(k & 3)];
            OrcEntry::new(kind, Reg::Sp, off(i), Reg::PrevSp, off(i + 1), Reg::PrevSp, off(i + 2), signal)
        };
        let (p, q) = (TEXT + 0x2000, TEXT + 0x2100);
        let table = std::vec![
            (p, row(0, x, x & 0x10 != 0)),
            (p + 0x80, OrcEntry::UNDEFINED),
            (q, row(3, x >> 2, x & 0x20 != 0)),
            (q + 0x80, OrcEntry::UNDEFINED),
        ];
        let sync_only = (x & 0x40 != 0).then_some((q, q + 0x80));
        let code = Code { table: table_from_rows(table), sync_only, proven: true };
        let at = |base: u64, i: usize| base.wrapping_add_signed(i64::from(off(i)));
        // Near the stack's top, so that records and slots also land on it, across it and above.
        let mut sp = TASK_HIGH - 8 * u64::from(below_top);
        if x & 0x80 != 0 {
            sp = (TASK_HIGH - 8).wrapping_sub_signed(i64::from(off(0)) + i64::from(off(1)));
        }
        let (cfa1, mut b) = (at(sp, 0), Builder::new(KernelLayout::V6_13));
        b.mem.0.clear();
        let (record1, cfa2) = (at(cfa1, 1), at(cfa1, 3));
        let record2 = at(cfa2, 4);
        b.w(record1, record2);
        b.w(at(cfa1, 2), q + 4);
        b.w(record2, TASK_LOW + 0x3000);
        b.w(at(cfa2, 5), TEXT + u64::from(ra2) % 0x4000 / 4 * 4);
        let fp = if flags & 0x80 != 0 { record1 ^ 8 } else { record1 };
        let start = Start::Call { pc: p + 8, sp, fp };
        let cfg = Config { max_frames: 4, ..Config::kernel(KernelLayout::V6_13) };
        let run = || walk_code(&b, start, cfg, &code, &Graph::default(), &stacks());
        run() == without_common_row(run)
    }

    #[test]
    fn the_common_row_shortcut_changes_no_walk() {
        let before = crate::walk::COMMON_ROW_STEPS.with(Cell::get);
        property(
            "common_row_corrupted",
            cases(),
            10,
            common_row_agrees_on_corrupted_stacks as fn(Corruption, bool) -> TestResult,
        );
        property(
            "common_row_garbage",
            cases(),
            1,
            common_row_agrees_on_garbage as fn(u64, u16, u16, u16, bool) -> bool,
        );
        property("common_row_rows", cases(), 1, common_row_agrees_on_any_rows as fn([i8; 6], u8, u16, u8, u8) -> bool);
        // Taken on most frames of those stacks (this thread's count): the comparison compared.
        let taken = crate::walk::COMMON_ROW_STEPS.with(Cell::get) - before;
        assert!(taken >= cases(), "the shortcut was taken {taken} times in {} cases", cases());
    }

    /// A random chain of callers, stale frames below it, one function interrupted (at a pc where
    /// the unproven table is wrong half the time), walked across the exception or from its
    /// registers with the table an address-order generator makes: unreliable, or exact.
    fn unproven_never_falsely_reliable(callers: Vec<u8>, which: u8, off: u8, opts: u8) -> bool {
        let layout = KernelLayout::V6_13;
        let mut b = Builder::new(layout);
        let non_leaf: Vec<Func> = FUNCS.iter().copied().filter(|f| f.shape != Shape::Leaf).collect();
        for c in callers.iter().take(6) {
            b.call(non_leaf[usize::from(*c) % non_leaf.len()]);
        }
        b.returned(&[ER, TAG]);
        let f = FUNCS[usize::from(which) % FUNCS.len()];
        let wrong = unproven_pcs(f.shape);
        let off = if opts & 1 != 0 && !wrong.is_empty() {
            wrong[usize::from(off) % wrong.len()]
        } else {
            u64::from(off % 18) * 4
        };
        let regs = b.interrupted(f, off);
        let start = if opts & 2 != 0 {
            b.exception(regs).call(H).call(A);
            b.start_call()
        } else {
            regs
        };
        let cfg = Config { strict: opts & 4 != 0, ..Config::kernel(layout) };
        let exact = run(&b, start, cfg);
        let r = run_unproven(&b, start, cfg);
        let sound = |r: &Run| !r.verdict.is_reliable() || r.pcs == b.expected();
        sound(&exact) && sound(&r)
    }

    #[test]
    fn unproven_table_is_never_reliable_with_wrong_frames() {
        property("unproven_table", cases(), 1, unproven_never_falsely_reliable as fn(Vec<u8>, u8, u8, u8) -> bool);
    }

    /// Cases per property: 3000 in CI; `ORCWALK_QC_TESTS=N` for a longer campaign.
    fn cases() -> u64 {
        std::env::var("ORCWALK_QC_TESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
    }

    /// Runs `prop` until `tests` cases passed (at most `tests * tries` drawn, for properties that
    /// discard) and prints how many passed, for a campaign's record. quickcheck stops at its
    /// `max_tests` (10,000 by default) whatever `tests` asks, so it is raised with `tests`.
    fn property<A: quickcheck::Testable>(name: &str, tests: u64, tries: u64, prop: A) {
        match QuickCheck::new().tests(tests).max_tests(tests.saturating_mul(tries)).quicktest(prop) {
            Ok(passed) => {
                std::println!("property {name}: {passed} cases passed");
                if tries == 1 {
                    assert_eq!(passed, tests, "{name}: cases run");
                } else {
                    assert!(passed * 2 >= tests, "{name}: only {passed} of {tests} cases were not discarded");
                }
            }
            Err(r) => panic!("property {name} failed: {r:?}"),
        }
    }

    #[test]
    fn corruption_is_never_reliable_with_wrong_frames() {
        property("corruption", cases(), 10, corrupted_never_falsely_reliable as fn(Corruption) -> TestResult);
    }
}

/// The testkit's code with text: every function's call site (`base + CALL_RET - 4`) is a `bl` to
/// the callee given per test, everything else `nop`, functions `[base, base + FUNC_LEN)`.
struct WithText {
    code: Code,
    /// `None`: text unreadable (as in a dump replayed without its image).
    calls: Option<Vec<(u64, u64)>>,
}

impl crate::code::CodeInfo for WithText {
    fn is_text(&self, pc: u64) -> bool {
        self.code.is_text(pc)
    }
    fn orc(&self, pc: u64) -> Option<OrcEntry> {
        self.code.orc(pc)
    }
    fn is_entry_text(&self, pc: u64) -> bool {
        self.code.is_entry_text(pc)
    }
    fn insn(&self, pc: u64) -> Option<u32> {
        let bl = |from: u64, to: u64| 0x9400_0000 | ((to.wrapping_sub(from) as i64 / 4) as u32 & 0x03ff_ffff);
        let calls = self.calls.as_ref()?;
        if pc == ENTRY_RET - 4 {
            return Some(0xd63f_0260); // blr x19: entry code calls the first C function
        }
        Some(calls.iter().find(|c| c.0 == pc).map_or(0xd503_201f, |&(at, to)| bl(at, to)))
    }
    fn function(&self, pc: u64) -> Option<(u64, u64)> {
        let base = pc & !0xff;
        (pc - base < FUNC_LEN).then_some((base, base + FUNC_LEN))
    }
}

fn run_text(b: &Builder, start: Start, rows: Vec<(u64, OrcEntry)>, calls: Option<&[(Func, Func)]>) -> Run {
    let calls = calls.map(|c| c.iter().map(|(from, to)| (from.base + CALL_RET - 4, to.base)).collect());
    let code = WithText { code: Code { table: table_from_rows(rows), sync_only: None, proven: true }, calls };
    walk_code(b, start, Config::kernel(b.layout), &code, &Graph::default(), &stacks())
}

/// A stale table: the body's row kept over `f`'s epilogue (as an address-order generator keeps
/// it after an undecoded sp write). Interrupted there, the row names the caller's record and
/// return address, x29 agrees (the caller's record sits at its sp), and only x30 (still `f`'s
/// own return address, after a `bl f`) tells the truth: the adversarial review's shape.
#[test]
fn x30_contradicting_a_stale_epilogue_row_is_caught() {
    // The caller's frame is as big as f's: the walk lands exactly on A's CFA and every later
    // check passes. (With another size A's record check catches it.)
    let (f, g) = (Func::at(0xa, Shape::Framed(16)), Func::at(0xb, Shape::Framed(16)));
    let all: Vec<(u64, OrcEntry)> = f.rows().into_iter().chain(g.rows()).collect();
    let stale: Vec<(u64, OrcEntry)> = rows(&all).into_iter().filter(|r| r.0 != f.base + EPILOGUE).collect();
    let calls = [(A, g), (g, f)];
    let mut b = Builder::new(KernelLayout::V6_13);
    b.call(A).call(g);
    let regs = b.interrupted(f, EPILOGUE);
    // With the right table: reliable and exact, with or without text.
    for text in [None, Some(&calls[..])] {
        let right = run_text(&b, regs, rows(&all), text);
        assert_eq!((right.verdict, right.pcs), (Verdict::Reliable, b.expected()));
    }
    // The stale table fools the walk without text: B is skipped with every check passing.
    let fooled = run_text(&b, regs, stale.clone(), None);
    assert_eq!(fooled.verdict, Verdict::Reliable);
    assert_ne!(fooled.pcs, b.expected());
    // With text, x30 (after `bl f` in B) contradicts the slot (B's own return address).
    assert_eq!(reason(&run_text(&b, regs, stale, Some(&calls))), Some(Reason::LrContradictsRow));
}

/// Every return address must follow a call, and a direct call must lead to the function the
/// address returns from (or to one that can tail-call).
#[test]
fn return_addresses_must_follow_a_call_to_their_callee() {
    let mut b = Builder::new(KernelLayout::V6_13);
    b.call(A).call(B).call(H);
    let all = rows(&[]);
    let good = run_text(&b, b.start_call(), all.clone(), Some(&[(A, B), (B, H)]));
    assert_eq!((good.verdict, good.pcs), (Verdict::Reliable, b.expected()));
    // A's call site is a `nop` here: B's return address into A follows no call.
    assert_eq!(reason(&run_text(&b, b.start_call(), all.clone(), Some(&[(B, H)]))), Some(Reason::NotACallSite));
    // A's call names H (which cannot tail-call) while the address returns from B.
    assert_eq!(reason(&run_text(&b, b.start_call(), all, Some(&[(A, H), (B, H)]))), Some(Reason::WrongCallee));
}

/// After an exception x29 must be the interrupted function's record or the caller's x29 the
/// record holds; a row whose slot holds neither is refused.
#[test]
fn x29_contradicting_the_row_after_an_exception_is_caught() {
    let layout = KernelLayout::V6_13;
    let mut b = Builder::new(layout);
    b.call(A);
    let Start::Regs { pc, sp, lr, .. } = b.interrupted(B, 0x10) else { unreachable!() };
    let ok = run(&b, Start::Regs { pc, sp, fp: sp, lr }, Config::kernel(layout));
    assert_eq!(ok.verdict, Verdict::Reliable);
    let off = run(&b, Start::Regs { pc, sp, fp: sp + 0x100, lr }, Config::kernel(layout));
    assert_eq!(reason(&off), Some(Reason::FpMismatch));
}

/// A kernel running at EL2 (VHE, every arm64 KVM host) takes its exceptions in EL2h: crossed
/// like EL1h. An exception from EL0 is not the kernel's and stays refused.
#[test]
fn exceptions_taken_at_el2_are_crossed() {
    let layout = KernelLayout::V6_13;
    for (mode, reliable) in [(5u64, true), (9, true), (8, true), (4, true), (0, false)] {
        let mut b = Builder::new(layout);
        b.call(A);
        let regs = b.interrupted(B, 0x10);
        b.exception(regs).call(H);
        let pstate_at = *b.mem.0.iter().find(|(_, v)| **v == 0x3c5).unwrap().0;
        b.w(pstate_at, 0x3c0 | mode);
        let r = run(&b, b.start_call(), Config::kernel(layout));
        assert_eq!(r.verdict.is_reliable(), reliable, "pstate mode {mode}: {:?}", r.verdict);
    }
}

/// A user program's stack: _start → A → B.
fn user_program() -> (Builder, Config) {
    let mut b = Builder::new(KernelLayout::V6_13);
    b.mem.0.clear();
    b.sp = TASK_HIGH;
    b.fp = 0;
    b.pc = USTART + 8;
    b.truth = std::vec![USTART + 8];
    b.call(A).call(B);
    (b, Config { end: EndRule::OrcEndOfStack, ..Config::kernel(KernelLayout::V6_13) })
}

/// A user program interrupted in `f` at `off`, a signal delivered there with `extra` bytes of
/// extension records, and the handler H calling B.
fn signalled(f: Func, off: u64, extra: u64) -> (Builder, Config) {
    let (mut b, cfg) = user_program();
    let regs = b.interrupted(f, off);
    b.signal(regs, extra).call(H).call(B);
    (b, cfg)
}

/// The signal frame, found after a signal handler returns to the trampoline: crossed like an
/// exception (exact pc, x30 known), at every instruction of the interrupted function, whatever
/// the size of the extension records.
#[test]
fn signal_frames_are_crossed() {
    for f in [A, B, LEAF, NOREC, BIG] {
        for off in (0..FUNC_LEN).step_by(4) {
            for extra in [0, 0x8b0] {
                let (b, cfg) = signalled(f, off, extra);
                let r = run(&b, b.start_call(), cfg);
                assert_eq!(r.verdict, Verdict::Reliable, "{f:?} +{off:#x} extra {extra}");
                assert_eq!(r.pcs, b.expected(), "{f:?} +{off:#x}");
                let tramp = r.pcs.iter().position(|&p| p == SIGRETURN).unwrap();
                assert_eq!(r.kinds[tramp + 1], FrameKind::Exception);
                assert_eq!(r.witnesses[tramp + 1], Witness::Two);
                // Mainline stops at the signal frame as at any exception boundary.
                let m = run(&b, b.start_call(), Config { policy: Policy::Mainline, ..cfg });
                assert_eq!(reason(&m), Some(Reason::ExceptionBoundary));
            }
        }
    }
    // The handler interrupted at its first instruction: x30 is the trampoline, x29 the record.
    let (mut b, cfg) = user_program();
    let regs = b.interrupted(A, 0x20);
    let regs = b.signal(regs, 0).interrupted(H, 0);
    let r = run(&b, regs, cfg);
    assert_eq!((r.verdict, r.pcs.clone()), (Verdict::Reliable, b.expected()));
    assert_eq!(r.kinds[1], FrameKind::LinkRegister);
}

/// Everything that makes a signal frame doubtful is refused: a trampoline of other
/// instructions, a record that is not the sigframe's, saved registers that disagree with it,
/// a context not from EL0, an interrupted sp not right above the record (alternate stack).
#[test]
fn reason_bad_sigframe() {
    use crate::code::CodeInfo;
    use crate::layout::sigframe as sf;
    let (b, cfg) = signalled(B, 0x20, 0);
    let frame = *b.mem.0.iter().find(|(_, v)| **v == 0x6000_0000).unwrap().0 - sf::PSTATE;
    let record = frame + sf::MIN_SIZE;
    let h_record = frame - 16;
    assert_eq!(b.mem.0[&h_record], record);
    let with = |code: &dyn Fn(u64) -> Option<[u32; 2]>, f: &dyn Fn(&mut Mem)| {
        struct Tramp<'a>(Code, &'a dyn Fn(u64) -> Option<[u32; 2]>);
        impl CodeInfo for Tramp<'_> {
            fn is_text(&self, pc: u64) -> bool {
                self.0.is_text(pc)
            }
            fn orc(&self, pc: u64) -> Option<OrcEntry> {
                self.0.orc(pc)
            }
            fn rows_proven(&self) -> bool {
                true
            }
            fn sigreturn(&self, pc: u64) -> Option<[u32; 2]> {
                (self.1)(pc)
            }
        }
        let mut mem = b.mem.clone();
        f(&mut mem);
        let code = Tramp(Code { table: table_from_rows(rows(&[])), sync_only: None, proven: true }, code);
        let stacks = stacks();
        match walk(b.start_call(), &cfg, &mem, &StackList { stacks: &stacks }, &code, &Graph::default(), |_| true) {
            Verdict::Unreliable { reason, .. } => Some(reason),
            Verdict::Reliable => None,
        }
    };
    let right = |pc| (pc == SIGRETURN).then_some(sf::TRAMPOLINE);
    let bad = |f: &dyn Fn(&mut Mem)| with(&right, f);
    assert_eq!(bad(&|_| {}), None);
    assert_eq!(bad(&|m| _ = m.0.insert(record, 0x1234_5670)), Some(Reason::BadSigframe));
    assert_eq!(bad(&|m| _ = m.0.insert(record + 8, A.base + CALL_RET)), Some(Reason::BadSigframe));
    assert_eq!(bad(&|m| _ = m.0.insert(frame + sf::X29, 0x1234_5670)), Some(Reason::BadSigframe));
    assert_eq!(bad(&|m| _ = m.0.insert(frame + sf::PSTATE, 0x3c5)), Some(Reason::BadSigframe));
    assert_eq!(bad(&|m| _ = m.0.insert(frame + sf::SP, record + 0x100)), Some(Reason::BadSigframe));
    assert_eq!(bad(&|m| _ = m.0.insert(frame + sf::PC, TEXT_END + 0x8000)), Some(Reason::UnknownText));
    // H's saved x29 aimed elsewhere: the record is then not the sigframe's (too close to the
    // sigframe, or not right below the interrupted sp).
    assert_eq!(bad(&|m| _ = m.0.insert(h_record, record - 16)), Some(Reason::BadSigframe));
    assert_eq!(bad(&|m| _ = m.0.insert(h_record, record + 16)), Some(Reason::BadSigframe));
    // A trampoline of other instructions.
    let other = |pc| (pc == SIGRETURN).then_some([0xd280_1168, 0xd503_201f]);
    assert_eq!(with(&other, &|_| {}), Some(Reason::BadSigframe));
    // Without the trampoline known, the walk stops where it always did.
    assert_eq!(with(&|_| None, &|_| {}), Some(Reason::UnknownText));
}

/// Nested signals: a handler interrupted anywhere by a second signal, under a first signal that
/// interrupted any shape anywhere (with extension records in the first frame).
#[test]
fn nested_signals_are_crossed_at_every_position() {
    for f in [A, B, LEAF, NOREC, BIG] {
        for off in (0..FUNC_LEN).step_by(4) {
            for hoff in (0..FUNC_LEN).step_by(4) {
                let (mut b, cfg) = user_program();
                let regs = b.interrupted(f, off);
                b.signal(regs, 0x40).call(H);
                let regs = b.interrupted(H, hoff);
                b.signal(regs, 0).call(H).call(B);
                let r = run(&b, b.start_call(), cfg);
                assert_eq!(r.verdict, Verdict::Reliable, "{f:?} +{off:#x} H+{hoff:#x}");
                assert_eq!(r.pcs, b.expected(), "{f:?} +{off:#x} H+{hoff:#x}");
            }
        }
    }
}

/// A handler stopped at any instruction, a handler that builds no record, a leaf handler.
#[test]
fn handlers_of_every_shape_are_crossed() {
    for (h, offs) in [(H, FUNC_LEN), (LEAF, FUNC_LEN)] {
        for hoff in (0..offs).step_by(4) {
            let (mut b, cfg) = user_program();
            let regs = b.interrupted(A, 0x20);
            let regs = b.signal(regs, 0).interrupted(h, hoff);
            let r = run(&b, regs, cfg);
            assert_eq!((r.verdict, r.pcs.clone()), (Verdict::Reliable, b.expected()), "{:?}+{hoff:#x}", h.shape);
        }
    }
    let (mut b, cfg) = user_program();
    let regs = b.interrupted(A, 0x20);
    b.signal(regs, 0).call(NOREC).call(B);
    let r = run(&b, b.start_call(), cfg);
    assert_eq!((r.verdict, r.pcs.clone()), (Verdict::Reliable, b.expected()));
    assert!(r.witnesses.contains(&Witness::Orc));
}
