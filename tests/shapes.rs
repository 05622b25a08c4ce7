//! Soundness reproducers built from real compiled code (tests/fixtures/shapes, built by
//! scripts/build-shape-fixtures with clang 14): shapes an adversarial review found where the
//! walk says RELIABLE with a frame missing. Each program runs under `qemu-aarch64 -g`, stops at
//! the bad pc on a breakpoint (a real stop: registers and stack as the code left them), and the
//! stop is walked with the ORC table the generator builds from the binary, under every
//! combination of the two opt-ins. The true frames are stated per shape and checked against the
//! program itself: it is stepped on until the interrupted function has returned, and the CFI
//! unwind from there (where its rows are exact) must give the rest of them.
//!
//! gdb-multiarch's `bt` at both bad pcs follows the same stale CFI and drops `main` too (checked
//! by hand; see the commit message): gdb is no witness here, the program is. So does the
//! harness's own CFI truth (`Image::unwind`, printed at each stop): it reports the same
//! main-less frames as complete with no doubt, so a captured corpus would score these false
//! reliable verdicts as correct; only a truth taken by running the program on catches them.
//!
//! Both walks returned RELIABLE with `main` missing before the generator proved its rows along
//! control flow (`orc_format::generate::prove`): `orc-format build --unproven` still makes the
//! table they were fooled by.

use std::path::PathBuf;
use std::process::Command;

use orc_format::generate::{ElfImage, Options, generate, generate_with};
use orc_format::{OrcEntry, Reg, TableFile};
use orcwalk::{Policy, Verdict};
use orcwalk_sim::capture::rsp::Stop;
use orcwalk_sim::capture::target::Target;
use orcwalk_sim::dump::{Dump, Region, SampleInfo};
use orcwalk_sim::replay::{Mode, replay_text};
use orcwalk_sim::text::ImageText;
use orcwalk_sim::truth::Image;

fn program(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shapes").join(name)
}

/// The four combinations of the opt-ins, the sound default first.
const CONFIGS: [(&str, Mode); 2] = [("default", Mode { strict: false }), ("strict", Mode::STRICT)];

/// The program's text at `[from, to)` as aarch64-linux-gnu-objdump prints it.
fn objdump(name: &str, from: u64, to: u64) -> String {
    let out = Command::new("aarch64-linux-gnu-objdump")
        .args(["-d", "--no-show-raw-insn", &format!("--start-address={from:#x}"), &format!("--stop-address={to:#x}")])
        .arg(program(name))
        .output()
        .expect("aarch64-linux-gnu-objdump (scripts/setup installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The CFI row at `pc` as the compiler wrote it (no stale cut, no anchoring), and the row the
/// generator ships.
fn rows_at(bytes: &[u8], pc: u64) -> (OrcEntry, OrcEntry) {
    let image = ElfImage::parse(bytes).unwrap();
    let raw = generate_with(&image, Options { prove: false, anchor: false }).unwrap().to_file_bytes().unwrap();
    let shipped = generate(&image).unwrap().to_file_bytes().unwrap();
    let at = |b: &[u8]| TableFile::parse(b).unwrap().table.find(pc).unwrap().1;
    (at(&raw), at(&shipped))
}

/// A real stop at `pc`: the program runs under qemu's gdbstub to a breakpoint there. Returns the
/// dump of registers and stack, and the true frames: the stopped pc, then the frames the CFI
/// unwind finds once the program has been stepped out of the interrupted function (`ret`
/// executed, so its rows hold again).
fn stop_at(name: &str, pc: u64) -> (Dump, Vec<u64>) {
    let path = program(name);
    let bytes = std::fs::read(&path).unwrap();
    let image = Image::parse(&bytes).unwrap();
    let mut t = Target::spawn("qemu-aarch64", &path, &[]).expect("qemu-aarch64 (scripts/setup installs it)");
    let top = t.client.registers().unwrap()[31];
    t.client.breakpoint(pc, true).unwrap();
    assert_eq!(t.client.cont(0).unwrap(), Stop::Signal(5), "{name}: the program never reached {pc:#x}");
    t.client.breakpoint(pc, false).unwrap();
    let regs = t.client.registers().unwrap();
    assert_eq!(regs[32], pc);
    let low = regs[31] & !15;
    let data = t.client.memory(low, (top - low) as usize).unwrap().unwrap();
    let info = SampleInfo::user(&regs, image.text, (low, top), image.image_id, String::new());
    let mut dump = Dump { regs, info, regions: vec![Region { vaddr: low, data, exec: false }] };
    // What the harness's CFI truth (as scripts/capture-user-corpus records it) says at the stop.
    let at_stop = image.unwind(&regs, &dump);
    println!(
        "{name} at {pc:#x}: CFI truth {} complete {} doubt {:?}",
        hex(&at_stop.pcs),
        at_stop.complete,
        at_stop.doubt
    );
    let function = image.function(pc).unwrap();
    let mut after = regs;
    for _ in 0..16 {
        assert_eq!(t.client.step(0).unwrap(), Stop::Signal(5));
        after = t.client.registers().unwrap();
        if !(function.0..function.1).contains(&after[32]) {
            break;
        }
    }
    assert!(!(function.0..function.1).contains(&after[32]), "{name}: did not return from the function at {pc:#x}");
    // Above the sp the function returned with, the stack is as dumped.
    let rest = image.unwind(&after, &dump);
    assert!(rest.complete, "{name}: CFI unwind after the return: {:?}", rest.doubt);
    let mut truth = vec![pc];
    truth.extend(rest.pcs);
    dump.info.truth = truth.clone();
    dump.info.truth_complete = true;
    (dump, truth)
}

fn hex(pcs: &[u64]) -> String {
    let v: Vec<String> = pcs.iter().map(|p| format!("{p:#x}")).collect();
    format!("[{}]", v.join(", "))
}

/// The walk under each configuration, with what it found wrong: `None` when it is sound
/// (unreliable, or reliable with exactly the true frames).
fn fooled(name: &str, dump: &Dump, truth: &[u64], configs: &[(&str, Mode)]) -> Vec<String> {
    fooled_with(name, dump, truth, configs, Options::default(), false)
}

/// `fooled` with the table made with `options` (`prove: false`: the compiler's rows as they
/// are), and with the program's text given to the walk (its call-site and x30 witnesses) or not.
fn fooled_with(
    name: &str,
    dump: &Dump,
    truth: &[u64],
    configs: &[(&str, Mode)],
    options: Options,
    with_text: bool,
) -> Vec<String> {
    let bytes = std::fs::read(program(name)).unwrap();
    let image = ElfImage::parse(bytes.as_slice()).unwrap();
    // Marked proven whatever `options` say: the walk takes single-witness frames only from
    // tables that claim it, so an unproven table shows its danger only when it claims it.
    let mut generated = generate_with(&image, options).unwrap();
    generated.proven = true;
    let table = generated.to_file_bytes().unwrap();
    let table = TableFile::parse(&table).unwrap();
    let text = ImageText::from_elf(&bytes).unwrap();
    let sym = |pc: u64| format!("{pc:#x} ({})", image.symbolize(pc));
    let mut wrong = Vec::new();
    for &(config, mode) in configs {
        let out = replay_text(dump, table, with_text.then(|| text.view()), Policy::Orcwalk, mode);
        let pcs: Vec<u64> = out.frames.iter().map(|f| f.0).collect();
        println!("{name} at {:#x}, {config}: {:?}, frames {}", dump.regs[32], out.verdict, hex(&pcs));
        if out.verdict != Verdict::Reliable || pcs == truth {
            continue;
        }
        let missing: Vec<String> = truth.iter().filter(|p| !pcs.contains(p)).map(|&p| sym(p)).collect();
        let extra: Vec<String> = pcs.iter().filter(|p| !truth.contains(p)).map(|&p| sym(p)).collect();
        wrong.push(format!(
            "{config}: RELIABLE with frame {} missing{}; walked {}, true {}",
            missing.join(", "),
            if extra.is_empty() { String::new() } else { format!(" and {} added", extra.join(", ")) },
            hex(&pcs),
            hex(truth)
        ));
    }
    wrong
}

// Shape 1: `tagged` in tests/fixtures/shapes/tag-epilogue (clang 14, -fsanitize=memtag, no frame
// pointers). Its frame is 64 bytes, x30 saved 32 below the CFA; the CFI says `CFA = sp + 64`
// from 0x238804 to the end, and describes no epilogue:
//   238824: st2g sp, [sp], #32     untag buf and free 32 bytes: sp += 32
//   238828: ldp  x20, x19, [sp, #16]   <- bad: the row still says CFA = sp + 64 (true: sp + 32)
//   23882c: ldr  x30, [sp], #32        <- bad
//   238830: ret                         (cut by the generator: the ldr writes sp and x30)
// At the bad pcs the walk takes CFA 32 too high and reads the return address at CFA - 32 = the
// true CFA, which is `main`'s saved x30 (main: `str x30, [sp, #-32]!`, no record): `main` is
// dropped, and the sp handed to __libc_start_call_main is exactly main's CFA, so glibc's
// sp-based rows and frame records check out all the way to _start.
const TAG: &str = "tag-epilogue";
const TAG_STORE: u64 = 0x238824;
const TAG_BAD: [u64; 2] = [0x238828, 0x23882c];
/// tagged (the stop), main (after `bl tagged`), __libc_start_call_main (after `blr x3`),
/// __libc_start_main_impl, _start.
const TAG_TRUTH: [u64; 4] = [0x23886c, 0x238948, 0x238d14, 0x2386b0];

/// Green today: the fixture has shape 1. The instruction writes sp (objdump), and the CFI row is
/// the same before and after it.
#[test]
fn tag_epilogue_fixture_has_the_shape() {
    let text = objdump(TAG, TAG_STORE, TAG_STORE + 4);
    assert!(text.contains("st2g\tsp, [sp], #32"), "the fixture changed: find tagged's epilogue again\n{text}");
    let bytes = std::fs::read(program(TAG)).unwrap();
    let before = rows_at(&bytes, TAG_STORE).0;
    assert_eq!(
        (before.sp_reg(), before.sp_offset, before.ra_reg(), before.ra_offset),
        (Some(Reg::Sp), 64, Some(Reg::PrevSp), -32)
    );
    for pc in TAG_BAD {
        assert_eq!(rows_at(&bytes, pc).0, before, "{pc:#x}: the CFI describes the sp move after all");
    }
    let text = objdump(TAG, TAG_STORE + 4, TAG_BAD[1] + 4);
    assert!(text.contains("ldp\tx20, x19, [sp, #16]") && text.contains("ldr\tx30, [sp], #32"), "{text}");
}

#[test]
fn tag_epilogue_stops_are_not_fooled() {
    let mut wrong = Vec::new();
    for pc in TAG_BAD {
        let (dump, truth) = stop_at(TAG, pc);
        assert_eq!(truth[0], pc);
        assert_eq!(truth[1..], TAG_TRUTH, "the program's own frames at {pc:#x}");
        wrong.extend(fooled(TAG, &dump, &truth, &CONFIGS).into_iter().map(|w| format!("at {pc:#x}, {w}")));
    }
    assert!(wrong.is_empty(), "{TAG}: false reliable:\n{}", wrong.join("\n"));
}

// Shape 2: `row_done` in tests/fixtures/shapes/early-return (clang 14 -O2, frame pointers).
//   238804: cbz  x0, 238858          early returns, before the prologue
//   238808: tbnz w1, #31, 238858
//   23880c: stp  x29, x30, [sp, #-48]!  ... 238814: mov x29, sp; 238818: stp x20, x19, [sp, #32]
//   23881c: ...                        CFI: CFA = x29 + 48, x29 at CFA - 48, x30 at CFA - 40
//   238854: b    238870
//   238858: ret                        <- bad: frameless (true: CFA = sp, return address in x30,
//                                         x29 the caller's), but in address order inside the
//                                         x29 row before any x29 write, so the stale cut keeps it
//   238884: ldp  x29, x30, [sp], #48  (the cut starts after this)
// At the bad pc x29 is `main`'s record (main: `stp x29, x30, [sp, #-48]!; mov x29, sp`): CFA =
// x29 + 48 is main's CFA, the "saved" x29/x30 are main's record, and `main` is dropped.
const EARLY: &str = "early-return";
const EARLY_ROW: u64 = 0x23881c;
const EARLY_BAD: u64 = 0x238858;
/// row_done (the stop), main (after the second `bl row_done`), __libc_start_call_main,
/// __libc_start_main_impl, _start.
const EARLY_TRUTH: [u64; 4] = [0x2388fc, 0x2389d8, 0x238da4, 0x2386b0];

/// Green today: the fixture has shape 2. The `ret` is reached from the entry's branches, lies in
/// the x29-based row, and no instruction from the row's start to it writes x29.
#[test]
fn early_return_fixture_has_the_shape() {
    let entry = objdump(EARLY, 0x238804, 0x23880c);
    assert!(
        entry.contains("cbz\tx0, 238858") && entry.contains("tbnz\tw1, #31, 238858"),
        "the fixture changed\n{entry}"
    );
    assert!(objdump(EARLY, EARLY_BAD, EARLY_BAD + 4).contains("ret"));
    let bytes = std::fs::read(program(EARLY)).unwrap();
    let row = rows_at(&bytes, EARLY_ROW).0;
    assert_eq!((row.sp_reg(), row.sp_offset, row.fp_reg(), row.fp_offset), (Some(Reg::Fp), 48, Some(Reg::PrevSp), -48));
    assert_eq!(rows_at(&bytes, EARLY_BAD).0, row, "the CFI has a row for the early return after all");
    let body = objdump(EARLY, EARLY_ROW, EARLY_BAD);
    for line in body.lines().filter(|l| l.contains(":\t")) {
        let insn = line.split(":\t").nth(1).unwrap();
        assert!(
            !insn.split('\t').nth(1).is_some_and(|ops| ops.starts_with("x29")),
            "x29 written before the ret: {line}"
        );
    }
}

/// The default takes `row_done`'s x29-based rows as single-witness frames (proven rows only);
/// at the early return the proof has cut the row, so neither the default nor strict mode is
/// fooled.
#[test]
fn early_return_stop_does_not_fool_the_walk() {
    let (dump, truth) = stop_at(EARLY, EARLY_BAD);
    assert_eq!(truth[1..], EARLY_TRUTH, "the program's own frames");
    let wrong = fooled(EARLY, &dump, &truth, &CONFIGS);
    assert!(wrong.is_empty(), "{EARLY}: false reliable:\n{}", wrong.join("\n"));
}

/// The walk's own witnesses, independent of the generator's proof: with the compiler's rows
/// unproven, shape 2 fools the walk when it cannot see the text and not when it can (x30 still
/// holds row_done's own return address, after main's `bl row_done`; the row's slot holds main's).
/// Shape 1 stays the generator's to catch: the stale return address it reads follows glibc's
/// `blr x3` into main, an indirect call that names no callee, and `tagged` keeps no record and
/// has made calls (x30 is no witness), so nothing in the walk can tell.
#[test]
fn unproven_rows_are_caught_by_the_text_witnesses() {
    let unproven = Options { prove: false, anchor: false };
    let (dump, truth) = stop_at(EARLY, EARLY_BAD);
    let configs = &CONFIGS[..1];
    let blind = fooled_with(EARLY, &dump, &truth, configs, unproven, false);
    assert_eq!(blind.len(), configs.len(), "the unproven table should fool a walk without text: {blind:?}");
    let seeing = fooled_with(EARLY, &dump, &truth, configs, unproven, true);
    assert!(seeing.is_empty(), "fooled with the text at hand:\n{}", seeing.join("\n"));
    let (dump, truth) = stop_at(TAG, TAG_BAD[0]);
    assert_eq!(
        fooled_with(TAG, &dump, &truth, &CONFIGS[..1], unproven, true).len(),
        1,
        "shape 1 caught by the walk now: say so"
    );
}
