//! Both "which of sp, x29, x30 can this instruction write" decoders (the generator's and the
//! truth's) against binutils' disassembler over whole encoding spaces, not only over the words
//! the shipped binaries happen to contain (`insn_agree.rs`). A decoder that misses a write keeps
//! a stale CFI row (unsound: the test fails); one that reports a write objdump does not show cuts
//! a sound row (imprecise: counted and printed, not failed, since unknown encodings, SVE and SME
//! are "everything" on purpose).
//!
//! The words: (A) every value of bits 31:10 once, with the Rt/Rd and Rn fields drawn (seeded)
//! from registers that matter; (B) bits 31:21 and 15 enumerated with each of Rt, Rn, Rt2 and Rs
//! pinned to {3, 29, 30, 31} (and Rt also 22, for ld64b's eight, and Rt and Rs 28, for casp's pairs), which
//! reaches every register combination of the encodings whose other bits are all opcode; (C) the
//! hint space and the 64-byte loads and stores, whose opcode reaches into bits 11:0.
//! `ORCWALK_INSN_OBJDUMP=full` makes (A) take every register pair for every value (~100M words,
//! a few minutes).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const OBJDUMP: &str = "aarch64-linux-gnu-objdump";
const SP: u8 = 1;
const X29: u8 = 2;
const X30: u8 = 4;
const RT: [u32; 6] = [3, 22, 28, 29, 30, 31];
const RN: [u32; 4] = [3, 29, 30, 31];
const RS: [u32; 5] = [3, 28, 29, 30, 31];

/// splitmix64: a seeded, reproducible choice of registers per word.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn words(full: bool) -> Vec<u32> {
    let mut v = Vec::new();
    for hi in 0u32..1 << 22 {
        if full {
            for rt in RT {
                for rn in RN {
                    v.push(hi << 10 | rn << 5 | rt);
                }
            }
        } else {
            let r = mix(u64::from(hi)) as usize;
            v.push(hi << 10 | RN[r / 8 % 4] << 5 | RT[r % 6]);
        }
    }
    for op in 0u32..1 << 12 {
        let op = (op & 0x7ff) << 21 | (op >> 11 & 1) << 15;
        for rt in RT {
            for rn in RN {
                for rt2 in RN {
                    for rs in RS {
                        v.push(op | rs << 16 | rt2 << 10 | rn << 5 | rt);
                    }
                }
            }
        }
    }
    for low in 0..1 << 12 {
        v.push(0xd503_2000 | low);
    }
    for base in [0xf83f_d000u32, 0xf83f_9000, 0xf820_b000, 0xf820_a000, 0xf83d_b000, 0xf83e_a000] {
        for low in 0..1 << 10 {
            v.push(base | low);
        }
    }
    v
}

/// A general register operand as a set member; `w29` changes x29 as much as `x29` does.
fn reg(op: &str) -> u8 {
    match op {
        "sp" | "wsp" => SP,
        "x29" | "w29" | "fp" => X29,
        "x30" | "w30" | "lr" => X30,
        _ => 0,
    }
}

fn xnum(op: &str) -> Option<u32> {
    op.strip_prefix('x').or_else(|| op.strip_prefix('w')).and_then(|n| n.parse().ok())
}

/// Operands split at top-level commas (`[x0, #8]!` and `{v0.b, v1.b}[3]` stay whole).
fn operands(s: &str) -> Vec<&str> {
    let (mut v, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (k, c) in s.char_indices() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                v.push(s[start..k].trim());
                start = k + 1;
            }
            _ => {}
        }
    }
    if !s.trim().is_empty() {
        v.push(s[start..].trim());
    }
    v
}

/// What objdump's text (printed with `-M no-aliases`) says the instruction writes among sp, x29,
/// x30: the destination operands by the mnemonic's shape, a base written back (`[xN]!`, or
/// `[xN]` followed by a post-index operand), any `xN!` (memory copy/set), and the implicit x30.
fn oracle(mnemonic: &str, ops: &[&str]) -> u8 {
    let mut w = 0;
    for (k, op) in ops.iter().enumerate() {
        let inner = op.trim_start_matches('[').split([',', ']', '!']).next().unwrap_or("");
        let post_index = op.starts_with('[') && op.ends_with(']') && !op.contains(',') && k + 1 < ops.len();
        if op.ends_with('!') || post_index {
            w |= reg(inner);
        }
    }
    let op = |k: usize| ops.get(k).map_or(0, |o| reg(o));
    let atomic = ["ldadd", "ldclr", "ldeor", "ldset", "ldsmax", "ldsmin", "ldumax", "ldumin", "swp"];
    let atomic128 = ["ldclrp", "ldsetp", "swpp"];
    let status = ["stxr", "stlxr", "stxp", "stlxp", "st64bv"];
    let reads_only = [
        "b", "br", "braa", "brab", "braaz", "brabz", "ret", "retaa", "retab", "eret", "eretaa", "eretab", "cbz",
        "cbnz", "tbz", "tbnz", "ccmp", "ccmn", "setf8", "setf16", "rmif", "msr", "msrr", "sys", "sysp", "wfet", "wfit",
        "prfm", "prfum", "rprfm", "udf",
    ];
    w | match mnemonic {
        "bl" | "blr" | "blraa" | "blrab" | "blraaz" | "blrabz" => X30,
        // xpaclri, paciaz, paciasp, pacibz, pacibsp, autiaz, autiasp, autibz, autibsp
        "hint" => match ops.first().and_then(|o| u32::from_str_radix(o.trim_start_matches("#0x"), 16).ok()) {
            Some(0x07 | 0x18..=0x1f) => X30,
            _ => 0,
        },
        "ld64b" => match ops.first().and_then(|o| xnum(o)) {
            Some(t) => (t..t + 8).map(|n| reg(&format!("x{n}"))).fold(0, |a, b| a | b),
            None => 0,
        },
        "mrrs" => op(0) | op(1),
        m if status.iter().any(|s| m.starts_with(s)) => op(0),
        m if m.starts_with("st") => 0,
        m if atomic128.iter().any(|s| m.starts_with(s)) => op(0) | op(1),
        m if atomic.iter().any(|s| m.starts_with(s)) => op(1),
        m if m.starts_with("casp") => op(0) | op(1),
        m if m.starts_with("cas") => op(0),
        // Every load: the registers before the address (ldp, ldxp, ldpsw, ldiapp: two).
        m if m.starts_with("ld") => ops.iter().take_while(|o| !o.starts_with('[')).fold(0, |a, o| a | reg(o)),
        m if reads_only.contains(&m) || m.starts_with("b.") || m.starts_with("bc.") => 0,
        _ => op(0),
    }
}

/// The encoding group of bits 28:25, for the counts.
fn group(i: u32) -> &'static str {
    match i >> 25 & 15 {
        0b1000 | 0b1001 => "data processing (immediate)",
        0b1010 | 0b1011 => "branches, exceptions, system",
        0b0100 | 0b0110 | 0b1100 | 0b1110 => "loads and stores",
        0b0101 | 0b1101 => "data processing (register)",
        0b0111 | 0b1111 => "SIMD and FP",
        _ => "SVE, SME, unallocated",
    }
}

#[derive(Default)]
struct Count {
    unsound: [u64; 2],
    imprecise: [u64; 2],
    /// Words objdump does not know that a decoder does not call "everything".
    unknown_not_all: [u64; 2],
    example: Option<String>,
    imprecise_example: Option<String>,
}

#[derive(Default)]
struct Tally {
    words: u64,
    /// Keyed by mnemonic: unsound answers, with one example each.
    by_mnemonic: BTreeMap<String, Count>,
    /// Keyed by encoding group: imprecise answers on words objdump decodes.
    by_group: BTreeMap<&'static str, Count>,
}

fn check(words: &[u32], file: &std::path::Path) -> Tally {
    let mut f = std::fs::File::create(file).unwrap();
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    f.write_all(&bytes).unwrap();
    drop(f);
    let mut child = Command::new(OBJDUMP)
        .args(["-D", "-z", "-b", "binary", "-m", "aarch64", "-M", "no-aliases"])
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut t = Tally::default();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let mut cols = line.split('\t');
        let (Some(addr), Some(word), Some(mnemonic)) = (cols.next(), cols.next(), cols.next()) else { continue };
        let Ok(addr) = usize::from_str_radix(addr.trim().trim_end_matches(':'), 16) else { continue };
        let i = u32::from_str_radix(word.trim(), 16).unwrap();
        assert_eq!(words[addr / 4], i, "objdump's word at {addr:#x}");
        t.words += 1;
        let text = cols.next().unwrap_or("");
        let text = text.split(" //").next().unwrap().split(" ;").next().unwrap().split(" <").next().unwrap();
        let undefined = mnemonic == ".inst" || group(i).starts_with("SVE");
        if mnemonic == ".inst" {
            let c = t.by_group.entry(group(i)).or_default();
            c.unknown_not_all[0] += u64::from(orc_format::generate::insn::writes(i).0 != 7);
            c.unknown_not_all[1] += u64::from(orcwalk_sim::truth::insn::writes(i) != 7);
        }
        let want = if undefined { 0 } else { oracle(mnemonic, &operands(text)) };
        let got = [orc_format::generate::insn::writes(i).0, orcwalk_sim::truth::insn::writes(i)];
        for (d, g) in got.into_iter().enumerate() {
            if want & !g != 0 {
                let c = t.by_mnemonic.entry(mnemonic.to_string()).or_default();
                c.unsound[d] += 1;
                c.example.get_or_insert_with(|| format!("{i:#010x} {mnemonic} {text}: writes {want} got {g}"));
            }
            if g & !want != 0 && !undefined {
                let c = t.by_group.entry(group(i)).or_default();
                c.imprecise[d] += 1;
                c.example.get_or_insert_with(|| format!("{i:#010x} {mnemonic} {text}: writes {want} got {g}"));
                let c = t.by_mnemonic.entry(mnemonic.to_string()).or_default();
                c.imprecise[d] += 1;
                c.imprecise_example
                    .get_or_insert_with(|| format!("{i:#010x} {mnemonic} {text}: writes {want} got {g}"));
            }
        }
    }
    assert!(child.wait().unwrap().success());
    std::fs::remove_file(file).unwrap();
    t
}

#[test]
fn decoders_miss_no_write_objdump_shows() {
    if Command::new(OBJDUMP).arg("--version").output().is_err() {
        println!("SKIPPED: {OBJDUMP} not found (./scripts/setup installs binutils-aarch64-linux-gnu)");
        return;
    }
    let full = std::env::var_os("ORCWALK_INSN_OBJDUMP").is_some_and(|v| v == "full");
    let words = words(full);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let chunk = 1 << 21;
    let mut total = Tally::default();
    let chunks: Vec<&[u32]> = words.chunks(chunk).collect();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let chunks = &chunks;
                s.spawn(move || {
                    let file = dir.join(format!("insn_objdump.{}.{w}.bin", std::process::id()));
                    chunks.iter().skip(w).step_by(2).map(|c| check(c, &file)).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    for t in tallies {
        total.words += t.words;
        for (into, from) in [(&mut total.by_mnemonic, t.by_mnemonic)] {
            for (k, c) in from {
                let e = into.entry(k).or_default();
                for d in 0..2 {
                    e.unsound[d] += c.unsound[d];
                    e.imprecise[d] += c.imprecise[d];
                }
                e.example = e.example.take().or(c.example);
                e.imprecise_example = e.imprecise_example.take().or(c.imprecise_example);
            }
        }
        for (k, c) in t.by_group {
            let e = total.by_group.entry(k).or_default();
            for d in 0..2 {
                e.imprecise[d] += c.imprecise[d];
                e.unknown_not_all[d] += c.unknown_not_all[d];
            }
            e.example = e.example.take().or(c.example);
        }
    }
    assert_eq!(total.words, words.len() as u64, "objdump printed one line per word");
    println!("{} words; (generator, truth)", total.words);
    for (g, c) in &total.by_group {
        println!("imprecise, {g}: {:?}, e.g. {}", c.imprecise, c.example.as_deref().unwrap_or(""));
        println!("  not decoded by objdump and not \"everything\": {:?}", c.unknown_not_all);
    }
    let mut imprecise: Vec<_> = total.by_mnemonic.iter().filter(|(_, c)| c.imprecise != [0, 0]).collect();
    imprecise.sort_by_key(|(_, c)| std::cmp::Reverse(c.imprecise[0] + c.imprecise[1]));
    for (m, c) in imprecise.iter().take(40) {
        println!("imprecise, {m}: {:?}, e.g. {}", c.imprecise, c.imprecise_example.as_deref().unwrap_or(""));
    }
    let unsound: Vec<_> = total.by_mnemonic.iter().filter(|(_, c)| c.unsound != [0, 0]).collect();
    for (m, c) in &unsound {
        println!("UNSOUND, {m}: {:?}, e.g. {}", c.unsound, c.example.as_deref().unwrap_or(""));
    }
    assert!(unsound.is_empty(), "{} mnemonics have writes a decoder misses (above)", unsound.len());
}
