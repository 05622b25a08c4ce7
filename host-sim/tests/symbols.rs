//! Symbolized verdicts read like gdb: `name+off` from the shipped program, for the truth of real
//! user stops, agrees with gdb's `info symbol` (an outside reader of the same ELF); the kernel
//! corpora's symbol files name the functions their truths hold.

use std::path::PathBuf;
use std::process::Command;

use orcwalk_sim::symbols::Symbols;

fn corpus(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus").join(dir)
}

#[test]
fn user_frames_symbolize_as_gdb_says() {
    for prog in ["user/gcc-O2", "user/clang-O2"] {
        let elf = corpus(prog).join("program.elf");
        let syms = Symbols::from_elf(&std::fs::read(&elf).unwrap()).unwrap();
        let dumps = orcwalk_sim::dump::load_dir(&corpus(prog)).unwrap();
        let mut pcs: Vec<u64> = dumps.iter().flat_map(|(_, d)| d.info.truth.clone()).collect();
        pcs.sort_unstable();
        pcs.dedup();
        // Every 7th distinct pc: a spread over the program, in one gdb run.
        let sample: Vec<u64> = pcs.iter().copied().step_by(7).take(40).collect();
        let mut gdb = Command::new("gdb-multiarch");
        gdb.arg("-batch").arg("-nx");
        for pc in &sample {
            gdb.arg("-ex").arg(format!("info symbol {pc:#x}"));
        }
        let out = gdb.arg(&elf).output().expect("gdb-multiarch (scripts/setup installs it)");
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), sample.len(), "{prog}: {lines:?}");
        for (pc, line) in sample.iter().zip(&lines) {
            // gdb: "main + 12 in section .text" (or "main in section .text" at offset 0).
            if line.starts_with("No symbol matches") {
                assert_eq!(syms.symbolize(*pc), None, "{prog} {pc:#x}: gdb has no symbol");
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let (name, off) = match words.as_slice() {
                [n, "+", o, "in", ..] => (*n, o.parse::<u64>().unwrap()),
                [n, "in", ..] => (*n, 0),
                _ => panic!("{prog}: gdb said {line:?} for {pc:#x}"),
            };
            let ours = syms.symbolize(*pc).unwrap_or_else(|| panic!("{prog}: no symbol for {pc:#x}; gdb: {line}"));
            // Aliases (__libc_start_main, __libc_start_main_impl) share an address: the same place.
            let same = ours.starts_with(&format!("{name}+{off:#x}/"))
                || (ours.contains(&format!("+{off:#x}/")) && syms.address_of(name) == Some(pc - off));
            assert!(same, "{prog} {pc:#x}: ours {ours}, gdb {line}");
        }
    }
}

#[test]
fn kernel_symbol_files_name_the_truths() {
    for k in ["6.12-cloud", "7.2-rt", "7.2-rt-el2", "7.2-llvm"] {
        let dir = corpus("kernel").join(k);
        let syms = Symbols::parse(&std::fs::read_to_string(dir.join("vmlinux.syms")).unwrap()).unwrap();
        let dumps = orcwalk_sim::dump::load_dir(&dir).unwrap();
        let mut missing = 0;
        for (_, d) in &dumps {
            for pc in &d.info.truth {
                missing += usize::from(syms.symbolize(*pc | 0xff80_0000_0000_0000).is_none());
            }
        }
        // Entry code and vectors are assembly labels, not function symbols: a few stay bare.
        let total: usize = dumps.iter().map(|(_, d)| d.info.truth.len()).sum();
        assert!(missing * 20 < total, "{k}: {missing} of {total} truth pcs without a symbol");
    }
}
