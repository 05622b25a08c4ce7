//! The shipped kernel corpora (`tests/corpus/kernel/<kernel>`, captured by
//! scripts/capture-kernel-corpus from Debian's 6.12 cloud kernel and 7.2 PREEMPT_RT kernel in
//! qemu-system-aarch64): zero false-reliable verdicts under every policy and opt-in, coverage
//! held above the measured floor, the truth complete often enough to mean something, and each
//! corpus replayed against the ORC table of its own vmlinux.

use std::path::PathBuf;

use orc_format::TableFile;
use orcwalk::Policy;
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::{Mode, Summary, replay_with};

/// `(corpus, floor, strict floor)`, measured on the shipped corpora (`./scripts/run`,
/// `./scripts/run --strict`): CPUs interrupted anywhere (100 % both, with call_on_irq_stack's
/// rows derived from its instructions; strict 21.7 %, 31.7 %) and blocked tasks walked from
/// their saved context, livepatch's case (100 % both; strict 95.6 %, 95.9 %), with tables whose
/// rows are proven along control flow.
const KERNELS: [(&str, f64, f64); 4] = [
    ("6.12-cloud", 0.98, 0.20),
    ("7.2-rt", 0.98, 0.30),
    ("6.12-cloud/blocked", 0.98, 0.94),
    ("7.2-rt/blocked", 0.98, 0.94),
];

fn load(kernel: &str) -> Vec<(PathBuf, Dump)> {
    orcwalk_sim::dump::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kernel").join(kernel))
        .unwrap()
}

#[test]
fn kernel_corpora_have_no_false_reliable_and_keep_their_coverage() {
    for (kernel, floor, strict_floor) in KERNELS {
        let dumps = load(kernel);
        // 300 stops each; a stop's randomly chosen blocked task may turn out to be running.
        assert!(dumps.len() >= 290, "{kernel}: {} samples", dumps.len());
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
        assert!(orc.truth_complete * 5 >= orc.samples * 4, "{kernel}: truth complete in only {}", orc.truth_complete);
    }
}

/// The truth crosses what the kernel's CFI cannot: EL1 exceptions (a return address into entry
/// text, then the interrupted pc: an IRQ taken in the kernel, or a PREEMPT_RT task preempted at
/// IRQ return), and ends at the task's pt_regs. The corpora must hold such stacks, or they do not
/// test the unwinder where it is hardest.
#[test]
fn kernel_truths_cross_exceptions() {
    let mut total = 0;
    for (kernel, _, _) in KERNELS {
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
        println!("{kernel}: {crossing} complete truths cross an EL1 exception");
        total += crossing;
    }
    assert!(total >= 20, "only {total} truths cross an EL1 exception");
}
