//! The ELF-section form of a table, linked by GNU ld (which applies the PREL32/ABS64 relocations
//! the way a kernel link does), reads back to the same answers as the table file.

use std::path::PathBuf;
use std::process::Command;

use object::{Object, ObjectSymbol};
use orc_format::TableFile;
use orc_format::generate::{self, ElfImage, sections};

#[test]
fn linked_sections_answer_like_the_table_file() {
    let elf = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/orc/shapes-gcc-O2-fp"))
        .unwrap();
    let image = ElfImage::parse(elf.as_slice()).unwrap();
    let g = generate::generate(&image).unwrap();
    let file_bytes = g.to_file_bytes().unwrap();
    let from_file = TableFile::parse(&file_bytes).unwrap().table;

    let main =
        object::File::parse(elf.as_slice()).unwrap().symbols().find(|s| s.name() == Ok("main")).unwrap().address();
    let obj = sections::write_object(&g, "main", main).unwrap();
    let dir = std::env::temp_dir().join(format!("orc-sections-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("orc.o"), &obj).unwrap();
    // Place the ORC sections far from text so the self-relative offsets are not trivially small.
    let status = Command::new("aarch64-linux-gnu-ld")
        .arg("-o")
        .arg(dir.join("linked"))
        .arg(dir.join("orc.o"))
        .arg(format!("--defsym=main={main:#x}"))
        .args(["--section-start=.orc_unwind_ip=0x4000000", "-e", "0", "--no-warn-rwx-segments"])
        .status()
        .expect("aarch64-linux-gnu-ld (scripts/setup installs it)");
    assert!(status.success());
    let linked = std::fs::read(dir.join("linked")).unwrap();
    let from_elf = sections::read_linked(linked.as_slice()).unwrap();

    assert_eq!(from_elf.len(), from_file.len());
    assert_eq!(from_elf.ip_table_addr(), 0x400_0000);
    assert!(from_elf.index().is_some());
    let (lo, hi) = (g.ips[0] - 64, g.ips[g.ips.len() - 1] + 64);
    for pc in (lo..hi).step_by(4) {
        assert_eq!(from_elf.find(pc), from_file.find(pc), "pc {pc:#x}");
    }
}

#[test]
fn an_image_without_orc_sections_is_named() {
    let elf = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/orc/shapes-gcc-O0-fp"))
        .unwrap();
    let err = sections::read_linked(elf.as_slice()).unwrap_err();
    assert!(err.to_string().contains(".orc_header"), "{err}");
}
