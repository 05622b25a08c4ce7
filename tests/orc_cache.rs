//! The caller-owned ORC lookup cache (`orcwalk::OrcCache`, `CachedCode`) changes no verdict and
//! no frame: the shipped user and kernel corpora walked with one small cache shared by every
//! walk (64 slots, so slots are evicted and reused) give exactly what they give without it.

use std::path::PathBuf;

use orc_format::TableFile;
use orcwalk::recovery::NoRecovery;
use orcwalk::{CachedCode, CodeInfo, Frame, OrcCache, Policy, StackList, Verdict, walk};
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::{self, Mode};

fn walk_with<C: CodeInfo>(d: &Dump, code: &C, policy: Policy, mode: Mode) -> (Verdict, Vec<u64>) {
    let i = &d.info;
    let cfg = replay::config(i, policy, mode);
    let mut pcs = Vec::new();
    let v = walk(i.start(), &cfg, d, &StackList { stacks: &i.stacks }, code, &NoRecovery, |f: &Frame| {
        pcs.push(f.pc);
        true
    });
    (v, pcs)
}

#[test]
fn a_shared_cache_changes_no_walk() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for dir in ["user/gcc-O2", "kernel/7.2-rt/blocked", "kernel/7.2-rt"] {
        let dir = root.join(dir);
        let dumps = orcwalk_sim::dump::load_dir(&dir).unwrap();
        let table_bytes = std::fs::read(dir.join(&dumps[0].1.info.image_path)).unwrap();
        let table = TableFile::parse(&table_bytes).unwrap();
        let code = replay::code(&dumps[0].1.info, table);
        let cache = OrcCache::<64>::new();
        let cached = CachedCode { code: &code, cache: Some(&cache) };
        let mut reliable = 0;
        for round in 0..2 {
            if round == 1 {
                cache.clear();
            }
            for (path, d) in &dumps {
                for (policy, mode) in [(Policy::Orcwalk, Mode::default()), (Policy::Orcwalk, Mode::STRICT)] {
                    let want = walk_with(d, &code, policy, mode);
                    reliable += usize::from(want.0 == Verdict::Reliable);
                    assert_eq!(walk_with(d, &cached, policy, mode), want, "{}", path.display());
                }
            }
        }
        assert!(reliable > 0, "{}: nothing proven", dir.display());
    }
}
