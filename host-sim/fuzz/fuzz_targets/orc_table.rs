//! Any bytes as an ORC table file: parse never panics; an accepted table answers every lookup
//! like a linear scan.
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_format::TableFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = TableFile::parse(data) {
        let all: Vec<(u64, orc_format::OrcEntry)> = f.table.iter().collect();
        for &(ip, _) in all.iter().take(64) {
            for pc in [ip.wrapping_sub(1), ip, ip.wrapping_add(3)] {
                let want = all.iter().rev().find(|(i, _)| *i <= pc).copied();
                assert_eq!(f.table.find(pc), want);
            }
        }
    }
});
