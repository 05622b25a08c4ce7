//! The C ABI driven as a kernel would: the ORC sections in memory with their self-relative ip
//! slots, stacks and reads through callbacks, frames through `consume`.

extern crate std;

use core::ffi::c_void;
use std::borrow::ToOwned;
use std::collections::BTreeMap;
use std::vec::Vec;

use orc_format::{Kind, OrcEntry, Reg};

use crate::ffi::*;
use crate::layout::{KernelLayout, META_FINAL};
use crate::verdict::Reason;

const TASK_LOW: u64 = 0xffff_8000_8400_0000;
const TASK_HIGH: u64 = TASK_LOW + 0x4000;

/// The sections as a linker would lay them out, with text placed near them so the i32
/// self-relative offsets reach it.
struct Sections {
    ip: Vec<u8>,
    orc: Vec<u8>,
    text: u64,
}

fn framed(n: i16) -> OrcEntry {
    OrcEntry::new(Kind::Call, Reg::Sp, n, Reg::PrevSp, -n, Reg::PrevSp, -n + 8, false)
}

const ENTRY: OrcEntry = OrcEntry::new(Kind::Call, Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0, false);

fn sections() -> Sections {
    sections_with(&[
        (0x100, ENTRY),
        (0x104, framed(32)),
        (0x148, OrcEntry::UNDEFINED),
        (0x200, ENTRY),
        (0x204, framed(48)),
        (0x248, OrcEntry::UNDEFINED),
    ])
}

/// `rows` at text offsets; the table has room for 8.
fn sections_with(rel: &[(u64, OrcEntry)]) -> Sections {
    let mut ip = std::vec![0u8; rel.len() * 4];
    let text = (ip.as_ptr() as u64 + 0x10_0000) & !0xfff;
    let rows: Vec<(u64, OrcEntry)> = rel.iter().map(|&(o, e)| (text + o, e)).collect();
    let slot0 = ip.as_ptr() as u64;
    for (i, (addr, _)) in rows.iter().enumerate() {
        let off = addr.wrapping_sub(slot0 + 4 * i as u64) as i64;
        ip[4 * i..4 * i + 4].copy_from_slice(&i32::try_from(off).unwrap().to_le_bytes());
    }
    let orc = rows.iter().flat_map(|r| r.1.to_bytes()).collect();
    Sections { ip, orc, text }
}

impl Sections {
    fn table(&self) -> OrcwalkTable {
        OrcwalkTable {
            ip: self.ip.as_ptr(),
            orc: self.orc.as_ptr(),
            num_entries: (self.ip.len() / 4) as u32,
            lookup_blocks: 0,
            lookup: core::ptr::null(),
            lookup_base: 0,
            ip_addr: self.ip.as_ptr() as u64,
        }
    }
}

extern "C" fn read(ctx: *mut c_void, addr: u64, out: *mut u64) -> bool {
    // SAFETY (test): ctx is the map below, out is a valid u64.
    let mem = unsafe { &*(ctx as *const BTreeMap<u64, u64>) };
    let on_stack = (TASK_LOW..TASK_HIGH).contains(&addr);
    match mem.get(&addr).copied().or(on_stack.then_some(0x5a5a_5a5a_5a5a_5a5a)) {
        Some(v) => {
            unsafe { *out = v };
            true
        }
        None => false,
    }
}

extern "C" fn consume(cookie: *mut c_void, pc: u64) -> bool {
    // SAFETY (test): cookie is the Vec below.
    unsafe { (*(cookie as *mut Vec<u64>)).push(pc) };
    true
}

fn context(s: &Sections, mem: &BTreeMap<u64, u64>, stack: &OrcwalkStack, pc: u64, sp: u64, fp: u64) -> OrcwalkContext {
    let l = KernelLayout::V6_13;
    OrcwalkContext {
        table: s.table(),
        layout: l.into(),
        text_start: s.text,
        text_end: s.text + 0x10000,
        entry_start: s.text + 0x8000,
        entry_end: s.text + 0x8100,
        fgraph_return: 0,
        kretprobe_trampoline: 0,
        stacks: stack,
        nr_stacks: 1,
        task_stack_only: 1,
        start_regs: 0,
        mainline: 0,
        pc,
        sp,
        fp,
        lr: 0,
        max_frames: 100,
        flags: 0,
        read,
        recover: None,
        ctx: mem as *const _ as *mut c_void,
        function: None,
        ftrace: OrcwalkFtrace::default(),
        module: None,
        cache: core::ptr::null_mut(),
    }
}

/// The task stack's final record at `task_pt_regs->stackframe`: the memory, and where pt_regs
/// begins (the first frame above entry code ends there).
fn final_frame() -> (BTreeMap<u64, u64>, u64) {
    let l = KernelLayout::V6_13;
    let regs = TASK_HIGH - l.pt_regs_size;
    let fin = regs + l.stackframe;
    let mut mem = BTreeMap::new();
    mem.insert(fin, 0);
    mem.insert(fin + 8, 0);
    mem.insert(fin + 16, META_FINAL);
    (mem, regs)
}

/// entry asm -> A (32-byte frame) -> B (48-byte frame), B at its call site in A: the memory and
/// B's frame record.
fn a_calls_b(s: &Sections) -> (BTreeMap<u64, u64>, u64) {
    let (mut mem, regs) = final_frame();
    let a_rec = regs - 32;
    mem.insert(a_rec, regs + KernelLayout::V6_13.stackframe);
    mem.insert(a_rec + 8, s.text + 0x8010);
    let b_rec = a_rec - 48;
    mem.insert(b_rec, a_rec);
    mem.insert(b_rec + 8, s.text + 0x120);
    (mem, b_rec)
}

#[test]
fn walk_through_the_c_abi() {
    let s = sections();
    let table = s.table();
    assert_eq!(unsafe { orcwalk_validate_table(&table) }, 0);

    // entry asm -> A (32-byte frame) -> B (48-byte frame), B at its call site.
    let (mut mem, b_rec) = a_calls_b(&s);
    let (a_rec, entry_ret) = (b_rec + 48, s.text + 0x8010);
    let stack = OrcwalkStack { low: TASK_LOW, high: TASK_HIGH, kind: 0, pad: 0 };

    let ctx = context(&s, &mem, &stack, s.text + 0x220, b_rec, b_rec);
    let mut frames: Vec<u64> = Vec::new();
    let mut v = OrcwalkVerdict::default();
    let rc = unsafe { orcwalk_stack_walk_reliable(consume, &mut frames as *mut _ as *mut c_void, &ctx, &mut v) };
    assert_eq!((rc, v.reason), (0, 0));
    assert_eq!(frames, [s.text + 0x220, s.text + 0x120, entry_ret]);

    // The saved fp in B's record no longer points at A's record.
    mem.insert(b_rec, a_rec + 16);
    let ctx = context(&s, &mem, &stack, s.text + 0x220, b_rec, b_rec);
    let rc =
        unsafe { orcwalk_stack_walk_reliable(consume, &mut Vec::<u64>::new() as *mut _ as *mut c_void, &ctx, &mut v) };
    assert_eq!(rc, -22);
    assert_eq!(v.reason, Reason::FpMismatch as u32 + 1);
    assert_eq!(v.pc, s.text + 0x120);
}

/// A cache C allocated and emptied (every byte 0xff) gives the same walks as none, and keeps the
/// answers across walks: the second walk's lookups are all in it.
#[test]
fn a_caller_owned_cache_changes_no_walk() {
    let s = sections();
    let (mut mem, b_rec) = a_calls_b(&s);
    let stack = OrcwalkStack { low: TASK_LOW, high: TASK_HIGH, kind: 0, pad: 0 };
    let mut cache = std::boxed::Box::new(std::mem::MaybeUninit::<OrcwalkCache>::uninit());
    // SAFETY: the C caller's way to empty it; every byte pattern is a valid OrcwalkCache.
    let cache = unsafe {
        core::ptr::write_bytes(cache.as_mut_ptr(), 0xff, 1);
        &mut *cache.as_mut_ptr()
    };
    let walk_with = |mem: &BTreeMap<u64, u64>, cache: *mut OrcwalkCache| {
        let ctx = OrcwalkContext { cache, ..context(&s, mem, &stack, s.text + 0x220, b_rec, b_rec) };
        let (mut frames, mut v) = (Vec::<u64>::new(), OrcwalkVerdict::default());
        let rc = unsafe { orcwalk_stack_walk_reliable(consume, &mut frames as *mut _ as *mut c_void, &ctx, &mut v) };
        (rc, v.reason, v.pc, frames)
    };
    let cached = cache as *mut OrcwalkCache;
    let want = walk_with(&mem, core::ptr::null_mut());
    assert_eq!(want.0, 0);
    for _ in 0..2 {
        assert_eq!(walk_with(&mem, cached), want);
    }
    // SAFETY: OrcwalkCache is its slots, 16 bytes each ([pc, answer]; pc u64::MAX while empty).
    let slots = unsafe { &*(cached as *const [[u64; 2]; CACHE_SLOTS]) };
    let filled: Vec<u64> = slots.iter().filter(|s| s[0] != u64::MAX).map(|s| s[0]).collect();
    assert!(filled.len() >= 3, "the walk's lookups are kept: {filled:x?}");
    // The same cache on a corrupted stack (the tables are the same): the same refusal.
    mem.insert(b_rec, b_rec + 64);
    let want = walk_with(&mem, core::ptr::null_mut());
    assert_eq!(want.1, Reason::FpMismatch as u32 + 1);
    assert_eq!(walk_with(&mem, cached), want);
}

#[test]
fn garbage_tables_are_refused() {
    let s = sections();
    let mut ip = s.ip.clone();
    // Slot 1 now resolves 4 bytes below slot 0's ip: the table is out of order.
    let off0 = i32::from_le_bytes(ip[0..4].try_into().unwrap());
    ip[4..8].copy_from_slice(&(off0 - 8).to_le_bytes());
    let bad = OrcwalkTable { ip: ip.as_ptr(), ip_addr: ip.as_ptr() as u64, ..s.table() };
    assert_eq!(unsafe { orcwalk_validate_table(&bad) }, -22);
    assert_eq!(unsafe { orcwalk_validate_table(core::ptr::null()) }, -22);
    let null = OrcwalkTable { ip: core::ptr::null(), ..bad };
    assert_eq!(unsafe { orcwalk_validate_table(&null) }, -22);
}

/// A kernel loads its table from a file written for the link-time addresses and runs at a KASLR
/// offset: the parsed table must resolve ips where the code is, and say whose table it is.
#[test]
fn table_files_load_at_the_kaslr_offset() {
    use orc_format::{ImageId, TableFile, file};
    let link_text = 0xffff_8000_8001_0000u64;
    let slide = 0x1234_0000u64;
    let entry = OrcEntry::new(Kind::Call, Reg::Sp, 0, Reg::Undefined, 0, Reg::Undefined, 0, false);
    let ips = [link_text, link_text + 4, link_text + 0x48, link_text + 0x400];
    let rows = [entry, framed(32), OrcEntry::UNDEFINED, OrcEntry::UNDEFINED];
    let id = ImageId::build_id(&[0xab; 20]);
    let bytes = file::write_with(&ips, &rows, &id, true, true).unwrap();

    let mut out = core::mem::MaybeUninit::<OrcwalkTableFile>::uninit();
    let rc = unsafe { orcwalk_parse_table_file(bytes.as_ptr(), bytes.len() as u64, slide, out.as_mut_ptr()) };
    let out = unsafe { out.assume_init() };
    assert_eq!((rc, out.error), (0, 0));
    assert_eq!((out.image_id, out.image_id_len, out.image_id_kind, out.proven), ([0xab; 20], 20, 1, 1));
    assert_eq!(unsafe { orcwalk_validate_table(&out.table) }, 0);
    let parts = |t: &OrcwalkTable| unsafe {
        let ip = core::slice::from_raw_parts(t.ip, t.num_entries as usize * 4);
        let orc = core::slice::from_raw_parts(t.orc, t.num_entries as usize * 8);
        let words = core::slice::from_raw_parts(t.lookup.cast::<u8>(), (t.lookup_blocks as usize + 1) * 4);
        orc_format::OrcTable::from_parts(
            ip,
            t.ip_addr,
            orc,
            Some(orc_format::IndexParts { base: t.lookup_base, words }),
        )
        .unwrap()
    };
    let slid = parts(&out.table);
    let link = TableFile::parse(&bytes).unwrap().table;
    for pc in [link_text, link_text + 0x10, link_text + 0x100, link_text + 0x500] {
        assert_eq!(slid.find(pc + slide).map(|(ip, e)| (ip - slide, e)), link.find(pc), "pc {pc:#x}");
    }

    // Refusals say why, and never hand out a table.
    let refused = |bytes: &[u8], slide: u64| {
        let mut out = core::mem::MaybeUninit::<OrcwalkTableFile>::uninit();
        let rc = unsafe { orcwalk_parse_table_file(bytes.as_ptr(), bytes.len() as u64, slide, out.as_mut_ptr()) };
        let out = unsafe { out.assume_init() };
        assert!(out.table.ip.is_null() && out.table.num_entries == 0);
        let name = unsafe { core::ffi::CStr::from_ptr(orcwalk_table_error_name(out.error)) };
        (rc, name.to_str().unwrap().to_owned())
    };
    assert_eq!(refused(&bytes[..bytes.len() - 1], 0), (-22, "truncated".into()));
    assert_eq!(refused(&bytes[..10], 0), (-22, "truncated".into()));
    assert_eq!(refused(&[], 0), (-8, "not an orcwalk table (bad magic)".into()));
    let mut other = bytes.clone();
    other[16] ^= 1;
    assert_eq!(refused(&other, 0), (-8, "another table format (version or layout)".into()));
    // A slide that wraps the address space.
    assert_eq!(refused(&bytes, 0x8000_0000_0000_0000), (-22, "ip overflows the address space".into()));
    let mut unsorted = bytes.clone();
    unsorted[80 + 4..80 + 8].copy_from_slice(&(-8i32).to_le_bytes());
    assert_eq!(refused(&unsorted, 0).0, -22);
    let rc = unsafe { orcwalk_parse_table_file(core::ptr::null(), 4, 0, core::ptr::null_mut()) };
    assert_eq!(rc, -22);
}

#[test]
fn reasons_have_c_names() {
    let name = |r: u32| unsafe { core::ffi::CStr::from_ptr(orcwalk_reason_name(r)) }.to_str().unwrap().to_owned();
    assert_eq!(name(0), "reliable");
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i);
        assert_eq!(name(i as u32 + 1), r.as_str());
        assert_eq!(Reason::from_code(i as u32), Some(*r));
    }
    assert_eq!(name(Reason::ALL.len() as u32 + 1), "unknown reason");
}

/// With function bounds (a kernel's kallsyms), the call before a return address must lead to the
/// function it returns from; without them the same stack passes on the other witnesses.
#[test]
fn function_bounds_check_the_callee() {
    extern "C" fn bounds(_ctx: *mut c_void, pc: u64, start: *mut u64, end: *mut u64) -> bool {
        let text = pc & !0xfff;
        let f =
            [(0x100, 0x148), (0x200, 0x248), (0x300, 0x304)].into_iter().find(|f| text + f.0 <= pc && pc < text + f.1);
        f.is_some_and(|(s, e)| {
            unsafe { (*start, *end) = (text + s, text + e) };
            true
        })
    }
    let s = sections();
    let (mut mem, b_rec) = a_calls_b(&s);
    let nop = 0xd503_201fu64;
    mem.insert(s.text + 0x300, 0xd65f_03c0 | nop << 32); // C: ret, a leaf that tail-calls nothing
    let stack = OrcwalkStack { low: TASK_LOW, high: TASK_HIGH, kind: 0, pad: 0 };
    let run = |mem: &BTreeMap<u64, u64>, function: Option<FunctionFn>| {
        let ctx = OrcwalkContext { function, ..context(&s, mem, &stack, s.text + 0x220, b_rec, b_rec) };
        let mut v = OrcwalkVerdict::default();
        let rc = unsafe {
            orcwalk_stack_walk_reliable(consume, &mut Vec::<u64>::new() as *mut _ as *mut c_void, &ctx, &mut v)
        };
        (rc, v.reason, v.pc)
    };
    // A's call at 0x11c is `bl B`.
    mem.insert(s.text + 0x118, nop | 0x9400_0039 << 32);
    assert_eq!(run(&mem, Some(bounds)), (0, 0, 0));
    // `bl C`: B's return address was read from a slot that holds another call's.
    mem.insert(s.text + 0x118, nop | 0x9400_0079 << 32);
    assert_eq!(run(&mem, Some(bounds)), (-22, Reason::WrongCallee as u32 + 1, s.text + 0x220));
    assert_eq!(run(&mem, None), (0, 0, 0));
}

/// A task preempted inside an ftrace callback (the function-graph tracer's entry hook re-enables
/// preemption): callback C <- ftrace_caller <- traced function T at its entry <- P <- entry.
/// ftrace_caller has no CFI; its frame is crossed through its ftrace_regs and two records.
#[test]
fn ftrace_caller_is_crossed_through_its_regs() {
    extern "C" fn bounds(_ctx: *mut c_void, pc: u64, start: *mut u64, end: *mut u64) -> bool {
        let text = pc & !0xfff;
        let f = [(0x100, 0x148), (0x200, 0x248), (0x300, 0x3a0), (0x400, 0x448)]
            .into_iter()
            .find(|f| text + f.0 <= pc && pc < text + f.1);
        f.is_some_and(|(s, e)| {
            unsafe { (*start, *end) = (text + s, text + e) };
            true
        })
    }
    let s = sections_with(&[
        (0x100, ENTRY),
        (0x104, framed(32)),
        (0x148, OrcEntry::UNDEFINED),
        (0x200, ENTRY), // T: mov x9, x30; bl ftrace_caller; then its prologue
        (0x20c, framed(48)),
        (0x248, OrcEntry::UNDEFINED), // ftrace_caller (0x300) has no rows
        (0x400, ENTRY),
        (0x404, framed(32)),
        (0x448, OrcEntry::UNDEFINED),
    ]);
    let t = s.text;
    let (mut mem, regs) = final_frame();
    let fin = regs + KernelLayout::V6_13.stackframe;
    let entry_ret = t + 0x8010;
    let nop = 0xd503_201fu64;
    mem.insert(t + 0x120, 0x9400_0038 | nop << 32); // P: bl T
    mem.insert(t + 0x200, 0xaa1e_03e9 | 0x9400_003f << 32); // T: mov x9, x30; bl ftrace_caller
    mem.insert(t + 0x368, 0xd63f_0080 | nop << 32); // ftrace_caller: blr x4 (the callback)
    mem.insert(t + 0x420, 0xd63f_0020 | nop << 32); // C: blr x1
    let p_rec = regs - 32;
    mem.insert(p_rec, fin);
    mem.insert(p_rec + 8, entry_ret);
    let f = OrcwalkFtrace { callsite: t + 0x36c, size: 0x90, record: 0x70, fp: 80, lr: 88, sp: 96 };
    let base = p_rec - 0x90;
    mem.insert(base + 80, p_rec); // ftrace_regs: x29, lr, sp, pc
    mem.insert(base + 88, t + 0x124);
    mem.insert(base + 96, p_rec);
    mem.insert(base + 104, t + 0x208);
    mem.insert(base + 0x70, base + 0x80); // {next record, the traced function at its entry}
    mem.insert(base + 0x78, t + 0x208);
    mem.insert(base + 0x80, p_rec); // {its x29, its return address}
    mem.insert(base + 0x88, t + 0x124);
    let c_rec = base - 32;
    mem.insert(c_rec, base + 0x70);
    mem.insert(c_rec + 8, t + 0x36c);
    let stack = OrcwalkStack { low: TASK_LOW, high: TASK_HIGH, kind: 0, pad: 0 };
    let run = |mem: &BTreeMap<u64, u64>, ftrace: OrcwalkFtrace| {
        let ctx = OrcwalkContext {
            function: Some(bounds),
            ftrace,
            flags: FLAG_ROWS_PROVEN,
            ..context(&s, mem, &stack, t + 0x424, c_rec, c_rec)
        };
        let mut frames: Vec<u64> = Vec::new();
        let mut v = OrcwalkVerdict::default();
        let rc = unsafe { orcwalk_stack_walk_reliable(consume, &mut frames as *mut _ as *mut c_void, &ctx, &mut v) };
        (rc, v.reason, frames)
    };
    let (rc, reason, frames) = run(&mem, f);
    assert_eq!((rc, reason), (0, 0));
    assert_eq!(frames, [t + 0x424, t + 0x36c, t + 0x208, t + 0x124, entry_ret]);
    // Without the frame's layout: no rows at the trampoline, unreliable (as before).
    assert_eq!(run(&mem, OrcwalkFtrace::default()).1, Reason::OrcUndefined as u32 + 1);
    // Each witness refuses a frame that is not the trampoline's as it builds it.
    for (slot, value) in [
        (base + 0x88, t + 0x1f0),   // the second record's return address is not the saved LR
        (base + 96, p_rec + 16),    // the saved sp is not right above the frame
        (base + 0x80, p_rec + 16),  // the second record's x29 is not the saved x29
        (base + 0x70, base + 0x90), // the first record does not link the second
    ] {
        let mut bad = mem.clone();
        bad.insert(slot, value);
        let (rc, reason, _) = run(&bad, f);
        assert_eq!((rc, reason), (-22, Reason::FpMismatch as u32 + 1), "slot {:#x}", slot - base);
    }
    // The traced function must have called the trampoline from its entry.
    let mut bad = mem.clone();
    bad.insert(t + 0x200, 0xaa1e_03e9 | nop << 32);
    assert_eq!(run(&bad, f).1, Reason::NotACallSite as u32 + 1);
}

/// A module's text: B of `a_calls_b` moved out of the image into a module loaded at
/// `MODULE_TEXT`, its table placed by `orcwalk_place_module_table`.
const MODULE_TEXT: u64 = 0xffff_8000_7a01_0000;

/// B's table as its `.ko` carries it: a `frame`-byte frame after its first instruction.
fn module_table_bytes(frame: i16, proven: bool) -> Vec<u8> {
    use orc_format::module::{SectionRows, write};
    let rows = std::vec![(0, ENTRY), (4, framed(frame)), (0x48, OrcEntry::UNDEFINED)];
    write(&[SectionRows { name: ".text", size: 0x80, rows }], proven).unwrap()
}

extern "C" fn section_at(_ctx: *mut c_void, name: *const u8, len: u32, size: u64, addr: *mut u64) -> bool {
    // SAFETY (test): the callee passes a name of `len` bytes and a writable addr.
    let name = unsafe { core::slice::from_raw_parts(name, len as usize) };
    if name != b".text" || size != 0x80 {
        return false;
    }
    unsafe { *addr = MODULE_TEXT };
    true
}

/// A placed module table and the buffers it lives in.
struct PlacedModule {
    table: OrcwalkTable,
    _ip: Vec<u8>,
    _orc: Vec<u8>,
}

/// `orcwalk_place_module_table` into buffers of `capacity` entries: its return code and the table.
fn place(bytes: &[u8], section: SectionFn, capacity: u32) -> (i32, PlacedModule) {
    let (mut ip, mut orc) = (std::vec![0u8; 4 * capacity as usize], std::vec![0u8; 8 * capacity as usize]);
    let mut table = sections().table();
    let rc = unsafe {
        orcwalk_place_module_table(
            bytes.as_ptr(),
            bytes.len() as u64,
            section,
            core::ptr::null_mut(),
            ip.as_mut_ptr(),
            orc.as_mut_ptr(),
            capacity,
            &mut table,
        )
    };
    (rc, PlacedModule { table, _ip: ip, _orc: orc })
}

std::thread_local! {
    /// What `module_at` answers; `text_end` 0: no module.
    static MODULE: core::cell::Cell<OrcwalkModuleText> = const { core::cell::Cell::new(OrcwalkModuleText {
        table: OrcwalkTable { ip: core::ptr::null(), orc: core::ptr::null(), num_entries: 0, lookup_blocks: 0,
            lookup: core::ptr::null(), lookup_base: 0, ip_addr: 0 },
        text_start: 0, text_end: 0 }) };
}

fn set_module(table: OrcwalkTable, text_start: u64, text_end: u64) {
    MODULE.with(|m| m.set(OrcwalkModuleText { table, text_start, text_end }));
}

/// Gives the module set in `MODULE` for any pc: holding the answer to the pc is the walk's check.
extern "C" fn module_at(_ctx: *mut c_void, _pc: u64) -> *const OrcwalkModuleText {
    MODULE.with(|m| if m.get().text_end == 0 { core::ptr::null() } else { m.as_ptr().cast_const() })
}

#[test]
fn module_code_is_walked_with_its_own_table() {
    let s = sections();
    let bytes = module_table_bytes(48, true);
    let mut n = 0u32;
    assert_eq!(unsafe { orcwalk_module_table_entries(bytes.as_ptr(), bytes.len() as u64, &mut n) }, 0);
    assert_eq!(n, 3);
    let (rc, placed) = place(&bytes, section_at, n);
    assert_eq!(rc, 0);
    assert_eq!((placed.table.num_entries, placed.table.ip_addr), (3, MODULE_TEXT));
    assert_eq!(unsafe { orcwalk_validate_table(&placed.table) }, 0);

    // entry asm -> A (image) -> B (module, 48-byte frame), B stopped at its call site.
    let (mem, b_rec) = a_calls_b(&s);
    let stack = OrcwalkStack { low: TASK_LOW, high: TASK_HIGH, kind: 0, pad: 0 };
    let walk = |ctx: &OrcwalkContext| {
        let mut frames: Vec<u64> = Vec::new();
        let mut v = OrcwalkVerdict::default();
        let rc = unsafe { orcwalk_stack_walk_reliable(consume, &mut frames as *mut _ as *mut c_void, ctx, &mut v) };
        (rc, v.reason, frames)
    };
    let pc = MODULE_TEXT + 0x20;
    let mut ctx = context(&s, &mem, &stack, pc, b_rec, b_rec);

    // No module callback: module code is not text, never guessed.
    let (rc, reason, _) = walk(&ctx);
    assert_eq!((rc, reason), (-22, Reason::UnknownText as u32 + 1));

    ctx.module = Some(module_at);
    set_module(placed.table, MODULE_TEXT, MODULE_TEXT + 0x80);
    let (rc, reason, frames) = walk(&ctx);
    assert_eq!((rc, reason), (0, 0));
    assert_eq!(frames, [pc, s.text + 0x120, s.text + 0x8010]);

    // The module's table does not describe B's frame as 32 bytes: B's record is not where
    // its row says, so the walk refuses.
    let (rc, wrong) = place(&module_table_bytes(32, true), section_at, 3);
    assert_eq!(rc, 0);
    set_module(wrong.table, MODULE_TEXT, MODULE_TEXT + 0x80);
    let (rc, _, _) = walk(&ctx);
    assert_eq!(rc, -22);

    // A range that does not hold the pc is no answer.
    set_module(placed.table, MODULE_TEXT + 0x40, MODULE_TEXT + 0x80);
    let (rc, reason, _) = walk(&ctx);
    assert_eq!((rc, reason), (-22, Reason::UnknownText as u32 + 1));
    set_module(placed.table, 0, 0);
}

#[test]
fn module_tables_are_refused_unless_well_formed_and_proven() {
    let mut n = 0u32;
    let unproven = module_table_bytes(48, false);
    assert_eq!(unsafe { orcwalk_module_table_entries(unproven.as_ptr(), unproven.len() as u64, &mut n) }, -22);
    let good = module_table_bytes(48, true);
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(unsafe { orcwalk_module_table_entries(bad.as_ptr(), bad.len() as u64, &mut n) }, -8);
    assert_eq!(unsafe { orcwalk_module_table_entries(good.as_ptr(), good.len() as u64 - 1, &mut n) }, -22);
    // Room for 2 entries of 3.
    assert_eq!(place(&good, section_at, 2).0, -22);
    extern "C" fn nowhere(_: *mut c_void, _: *const u8, _: u32, _: u64, _: *mut u64) -> bool {
        false
    }
    assert_eq!(place(&good, nowhere, 3).0, -22, "no section loaded: no table");
}
