//! The generator and checker on real aarch64 ELFs built by gcc and clang
//! (`tests/fixtures/orc`, rebuilt by `scripts/build-fixtures`), and on broken ones.

use std::path::PathBuf;

use object::{Object, ObjectSection, ObjectSymbol};
use orc_format::generate::{self, ElfImage, GenError, rules::Unsupported};
use orc_format::{Kind, OrcEntry, Reg, TableFile};

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/orc");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("shapes-"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read fixture")))
        .collect();
    out.sort();
    assert_eq!(out.len(), 6, "expected the six fixture builds");
    out
}

fn symbol(elf: &[u8], name: &str) -> u64 {
    let f = object::File::parse(elf).expect("elf");
    f.symbols().find(|s| s.name() == Ok(name)).map(|s| s.address()).unwrap_or_else(|| panic!("no symbol {name}"))
}

fn build(elf: &[u8]) -> (generate::Generated, Vec<u8>) {
    let image = ElfImage::parse(elf).expect("parse");
    let g = generate::generate(&image).expect("generate");
    let bytes = g.to_file_bytes().expect("write");
    (g, bytes)
}

#[test]
fn every_fixture_checks_clean() {
    for (name, elf) in fixtures() {
        let (_, bytes) = build(&elf);
        let file = TableFile::parse(&bytes).expect("table parses");
        let image = ElfImage::parse(elf.as_slice()).expect("parse");
        // The fixtures are linked with a build-id: that is their id, and the table carries it.
        let build_id =
            object::File::parse(elf.as_slice()).unwrap().build_id().unwrap().expect("fixture has a build-id");
        assert_eq!(image.image_id.kind(), orc_format::IdKind::BuildId, "{name}");
        assert_eq!(image.image_id.bytes(), build_id, "{name}");
        assert!(file.matches(&image.image_id), "{name}: image id carried");
        let report = generate::check(&image, &file.table).expect("check");
        assert!(report.cfi_addresses > 100 && report.gap_addresses > 0, "{name}: checked too little: {report:?}");
        assert_eq!(report.mismatch_count, 0, "{name}: {:#?}", report.mismatches);
    }
}

#[test]
fn rules_orc_cannot_express_become_undefined() {
    for (name, elf) in fixtures() {
        let (g, bytes) = build(&elf);
        let t = TableFile::parse(&bytes).unwrap().table;
        // asm_lr_in_x9 keeps x30 in x9 after its first instruction; asm_cfa_expr gives the CFA as
        // an expression after its first instruction (see shapes.c).
        for f in ["asm_lr_in_x9", "asm_cfa_expr"] {
            let at = symbol(&elf, f);
            let entry = t.find(at).unwrap().1;
            assert_eq!(entry.kind(), Some(Kind::Call), "{name}: {f} entry is an ordinary frame start");
            assert!(t.find(at + 4).unwrap().1.is_undefined(), "{name}: {f}+4 must be UNDEFINED");
        }
        assert_eq!(g.stats.unsupported.get(&Unsupported::RaRule), Some(&1), "{name}");
        assert_eq!(g.stats.unsupported.get(&Unsupported::CfaExpression), Some(&1), "{name}");
    }
}

#[test]
fn entry_rules_match_what_the_compilers_emit() {
    for (name, elf) in fixtures() {
        let (_, bytes) = build(&elf);
        let t = TableFile::parse(&bytes).unwrap().table;
        // At the first instruction of any function nothing is pushed yet: CFA = sp, FP and LR live.
        let entry_rule = OrcEntry::new(Kind::Call, Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0, false);
        for f in ["leaf_add", "big_frame", "vla", "recurse", "dispatch", "main"] {
            assert_eq!(t.find(symbol(&elf, f)).unwrap().1, entry_rule, "{name}: {f} entry");
        }
        // glibc's _start marks x30 undefined after its first instruction: the end of the stack.
        assert_eq!(t.find(symbol(&elf, "_start") + 4).unwrap().1.kind(), Some(Kind::EndOfStack), "{name}");
        // big_frame allocates over 8 KiB: either the CFA moves to x29 (clang with frame pointer)
        // or the sp-based CFA offset reaches the whole frame.
        let bf = symbol(&elf, "big_frame");
        let rows: Vec<OrcEntry> = (bf..bf + 0x80).step_by(4).filter_map(|a| t.find(a)).map(|(_, e)| e).collect();
        let on_fp = rows.iter().any(|e| e.sp_reg() == Some(Reg::Fp));
        let biggest = rows.iter().filter(|e| e.sp_reg() == Some(Reg::Sp)).map(|e| e.sp_offset).max().unwrap_or(0);
        assert!(on_fp || biggest >= 8192, "{name}: big_frame CFA never covers the frame ({biggest})");
    }
}

#[test]
fn debug_frame_alone_is_enough() {
    let (name, elf) = fixtures().into_iter().find(|(n, _)| n.ends_with("debugframe")).unwrap();
    let image = ElfImage::parse(elf.as_slice()).unwrap();
    assert!(image.debug_frame.is_some(), "{name} has .debug_frame");
    let (g, bytes) = build(&elf);
    assert!(g.stats.debug_frame_bytes > 0);
    let t = TableFile::parse(&bytes).unwrap().table;
    // shapes.c was compiled without unwind tables, so these functions only have .debug_frame CFI.
    let obj = object::File::parse(&*elf).unwrap();
    let eh = obj.section_by_name(".eh_frame").unwrap().data().unwrap().len();
    assert!(eh < 200, "only crt FDEs in .eh_frame ({eh} bytes)");
    assert!(!t.find(symbol(&elf, "dispatch") + 8).unwrap().1.is_undefined());
}

/// The checker must be able to fail: a table that differs from the CFI in one entry, or that
/// lost its terminators, is caught.
#[test]
fn checker_catches_a_wrong_table() {
    let (_, elf) = fixtures().into_iter().find(|(n, _)| n == "shapes-gcc-O2-fp").unwrap();
    let image = ElfImage::parse(elf.as_slice()).unwrap();
    let (g, _) = build(&elf);

    let mut wrong = g.entries.clone();
    let i = wrong.iter().position(|e| e.kind() == Some(Kind::Call) && e.sp_offset > 0).unwrap();
    let e = wrong[i];
    wrong[i] = OrcEntry::new(
        Kind::Call,
        e.sp_reg().unwrap(),
        e.sp_offset + 16,
        e.fp_reg().unwrap(),
        e.fp_offset,
        e.ra_reg().unwrap(),
        e.ra_offset,
        false,
    );
    let bytes = orc_format::file::write(&g.ips, &wrong, &g.image_id, true).unwrap();
    let report = generate::check(&image, &TableFile::parse(&bytes).unwrap().table).unwrap();
    assert!(report.mismatch_count > 0);
    assert!(report.mismatches.iter().all(|m| m.addr >= g.ips[i] && m.addr < g.ips[i + 1]));

    // Drop every terminator except the last: gaps between functions become covered.
    let keep: Vec<usize> = (0..g.ips.len()).filter(|&j| j + 1 == g.ips.len() || !g.entries[j].is_undefined()).collect();
    let ips: Vec<u64> = keep.iter().map(|&j| g.ips[j]).collect();
    let entries: Vec<OrcEntry> = keep.iter().map(|&j| g.entries[j]).collect();
    let bytes = orc_format::file::write(&ips, &entries, &g.image_id, true).unwrap();
    let report = generate::check(&image, &TableFile::parse(&bytes).unwrap().table).unwrap();
    assert!(report.mismatch_count > 0, "covered gaps must be reported");
}

#[test]
fn truncated_elf_is_an_error() {
    let (_, elf) = fixtures().into_iter().find(|(n, _)| n == "shapes-clang-O2-fp").unwrap();
    for len in (0..elf.len()).step_by(61) {
        let r = ElfImage::parse(&elf[..len]).and_then(|img| generate::generate(&img));
        assert!(r.is_err(), "prefix of {len} bytes accepted");
    }
}

#[test]
fn foreign_elf_is_named() {
    // An x86-64 ELF: the fixture's header with e_machine changed to EM_X86_64.
    let (_, mut elf) = fixtures().into_iter().find(|(n, _)| n == "shapes-clang-O2-fp").unwrap();
    elf[18] = 62;
    elf[19] = 0;
    let err = ElfImage::parse(elf.as_slice()).unwrap_err();
    assert!(matches!(err, GenError::WrongArch { .. }), "{err}");
    assert!(err.to_string().contains("X86_64"), "{err}");
}

fn eh_frame_range(elf: &[u8]) -> std::ops::Range<usize> {
    let f = object::File::parse(elf).unwrap();
    let (off, size) = f.section_by_name(".eh_frame").unwrap().file_range().unwrap();
    off as usize..(off + size) as usize
}

#[test]
fn corrupt_cfi_is_named_or_still_consistent() {
    let (_, elf) = fixtures().into_iter().find(|(n, _)| n == "shapes-gcc-O0-fp").unwrap();
    let range = eh_frame_range(&elf);
    // A CIE length pointing far past the section.
    let mut bad = elf.clone();
    bad[range.start..range.start + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let err = ElfImage::parse(bad.as_slice()).and_then(|img| generate::generate(&img)).unwrap_err();
    assert!(err.to_string().contains(".eh_frame"), "{err}");

    // Every byte of .eh_frame overwritten in turn: never a panic, and whatever gimli accepts the
    // generator and checker still agree on.
    let mut errors = 0;
    for (n, pos) in range.clone().step_by(3).enumerate() {
        let mut bad = elf.clone();
        bad[pos] = bad[pos].wrapping_add(0x41 + n as u8);
        let image = ElfImage::parse(bad.as_slice()).unwrap();
        match generate::generate(&image) {
            Err(_) => errors += 1,
            Ok(g) => {
                let bytes = g.to_file_bytes().unwrap();
                let report = generate::check(&image, &TableFile::parse(&bytes).unwrap().table).unwrap();
                assert_eq!(report.mismatch_count, 0, "byte {pos:#x}: {:?}", report.mismatches.first());
            }
        }
    }
    assert!(errors > 0, "some corruptions must be refused");
}
