//! `orcwalk-sim capture` end to end: a workload runs under qemu-aarch64's gdbstub, is stopped by
//! its timer, and every stop becomes a dump whose truth replays without a false-reliable
//! verdict. The capture starts the program again after a fixed number of stops (its own bound,
//! whatever the timing), and when the program ends by itself.

use orc_format::TableFile;
use orcwalk::Policy;
use orcwalk_sim::capture::{Plan, capture};
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::{Summary, replay};
use orcwalk_sim::truth::Image;

fn workload() -> (std::path::PathBuf, Vec<u8>) {
    let program = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/user/workload-gcc-O2");
    let bytes = std::fs::read(&program).unwrap();
    (program, bytes)
}

#[test]
fn captures_a_real_program_and_replays_it() {
    let (program, bytes) = workload();
    let image = Image::parse(&bytes).unwrap();
    let table = orc_format::generate::generate(&orc_format::generate::ElfImage::parse(bytes.as_slice()).unwrap())
        .unwrap()
        .to_file_bytes()
        .unwrap();
    let table = TableFile::parse(&table).unwrap();
    let plan = Plan {
        qemu: "qemu-aarch64".into(),
        program,
        // A million rounds: minutes of CPU under qemu, so no run ends by itself within 6 stops;
        // every restart below is the capture's.
        args: vec!["1000000".into()],
        samples: 60,
        seed: 7,
        max_steps: 300,
        signal: 26,
        table_path: "program.orc".into(),
        stops_per_run: Some(6),
    };
    let mut dumps = Vec::new();
    let stats = capture(&plan, &image, |d| {
        dumps.push(d);
        Ok(())
    })
    .expect("capture (needs qemu-aarch64: scripts/setup)");
    assert_eq!(stats.samples, 60);
    assert_eq!(dumps.len(), 60);
    assert_eq!((stats.runs, stats.ended), (10, 0), "60 stops, 6 a run, no run ended by the program");
    let mut orc = Summary::default();
    let mut pcs = std::collections::BTreeSet::new();
    for d in &dumps {
        let back = Dump::parse(&d.write()).unwrap();
        assert_eq!(&back, d, "dump does not round-trip");
        assert_eq!(d.info.truth.first(), Some(&d.regs[32]), "truth starts at the stopped pc");
        assert!(d.info.stacks[0].low <= d.regs[31] && d.regs[31] < d.info.stacks[0].high);
        pcs.insert(d.regs[32]);
        orc.add(d.info.truth_complete, replay(d, table, Policy::Orcwalk).judgement);
    }
    println!("{stats:?}\n{orc:?}");
    assert_eq!(orc.false_reliable, 0);
    assert!(stats.complete >= 30, "truth complete in only {} of 60", stats.complete);
    assert!(orc.correct >= 20, "only {} proven", orc.correct);
    assert!(pcs.len() >= 20, "stops should spread over many pcs, got {}", pcs.len());
}

/// A program that ends is started again. Sampling only a signal the workload never gets
/// (SIGUSR2; its timer and SIGUSR1 are delivered unsampled) leaves each run its start-up stop
/// alone: a 20-round run then ends by itself, as it must before the next sample can be taken,
/// whatever the timing. The last run is ended by the capture, at its third sample.
#[test]
fn a_program_that_ends_is_started_again() {
    let (program, bytes) = workload();
    let image = Image::parse(&bytes).unwrap();
    let plan = Plan {
        qemu: "qemu-aarch64".into(),
        program,
        args: vec!["20".into()],
        samples: 3,
        seed: 7,
        max_steps: 300,
        signal: 12,
        table_path: "program.orc".into(),
        stops_per_run: None,
    };
    let stats = capture(&plan, &image, |_| Ok(())).expect("capture (needs qemu-aarch64: scripts/setup)");
    assert_eq!((stats.samples, stats.runs, stats.ended), (3, 3, 2), "{stats:?}");
}
