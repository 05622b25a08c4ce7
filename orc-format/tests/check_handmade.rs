//! `check` against a truth written by hand, not read by any of the project's code: a small
//! aarch64 ELF assembled here byte by byte (instructions, `.eh_frame`, `.debug_frame`) and the ORC
//! table its CFI means, also written by hand. If the checker misread the CFI the way the generator
//! does (or any other way), the hand-written table would fail the check; if the generator
//! misread it, its table would differ from the hand-written one.
//!
//! The CFI exercises what a reader can get wrong: `.eh_frame` pc-relative FDE addresses (the
//! section loaded away from 0), absolute `.debug_frame` addresses, a signal-frame CIE (`zRS`),
//! `remember_state`/`restore_state` around a mid-function return, the same function described
//! in both sections (one cluster, trusted), two overlapping FDEs that disagree (trusted
//! nowhere), an empty FDE inside a function, and an FDE outside the text.

use orc_format::generate::{self, ElfImage, check::CheckReport};
use orc_format::{Kind, OrcEntry, Reg, TableFile};

const TEXT: u64 = 0x10000;
const EH_FRAME: u64 = 0x20000;

// A64 instructions.
const NOP: u32 = 0xd503_201f;
const RET: u32 = 0xd65f_03c0;
const MOV_X29_SP: u32 = 0x9100_03fd;
const ADD_X0_1: u32 = 0x9100_0400;
const STP_32: u32 = 0xa9be_7bfd; // stp x29, x30, [sp, #-32]!
const LDP_32: u32 = 0xa8c2_7bfd; // ldp x29, x30, [sp], #32
const STP_16: u32 = 0xa9bf_7bfd; // stp x29, x30, [sp, #-16]!
const LDP_16: u32 = 0xa8c1_7bfd; // ldp x29, x30, [sp], #16

fn bl(from: u64, to: u64) -> u32 {
    0x9400_0000 | ((to.wrapping_sub(from) as i64 / 4) as u32 & 0x03ff_ffff)
}

fn cbz_x0(from: u64, to: u64) -> u32 {
    0xb400_0000 | ((((to - from) / 4) as u32 & 0x7_ffff) << 5)
}

/// The text: `(address, instructions)` per function, nops between them.
fn functions() -> Vec<(u64, Vec<u32>)> {
    vec![
        // f: a frame of 32 bytes, a call, the epilogue (.eh_frame).
        (0x10000, vec![STP_32, MOV_X29_SP, bl(0x10008, 0x10040), LDP_32, RET]),
        // h: a frame record only, described in both sections alike.
        (0x10020, vec![STP_16, MOV_X29_SP, LDP_16, RET]),
        // g: a leaf (.debug_frame), with an empty .eh_frame FDE at g + 4.
        (0x10040, vec![ADD_X0_1, RET]),
        // k: covered by an .eh_frame FDE [0x10060, 0x10070) and a .debug_frame FDE
        // [0x10068, 0x10078) that overlap.
        (0x10060, vec![NOP, NOP, NOP, NOP, NOP, RET]),
        // s: a signal frame (CIE augmentation "zRS").
        (0x10080, vec![NOP, RET]),
        // m: an early return under remember_state/restore_state (.debug_frame).
        (0x100a0, vec![STP_16, MOV_X29_SP, cbz_x0(0x100a8, 0x100b4), LDP_16, RET, bl(0x100b4, 0x10040), LDP_16, RET]),
    ]
}

const TEXT_END: u64 = 0x100c0;

fn text() -> Vec<u8> {
    let mut words = vec![NOP; ((TEXT_END - TEXT) / 4) as usize];
    for (at, code) in functions() {
        for (k, w) in code.into_iter().enumerate() {
            words[((at - TEXT) / 4) as usize + k] = w;
        }
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

// Call frame instructions (code alignment 4, data alignment -8).
const DEF_CFA_SP_0: [u8; 3] = [0x0c, 31, 0];
const DEF_CFA_REGISTER_X29: [u8; 2] = [0x0d, 29];
const REMEMBER: u8 = 0x0a;
const RESTORE_STATE: u8 = 0x0b;
const RESTORE_X29: u8 = 0xc0 | 29;
const RESTORE_X30: u8 = 0xc0 | 30;

fn advance(insns: u8) -> u8 {
    0x40 | insns
}

fn def_cfa_offset(n: u8) -> [u8; 2] {
    [0x0e, n]
}

/// x29 at CFA - 8n, x30 at CFA - 8(n - 1): a frame record at the CFA minus `8n`.
fn record_at(n: u8) -> [u8; 4] {
    [0x80 | 29, n, 0x80 | 30, n - 1]
}

/// f's and h's prologue/epilogue: `stp` (frame of `size`), `mov x29, sp`, then the epilogue's
/// row `epilogue` instructions later.
fn framed(size: u8, epilogue: u8) -> Vec<u8> {
    let mut v = vec![advance(1)];
    v.extend(def_cfa_offset(size));
    v.extend(record_at(size / 8));
    v.push(advance(1));
    v.extend(DEF_CFA_REGISTER_X29);
    v.push(advance(epilogue));
    v.extend(DEF_CFA_SP_0);
    v.extend([RESTORE_X29, RESTORE_X30]);
    v
}

fn m_cfi() -> Vec<u8> {
    let mut v = vec![advance(1)];
    v.extend(def_cfa_offset(16));
    v.extend(record_at(2));
    v.push(advance(1));
    v.extend(DEF_CFA_REGISTER_X29);
    v.extend([advance(2), REMEMBER]);
    v.extend(DEF_CFA_SP_0);
    v.extend([RESTORE_X29, RESTORE_X30, advance(1), RESTORE_STATE, advance(2)]);
    v.extend(DEF_CFA_SP_0);
    v.extend([RESTORE_X29, RESTORE_X30]);
    v
}

/// Zeros (`DW_CFA_nop` inside CFI) up to a multiple of `to` bytes.
fn pad(v: &mut Vec<u8>, to: usize) {
    while !v.len().is_multiple_of(to) {
        v.push(0);
    }
}

/// `.eh_frame` at [`EH_FRAME`]: two CIEs ("zR", "zRS"; FDE addresses pc-relative sdata4) and
/// the FDEs `(CIE, start, length, instructions)`, then the zero terminator.
fn eh_frame() -> Vec<u8> {
    let mut out = Vec::new();
    let mut cies = Vec::new();
    for aug in [&b"zR\0"[..], &b"zRS\0"[..]] {
        let mut body = 0u32.to_le_bytes().to_vec(); // CIE id
        body.push(1); // version
        body.extend(aug);
        body.extend([4, 0x78, 30, 1, 0x1b]); // code align, data align -8, ra x30, aug len, pcrel|sdata4
        body.extend(DEF_CFA_SP_0);
        pad(&mut body, 4);
        cies.push(out.len());
        out.extend((body.len() as u32).to_le_bytes());
        out.extend(body);
    }
    let fdes: [(usize, u64, u32, Vec<u8>); 5] = [
        (0, 0x10000, 0x14, framed(32, 2)),
        (0, 0x10020, 0x10, framed(16, 1)),
        (0, 0x10044, 0, Vec::new()),
        (0, 0x10060, 0x10, Vec::new()),
        (1, 0x10080, 0x08, Vec::new()),
    ];
    for (cie, start, len, insns) in fdes {
        let at = out.len();
        let mut body = ((at + 4 - cies[cie]) as u32).to_le_bytes().to_vec(); // CIE pointer
        let field = EH_FRAME + (at + 8) as u64;
        body.extend((start.wrapping_sub(field) as i32).to_le_bytes());
        body.extend(len.to_le_bytes());
        body.push(0); // augmentation length
        body.extend(insns);
        pad(&mut body, 4);
        out.extend((body.len() as u32).to_le_bytes());
        out.extend(body);
    }
    out.extend(0u32.to_le_bytes());
    out
}

/// `.debug_frame`: one CIE (version 1, no augmentation) and FDEs with absolute addresses.
fn debug_frame() -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = 0xffff_ffffu32.to_le_bytes().to_vec();
    body.extend([1, 0, 4, 0x78, 30]); // version, "", code align, data align -8, ra x30
    body.extend(DEF_CFA_SP_0);
    pad(&mut body, 8);
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(body);
    let fdes: [(u64, u64, Vec<u8>); 5] = [
        (0x10020, 0x10, framed(16, 1)),
        (0x10040, 0x08, Vec::new()),
        (0x10068, 0x10, vec![advance(1)].into_iter().chain(def_cfa_offset(16)).collect()),
        (0x100a0, 0x20, m_cfi()),
        (0, 0x08, Vec::new()), // a discarded function: outside the text
    ];
    for (start, len, insns) in fdes {
        let mut body = 0u32.to_le_bytes().to_vec(); // the CIE at offset 0
        body.extend(start.to_le_bytes());
        body.extend(len.to_le_bytes());
        body.extend(insns);
        pad(&mut body, 8);
        out.extend((body.len() as u32).to_le_bytes());
        out.extend(body);
    }
    out
}

/// A 64-bit little-endian aarch64 ET_EXEC with these sections (name, type, flags, address,
/// bytes) and a section name table; no program headers (nothing here loads it).
fn elf(sections: &[(&str, u32, u64, u64, Vec<u8>)]) -> Vec<u8> {
    let mut shstrtab = vec![0u8];
    let mut names = Vec::new();
    for (name, ..) in sections.iter().chain([&(".shstrtab", 3, 0, 0, Vec::new())]) {
        names.push(shstrtab.len() as u32);
        shstrtab.extend(name.as_bytes());
        shstrtab.push(0);
    }
    let mut file = vec![0u8; 64];
    let mut headers = vec![[0u8; 64]]; // the null section
    let mut place = |file: &mut Vec<u8>, name: u32, kind: u32, flags: u64, addr: u64, data: &[u8]| {
        pad(file, 16);
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&flags.to_le_bytes());
        h[16..24].copy_from_slice(&addr.to_le_bytes());
        h[24..32].copy_from_slice(&(file.len() as u64).to_le_bytes());
        h[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        h[48..56].copy_from_slice(&(if kind == 1 { 4u64 } else { 1 }).to_le_bytes());
        file.extend(data);
        headers.push(h);
    };
    for (k, (_, kind, flags, addr, data)) in sections.iter().enumerate() {
        place(&mut file, names[k], *kind, *flags, *addr, data);
    }
    place(&mut file, names[sections.len()], 3, 0, 0, &shstrtab);
    pad(&mut file, 8);
    let shoff = file.len() as u64;
    for h in &headers {
        file.extend(h);
    }
    let mut eh = [0u8; 64];
    eh[0..4].copy_from_slice(b"\x7fELF");
    eh[4..8].copy_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, SysV
    eh[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    eh[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    eh[20..24].copy_from_slice(&1u32.to_le_bytes());
    eh[24..32].copy_from_slice(&TEXT.to_le_bytes());
    eh[40..48].copy_from_slice(&shoff.to_le_bytes());
    eh[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    eh[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    eh[60..62].copy_from_slice(&(headers.len() as u16).to_le_bytes());
    eh[62..64].copy_from_slice(&((headers.len() - 1) as u16).to_le_bytes()); // .shstrtab last
    file[..64].copy_from_slice(&eh);
    file
}

const SHT_PROGBITS: u32 = 1;
const ALLOC: u64 = 2;
const ALLOC_EXEC: u64 = 6;

fn handmade() -> Vec<u8> {
    elf(&[
        (".text", SHT_PROGBITS, ALLOC_EXEC, TEXT, text()),
        (".eh_frame", SHT_PROGBITS, ALLOC, EH_FRAME, eh_frame()),
        (".debug_frame", SHT_PROGBITS, 0, 0, debug_frame()),
    ])
}

const ENTRY: OrcEntry = OrcEntry::new(Kind::Call, Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0, false);

fn frame(size: i16) -> OrcEntry {
    OrcEntry::new(Kind::Call, Reg::Sp, size, Reg::PrevSp, -size, Reg::PrevSp, 8 - size, false)
}

/// The table the CFI above means, proven and anchored: each x29-based row is a fixed frame whose
/// sp the instructions give, so it reads `CFA = sp + size` like the row before it. k is trusted
/// nowhere (its two FDEs disagree); the empty FDE and the one at 0 say nothing.
fn truth() -> (Vec<u64>, Vec<OrcEntry>) {
    let u = OrcEntry::UNDEFINED;
    let rows = [
        (0x10000, ENTRY), // f
        (0x10004, frame(32)),
        (0x10010, ENTRY),
        (0x10014, u),
        (0x10020, ENTRY), // h
        (0x10024, frame(16)),
        (0x1002c, ENTRY),
        (0x10030, u),
        (0x10040, ENTRY), // g
        (0x10048, u),
        (0x10080, OrcEntry::new(Kind::Call, Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0, true)), // s
        (0x10088, u),
        (0x100a0, ENTRY), // m
        (0x100a4, frame(16)),
        (0x100b0, ENTRY),
        (0x100b4, frame(16)),
        (0x100bc, ENTRY),
        (0x100c0, u),
    ];
    rows.iter().copied().unzip()
}

fn check(image: &ElfImage<'_>, ips: &[u64], entries: &[OrcEntry]) -> CheckReport {
    let bytes = orc_format::file::write_with(ips, entries, &image.image_id, true, true).unwrap();
    generate::check(image, &TableFile::parse(&bytes).unwrap().table).unwrap()
}

/// What a check of a table with the truth's answers reports: every instruction compared, no
/// row refused, the seven x29-based rows anchored.
fn assert_truthful(r: &CheckReport, what: &str) {
    assert_eq!(r.mismatch_count, 0, "{what}: {:#?}", r.mismatches);
    assert_eq!(
        (r.cfi_addresses, r.gap_addresses, r.refused_addresses, r.anchored_addresses),
        (27, 21, 0, 7),
        "{what}: {r:?}"
    );
}

/// The hand-written table passes the check with nothing refused (the checker reads the CFI as
/// written), and the generator makes exactly that table (the generator reads it so too).
/// binutils agrees with the reading: `readelf --debug-dump=frames-interp` of this ELF lists the
/// rows the comments above describe.
#[test]
fn the_handmade_truth_checks_clean_and_the_generator_makes_it() {
    let elf = handmade();
    let image = ElfImage::parse(elf.as_slice()).unwrap();
    let (ips, entries) = truth();
    assert_truthful(&check(&image, &ips, &entries), "the hand-written table");
    let g = generate::generate(&image).unwrap();
    let made: Vec<(u64, OrcEntry)> = g.ips.iter().copied().zip(g.entries.iter().copied()).collect();
    let want: Vec<(u64, OrcEntry)> = ips.iter().copied().zip(entries.iter().copied()).collect();
    assert_eq!(made, want, "the generator's reading of the hand-made CFI");
    assert_eq!((g.stats.fdes_duplicate, g.stats.fdes_conflicting), (1, 1));
    assert_truthful(&check(&image, &g.ips, &g.entries), "the generator's table");
}

/// Tables a misreading of the CFI would make, each with the truth's entries elsewhere: every
/// one must fail the comparison with the CFI itself, not only the proof of the instructions (a
/// refused row would pass, so none of these refuses).
#[test]
fn misreadings_of_the_handmade_cfi_fail_the_check() {
    let elf = handmade();
    let image = ElfImage::parse(elf.as_slice()).unwrap();
    let (ips, entries) = truth();
    let at = |a: u64| ips.iter().position(|&i| i == a).unwrap();
    let signal = at(0x10080);
    type Misread<'a> = Box<dyn Fn(&mut Vec<u64>, &mut Vec<OrcEntry>) + 'a>;
    let cases: Vec<(&str, Misread)> = vec![
        // .eh_frame's pc-relative addresses taken from another base: f's rows 4 bytes late.
        ("eh_frame base", Box::new(move |ips, _| (0..4).for_each(|k| ips[at(0x10000) + k] += 4))),
        // The signal CIE's 'S' missed.
        ("signal flag", Box::new(move |_, e| e[signal] = ENTRY)),
        // restore_state ignored: m's branch target keeps the early return's row.
        (
            "restore_state",
            Box::new(move |ips, e| {
                let i = at(0x100b4);
                ips.remove(i);
                e.remove(i);
            }),
        ),
        // The disagreeing pair read as if only the first FDE were there: k given a row.
        (
            "overlapping FDEs",
            Box::new(move |ips, e| {
                let i = at(0x10048) + 1;
                ips.splice(i..i, [0x10060, 0x10070]);
                e.splice(i..i, [ENTRY, OrcEntry::UNDEFINED]);
            }),
        ),
        // The frame of f read 16 bytes short (a data alignment of -4 would do it).
        ("data alignment", Box::new(move |_, e| e[at(0x10004)] = frame(16))),
    ];
    for (what, misread) in cases {
        let (mut ips, mut entries) = (ips.clone(), entries.clone());
        misread(&mut ips, &mut entries);
        let r = check(&image, &ips, &entries);
        assert!(r.mismatch_count > 0, "{what}: the misread table checks clean: {r:?}");
        assert!(r.mismatch_count > r.contradicted_addresses, "{what}: only the proof catches it: {r:?}");
    }
}
