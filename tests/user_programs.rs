//! The purpose-written aarch64 workload (tests/fixtures/user, issue 5's capture target), built by
//! gcc -O0, gcc -O2 and clang -O2: it runs under qemu-aarch64 with its signal handler exercised,
//! its ORC table agrees with its CFI at every instruction, and exactly the assembly without CFI
//! is reported uncovered.

use std::path::PathBuf;
use std::process::Command;

use orc_format::TableFile;
use orc_format::generate::{self, ElfImage};

fn builds() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/user");
    let v: Vec<PathBuf> =
        ["workload-gcc-O0", "workload-gcc-O2", "workload-clang-O2"].iter().map(|n| dir.join(n)).collect();
    assert!(v.iter().all(|p| p.exists()), "run scripts/build-user-programs");
    v
}

#[test]
fn workload_runs_under_qemu_with_its_signal_handler() {
    for b in builds() {
        let out = Command::new("qemu-aarch64")
            .args(["-L", "/usr/aarch64-linux-gnu"])
            .arg(&b)
            .arg("400")
            .output()
            .expect("qemu-aarch64 (scripts/setup installs it)");
        assert!(out.status.success(), "{}: {:?}", b.display(), out);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.trim_end().ends_with(" 1"), "{}: signal handler did not run: {text}", b.display());
    }
}

#[test]
fn workload_orc_matches_cfi_and_names_the_uncovered_assembly() {
    for b in builds() {
        let elf = std::fs::read(&b).unwrap();
        let image = ElfImage::parse(elf.as_slice()).unwrap();
        let g = generate::generate(&image).unwrap();
        let bytes = g.to_file_bytes().unwrap();
        let report = generate::check(&image, &TableFile::parse(&bytes).unwrap().table).unwrap();
        assert_eq!(report.mismatch_count, 0, "{}: {:?}", b.display(), report.mismatches.first());
        assert!(report.cfi_addresses > 300);
        let mut uncovered = g.stats.functions_without_cfi.clone();
        uncovered.sort();
        assert_eq!(uncovered, ["asm_clobbers_fp", "asm_with_record", "call_weak_fn"], "{}", b.display());
    }
}
