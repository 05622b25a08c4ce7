//! Source lines beside the frames agree with binutils' `addr2line` (an outside reader of the same
//! DWARF, not the crate we read it with), looked up where a debugger looks: the pc of an
//! interrupted frame, the call (`pc - 4`) of a return address. A `--vmlinux` of another image is
//! refused, and the verdict lines of `replay` without `-v` stay as they were.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use orcwalk::FrameKind;
use orcwalk_sim::report::{Options, Replayer};

fn corpus(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus").join(dir)
}

/// One address as `aarch64-linux-gnu-addr2line -a -i` prints it: the innermost location first,
/// then each inlined call's site, as `(path, line)`; `None` for `??`.
fn binutils(elf: &std::path::Path, addrs: &[u64]) -> Vec<Vec<Option<(String, u32)>>> {
    let mut cmd = Command::new("aarch64-linux-gnu-addr2line");
    cmd.arg("-a").arg("-i").arg("-e").arg(elf);
    for a in addrs {
        cmd.arg(format!("{a:#x}"));
    }
    let out = cmd.output().expect("aarch64-linux-gnu-addr2line (binutils-aarch64-linux-gnu)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut all: Vec<Vec<Option<(String, u32)>>> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.starts_with("0x") {
            all.push(Vec::new());
            continue;
        }
        // "/dir/workload.c:29 (discriminator 3)"; "??:0", "??:?" or "pthread_kill.o:0" (a
        // symbol's object, no line table) for nothing known.
        let loc = line.split(" (").next().unwrap_or(line);
        let (file, n) = loc.rsplit_once(':').unwrap_or_else(|| panic!("addr2line said {line:?}"));
        let n: u32 = n.parse().unwrap_or(0);
        let parsed = (file != "??" && n != 0).then(|| (file.to_string(), n));
        all.last_mut().expect("an address first").push(parsed);
    }
    assert_eq!(all.len(), addrs.len());
    all
}

/// The same file: binutils names it in full, we relative to the comp dir.
fn same_file(theirs: &str, ours: &str) -> bool {
    theirs == ours || theirs.ends_with(&format!("/{ours}"))
}

#[test]
fn user_frame_lines_agree_with_binutils_addr2line() {
    for prog in ["user/gcc-O2", "user/clang-O2", "user/gcc-O0"] {
        let elf = corpus(prog).join("program.elf");
        let mut replayer = Replayer::new(Options::default()).unwrap();
        // (address looked up, what we said): every distinct one of the walks' frames.
        let mut seen = BTreeSet::new();
        let mut frames = Vec::new();
        for (path, dump) in orcwalk_sim::dump::load_dir(&corpus(prog)).unwrap() {
            let report = replayer.report(&path, &dump).unwrap();
            for f in report.frames {
                // The rule, stated here on its own: interrupted pcs as they are, return
                // addresses at their call.
                let interrupted = match f.kind {
                    FrameKind::Start => dump.info.start_regs,
                    FrameKind::Exception => true,
                    _ => false,
                };
                let at = if interrupted { f.pc.0 } else { f.pc.0 - 4 };
                if seen.insert(at) {
                    frames.push((at, f.kind, f.source));
                }
            }
        }
        // Every 5th: a spread over the program and its libc (which has no line table), in one run.
        let sample: Vec<_> = frames.iter().step_by(5).take(60).collect();
        let addrs: Vec<u64> = sample.iter().map(|f| f.0).collect();
        let theirs = binutils(&elf, &addrs);
        let (mut located, mut returns, mut inlined) = (0, 0, 0);
        for ((at, kind, ours), theirs) in sample.iter().zip(&theirs) {
            let Some(Some((tfile, tline))) = theirs.first() else {
                assert!(
                    ours.as_ref().is_none_or(|l| l.line == 0),
                    "{prog} {at:#x}: binutils knows no line, we {ours:?}"
                );
                continue;
            };
            let ours = ours.as_ref().unwrap_or_else(|| panic!("{prog} {at:#x}: no line; binutils {tfile}:{tline}"));
            assert!(
                same_file(tfile, &ours.file) && *tline == ours.line,
                "{prog} {at:#x} ({kind:?}): ours {ours}, binutils {tfile}:{tline}"
            );
            // The inline chain: binutils prints each call site after the innermost.
            let calls: Vec<_> = theirs[1..].iter().map(|c| c.clone().unwrap_or(("??".into(), 0))).collect();
            assert_eq!(calls.len(), ours.inlined.len(), "{prog} {at:#x}: inline chain {ours:?} vs {theirs:?}");
            for ((tf, tl), c) in calls.iter().zip(&ours.inlined) {
                assert!(same_file(tf, &c.file) && *tl == c.line, "{prog} {at:#x}: call {c:?} vs {tf}:{tl}");
            }
            located += 1;
            returns += usize::from(*kind == FrameKind::Return);
            inlined += usize::from(!ours.inlined.is_empty());
        }
        // The sample must hold what it checks: located frames, return addresses among them.
        assert!(located >= 5 && returns >= 2, "{prog}: only {located} located, {returns} return addresses");
        eprintln!(
            "{prog}: {} frames sampled, {located} located ({returns} return addresses, {inlined} inlined)",
            sample.len()
        );
    }
}

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orcwalk-sim"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(args)
        .output()
        .unwrap()
}

/// A vmlinux whose build-id is not the dump's image id would put wrong lines beside the frames:
/// it is refused, naming both ids. (A user program stands in for a wrong vmlinux: the corpus
/// ships no debug vmlinux.)
#[test]
fn a_vmlinux_of_another_image_is_refused() {
    let dump = "tests/corpus/kernel/6.12-cloud/00050.core";
    let wrong = "tests/corpus/user/gcc-O2/program.elf";
    for cmd in [vec!["show", dump, "--vmlinux", wrong], vec!["replay", "-v", dump, "--vmlinux", wrong]] {
        let out = sim(&cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(out.stdout.is_empty(), "{cmd:?} printed {}", String::from_utf8_lossy(&out.stdout));
        assert!(
            err.contains("is not the image of")
                && err.contains("build-id 7dc59f1908c6beb920adba1c65e5f053e9740e5d")
                && err.contains("build-id 68bac71c444a1d82e2e1d85e8d5d2e4b058fb896"),
            "{cmd:?}: {err}"
        );
    }
}

/// `replay` without `-v` prints verdicts, not frames: no lines appear there, so scripts reading
/// it see what they saw before lines existed. The expected text is what the command printed the
/// commit before lines (an unreliable verdict in a function with lines, and a reliable one); with
/// `-v` the same dumps do show lines.
#[test]
fn replay_without_verbose_prints_no_lines() {
    let dumps = ["tests/corpus/user/clang-O2/00005.core", "tests/corpus/user/gcc-O2/00003.core"];
    let out = sim(&[&["replay"][..], &dumps].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let verdicts: Vec<&str> = text.lines().take(2).collect();
    assert_eq!(verdicts, EXPECTED, "replay's verdict lines changed");
    let verbose = sim(&[&["replay", "-v"][..], &dumps].concat());
    let verbose = String::from_utf8(verbose.stdout).unwrap();
    assert!(verbose.contains("    #0  0x0000000000238c44 vla+0x5c/0x9c (workload.c:36) Start ="), "{verbose}");
}

const EXPECTED: [&str; 2] = [
    "tests/corpus/user/clang-O2/00005.core: unreliable: ORC entry undefined at pc 0x238c44 vla+0x5c/0x9c fp 0x7f5ad57fe0f0 (1 frames)",
    "tests/corpus/user/gcc-O2/00003.core: reliable, matches truth (6 frames)",
];
