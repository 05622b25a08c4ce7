//! The shipped corpus of real user stacks (`tests/corpus/user/<build>`, captured by
//! scripts/capture-user-corpus from tests/fixtures/user): per build, zero false-reliable
//! verdicts under either policy, coverage held above the measured floor, a truth complete often
//! enough to mean something, and the truth itself agreeing with gdb-multiarch's `bt`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use orc_format::TableFile;
use orcwalk::Policy;
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::{ChainSummary, Mode, Summary, replay, replay_text, replay_with};

/// Measured on the shipped corpus (`./scripts/run tests/corpus/user`, default): gcc -O0 100 %,
/// gcc -O2 99.8 %, clang -O2 96.1 % (docs/corpora.md).
const BUILDS: [(&str, f64); 3] = [("gcc-O0", 0.98), ("gcc-O2", 0.98), ("clang-O2", 0.945)];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(build: &str) -> Vec<(PathBuf, Dump)> {
    orcwalk_sim::dump::load_dir(&root().join("tests/corpus/user").join(build)).unwrap()
}

fn elf(build: &str) -> PathBuf {
    root().join("tests/fixtures/user").join(format!("workload-{build}"))
}

#[test]
fn user_corpus_has_no_false_reliable_and_keeps_its_coverage() {
    let mut total = 0;
    for (build, floor) in BUILDS {
        let dumps = load(build);
        let table_bytes = std::fs::read(root().join("tests/corpus/user").join(build).join("program.orc")).unwrap();
        let table = TableFile::parse(&table_bytes).unwrap();
        let elf_bytes = std::fs::read(elf(build)).unwrap();
        let image = orcwalk_sim::truth::Image::parse(&elf_bytes).unwrap();
        assert_eq!(
            image.image_id.kind(),
            orc_format::IdKind::BuildId,
            "{build}: the workload is linked with a build-id"
        );
        assert!(table.matches(&image.image_id), "{build}: program.orc is not the shipped binary's");
        // The replay beside the table finds the program (program.elf) and checks call sites too.
        let text =
            orcwalk_sim::replay::text_beside(&root().join("tests/corpus/user").join(build).join("program.orc"), &table)
                .unwrap()
                .expect("program.elf beside program.orc");
        let (mut orc, mut mainline, mut chain) = (Summary::default(), Summary::default(), ChainSummary::default());
        let (mut blind, mut strict) = (Summary::default(), Summary::default());
        for (path, dump) in &dumps {
            assert!(dump.info.image_id.matches(&image.image_id), "{}: captured from another binary", path.display());
            let a = replay_text(dump, table, Some(text.view()), Policy::Orcwalk, Mode::default());
            orc.add(dump.info.truth_complete, a.judgement);
            blind.add(dump.info.truth_complete, replay(dump, table, Policy::Orcwalk).judgement);
            mainline.add(dump.info.truth_complete, replay(dump, table, Policy::Mainline).judgement);
            strict.add(dump.info.truth_complete, replay_with(dump, table, Policy::Orcwalk, Mode::STRICT).judgement);
            chain.add(dump);
        }
        assert_eq!(strict.false_reliable, 0, "{build}: false-reliable in strict mode");
        // The text witnesses refuse no sample the walk without them proves correct.
        assert_eq!(orc.correct, blind.correct, "{build}: call-site or x30 witness refused a true stack");
        println!("{build}: orcwalk {orc:?}\n{build}: mainline {mainline:?}\n{build}: fp-chain {chain:?}");
        total += dumps.len();
        assert_eq!(orc.false_reliable, 0, "{build}: false-reliable verdicts");
        assert_eq!(mainline.false_reliable, 0, "{build}: false-reliable verdicts under the mainline policy");
        assert!(orc.coverage() >= floor, "{build}: coverage {:.4} below the floor {floor}", orc.coverage());
        // The truth must cover most samples, or coverage measures little.
        assert!(orc.truth_complete * 4 >= orc.samples * 3, "{build}: truth complete in only {}", orc.truth_complete);
        // The awkward moments are there: the plain x29 chain is wrong on a real share of them.
        assert!(chain.wrong * 20 >= orc.truth_complete, "{build}: plain FP chain wrong only {} times", chain.wrong);
    }
    assert!(total >= 2000, "{total} user samples");
}

/// Stale rows are real: clang 14 describes no epilogue and only the end of each prologue, and
/// a walk that follows such a row (here: accepting clang's x29-based rows as single-witness
/// frames, which the default does only from proven rows) drops or repeats a frame with every
/// check passing. The generator cuts them out ([`orc_format::generate::prove`]): the compiler's
/// rows, marked proven as a careless generator would, fool the walk on the real clang stops;
/// the shipped (proven) table never does. (Without the mark the walk stays strict.)
#[test]
fn stale_rows_fool_an_uncut_table_and_the_cut_one_refuses_them() {
    use orc_format::generate::{ElfImage, Options, generate_with};
    let elf_bytes = std::fs::read(elf("clang-O2")).unwrap();
    let image = ElfImage::parse(elf_bytes.as_slice()).unwrap();
    let mut uncut = generate_with(&image, Options { prove: false, anchor: false }).unwrap();
    uncut.proven = true;
    let uncut = uncut.to_file_bytes().unwrap();
    let shipped = std::fs::read(root().join("tests/corpus/user/clang-O2/program.orc")).unwrap();
    let dumps = load("clang-O2");
    let judge = |bytes: &[u8]| {
        let table = TableFile::parse(bytes).unwrap();
        let mut s = Summary::default();
        for (_, dump) in &dumps {
            s.add(dump.info.truth_complete, replay(dump, table, Policy::Orcwalk).judgement);
        }
        s
    };
    let (raw, cut) = (judge(&uncut), judge(&shipped));
    println!("clang-O2: unproven rows marked proven {raw:?}\nproven {cut:?}");
    assert!(raw.false_reliable > 0, "expected the uncut table to be fooled by clang's undescribed epilogues");
    assert_eq!(cut.false_reliable, 0);
}

/// Runs gdb-multiarch once over many cores of one binary; returns each core's frame pcs.
/// gdb's synthetic frames are left out: tail-call frames (from DWARF call-site records:
/// functions that jumped away and are no longer on the stack) and inline frames (same pc as
/// the physical frame around them); every physical frame counts.
fn gdb_backtraces(elf: &Path, cores: &[&Path]) -> Vec<Vec<u64>> {
    let mut script = String::from("set backtrace past-main on\nset backtrace past-entry on\nset pagination off\n");
    script.push_str(
        "python\ndef orcwalk_bt():\n    print('@@core')\n    f = gdb.newest_frame()\n    while f is not None:\n        \
         if f.type() not in (gdb.TAILCALL_FRAME, gdb.INLINE_FRAME):\n            print('@@pc = 0x%x' % f.pc())\n        f = f.older()\nend\n",
    );
    for c in cores {
        writeln!(script, "core-file {}\npython orcwalk_bt()", c.display()).unwrap();
    }
    let file = std::env::temp_dir().join(format!("orcwalk-gdb-{}.cmd", std::process::id()));
    std::fs::write(&file, script).unwrap();
    let out = Command::new("gdb-multiarch")
        .arg("-nx")
        .arg("-batch")
        .arg("-x")
        .arg(&file)
        .arg(elf)
        .output()
        .expect("gdb-multiarch (scripts/setup installs it)");
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut traces: Vec<Vec<u64>> = Vec::new();
    for line in text.lines() {
        if line == "@@core" {
            traces.push(Vec::new());
        } else if let Some(v) = line.strip_prefix("@@pc = 0x")
            && let Some(t) = traces.last_mut()
        {
            t.push(u64::from_str_radix(v.trim(), 16).unwrap());
        }
    }
    assert_eq!(traces.len(), cores.len(), "gdb output:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    traces
}

#[test]
fn stops_fall_in_prologues_epilogues_and_leaves() {
    use orcwalk_sim::truth::Position;
    for (build, _) in BUILDS {
        let bytes = std::fs::read(elf(build)).unwrap();
        let image = orcwalk_sim::truth::Image::parse(&bytes).unwrap();
        let mut at = std::collections::BTreeMap::<Position, usize>::new();
        let dumps = load(build);
        for (_, d) in &dumps {
            *at.entry(image.position(d.regs[32])).or_default() += 1;
        }
        println!("{build}: {at:?}");
        // The awkward places must be well represented: each at least 2 %, together 10 %.
        let n = dumps.len();
        for p in [Position::Prologue, Position::Epilogue, Position::Leaf] {
            assert!(at.get(&p).copied().unwrap_or(0) * 50 >= n, "{build}: too few stops in {p:?}: {at:?}");
        }
        let edges: usize = [Position::Prologue, Position::Epilogue, Position::Leaf].iter().map(|p| at[p]).sum();
        assert!(edges * 10 >= n, "{build}: {edges} of {n} stops at frame edges");
    }
}

#[test]
fn truth_agrees_with_gdb() {
    for (build, _) in BUILDS {
        // Every 15th dump whose truth is complete: gdb's unwinder (CFI plus its own prologue
        // analysis) must find exactly the same frames. Stops at a stale row are left out: their
        // truth came from running the program on, and gdb follows the stale row.
        let bytes = std::fs::read(elf(build)).unwrap();
        let image = orcwalk_sim::truth::Image::parse(&bytes).unwrap();
        let dumps = load(build);
        let chosen: Vec<&(PathBuf, Dump)> = dumps
            .iter()
            // Truths through a signal frame are left out too: the dumps hold no vDSO, so gdb
            // cannot see the trampoline in the core (and with its bytes added as a region,
            // gdb 13 loops on qemu's SVE signal frame); see the README.
            .filter(|(_, d)| {
                let through_signal = d.info.sigreturn.is_some_and(|s| d.info.truth.contains(&s.0));
                d.info.truth_complete && image.stale_at(d.regs[32]) != Some(true) && !through_signal
            })
            .step_by(15)
            .collect();
        assert!(chosen.len() >= 30, "{build}: only {} dumps to check", chosen.len());
        let paths: Vec<&Path> = chosen.iter().map(|(p, _)| p.as_path()).collect();
        let gdb = gdb_backtraces(&elf(build), &paths);
        for ((path, dump), bt) in chosen.iter().zip(&gdb) {
            assert_eq!(&dump.info.truth, bt, "{}: truth differs from gdb's bt", path.display());
        }
    }
}

/// clang 14 describes no epilogue: at `ret` after `ldp x29, x30, [sp], #16` its CFI still says
/// CFA = x29 + 16 (x29 is already the caller's). The truth must doubt that row, not follow it.
#[test]
fn truth_doubts_a_stale_clang_epilogue_row() {
    use orcwalk_sim::dump::{Region, SampleInfo};
    let bytes = std::fs::read(elf("clang-O2")).unwrap();
    let image = orcwalk_sim::truth::Image::parse(&bytes).unwrap();
    // `ping` in the shipped binary: ... 0x238b50 ldp x29, x30, [sp], #16; 0x238b54 ret.
    assert_eq!(image.insn(0x238b50), Some(0xa8c17bfd), "the fixture changed: find ping's epilogue again");
    assert_eq!(image.insn(0x238b54), Some(0xd65f03c0));
    let low = 0x7000_0000u64;
    let mut data = vec![0u8; 64];
    // A frame record at low + 16: {0, return address after `bl pong` in ping}.
    data[24..32].copy_from_slice(&0x238b4cu64.to_le_bytes());
    let dump_at = |pc: u64, sp: u64, fp: u64| {
        let mut regs = [0u64; 34];
        (regs[29], regs[30], regs[31], regs[32]) = (fp, 0x238b4c, sp, pc);
        let info = SampleInfo::user(&regs, image.text, (low, low + 64), image.image_id, String::new());
        Dump { regs, info, regions: vec![Region { vaddr: low, data: data.clone(), exec: false }] }
    };
    let stale = orcwalk_sim::truth::STALE;
    // Before the ldp the row is right: the walk reads the record and goes on.
    let before = dump_at(0x238b50, low + 16, low + 16);
    let t = image.unwind(&before.regs, &before);
    assert_ne!(t.doubt, Some(stale));
    assert_eq!(t.pcs.get(1), Some(&0x238b4c));
    // After it, x29 holds the caller's fp and sp moved: the row is stale.
    let after = dump_at(0x238b54, low + 32, 0);
    let t = image.unwind(&after.regs, &after);
    assert_eq!((t.complete, t.doubt), (false, Some(stale)));
    assert_eq!(t.pcs, vec![0x238b54]);
}

/// The shipped tables are exactly what today's generator makes from the shipped programs: the
/// replay never judges an older generator's output.
#[test]
fn shipped_tables_are_what_the_generator_makes() {
    for (build, _) in BUILDS {
        let bytes = std::fs::read(elf(build)).unwrap();
        let image = orc_format::generate::ElfImage::parse(bytes.as_slice()).unwrap();
        let made = orc_format::generate::generate(&image).unwrap().to_file_bytes().unwrap();
        let shipped = std::fs::read(root().join("tests/corpus/user").join(build).join("program.orc")).unwrap();
        assert!(
            made == shipped,
            "{build}: tests/corpus/user/{build}/program.orc is stale: rebuild it with orc-format build"
        );
    }
}
