//! The shipped kernel corpora (`tests/corpus/kernel/<kernel>`, captured by
//! scripts/capture-kernel-corpus from Debian's 6.12 cloud kernel and 7.2 PREEMPT_RT kernel in
//! qemu-system-aarch64): zero false-reliable verdicts under every policy and opt-in, coverage
//! held above the measured floor, the truth complete often enough to mean something, and each
//! corpus replayed against the ORC table of its own vmlinux.

use std::path::PathBuf;

use orc_format::TableFile;
use orcwalk::Policy;
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::{Summary, Trust, replay_with};

/// Measured on the shipped corpora with the sound defaults (README, "Real kernel stacks"):
/// 6.12 cloud 16.2 %, 7.2 rt 18.5 %; with `trust_fp_cfa` 79.6 % and 76.9 %.
const KERNELS: [(&str, f64, f64); 2] = [("6.12-cloud", 0.15, 0.75), ("7.2-rt", 0.17, 0.72)];

fn load(kernel: &str) -> Vec<(PathBuf, Dump)> {
    orcwalk_sim::dump::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kernel").join(kernel))
        .unwrap()
}

#[test]
fn kernel_corpora_have_no_false_reliable_and_keep_their_coverage() {
    for (kernel, floor, trusting_floor) in KERNELS {
        let dumps = load(kernel);
        assert!(dumps.len() >= 300, "{kernel}: {} samples", dumps.len());
        let table_bytes = std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kernel").join(kernel).join("vmlinux.orc"),
        )
        .unwrap();
        let table = TableFile::parse(&table_bytes).unwrap();
        let trusting = Trust { fp_cfa: true, orc_only_frames: true };
        let (mut orc, mut mainline, mut trusted) = (Summary::default(), Summary::default(), Summary::default());
        for (path, d) in &dumps {
            assert!(d.info.kernel, "{}: not a kernel sample", path.display());
            assert_eq!(d.info.image_id, table.build_id(), "{}: captured from another vmlinux", path.display());
            orc.add(d.info.truth_complete, replay_with(d, table.table, Policy::Orcwalk, Trust::default()).judgement);
            mainline
                .add(d.info.truth_complete, replay_with(d, table.table, Policy::Mainline, Trust::default()).judgement);
            trusted.add(d.info.truth_complete, replay_with(d, table.table, Policy::Orcwalk, trusting).judgement);
        }
        println!("{kernel}: orcwalk {orc:?}\n{kernel}: mainline {mainline:?}\n{kernel}: both opt-ins {trusted:?}");
        assert_eq!(orc.false_reliable, 0, "{kernel}: false-reliable verdicts");
        assert_eq!(mainline.false_reliable, 0, "{kernel}: false-reliable under the mainline policy");
        assert_eq!(trusted.false_reliable, 0, "{kernel}: false-reliable with both opt-ins");
        assert!(orc.coverage() >= floor, "{kernel}: coverage {:.3} below the floor {floor}", orc.coverage());
        assert!(
            trusted.coverage() >= trusting_floor,
            "{kernel}: coverage with the opt-ins {:.3} below {trusting_floor}",
            trusted.coverage()
        );
        assert!(orc.truth_complete * 5 >= orc.samples * 4, "{kernel}: truth complete in only {}", orc.truth_complete);
    }
}

/// The truth crosses what the kernel's CFI cannot: EL1 exceptions (a return address into entry
/// text, then the interrupted pc), and ends at the task's pt_regs. Both must occur in each corpus,
/// or the corpus does not test the unwinder where it is hardest.
#[test]
fn kernel_truths_cross_exceptions_and_end_at_pt_regs() {
    for (kernel, _, _) in KERNELS {
        let dumps = load(kernel);
        let crossing = dumps
            .iter()
            .filter(|(_, d)| {
                d.info.truth_complete
                    && d.info.truth[1..].iter().any(|&pc| d.info.entry.0 <= pc && pc < d.info.entry.1)
                    && d.info.truth.last().is_some_and(|&pc| !(d.info.entry.0 <= pc && pc < d.info.entry.1))
            })
            .count();
        let complete = dumps.iter().filter(|(_, d)| d.info.truth_complete).count();
        println!("{kernel}: {complete} complete truths, {crossing} crossing an EL1 exception");
        assert!(crossing >= 2, "{kernel}: only {crossing} truths cross an EL1 exception");
    }
}
