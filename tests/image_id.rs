//! Tables are bound to the code they were made from, on two real builds one instruction apart
//! (`tests/fixtures/imageid`, rebuilt by scripts/build-fixtures): `twins-plain` and `twins-bti`
//! differ only by a `bti c` at `callee`'s entry, and neither has a GNU build-id. Their ids used to
//! be empty, so equal, and a table of one was accepted for the other. With it, the walk of a
//! stop in `callee` right after the `bti c` takes the caller's frame record for callee's own and
//! returns Reliable with `caller` missing. The ids are now text hashes, which differ, and the
//! pairing is refused.

use std::path::PathBuf;

use object::Object;
use orc_format::generate::{self, ElfImage};
use orc_format::{IdKind, ImageId, TableFile};
use orcwalk::{Policy, Verdict};
use orcwalk_sim::dump::{Dump, Region, SampleInfo};
use orcwalk_sim::replay::{Judgement, replay, table_for};
use orcwalk_sim::truth::Image;

const BTI_C: u32 = 0xd503_245f;
const STP_FP_LR_PRE16: u32 = 0xa9bf_7bfd; // stp x29, x30, [sp, #-16]!

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imageid").join(name)).unwrap()
}

fn table(elf: &[u8]) -> Vec<u8> {
    generate::generate(&ElfImage::parse(elf).unwrap()).unwrap().to_file_bytes().unwrap()
}

fn sym(image: &ElfImage<'_>, name: &str) -> u64 {
    image.symbols.iter().find(|s| s.2 == name).unwrap_or_else(|| panic!("no symbol {name}")).0
}

/// The address after the `bl target` in the function at `from`.
fn return_address(image: &ElfImage<'_>, from: &str, target: &str) -> u64 {
    let (start, to) = (sym(image, from), sym(image, target));
    (start..start + 64)
        .step_by(4)
        .find(|&pc| {
            let insn = image.insn(pc).unwrap();
            let offset = (((insn & 0x03ff_ffff) << 6) as i32 >> 4) as i64;
            insn & 0xfc00_0000 == 0x9400_0000 && pc.wrapping_add_signed(offset) == to
        })
        .unwrap_or_else(|| panic!("no bl {target} in {from}"))
        + 4
}

#[test]
fn builds_without_a_build_id_get_text_hash_ids_that_tell_them_apart() {
    let (a, b) = (fixture("twins-plain"), fixture("twins-bti"));
    for elf in [&a, &b] {
        // What the id used to be: the build-id, absent in both, so empty and equal.
        assert_eq!(object::File::parse(elf.as_slice()).unwrap().build_id().unwrap(), None);
    }
    let (ia, ib) = (ElfImage::parse(a.as_slice()).unwrap().image_id, ElfImage::parse(b.as_slice()).unwrap().image_id);
    assert_eq!((ia.kind(), ib.kind()), (IdKind::TextHash, IdKind::TextHash));
    assert!(ia.matches(&ia) && !ia.matches(&ib), "{ia} / {ib}");
    // The dump side computes ids the same way as the generator.
    assert!(Image::parse(&a).unwrap().image_id.matches(&ia));
    assert!(Image::parse(&b).unwrap().image_id.matches(&ib));

    let ta = table(&a);
    let ta = TableFile::parse(&ta).unwrap();
    assert_eq!(ta.image_id().kind(), IdKind::TextHash);
    assert!(ta.matches(&ia) && !ta.matches(&ib));
}

#[test]
fn the_other_builds_table_walks_reliable_with_a_frame_missing_and_is_refused() {
    let (a, b) = (fixture("twins-plain"), fixture("twins-bti"));
    let (ea, eb) = (ElfImage::parse(a.as_slice()).unwrap(), ElfImage::parse(b.as_slice()).unwrap());
    // The one-instruction difference, where the test needs it.
    let callee = sym(&eb, "callee");
    assert_eq!(sym(&ea, "callee"), callee, "the fixture changed: callee must stay put");
    assert_eq!(ea.insn(callee), Some(STP_FP_LR_PRE16));
    assert_eq!((eb.insn(callee), eb.insn(callee + 4)), (Some(BTI_C), Some(STP_FP_LR_PRE16)));
    for f in ["main", "caller"] {
        assert_eq!(eb.insn(sym(&eb, f)), Some(STP_FP_LR_PRE16), "{f} pushes a 16-byte frame record first");
    }

    // Build B stopped after `bti c`, before callee's `stp`: _start -> main -> caller -> callee,
    // each caller's 16-byte record pushed, sp and x29 at caller's record.
    let ret_start = return_address(&eb, "_start", "main");
    let ret_main = return_address(&eb, "main", "caller");
    let ret_caller = return_address(&eb, "caller", "callee");
    let (low, high) = (0x7000_0000u64, 0x7000_0100u64);
    let mut data = vec![0u8; (high - low) as usize];
    let mut put = |addr: u64, v: u64| {
        let at = (addr - low) as usize;
        data[at..at + 8].copy_from_slice(&v.to_le_bytes());
    };
    put(high - 16, 0); // main's record: _start's x29 (0), return into _start
    put(high - 8, ret_start);
    put(high - 32, high - 16); // caller's record: main's x29, return into main
    put(high - 24, ret_main);
    let pc = callee + 4;
    let mut regs = [0u64; 34];
    (regs[29], regs[30], regs[31], regs[32]) = (high - 32, ret_caller, high - 32, pc);
    let truth_b = Image::parse(&b).unwrap();
    let mut info = SampleInfo::user(&regs, truth_b.text, (low, high), truth_b.image_id, "twins-bti.orc".into());
    let mut dump = Dump { regs, info: info.clone(), regions: vec![Region { vaddr: low, data, exec: false }] };
    // The DWARF truth of build B agrees with the frames the stack was built with.
    let truth = truth_b.unwind(&dump.regs, &dump);
    assert!(truth.complete, "{truth:?}");
    assert_eq!(truth.pcs, [pc, ret_caller, ret_main, ret_start]);
    (info.truth, info.truth_complete) = (truth.pcs, true);
    dump.info = info;

    let (table_a, table_b) = (table(&a), table(&b));
    // B's own table: reliable and right.
    let own = replay(&dump, TableFile::parse(&table_b).unwrap(), Policy::Orcwalk);
    assert_eq!(own.judgement, Judgement::Correct, "{own:?}");

    // A's table on B's code: at callee+4 A's row says the record is pushed (CFA = sp + 16, x29
    // and x30 saved below it). The record found there is caller's, its x29 check passes, and the
    // walk goes on from main: reliable, every check passed, caller missing.
    let foreign = replay(&dump, TableFile::parse(&table_a).unwrap(), Policy::Orcwalk);
    assert_eq!(foreign.verdict, Verdict::Reliable, "{foreign:?}");
    let pcs: Vec<u64> = foreign.frames.iter().map(|f| f.0).collect();
    assert_eq!(pcs, [pc, ret_main, ret_start], "caller's frame is the one missing");
    assert_eq!(foreign.judgement, Judgement::FalseReliable);

    // The id check is what stops it: A's table is refused for B's dump, naming both ids...
    let err = table_for(&dump.info, &table_a).unwrap_err();
    let (ia, ib) = (ea.image_id.to_string(), eb.image_id.to_string());
    assert!(err.contains(&ia) && err.contains(&ib), "{err}");
    assert!(table_for(&dump.info, &table_b).is_ok());
    // ...and so is what replaced the old, equal empty ids: a table without an id (as the
    // generator wrote for an ELF without a build-id) matches no dump, not even one without an id.
    let g = generate::generate(&ea).unwrap();
    let id_less = orc_format::file::write(&g.ips, &g.entries, &ImageId::NONE, true).unwrap();
    assert!(table_for(&dump.info, &id_less).is_err());
    dump.info.image_id = ImageId::NONE;
    let err = table_for(&dump.info, &id_less).unwrap_err();
    assert!(err.contains("matches nothing"), "{err}");
}
