//! `orc-format check` held to account: how much it accepts as refused on the shipped user corpora
//! (`tests/corpus/user/*/program.elf` with `program.orc`), and that it fails tables that disagree
//! with the CFI.

use std::path::PathBuf;

use orc_format::generate::{self, ElfImage, Generated, check::CheckReport};
use orc_format::{Kind, OrcEntry, TableFile};

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
