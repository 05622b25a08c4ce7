//! Properties over generated stacks, split along the threat model (DESIGN §7): in-scope
//! corruptions (no table for the code, a trampoline without its record, the compiler's unproven
//! rows) must never fool the default walk; out-of-scope ones (a corrupted live frame record,
//! saved fp or return address; a wrong table claiming proven rows for this very image, which
//! content-bound image ids rule out) must never fool strict mode, and the default's count is
//! printed, not hidden. Uncorrupted stacks are reliable and exact under the default; strict
//! mode may refuse only their single-witness frames. Dumps survive a write/parse round trip.

use orc_format::TableFile;
use orcwalk::testkit::{CALL_RET, Shape};
use orcwalk::{Policy, Reason};
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::{Judgement, Mode, replay, replay_with};
use orcwalk_sim::synth::{Corruption, Program, Rng, sample};
use quickcheck::{QuickCheck, TestResult};

/// Corruptions a real kernel can produce, which the default must never be fooled by.
fn in_scope(c: Option<Corruption>) -> bool {
    matches!(c, None | Some(Corruption::OrcGap | Corruption::TrampolineWithoutRecovery | Corruption::UnprovenOrc))
}

/// Default-mode false-reliable verdicts on out-of-scope corruptions, by kind.
type OutOfScope = std::collections::BTreeMap<String, u64>;

fn check(seed: u64, out_of_scope: &mut OutOfScope) -> TestResult {
    let mut rng = Rng::new(seed);
    let program = Program::new(&mut rng);
    let tables = orcwalk_sim::synth::tables(&program);
    for _ in 0..20 {
        let s = sample(&program, &mut rng, "program.orc");
        let dump = Dump::parse(&s.dump.write()).unwrap();
        assert_eq!(dump, s.dump, "round trip");
        let bytes = &tables.iter().find(|(n, _)| *n == dump.info.image_path).unwrap().1;
        let table = TableFile::parse(bytes).unwrap();
        let out = replay(&dump, table, Policy::Orcwalk);
        let strict = replay_with(&dump, table, Policy::Orcwalk, Mode::STRICT);
        if strict.judgement == Judgement::FalseReliable {
            return TestResult::error(format!(
                "seed {seed}: strict mode false reliable {:?}: {:x?} vs truth {:x?}",
                s.corruption, strict.frames, dump.info.truth
            ));
        }
        match (s.corruption, out.judgement) {
            (c, Judgement::FalseReliable) if !in_scope(c) => {
                *out_of_scope.entry(format!("{c:?}")).or_default() += 1;
            }
            (_, Judgement::FalseReliable) => {
                return TestResult::error(format!(
                    "seed {seed}: false reliable {:?}: {:x?} vs truth {:x?}",
                    s.corruption, out.frames, dump.info.truth
                ));
            }
            (None, Judgement::Unreliable(r)) => {
                return TestResult::error(format!(
                    "seed {seed}: uncorrupted sample unreliable: {} {:?}",
                    r.as_str(),
                    out.verdict
                ));
            }
            _ => {}
        }
        // Strict mode refuses an uncorrupted stack only at a single-witness frame: the IRQ-stack
        // switch (its CFA on x29) or a record-less function at a call site.
        if let (None, Judgement::Unreliable(r)) = (s.corruption, strict.judgement) {
            let switch = r == Reason::FpBasedCfa && dump.info.truth.contains(&(orcwalk::testkit::VIA + 0x10));
            let norecord = r == Reason::NoFrameRecord
                && dump.info.truth.iter().any(|&pc| {
                    program.shape_of(pc) == Some(Shape::NoRecord) && (pc - orcwalk::testkit::TEXT) % 0x100 == CALL_RET
                });
            if !switch && !norecord {
                return TestResult::error(format!("seed {seed}: strict refused an uncorrupted stack: {}", r.as_str()));
            }
        }
    }
    TestResult::passed()
}

/// Seeds 0..N (N = 300 in CI, `ORCWALK_QC_TESTS` for a campaign), 20 samples each.
#[test]
fn generated_stacks_are_proven_exactly_or_refused() {
    let n: u64 = std::env::var("ORCWALK_QC_TESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let mut out_of_scope = OutOfScope::new();
    for seed in 0..n {
        let r = check(seed, &mut out_of_scope);
        assert!(!r.is_failure(), "{r:?}");
    }
    // Reported, not asserted: out of scope for the default (strict mode held above).
    println!("default-mode false-reliable on out-of-scope corruptions over {n} seeds: {out_of_scope:?}");
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
        let out = replay(&s.dump, TableFile::parse(unproven).unwrap(), Policy::Orcwalk);
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

/// An unproven table is trusted at call sites only (interrupted pcs are refused:
/// `CodeInfo::exact_pc_proven`), which is where its rows can go stale.
#[test]
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
