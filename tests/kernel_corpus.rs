//! The shipped kernel corpora (`tests/corpus/kernel/<kernel>`, captured by
//! scripts/capture-kernel-corpus from Debian's 6.12 cloud kernel and 7.2 PREEMPT_RT kernel in
//! qemu-system-aarch64, the 7.2 kernel also at EL2 with VHE and pointer authentication, and our own
//! LLVM-built 7.2 kernel with pointer authentication): zero
//! false-reliable verdicts under every policy and opt-in, coverage held above the measured floor,
//! the truth complete often enough to mean something, and each corpus replayed against the ORC
//! table of its own vmlinux.

use std::path::PathBuf;

use orc_format::TableFile;
use orcwalk::{FrameKind, Policy};
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::{Mode, Summary, replay_with};

/// `(corpus, samples at least, floor, strict floor, truth complete at least)`, measured on the shipped corpora
/// (`./scripts/run`, `./scripts/run --strict`): CPUs interrupted anywhere (100 % both, with call_on_irq_stack's
/// rows derived from its instructions; strict 21.7 %, 31.7 %) and blocked tasks walked from
/// their saved context, livepatch's case (100 % both; strict 95.6 %, 95.9 %), with tables whose
/// rows are proven along control flow.
///
/// 7.2-rt-el2[/blocked]: the 7.2 kernel at EL2 (VHE and pointer authentication, `-M
/// virt,virtualization=on -cpu max,pauth-impdef=on`), 100 stops taken at EL2h, crossing EL2h
/// exceptions (100 % both; strict 25.3 %, 99.0 %).
///
/// 7.2-llvm[/blocked]: our own 7.2.13 kernel built with clang 22 and rustc 1.96 (scripts/build-own-kernel,
/// tinyconfig + kernel/config/orcwalk.config), on `-cpu max,pauth-impdef=on` at EL1 (100 % both;
/// strict 78.9 %, 100 %). Its truth is complete less often (72.7 % of the CPUs interrupted
/// anywhere): clang describes no prologue or epilogue in the kernel's synchronous CFI and puts
/// epilogues in the middle of functions, so the truth's address-order stale check doubts every
/// stop in a prologue, an epilogue, or after an early return's epilogue.
const KERNELS: [(&str, usize, f64, f64, f64); 8] = [
    ("6.12-cloud", 290, 0.98, 0.20, 0.8),
    ("7.2-rt", 290, 0.98, 0.30, 0.8),
    ("6.12-cloud/blocked", 290, 0.98, 0.94, 0.8),
    ("7.2-rt/blocked", 290, 0.98, 0.94, 0.8),
    ("7.2-rt-el2", 95, 0.98, 0.24, 0.8),
    ("7.2-rt-el2/blocked", 95, 0.98, 0.97, 0.8),
    ("7.2-llvm", 290, 0.98, 0.77, 0.7),
    ("7.2-llvm/blocked", 285, 0.98, 0.98, 0.8),
];

fn load(kernel: &str) -> Vec<(PathBuf, Dump)> {
    orcwalk_sim::dump::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kernel").join(kernel))
        .unwrap()
}

#[test]
fn kernel_corpora_have_no_false_reliable_and_keep_their_coverage() {
    for (kernel, at_least, floor, strict_floor, truth_floor) in KERNELS {
        let dumps = load(kernel);
        // 300 stops each (100 at EL2); a stop's randomly chosen blocked task may turn out to be
        // running.
        assert!(dumps.len() >= at_least, "{kernel}: {} samples", dumps.len());
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kernel").join(kernel);
        let table_bytes = std::fs::read(dir.join(&dumps[0].1.info.image_path)).unwrap();
        let table = TableFile::parse(&table_bytes).unwrap();
        assert_eq!(table.image_id().kind(), orc_format::IdKind::BuildId, "{kernel}: {}", table.image_id());
        assert!(table.proven(), "{kernel}: the shipped table's rows are not marked proven");
        let (mut orc, mut mainline, mut strict) = (Summary::default(), Summary::default(), Summary::default());
        for (path, d) in &dumps {
            assert!(d.info.kernel, "{}: not a kernel sample", path.display());
            assert!(
                table.matches(&d.info.image_id),
                "{}: captured from another vmlinux ({} vs the table's {})",
                path.display(),
                d.info.image_id,
                table.image_id()
            );
            orc.add_outcome(d.info.truth_complete, &replay_with(d, table, Policy::Orcwalk, Mode::default()));
            mainline.add(d.info.truth_complete, replay_with(d, table, Policy::Mainline, Mode::default()).judgement);
            strict.add(d.info.truth_complete, replay_with(d, table, Policy::Orcwalk, Mode::STRICT).judgement);
        }
        println!("{kernel}: orcwalk {orc:?}\n{kernel}: mainline {mainline:?}\n{kernel}: strict {strict:?}");
        assert_eq!(orc.false_reliable, 0, "{kernel}: false-reliable verdicts");
        assert_eq!(mainline.false_reliable, 0, "{kernel}: false-reliable under the mainline policy");
        assert_eq!(strict.false_reliable, 0, "{kernel}: false-reliable in strict mode");
        assert!(orc.coverage() >= floor, "{kernel}: coverage {:.3} below the floor {floor}", orc.coverage());
        assert!(
            strict.coverage() >= strict_floor,
            "{kernel}: strict coverage {:.3} below {strict_floor}",
            strict.coverage()
        );
        // Never below mainline where mainline can judge: blocked tasks, livepatch's case.
        if kernel.ends_with("blocked") {
            assert!(
                orc.correct >= mainline.correct,
                "{kernel}: {} proven, mainline's rule {}",
                orc.correct,
                mainline.correct
            );
        }
        assert!(
            orc.truth_complete as f64 >= orc.samples as f64 * truth_floor,
            "{kernel}: truth complete in only {}",
            orc.truth_complete
        );
    }
}

/// The truth crosses what the kernel's CFI cannot: exceptions the kernel took from itself, at
/// EL1 (at EL2 for 7.2-rt-el2): a return address into entry text, then the interrupted pc: an
/// IRQ taken in the kernel, or a PREEMPT_RT task preempted at IRQ return; and ends at the task's
/// pt_regs. The corpora must hold such stacks, or they do not test the unwinder where it is
/// hardest.
#[test]
fn kernel_truths_cross_exceptions() {
    let mut total = 0;
    for (kernel, ..) in KERNELS {
        let dumps = load(kernel);
        let crossing = dumps
            .iter()
            .filter(|(_, d)| {
                let i = &d.info;
                let in_entry = |pc: &u64| i.entry.0 <= *pc && *pc < i.entry.1;
                // An entry-text return address that is not the last frame: the walk went on
                // into the interrupted context.
                i.truth_complete && i.truth.iter().rev().skip(1).any(in_entry)
            })
            .count();
        println!("{kernel}: {crossing} complete truths cross an exception");
        total += crossing;
    }
    assert!(total >= 20, "only {total} truths cross an exception");
}

/// The kernel at EL2 (VHE, as on every arm64 KVM host) takes its own exceptions at EL2h: the
/// truth crosses pt_regs whose pstate says EL2h (M = 0b1001), never EL1, and orcwalk's verdict on
/// those stacks is reliable and correct, its exception frames at the same pcs.
#[test]
fn el2_kernel_truths_cross_el2h_exceptions() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kernel/7.2-rt-el2");
    let dumps = load("7.2-rt-el2");
    let table_bytes = std::fs::read(dir.join(&dumps[0].1.info.image_path)).unwrap();
    let table = TableFile::parse(&table_bytes).unwrap();
    let (mut crossing, mut walked) = (0, 0);
    for (path, d) in &dumps {
        let i = &d.info;
        // Every stop was taken at EL2 (pstate M[3:2] = 2).
        assert_eq!((d.regs[33] >> 2) & 3, 2, "{}: stop not at EL2 (pstate {:#x})", path.display(), d.regs[33]);
        if !i.truth_complete {
            continue;
        }
        let l = i.layout;
        // The pt_regs the truth crossed: right below the interrupted sp, holding the pc that
        // follows the entry-text return address.
        let el_of = |pc: u64| -> Option<u64> {
            i.stacks.iter().flat_map(|s| (s.low..s.high.saturating_sub(l.pt_regs_size)).step_by(8)).find_map(|a| {
                (d.read_u64(a + l.pc) == Some(pc) && d.read_u64(a + l.sp) == Some(a + l.pt_regs_size))
                    .then(|| d.read_u64(a + l.pstate))
                    .flatten()
            })
        };
        let in_entry = |pc: u64| i.entry.0 <= pc && pc < i.entry.1;
        let crossed: Vec<u64> = i.truth.windows(2).filter(|w| in_entry(w[0])).map(|w| w[1]).collect();
        if crossed.is_empty() {
            continue;
        }
        for &pc in &crossed {
            let pstate = el_of(pc).unwrap_or_else(|| panic!("{}: no pt_regs for {pc:#x}", path.display()));
            assert_eq!(pstate & 0xf, 9, "{}: exception at {pc:#x} not taken at EL2h ({pstate:#x})", path.display());
        }
        crossing += 1;
        let out = replay_with(d, table, Policy::Orcwalk, Mode::default());
        if out.judgement == orcwalk_sim::replay::Judgement::Correct {
            let exceptions: Vec<u64> =
                out.frames.iter().filter(|(_, k)| *k == FrameKind::Exception).map(|(pc, _)| *pc).collect();
            assert_eq!(exceptions, crossed, "{}: orcwalk's exception frames", path.display());
            walked += 1;
        }
    }
    println!("7.2-rt-el2: {crossing} complete truths cross an EL2h exception, {walked} of them walked reliably");
    assert!(crossing >= 10, "only {crossing} truths cross an EL2h exception");
    assert!(walked >= 10, "orcwalk crosses only {walked} EL2h exceptions");
}

/// No vmlinux is shipped, so nothing can rebuild a kernel table here: each carries the
/// fingerprint of the generator that made it, and it must be today's generator
/// (`TABLES_ONLY=1 scripts/capture-kernel-corpus` rebuilds them from the cached vmlinuxes).
#[test]
fn kernel_tables_are_made_by_todays_generator() {
    for kernel in ["6.12-cloud", "7.2-rt", "7.2-rt-el2", "7.2-llvm"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus/kernel")
            .join(kernel)
            .join("vmlinux.orc.generator");
        let made_by = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            made_by.trim(),
            orc_format::generate::FINGERPRINT,
            "{kernel}: its table was made by another generator: rebuild it (TABLES_ONLY=1 KERNELS=... scripts/capture-kernel-corpus)"
        );
    }
}

/// The layout each corpus was walked with (`KernelLayout`, chosen by name at capture) is the
/// kernel's own: `layout.gdb` is gdb's `ptype/o struct pt_regs` of that corpus's vmlinux (written
/// by scripts/capture-kernel-corpus), an outside reading of its debug info.
#[test]
fn kernel_layouts_are_the_kernels_own() {
    /// (offset, text after the size column) of each member line of `ptype/o`.
    fn members(block: &str) -> Vec<(u64, String)> {
        block
            .lines()
            .filter_map(|l| {
                let l = l.trim_start().strip_prefix("/*")?;
                let (cols, rest) = l.split_once("*/")?;
                let off = cols.split('|').next()?.trim().parse().ok()?;
                Some((off, rest.trim().to_string()))
            })
            .collect()
    }
    for kernel in ["6.12-cloud", "7.2-rt", "7.2-rt-el2", "7.2-llvm"] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kernel").join(kernel);
        let gdb = std::fs::read_to_string(dir.join("layout.gdb")).unwrap();
        let pt_regs = gdb.split("type = struct cpu_context").next().unwrap();
        let m = members(pt_regs);
        let at = |name: &str| {
            m.iter()
                .find(|(_, t)| t.ends_with(&format!(" {name};")) || t.ends_with(&format!("{name};")))
                .map(|(o, _)| *o)
                .unwrap_or_else(|| panic!("{kernel}: no {name} in pt_regs"))
        };
        let size: u64 = pt_regs
            .lines()
            .filter_map(|l| l.split("total size (bytes):").nth(1))
            .next_back()
            .and_then(|s| s.trim().trim_end_matches("*/").trim().parse().ok())
            .unwrap();
        let meta = m.iter().find(|(_, t)| t.starts_with("struct frame_record_meta {")).map(|(o, _)| *o);
        let stackframe = meta.unwrap_or_else(|| at("stackframe[2]"));
        let regs = at("regs[31]");
        let kernel_says = orcwalk::KernelLayout {
            pt_regs_size: size,
            x29: regs + 29 * 8,
            x30: regs + 30 * 8,
            sp: at("sp"),
            pc: at("pc"),
            pstate: at("pstate"),
            stackframe,
            meta_records: meta.is_some(),
            va_bits: 0,
        };
        let dumps = load(kernel);
        let walked = orcwalk::KernelLayout { va_bits: 0, ..dumps[0].1.info.layout };
        assert_eq!(walked, kernel_says, "{kernel}: the layout the dumps were walked with is not the kernel's");
        assert!(dumps.iter().all(|(_, d)| d.info.layout == dumps[0].1.info.layout), "{kernel}: one layout");
    }
}
