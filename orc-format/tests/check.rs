//! `orc-format check` held to account: how much it accepts as refused on the shipped user corpora
//! (`tests/corpus/user/*/program.elf` with `program.orc`), and that it fails tables that disagree
//! with the CFI.

use std::path::PathBuf;

use orc_format::generate::{self, ElfImage, Generated, Options, check::CheckReport};
use orc_format::{Kind, OrcEntry, Reg, TableFile};

fn corpus(build: &str, file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/user").join(build).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(image: &ElfImage<'_>, table: &[u8]) -> CheckReport {
    generate::check(image, &TableFile::parse(table).expect("table parses").table).expect("check runs")
}

/// What `check` reports on each shipped user table, measured at this commit: addresses with CFI
/// and, of them, those the table refuses (UNDEFINED where the CFI has a rule; all of them rows
/// the proof cuts).
const MEASURED: [(&str, u64, u64); 3] =
    [("clang-O2", 88_314, 2_851), ("gcc-O0", 88_471, 2_783), ("gcc-O2", 88_240, 2_781)];

/// How far the refused share may move from the measured one, in percentage points: room for the
/// proof to cut a little more or less, none for a generator that refuses whole functions.
const SLACK_POINTS: f64 = 1.0;

/// `check` accepts every UNDEFINED row where the CFI has a rule as refused, so a generator that
/// refused everything would pass it with 0 mismatches. The refused share is therefore bounded,
/// on the shipped table and on the one today's generator makes from the same program, and every
/// refused row must be one the proof of the image cuts.
#[test]
fn refusals_on_the_user_corpora_are_bounded() {
    for (build, cfi, refused) in MEASURED {
        let elf = corpus(build, "program.elf");
        let image = ElfImage::parse(elf.as_slice()).unwrap();
        let fresh = generate::generate(&image).unwrap().to_file_bytes().unwrap();
        let measured = 100.0 * refused as f64 / cfi as f64;
        for (which, table) in [("today's", fresh), ("shipped", corpus(build, "program.orc"))] {
            let r = check(&image, &table);
            let share = 100.0 * r.refused_addresses as f64 / r.cfi_addresses as f64;
            println!(
                "{build} ({which} table): {} of {} addresses with CFI refused ({share:.2} %)",
                r.refused_addresses, r.cfi_addresses
            );
            assert_eq!(r.mismatch_count, 0, "{build} ({which}): {:?}", r.mismatches.first());
            assert_eq!(r.cfi_addresses, cfi, "{build} ({which}): the checker no longer reads the same CFI");
            assert!(
                (share - measured).abs() <= SLACK_POINTS,
                "{build} ({which} table): {share:.2} % refused, measured {measured:.2} % ({refused} of {cfi})"
            );
            assert_eq!(r.refused_where_proven, 0, "{build} ({which}): refused rows the proof keeps");
        }
    }
}

/// The generator's table for a shipped user program, with `entries` in place of its own.
fn with_entries(g: &Generated, entries: &[OrcEntry]) -> Vec<u8> {
    orc_format::file::write_with(&g.ips, entries, &g.image_id, true, true).unwrap()
}

/// A table may refuse more than the generator would (refusing is always safe): it still checks
/// clean, but every such address is counted as refused and as one where the proof keeps a row.
#[test]
fn refusing_more_than_the_proof_is_allowed_and_counted() {
    let elf = corpus("clang-O2", "program.elf");
    let image = ElfImage::parse(elf.as_slice()).unwrap();
    let g = generate::generate(&image).unwrap();
    let before = check(&image, &g.to_file_bytes().unwrap());
    let i = (0..g.entries.len() - 1)
        .find(|&i| g.entries[i].kind() == Some(Kind::Call) && g.ips[i + 1] - g.ips[i] >= 16)
        .unwrap();
    let n = (g.ips[i + 1] - g.ips[i]) / 4;
    let mut entries = g.entries.clone();
    entries[i] = OrcEntry::UNDEFINED;
    let after = check(&image, &with_entries(&g, &entries));
    assert_eq!(after.mismatch_count, 0, "{:?}", after.mismatches.first());
    assert_eq!(after.refused_addresses, before.refused_addresses + n);
    assert_eq!((before.refused_where_proven, after.refused_where_proven), (0, n));
}

/// `e` with some of its columns replaced (`None` keeps a column).
fn with(e: OrcEntry, sp: Option<(Reg, i16)>, fp: Option<(Reg, i16)>, ra: Option<(Reg, i16)>, signal: bool) -> OrcEntry {
    let (sp_reg, sp_offset) = sp.unwrap_or((e.sp_reg().unwrap(), e.sp_offset));
    let (fp_reg, fp_offset) = fp.unwrap_or((e.fp_reg().unwrap(), e.fp_offset));
    let (ra_reg, ra_offset) = ra.unwrap_or((e.ra_reg().unwrap(), e.ra_offset));
    OrcEntry::new(Kind::Call, sp_reg, sp_offset, fp_reg, fp_offset, ra_reg, ra_offset, signal)
}

/// How a wrong entry must be caught.
#[derive(Clone, Copy, PartialEq)]
enum By {
    /// By the comparison with the CFI itself (some mismatch is not a contradiction of the proof).
    Cfi,
    /// By the proof of the instructions (the CFI does not say it).
    Proof,
}

/// Checks the generator's table with entry `i` replaced by `wrong`: it must fail, only inside
/// that entry's range, and by the comparison named.
fn must_fail(image: &ElfImage<'_>, g: &Generated, i: usize, wrong: OrcEntry, by: By, what: &str) {
    let mut entries = g.entries.clone();
    assert_ne!(entries[i], wrong, "{what}: not a change");
    entries[i] = wrong;
    let r = check(image, &with_entries(g, &entries));
    let at = format!("{what} at {:#x} ({} -> {wrong})", g.ips[i], g.entries[i]);
    assert!(r.mismatch_count > 0, "{at} checks clean");
    let range = g.ips[i]..g.ips[i + 1];
    assert!(r.mismatches.iter().all(|m| range.contains(&m.addr)), "{at}: {:?}", r.mismatches.first());
    match by {
        By::Cfi => assert!(r.mismatch_count > r.contradicted_addresses, "{at}: the CFI comparison let it pass"),
        By::Proof => assert!(r.contradicted_addresses > 0, "{at}: the proof let it pass"),
    }
}

/// One wrong column in one entry of a shipped program's table fails `check`, each by the
/// comparison with the CFI (read independently of the generator): the CFA offset or base, the
/// caller's x29 or return address rule, the signal flag. On a row anchored to sp (where the CFI
/// puts the CFA on x29) the CFA offset is not in the CFI: a wrong one fails by the proof of the
/// instructions, the other columns still by the CFI.
#[test]
fn one_wrong_column_fails_the_check() {
    for build in ["clang-O2", "gcc-O2"] {
        let elf = corpus(build, "program.elf");
        let image = ElfImage::parse(elf.as_slice()).unwrap();
        let g = generate::generate(&image).unwrap();
        let unanchored = generate::generate_with(&image, Options { prove: true, anchor: false }).unwrap();
        let unanchored = unanchored.to_file_bytes().unwrap();
        let unanchored: Vec<(u64, OrcEntry)> = TableFile::parse(&unanchored).unwrap().table.iter().collect();
        let cfi_says = |pc: u64| unanchored[unanchored.partition_point(|r| r.0 <= pc) - 1].1;
        let call = |i: usize| g.entries[i].kind() == Some(Kind::Call) && g.ips[i + 1] > g.ips[i];
        let pick = |p: &dyn Fn(OrcEntry, OrcEntry) -> bool| {
            (0..g.entries.len() - 1)
                .find(|&i| call(i) && p(g.entries[i], cfi_says(g.ips[i])))
                .unwrap_or_else(|| panic!("{build}: no such entry"))
        };
        let on_sp = |e: OrcEntry, c: OrcEntry| e == c && e.sp_reg() == Some(Reg::Sp) && e.sp_offset > 0;
        let fail = |i: usize, wrong: OrcEntry, by: By, what: &str| must_fail(&image, &g, i, wrong, by, what);

        let i = pick(&on_sp);
        let e = g.entries[i];
        fail(i, with(e, Some((Reg::Sp, e.sp_offset + 16)), None, None, false), By::Cfi, "CFA offset");
        fail(i, with(e, Some((Reg::Fp, e.sp_offset)), None, None, false), By::Cfi, "CFA base");
        fail(i, with(e, None, None, None, true), By::Cfi, "signal flag");

        let i = pick(&|e, c| on_sp(e, c) && e.fp_reg() == Some(Reg::PrevSp));
        let e = g.entries[i];
        fail(i, with(e, None, Some((Reg::Undefined, 0)), None, false), By::Cfi, "x29 saved -> live");
        fail(i, with(e, None, Some((Reg::PrevSp, e.fp_offset - 8)), None, false), By::Cfi, "x29 slot");
        fail(i, with(e, None, None, Some((Reg::PrevSp, e.ra_offset + 8)), false), By::Cfi, "x30 slot");

        let i = pick(&|e, c| on_sp(e, c) && e.fp_reg() == Some(Reg::Undefined));
        let e = g.entries[i];
        fail(i, with(e, None, Some((Reg::PrevSp, -16)), None, false), By::Cfi, "x29 live -> saved");

        // Anchored: sp-based in the table, x29-based in the CFI (and in the unanchored table).
        let i = pick(&|e, c| e.sp_reg() == Some(Reg::Sp) && c.sp_reg() == Some(Reg::Fp));
        let e = g.entries[i];
        for delta in [-16, 16] {
            let wrong = with(e, Some((Reg::Sp, e.sp_offset + delta)), None, None, false);
            fail(i, wrong, By::Proof, "anchored CFA offset");
        }
        fail(i, with(e, None, None, Some((Reg::PrevSp, e.ra_offset - 8)), false), By::Cfi, "anchored x30 slot");
        fail(i, with(e, None, Some((Reg::Undefined, 0)), None, false), By::Cfi, "anchored x29 saved -> live");
    }
}
