//! ORC lookup on the shipped 7.2 vmlinux table (`tests/corpus/kernel/7.2-rt/vmlinux.orc`, 318k
//! entries, 3.8 MB of ips and entries plus its index): the 256-byte-block index against plain
//! binary search, in the same run.
//!
//! - `hot`: 8 pcs in one function, cycled (one deep recursion, or a cache-warm profiler).
//! - `cold_l3`: a fresh random pc over the whole text each lookup (2^20 pcs, never cycled within
//!   a sample): the table (4.4 MB) is larger than L2 but fits in a large L3.
//! - `cold_dram`: the same, each lookup in one of 16 copies of the table chosen at random too, so
//!   the working set (70 MB) is larger than every cache, as for a kernel whose table was evicted
//!   between samples.
//!
//! `branchy` is the lookup as it was before the branch-free bisection (the index, then a
//! bisection that branches on every comparison), rebuilt here from the table's public `ip` and
//! `entry`, so that the change is measured against it in the same run.
//!
//! `cargo bench --bench orc_lookup`; ratios, not absolute numbers, are what the docs report.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use orc_format::{OrcEntry, OrcTable, TableFile};

/// Power of two: the pc ring is indexed with a mask, not a division.
const PCS: usize = 1 << 20;
const COPIES: usize = 16;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// `PCS` random 4-byte aligned pcs in `[lo, hi)`, the same every run.
fn pcs(lo: u64, hi: u64, seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..PCS).map(|_| lo + (xorshift(&mut x) % (hi - lo)) / 4 * 4).collect()
}

/// The previous `OrcTable::find`: the index's window, then a branching bisection.
fn find_branchy(t: &OrcTable<'_>, pc: u64) -> Option<OrcEntry> {
    let (mut lo, mut hi) = (0, t.len());
    if let Some(ix) = t.index()
        && let Some(delta) = pc.checked_sub(ix.base)
        && let Ok(block) = usize::try_from(delta >> orc_format::index::BLOCK_SHIFT)
    {
        let word = |b: usize| Some(u32::from_le_bytes(ix.words.get(b * 4..b * 4 + 4)?.try_into().ok()?));
        if let (Some(l), Some(h)) = (word(block), word(block + 1))
            && l <= h
            && h <= t.len()
        {
            (lo, hi) = (l, h);
        }
    }
    while lo < hi {
        let mid = lo.midpoint(hi);
        if t.ip(mid) <= pc {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    t.entry(lo.checked_sub(1)?)
}

/// The answer as one word, for `black_box`: an `Option<OrcEntry>` kept whole (10 bytes, 2-byte
/// aligned) went through memory in other widths than it was written, a store-forwarding stall
/// that was most of the cached lookup's time; a walk holds the entry in a register.
#[inline(always)]
fn word(e: Option<OrcEntry>) -> u64 {
    e.map_or(u64::MAX, |e| u64::from_le_bytes(e.to_bytes()))
}

fn lookup(c: &mut Criterion) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kernel/7.2-rt/vmlinux.orc");
    let bytes = std::fs::read(&path).expect("vmlinux.orc");
    let copies: Vec<Vec<u8>> = (0..COPIES).map(|_| bytes.clone()).collect();
    let tables: Vec<OrcTable<'_>> = copies.iter().map(|b| TableFile::parse(b).expect("valid table").table).collect();
    let t = tables[0];
    assert!(t.index().is_some(), "the shipped table carries its lookup index");
    let (first, last) = (t.ip(0), t.ip(t.len() - 1));
    eprintln!("orc_lookup: {} entries, text {first:#x}..{last:#x}, {COPIES} copies for cold_dram", t.len());

    let cold = pcs(first, last, 0x9e37_79b9_7f4a_7c15);
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let which: Vec<u8> = (0..PCS).map(|_| (xorshift(&mut x) % COPIES as u64) as u8).collect();
    // 8 pcs in the function around the table's middle entry.
    let mid = t.ip(t.len() / 2);
    let hot: Vec<u64> = (0..8).map(|k| mid + 4 * k).collect();

    let mut g = c.benchmark_group("orc_find_7.2_vmlinux");
    for pc in cold.iter().take(1 << 16).chain(&hot) {
        assert_eq!(t.find_entry(*pc), find_branchy(&t, *pc), "{pc:#x}");
        assert_eq!(t.find(*pc).map(|(_, e)| e), find_branchy(&t, *pc), "{pc:#x}");
    }
    // All three give the entry only (`find_entry` is what the walk calls).
    type Find = fn(&OrcTable<'_>, u64) -> Option<OrcEntry>;
    let ways: [(&str, Find); 3] = [
        ("indexed", |t, pc| t.find_entry(pc)),
        ("branchy_indexed", find_branchy),
        ("binary_search", |t, pc| t.find_unindexed(pc).map(|(_, e)| e)),
    ];
    for (name, find) in ways {
        g.bench_function(format!("hot/{name}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & 7;
                black_box(word(find(&t, black_box(hot[i]))))
            })
        });
        g.bench_function(format!("cold_l3/{name}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (PCS - 1);
                black_box(word(find(&t, black_box(cold[i]))))
            })
        });
        g.bench_function(format!("cold_dram/{name}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (PCS - 1);
                black_box(word(find(&tables[usize::from(which[i])], black_box(cold[i]))))
            })
        });
    }
    // A caller-owned lookup cache (`orcwalk::code::OrcCache`, what a livepatch transition would
    // keep across the tasks it walks) in front of the indexed lookup, for the same hot pcs.
    {
        use orcwalk::code::{CachedCode, CodeInfo, OrcCache, TableCode};
        let code = TableCode {
            table: t,
            text_start: first,
            text_end: last,
            entry_start: 0,
            entry_end: 0,
            text: None,
            proven: true,
            sigreturn: None,
            ftrace: None,
        };
        let cache = OrcCache::<64>::new();
        let cached = CachedCode { code: &code, cache: Some(&cache) };
        for pc in &hot {
            assert_eq!(cached.orc(*pc), t.find_entry(*pc), "{pc:#x}");
        }
        g.bench_function("hot/indexed_with_cache", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & 7;
                black_box(word(cached.orc(black_box(hot[i]))))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
