//! `orcwalk-sim capture` end to end: a workload runs under qemu-aarch64's gdbstub, is stopped by
//! its timer, and every stop becomes a dump whose truth replays without a false-reliable
//! verdict. A short run (20 rounds, a few ms of CPU) makes the capture restart the program, as it must.

use orc_format::TableFile;
use orcwalk::Policy;
use orcwalk_sim::capture::{Plan, capture};
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::{Summary, replay};
use orcwalk_sim::truth::Image;

#[test]
fn captures_a_real_program_and_replays_it() {
    let program = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/user/workload-gcc-O2");
    let bytes = std::fs::read(&program).unwrap();
    let image = Image::parse(&bytes).unwrap();
    let table = orc_format::generate::generate(&orc_format::generate::ElfImage::parse(bytes.as_slice()).unwrap())
        .unwrap()
        .to_file_bytes()
        .unwrap();
    let table = TableFile::parse(&table).unwrap();
    let plan = Plan {
        qemu: "qemu-aarch64".into(),
        program,
        args: vec!["20".into()],
        samples: 60,
        seed: 7,
        max_steps: 300,
        signal: 26,
        table_path: "program.orc".into(),
    };
    let mut dumps = Vec::new();
    let stats = capture(&plan, &image, |d| {
        dumps.push(d);
        Ok(())
    })
    .expect("capture (needs qemu-aarch64: scripts/setup)");
    assert_eq!(stats.samples, 60);
    assert_eq!(dumps.len(), 60);
    assert!(stats.runs > 1, "a 20-round run should end long before 60 stops ({} runs)", stats.runs);
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
