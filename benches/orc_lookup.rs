//! ORC lookup on a table of 600k entries: the 256-byte-block index against plain binary search,
//! in the same run. "cold" spreads pcs over the whole text (cache-missing, as an unwinder of many
//! tasks sees), "hot" repeats a few pcs (as one deep recursion does).
//!
//! `cargo bench --bench orc_lookup`; ratios, not absolute numbers, are what the README reports.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use orc_format::{Kind, OrcEntry, Reg, TableFile};

const ENTRIES: usize = 600_000;

/// Entries 4..=64 bytes apart (one per few instructions, like a kernel's ORC), every tenth a
/// terminator, from a simple LCG so the table is the same every run.
fn table_bytes() -> (Vec<u8>, u64, u64) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let base = 0xffff_8000_8001_0000u64;
    let mut ips = Vec::with_capacity(ENTRIES);
    let mut entries = Vec::with_capacity(ENTRIES);
    let mut ip = base;
    for i in 0..ENTRIES {
        ips.push(ip);
        ip += 4 * (1 + next() % 16);
        let e = if i % 10 == 9 || i + 1 == ENTRIES {
            OrcEntry::UNDEFINED
        } else {
            OrcEntry::new(Kind::Call, Reg::Sp, (next() % 512) as i16 * 16, Reg::PrevSp, -16, Reg::PrevSp, -8, false)
        };
        entries.push(e);
    }
    (orc_format::file::write(&ips, &entries, &orc_format::ImageId::NONE, true).expect("table"), base, ip)
}

fn pcs(base: u64, end: u64, n: usize) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            base + (x % (end - base)) / 4 * 4
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let (bytes, base, end) = table_bytes();
    let file = TableFile::parse(&bytes).expect("valid table");
    let t = file.table;
    let cold = pcs(base, end, 4096);
    let hot = pcs(base, base + 4096, 8);

    let mut g = c.benchmark_group("orc_find_600k");
    g.bench_function("cold/indexed", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % cold.len();
            black_box(t.find(black_box(cold[i])))
        })
    });
    g.bench_function("cold/binary_search", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % cold.len();
            black_box(t.find_unindexed(black_box(cold[i])))
        })
    });
    g.bench_function("hot/indexed", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % hot.len();
            black_box(t.find(black_box(hot[i])))
        })
    });
    g.bench_function("hot/binary_search", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % hot.len();
            black_box(t.find_unindexed(black_box(hot[i])))
        })
    });
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
