//! A module's table, made from its relocatable object and placed where a loader put its text
//! sections, answers exactly as the table the generator makes from an image linked with the text
//! at those addresses in the first place (by the linker, not by this crate).

use std::path::{Path, PathBuf};
use std::process::Command;

use orc_format::generate::{self, ElfImage};
use orc_format::module::ModuleTable;
use orc_format::{OrcTable, ko};

fn work(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orc-module-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn compile(cc: &str, args: &[&str], out: &Path) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/module/module.c");
    let status = Command::new(cc)
        .args(args)
        .args(["-O2", "-g", "-fno-omit-frame-pointer", "-c", "-o"])
        .arg(out)
        .arg(src)
        .status()
        .unwrap_or_else(|e| panic!("{cc} (scripts/setup installs it): {e}"));
    assert!(status.success(), "{cc} failed");
}

/// Text sections at these addresses: init text below core text, as often after a module load.
const PLACES: [(&str, u64); 3] =
    [(".text", 0xffff_8000_7a01_0000), (".init.text", 0xffff_8000_7a00_4000), (".exit.text", 0xffff_8000_7a02_0000)];

fn placed_matches_direct_link(cc: &str, args: &[&str]) {
    let dir = work(cc);
    let obj = dir.join("module.o");
    compile(cc, args, &obj);
    let (bytes, entries) = ko::build(&obj, "ld.lld", &dir).unwrap();
    let table = ModuleTable::parse(&bytes).unwrap();
    assert_eq!(u64::from(table.len()), entries);
    assert!(table.proven());
    let names: Vec<&[u8]> = (0..table.sections()).map(|k| table.section(k).unwrap().name).collect();
    assert_eq!(names, [&b".text"[..], b".init.text", b".exit.text"]);

    let (mut ips, mut orc) = (vec![0; 4 * table.len() as usize], vec![0; 8 * table.len() as usize]);
    let placed =
        table.place(|name, _| PLACES.iter().find(|p| p.0.as_bytes() == name).map(|p| p.1), &mut ips, &mut orc).unwrap();
    let n = placed.len as usize;
    let placed = OrcTable::from_parts(&ips[..4 * n], placed.ip_addr, &orc[..8 * n], None).unwrap();

    let direct = dir.join("direct.elf");
    let status = Command::new("ld.lld")
        .args(PLACES.iter().map(|(name, addr)| format!("--section-start={name}={addr:#x}")))
        .args(["--unresolved-symbols=ignore-all", "-e", "0", "-o"])
        .arg(&direct)
        .arg(&obj)
        .status()
        .unwrap();
    assert!(status.success());
    let direct_bytes = std::fs::read(&direct).unwrap();
    let g = generate::generate(&ElfImage::parse(direct_bytes.as_slice()).unwrap()).unwrap();
    let file = g.to_file_bytes().unwrap();
    let direct = orc_format::TableFile::parse(&file).unwrap().table;

    let mut compared = 0;
    for (_, addr) in PLACES {
        for pc in (addr - 64..addr + 0x400).step_by(4) {
            let (a, b) = (placed.find(pc).map(|e| e.1), direct.find(pc).map(|e| e.1));
            // Below the lowest section the direct table has nothing and neither may we.
            assert_eq!(a, b, "{cc}: pc {pc:#x}");
            compared += usize::from(a.is_some_and(|e| !e.is_undefined()));
        }
    }
    assert!(compared > 30, "{cc}: only {compared} pcs with a rule compared");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clang_module_placed_answers_like_a_direct_link() {
    placed_matches_direct_link("clang", &["--target=aarch64-linux-gnu", "-mbranch-protection=pac-ret"]);
}

#[test]
fn gcc_module_placed_answers_like_a_direct_link() {
    placed_matches_direct_link("aarch64-linux-gnu-gcc", &[]);
}

#[test]
fn a_linked_image_is_not_a_module() {
    let dir = work("linked");
    let obj = dir.join("module.o");
    compile("aarch64-linux-gnu-gcc", &[], &obj);
    let linked = dir.join("linked.elf");
    assert!(
        Command::new("ld.lld")
            .args(["--unresolved-symbols=ignore-all", "-e", "0", "-o"])
            .arg(&linked)
            .arg(&obj)
            .status()
            .unwrap()
            .success()
    );
    let err = ko::build(&linked, "ld.lld", &dir).unwrap_err();
    assert!(err.to_string().contains("not a relocatable object"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
