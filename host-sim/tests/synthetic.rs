//! The properties over generated stacks: never reliable when the frames differ from the
//! truth; reliable and exact when nothing is corrupted (ORC covers every pc of the synthetic
//! program) unless the stack crosses the x29-based IRQ-switch frame or a record-less function at
//! a call site (both refused by default, see orcwalk::Config); and dumps survive a write/parse round trip.

use orc_format::TableFile;
use orcwalk::testkit::{CALL_RET, Shape};
use orcwalk::{Policy, Reason};
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::{Judgement, replay};
use orcwalk_sim::synth::{Corruption, Program, Rng, sample};
use quickcheck::{QuickCheck, TestResult};

fn check(seed: u64) -> TestResult {
    let mut rng = Rng::new(seed);
    let program = Program::new(&mut rng);
    let tables = orcwalk_sim::synth::tables(&program);
    for _ in 0..20 {
        let s = sample(&program, &mut rng, "program.orc");
        let dump = Dump::parse(&s.dump.write()).unwrap();
        assert_eq!(dump, s.dump, "round trip");
        let bytes = &tables.iter().find(|(n, _)| *n == dump.info.image_path).unwrap().1;
        let out = replay(&dump, TableFile::parse(bytes).unwrap(), Policy::Orcwalk);
        match (s.corruption, out.judgement) {
            // Known hole, checked densely (and ignored until the walk catches it) by
            // `unproven_tables_never_fool_the_walk`, which replays every sample with that table.
            (Some(Corruption::UnprovenOrc), Judgement::FalseReliable) => {}
            (_, Judgement::FalseReliable) => {
                return TestResult::error(format!(
                    "seed {seed}: false reliable {:?}: {:x?} vs truth {:x?}",
                    s.corruption, out.frames, dump.info.truth
                ));
            }
            // The IRQ-stack switch's row puts the CFA on x29 (the stack pointer moved): such a
            // frame has no sp anchor and is refused by default. Any other refusal of an
            // uncorrupted stack is a coverage bug.
            (None, Judgement::Unreliable(Reason::FpBasedCfa))
                if dump.info.truth.contains(&(orcwalk::testkit::VIA + 0x10)) => {}
            // A function that built no frame record, at a call site: ORC is its only witness,
            // refused by default.
            (None, Judgement::Unreliable(Reason::NoFrameRecord))
                if dump.info.truth.iter().any(|&pc| {
                    program.shape_of(pc) == Some(Shape::NoRecord) && (pc - orcwalk::testkit::TEXT) % 0x100 == CALL_RET
                }) => {}
            (None, Judgement::Unreliable(r)) => {
                return TestResult::error(format!(
                    "seed {seed}: uncorrupted sample unreliable: {} {:?}",
                    r.as_str(),
                    out.verdict
                ));
            }
            _ => {}
        }
    }
    TestResult::passed()
}

/// Seeds 0..N (N = 300 in CI, `ORCWALK_QC_TESTS` for a campaign), 20 samples each.
#[test]
fn generated_stacks_are_proven_exactly_or_refused() {
    let n: u64 = std::env::var("ORCWALK_QC_TESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    for seed in 0..n {
        let r = check(seed);
        assert!(!r.is_failure(), "{r:?}");
    }
}

/// Every sample of seeds 0..N replayed with the table an address-order (unproven) generator
/// makes of the program (right image id; the body's row kept over each shrink-wrapped early
/// return and after each tag store): the truth is the sample's own, so the walk may refuse it
/// but never report other frames as reliable.
fn unproven_check(seed: u64) -> Result<u32, String> {
    let mut rng = Rng::new(seed);
    let program = Program::new(&mut rng);
    let tables = orcwalk_sim::synth::tables(&program);
    let unproven = &tables.iter().find(|(n, _)| *n == "program-unproven.orc").unwrap().1;
    let mut refused = 0;
    for _ in 0..20 {
        let s = sample(&program, &mut rng, "program.orc");
        let out = replay(&s.dump, TableFile::parse(unproven).unwrap().table, Policy::Orcwalk);
        match out.judgement {
            Judgement::FalseReliable => {
                // The interrupted function above the first frame the walk got wrong.
                let truth = &s.dump.info.truth;
                let i = truth.iter().zip(&out.frames).take_while(|(t, f)| **t == f.0).count();
                let at = |i: usize| match truth.get(i) {
                    Some(&pc) => format!("{pc:#x} in {:?}", program.shape_of(pc)),
                    None => "nothing".to_string(),
                };
                return Err(format!(
                    "seed {seed} ({:?}): after {}, true {}, walked {:x?}: {:x?} vs truth {:x?}",
                    s.corruption,
                    i.checked_sub(1).map_or("nothing".to_string(), at),
                    at(i),
                    out.frames.get(i).map(|f| f.0),
                    out.frames.iter().map(|f| f.0).collect::<Vec<_>>(),
                    truth
                ));
            }
            Judgement::Unreliable(_) => refused += 1,
            _ => {}
        }
    }
    Ok(refused)
}

#[test]
#[ignore = "fooled on 8 of seeds 0..300: RELIABLE with the interrupted function's caller missing. \
            TagStore (seed 186: TagStore(48)+0x40 under TagStore(32)) until the exception-crossing \
            second witness lands; EarlyReturn (seed 112: EarlyReturn(160)+0x30 under a recursive call \
            of itself) also after it: x29 is the caller's record, the very slot the stale row names"]
fn unproven_tables_never_fool_the_walk() {
    let n: u64 = std::env::var("ORCWALK_QC_TESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let fooled: Vec<String> = (0..n).filter_map(|seed| unproven_check(seed).err()).collect();
    assert!(fooled.is_empty(), "{} of {n} seeds fooled:\n{}", fooled.len(), fooled.join("\n"));
}

#[test]
fn arbitrary_bytes_never_panic_the_dump_parser() {
    fn prop(bytes: Vec<u8>, cut: usize, flip: (usize, u8)) -> bool {
        let _ = Dump::parse(&bytes);
        // A valid dump, truncated and bit-flipped.
        let mut rng = Rng::new(bytes.len() as u64);
        let program = Program::new(&mut rng);
        let mut good = sample(&program, &mut rng, "program.orc").dump.write();
        let i = flip.0 % good.len();
        good[i] ^= flip.1;
        let _ = Dump::parse(&good);
        let _ = Dump::parse(&good[..cut % good.len()]);
        true
    }
    QuickCheck::new().tests(2000).quickcheck(prop as fn(Vec<u8>, usize, (usize, u8)) -> bool);
}

#[test]
fn foreign_truncated_and_noteless_files_are_named() {
    use orcwalk_sim::dump::DumpError;
    let mut rng = Rng::new(3);
    let program = Program::new(&mut rng);
    let good = sample(&program, &mut rng, "program.orc").dump.write();
    assert!(matches!(Dump::parse(b"not an elf"), Err(DumpError::NotElf)));
    let mut x86 = good.clone();
    x86[18] = 62; // e_machine = EM_X86_64
    assert!(matches!(Dump::parse(&x86), Err(DumpError::NotAarch64Core { e_machine: 62, .. })));
    let mut exec = good.clone();
    exec[16] = 2; // e_type = ET_EXEC
    assert!(matches!(Dump::parse(&exec), Err(DumpError::NotAarch64Core { e_type: 2, .. })));
    // Rename the ORCWALK note: a plain core without stack bounds or truth.
    let at = good.windows(7).position(|w| w == b"ORCWALK").unwrap();
    let mut plain = good.clone();
    plain[at] = b'X';
    let err = Dump::parse(&plain).unwrap_err();
    assert!(matches!(err, DumpError::NoNote), "{err}");
    for len in (0..good.len()).step_by(97) {
        assert!(Dump::parse(&good[..len]).is_err(), "prefix of {len} bytes accepted");
    }
}
