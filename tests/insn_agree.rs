//! Two decoders answer "which of sp, x29, x30 can this instruction write": the generator's
//! (cuts stale CFI rows out of ORC) and the harness truth's (doubts stale rows). They are
//! written apart on purpose, so the truth stays independent; here they must agree on every
//! instruction of every shipped aarch64 binary. (On random words they differ, by design, only
//! in how conservatively each treats encodings that are not instructions.)

use object::{Object, ObjectSection, SectionKind};

fn binaries() -> Vec<std::path::PathBuf> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v = Vec::new();
    for dir in ["user", "orc", "shapes"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            if bytes.starts_with(b"\x7fELF") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

#[test]
fn decoders_agree_on_every_shipped_instruction() {
    let mut words = 0u64;
    let mut writers = 0u64;
    for path in binaries() {
        let bytes = std::fs::read(&path).unwrap();
        let file = object::File::parse(bytes.as_slice()).unwrap();
        for s in file.sections().filter(|s| s.kind() == SectionKind::Text) {
            for (n, w) in s.data().unwrap().chunks_exact(4).enumerate() {
                let i = u32::from_le_bytes(w.try_into().unwrap());
                let generator = orc_format::generate::insn::writes(i).0;
                let truth = orcwalk_sim::truth::insn::writes(i);
                assert_eq!(generator, truth, "{} at {:#x}: word {i:#010x}", path.display(), s.address() + 4 * n as u64);
                words += 1;
                writers += u64::from(generator != 0);
            }
        }
    }
    println!("{words} instruction words, {writers} write sp, x29 or x30");
    assert!(words > 250_000, "{words}");
}
